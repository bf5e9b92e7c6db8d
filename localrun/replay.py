"""Replay a symbol's journal and diff the result against what Redis holds.

``diff_against_replay(r, market)`` reads every journaled command (``store.journal.read_after``
from 0), runs it through a model on an empty book, and compares the outcome with Redis:
every order hash (status, reason, filled, notional, updatedAt, quantity), the resting set
(stops included), the book level zsets, and the trades stream. The model is the engine
itself (``EngineModel``, fast enough for the load bench's large journals) or any class
with the same methods (the tests pass their slow reference model). Returns a list of
differences (empty: equal).
"""

from __future__ import annotations

from decimal import Decimal

import orjson
import redis

from engine import OrderBook, PlaceOrder, apply
from engine.types import LevelChanged, OrderUpdated, TradeExecuted
from schemas.markets import Market
from store import codec, journal, keys

MAX_DIFFS = 20


def render(event) -> tuple:
    """A plain-tuple rendering of an engine event, comparable with the reference's."""
    if isinstance(event, TradeExecuted):
        return (
            "trade", event.sequence, event.price, event.quantity,
            event.maker_order_id, event.taker_order_id, str(event.taker_side), event.timestamp,
        )  # fmt: skip
    if isinstance(event, OrderUpdated):
        return (
            "order", event.order.id, str(event.status),
            None if event.reason is None else str(event.reason),
            event.filled, event.notional, event.updated_at, event.quantity,
        )  # fmt: skip
    if isinstance(event, LevelChanged):
        return ("level", str(event.side), event.price, event.quantity, event.orders)
    raise TypeError(event)


class EngineModel:
    def __init__(self, symbol: str):
        self.book = OrderBook(symbol)

    def step(self, cmd) -> list[tuple]:
        return [render(e) for e in apply(self.book, cmd)]

    def levels(self, side: str):
        return self.book.levels(side, None)

    def resting(self) -> dict[str, int]:
        return {o.id: o.sequence for o in [*self.book.orders.values(), *self.book.stops.values()]}


def replay(r: redis.Redis, symbol: str, model=EngineModel):
    """(commands, last order event per id, trade tuples, model) after the whole journal;
    ``model(symbol)`` makes the model to run the commands through."""
    commands = [cmd for cmd, _ in journal.read_after(r, symbol, 0)]
    m = model(symbol)
    last: dict[str, tuple] = {}
    trades: list[tuple] = []
    for cmd in commands:
        for e in m.step(cmd):
            if e[0] == "order":
                last[e[1]] = e
            elif e[0] == "trade":
                trades.append(e)
    return commands, last, trades, m


def _ticks(value, step: Decimal) -> int:
    units, rest = divmod(Decimal(repr(value)), step)
    assert rest == 0, (value, step)
    return int(units)


def diff_against_replay(r: redis.Redis, market: Market, model=EngineModel) -> list[str]:
    """Differences between Redis and a replay of the journal (assumes the worker drained)."""
    symbol = market.symbol
    diffs: list[str] = []

    def differ(what: str) -> bool:
        diffs.append(what)
        return len(diffs) >= MAX_DIFFS

    commands, last, trades, m = replay(r, symbol, model)
    seqs = [c.sequence for c in commands]
    if seqs != list(range(1, len(seqs) + 1)):
        diffs.append(f"{symbol}: journal sequences are not 1..{len(seqs)} in order")
    applied = int(r.get(keys.applied(symbol)) or 0)
    if applied != len(seqs):
        diffs.append(f"{symbol}: applied cursor {applied} != journal length {len(seqs)}")

    # Orders: every journaled place, in chunks.
    places = [c for c in commands if isinstance(c, PlaceOrder)]
    for start in range(0, len(places), 1000):
        chunk = places[start:start + 1000]
        with r.pipeline(transaction=False) as pipe:
            for c in chunk:
                pipe.hmget(keys.order(c.order_id), "status", "reason", "filled", "notional",
                           "upd", "qty")
            stored = pipe.execute()
        for c, got in zip(chunk, stored, strict=True):
            e = last.get(c.order_id)
            want = ([e[2], e[3] or "", str(e[4]), str(e[5]), str(e[6]), str(e[7])] if e
                    else ["PENDING", "", "0", "0", str(c.timestamp), str(c.quantity)])
            if list(got) != want and differ(f"order {c.order_id} (seq {c.sequence}): "
                                            f"redis {got} != replay {want}"):
                return diffs

    # Resting set and book levels.
    resting = {k: int(v) for k, v in r.zrange(keys.resting(symbol), 0, -1, withscores=True)}
    if resting != m.resting():
        only_r = sorted(set(resting) - set(m.resting()))[:5]
        only_m = sorted(set(m.resting()) - set(resting))[:5]
        diffs.append(f"{symbol}: resting set differs (redis only {only_r}, replay only {only_m})")
    for side in ("BUY", "SELL"):
        members = (r.zrevrange if side == "BUY" else r.zrange)(keys.book(symbol, side), 0, -1)
        got = [codec.decode_level(member) for member in members]
        want = [tuple(level) for level in m.levels(side)]
        if got != want:
            diffs.append(f"{symbol} {side} levels: redis {got[:5]}... != replay {want[:5]}...")

    # Trades: the whole stream, in order.
    stored_trades = []
    for eid, f in r.xrange(keys.trades(symbol)):
        t = orjson.loads(f["t"])
        stored_trades.append((
            "trade", keys.sequence_of(eid), _ticks(t["price"], market.tick_size),
            _ticks(t["quantity"], market.lot_size), t["makerOrderId"], t["takerOrderId"],
            t["takerSide"], t["timestamp"]))
    if stored_trades != trades:
        n = next((i for i, (a, b) in enumerate(zip(stored_trades, trades, strict=False))
                  if a != b), min(len(stored_trades), len(trades)))
        diffs.append(f"{symbol}: trades differ at #{n} (redis {len(stored_trades)} trades, "
                     f"replay {len(trades)}): "
                     f"{stored_trades[n:n + 1]} != {trades[n:n + 1]}")
    return diffs
