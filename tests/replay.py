"""The journal replay check (``localrun.replay``) with the tests' reference model: the
slow, obviously correct model of ``tests/property/reference.py`` replays the journal, so a
test checks the engine and the store against something that shares no code with them."""

from __future__ import annotations

import redis

from engine import CancelAll, CancelOrder, ExpireOrder, ReduceOrder
from localrun import replay as _replay
from schemas.markets import Market
from tests.property.reference import ReferenceBook, RefOrder


class ReferenceModel:
    def __init__(self, symbol: str):
        self.book = ReferenceBook()

    def step(self, cmd) -> list[tuple]:
        ts = cmd.timestamp
        if isinstance(cmd, CancelOrder):
            return self.book.cancel(cmd.order_id, ts)
        if isinstance(cmd, ExpireOrder):
            return self.book.cancel(cmd.order_id, ts, "EXPIRED")
        if isinstance(cmd, ReduceOrder):
            return self.book.reduce(cmd.order_id, cmd.quantity, ts)
        if isinstance(cmd, CancelAll):
            return self.book.cancel_all(cmd.account_id, ts)
        twin = RefOrder(cmd.order_id, str(cmd.side), str(cmd.order_type),
                        str(cmd.time_in_force), cmd.price, cmd.quantity, cmd.sequence,
                        cmd.account_id, cmd.post_only, str(cmd.self_trade_prevention),
                        cmd.stop_price)
        return self.book.submit(twin, ts, cmd.replaces_order_id)

    def levels(self, side: str):
        return self.book.levels(side)

    def resting(self) -> dict[str, int]:
        return {o.id: o.sequence for o in self.book.resting + self.book.stops}


MODELS = {"reference": ReferenceModel, "engine": _replay.EngineModel}


def diff_against_replay(r: redis.Redis, market: Market, model: str = "reference") -> list[str]:
    """Differences between Redis and a replay of the journal through ``model``."""
    return _replay.diff_against_replay(r, market, MODELS[model])
