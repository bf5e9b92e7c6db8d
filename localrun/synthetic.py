"""Commits written straight to Redis as the matching worker writes them, without a worker:
the fan-out bench's synthetic flow and the relay's tests publish their own commits."""

from __future__ import annotations

import orjson

from store import codec, keys


def stage_commit(pipe, message: dict, ticks_per_unit: int, lots_per_unit: int) -> None:
    """Queue on ``pipe`` what the worker's commit writes for a commit ``message`` (wire
    shape: prices and quantities as numbers; 100 ticks per unit is a 0.01 tick): its book
    levels, trades and applied cursor. Publishing the message is the caller's."""
    symbol = message["symbol"]
    for ch in message["changes"]:
        key = keys.book(symbol, ch["side"])
        ticks = round(ch["price"] * ticks_per_unit)
        lots = round(ch["quantity"] * lots_per_unit)
        pipe.zremrangebyscore(key, ticks, ticks)
        if lots:
            pipe.zadd(key, {codec.encode_level(ticks, lots, ch["orders"]): ticks})
    for t in message["trades"]:
        pipe.xadd(keys.trades(symbol), {"t": orjson.dumps(t)}, id=keys.stream_id(t["sequence"]))
        pipe.set(keys.trade_seq(symbol), t["sequence"])
    pipe.set(keys.applied(symbol), message["sequence"])
