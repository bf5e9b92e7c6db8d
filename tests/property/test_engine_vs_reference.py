"""The engine against the reference model on random command streams.

Each example is a stream of 200-300 commands (every kind of place, stops and GTD included;
cancels, expiries and reduces of resting, untriggered, final and unknown ids; replaces;
cancel-alls) over a narrow price band so orders cross a lot. After every command:
identical events, ``book.check()``, identical levels and stop books, and the per-event
invariants (section 7's among them: a reduce keeps the queue position; a replace never
leaves both orders open; an untriggered stop never trades; a triggered stop is processed
exactly once; an expired order never trades again). At one point of the stream the book
is snapshotted (through JSON), restored, and the restored copy must replay the rest of
the stream with identical events.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import (
    CancelAll,
    CancelOrder,
    ExpireOrder,
    LevelChanged,
    OrderBook,
    OrderType,
    OrderUpdated,
    PlaceOrder,
    ReduceOrder,
    SelfTradePrevention,
    Side,
    TimeInForce,
    TradeExecuted,
    apply,
)

from .reference import ReferenceBook, RefOrder, render

ACCOUNTS = ("alice", "bob", "anonymous")
STPS = tuple(SelfTradePrevention)
# (order_type, time_in_force, post_only); GTC limits weigh most so the book fills up.
KINDS = (
    ("LIMIT", "GTC", False),
    ("LIMIT", "GTC", False),
    ("LIMIT", "GTC", False),
    ("LIMIT", "GTC", True),
    ("LIMIT", "IOC", False),
    ("LIMIT", "FOK", False),
    ("MARKET", "IOC", False),
    ("MARKET", "FOK", False),
    ("LIMIT", "GTD", False),
    ("STOP_LIMIT", "GTC", False),
    ("STOP_MARKET", "GTC", False),
)

place_st = st.tuples(
    st.just("place"),
    st.sampled_from(KINDS),
    st.booleans(),  # buy?
    st.integers(0, 8),  # price offset: bids 94-102, asks 98-106 (ignored for MARKET)
    st.integers(1, 12),  # quantity
    st.sampled_from(ACCOUNTS),
    st.sampled_from(STPS + (SelfTradePrevention.NONE,) * 3),
    st.integers(-1, 4),  # stop price: this many ticks past the last price (stops only)
)
target_st = st.sampled_from(("resting", "resting", "stop", "any", "unknown"))
cancel_st = st.tuples(st.just("cancel"), target_st, st.integers(0, 10_000))
expire_st = st.tuples(st.just("expire"), target_st, st.integers(0, 10_000))
reduce_st = st.tuples(st.just("reduce"), target_st, st.integers(0, 10_000),
                      st.integers(0, 13))
replace_st = st.tuples(st.just("replace"),
                       st.sampled_from(("resting", "resting", "stop", "any")),
                       st.integers(0, 10_000), place_st)
cancel_all_st = st.tuples(st.just("cancel_all"), st.sampled_from(ACCOUNTS))
# Out of 40: 28 places (so the book builds some depth and prices move), 4 cancels,
# 2 expiries, 3 reduces, 2 replaces, 1 cancel-all (it empties a third of the book).
_WEIGHTED = ([place_st] * 28 + [cancel_st] * 4 + [expire_st] * 2 + [reduce_st] * 3
             + [replace_st] * 2 + [cancel_all_st])
command_st = st.integers(0, len(_WEIGHTED) - 1).flatmap(lambda i: _WEIGHTED[i])
commands_st = st.lists(command_st, min_size=200, max_size=300)


class Run:
    """Drives the engine and the reference side by side and checks the invariants."""

    def __init__(self) -> None:
        self.book = OrderBook("TEST")
        self.ref = ReferenceBook()
        self.placed: list[str] = []
        self.final: set[str] = set()
        self.traded: dict[str, int] = defaultdict(int)
        self.trade_notional: dict[str, int] = defaultdict(int)
        self.last_trade_seq = 0
        self.seq = 0
        self.triggered: set[str] = set()

    def target(self, mode: str, k: int) -> str:
        resting = [i for i in self.placed if i in self.book.orders]
        stops = [i for i in self.placed if i in self.book.stops]
        if mode == "resting" and resting:
            return resting[k % len(resting)]
        if mode == "stop" and stops:
            return stops[k % len(stops)]
        if mode != "unknown" and self.placed:
            return self.placed[k % len(self.placed)]
        return f"unknown-{k}"

    def make(self, raw: tuple):
        """Turn a drawn tuple into a command and a function applying it to the reference."""
        self.seq += 1 + self.seq % 3  # increasing, with gaps
        seq, ts, ref = self.seq, 1_000_000 + self.seq * 7, self.ref
        kind = raw[0]
        if kind == "cancel_all":
            return CancelAll(seq, ts, raw[1]), lambda: ref.cancel_all(raw[1], ts)
        if kind != "place" and kind != "replace":
            oid = self.target(raw[1], raw[2])
            if kind == "cancel":
                return CancelOrder(seq, ts, oid), lambda: ref.cancel(oid, ts)
            if kind == "expire":
                return ExpireOrder(seq, ts, oid), lambda: ref.cancel(oid, ts, "EXPIRED")
            return ReduceOrder(seq, ts, oid, raw[3]), lambda: ref.reduce(oid, raw[3], ts)
        replaces = None
        if kind == "replace":
            replaces, raw = self.target(raw[1], raw[2]), raw[3]
        _, (otype, tif, post_only), buy, price, qty, acct, stp, stop = raw
        oid = f"o{len(self.placed)}"
        self.placed.append(oid)
        cmd = PlaceOrder(
            sequence=seq, timestamp=ts, order_id=oid,
            side=Side.BUY if buy else Side.SELL, order_type=OrderType(otype),
            time_in_force=TimeInForce(tif),
            price=(94 if buy else 98) + price if otype in ("LIMIT", "STOP_LIMIT") else None,
            quantity=qty, account_id=acct, post_only=post_only, self_trade_prevention=stp,
            stop_price=((self.book.last_price or 100) + (stop if buy else -stop)
                        if otype.startswith("STOP") else None),
            expire_time=ts + 1000 if tif == "GTD" else None, replaces_order_id=replaces,
        )  # fmt: skip
        twin = RefOrder(
            oid, str(cmd.side), otype, tif, cmd.price, qty, seq, acct, post_only, str(stp),
            cmd.stop_price,
        )
        return cmd, lambda: ref.submit(twin, ts, replaces)

    def step(self, cmd, on_reference) -> list:
        before = self.positions()
        stops_before = set(self.book.stops)
        events = apply(self.book, cmd)
        expected = on_reference()
        got = [render(e) for e in events]
        assert got == expected, f"{cmd}\n engine:    {got}\n reference: {expected}"
        self.book.check()
        assert self.book.last_sequence == cmd.sequence
        for side in (Side.BUY, Side.SELL):
            assert self.book.levels(side, None) == self.ref.levels(str(side))
            assert [o.id for o in self.book.stop_orders(side)] == sorted(
                (o.id for o in self.ref.stops if o.side == side),
                key=lambda i: (self.book.stops[i].stop_price, self.book.stops[i].sequence))
        assert self.book.last_price == self.ref.last_price
        bb, ba = self.book.best_bid(), self.book.best_ask()
        assert bb is None or ba is None or bb < ba, "crossed at rest"
        self.invariants(cmd, events)
        self.section7_invariants(cmd, events, before, stops_before)
        return events

    def positions(self) -> dict[str, tuple]:
        """Every resting order's (side, price, index in its queue)."""
        out = {}
        for side in (Side.BUY, Side.SELL):
            for price, _, _ in self.book.levels(side):
                for i, o in enumerate(self.book.level_orders(side, price)):
                    out[o.id] = (side, price, i)
        return out

    def section7_invariants(self, cmd, events, before, stops_before) -> None:
        after = self.positions()
        if isinstance(cmd, ReduceOrder) and cmd.order_id in after:
            # nothing else moved, so its index in the queue is the same
            assert after[cmd.order_id] == before[cmd.order_id], "a reduce moved the order"
        if isinstance(cmd, PlaceOrder) and cmd.replaces_order_id is not None:
            new_open = cmd.order_id in self.book.orders or cmd.order_id in self.book.stops
            old_open = (cmd.replaces_order_id in self.book.orders
                        or cmd.replaces_order_id in self.book.stops)
            assert not (new_open and old_open), "a replace left both orders open"
        user_removed = {e.order.id for e in events if isinstance(e, OrderUpdated)
                        and e.reason in ("USER_CANCELLED", "EXPIRED")}
        triggered = (stops_before - set(self.book.stops)) - user_removed
        for oid in triggered:
            assert oid not in self.triggered, f"{oid} triggered twice"
            self.triggered.add(oid)
        for e in events:
            if isinstance(e, TradeExecuted):
                for oid in (e.maker_order_id, e.taker_order_id):
                    assert oid not in self.book.stops, f"untriggered stop {oid} traded"
                if e.taker_order_id != cmd.order_id:
                    assert e.taker_order_id in triggered, "a taker that was not triggered"

    def invariants(self, cmd, events) -> None:
        taker_id = getattr(cmd, "order_id", None)
        for e in events:
            if isinstance(e, TradeExecuted):
                assert e.sequence == self.last_trade_seq + 1, "trade sequence has a gap"
                self.last_trade_seq = e.sequence
                assert e.quantity > 0
                assert e.maker_order_id not in self.final, "a final order traded again"
                assert e.taker_order_id not in self.final, "a final order traded again"
                assert isinstance(cmd, PlaceOrder) and not cmd.post_only, "postOnly took"
                for oid in (e.maker_order_id, e.taker_order_id):
                    self.traded[oid] += e.quantity
                    self.trade_notional[oid] += e.quantity * e.price
            elif isinstance(e, OrderUpdated):
                o = e.order
                assert o.id not in self.final, f"{o.id} updated after it was final"
                assert 0 <= e.filled <= e.quantity
                # each trade's quantity lands on both sides
                assert e.filled == self.traded[o.id], f"{o.id}: filled != sum of its trades"
                assert e.notional == self.trade_notional[o.id]
                assert (e.status == "FILLED") == (e.filled == e.quantity)
                if e.status in ("FILLED", "CANCELLED", "REJECTED"):
                    self.final.add(o.id)
                    assert o.id not in self.book.orders and o.id not in self.book.stops
            else:
                assert isinstance(e, LevelChanged)
        # a level touched several times (cascades, cancel-all) ends at its last value
        last_levels = {(e.side, e.price): e for e in events if isinstance(e, LevelChanged)}
        for e in last_levels.values():
            assert self.book.level(e.side, e.price) == (e.quantity, e.orders)
        if isinstance(cmd, PlaceOrder) and cmd.time_in_force == TimeInForce.FOK:
            mine = [e for e in events if isinstance(e, OrderUpdated) and e.order.id == taker_id]
            if not mine or mine[-1].reason == "ORIGINAL_NOT_OPEN":
                return
            last = mine[-1]
            assert (last.status, last.filled) in (("FILLED", cmd.quantity), ("CANCELLED", 0)), (
                "FOK is all or nothing"
            )
        if isinstance(cmd, PlaceOrder) and cmd.post_only:
            assert not any(isinstance(e, TradeExecuted) and e.taker_order_id == taker_id
                           for e in events)


@settings(
    max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(raws=commands_st, cut=st.integers(0, 300))
def test_engine_matches_reference_and_survives_snapshot(raws, cut):
    run = Run()
    copy = None
    cut = cut % (len(raws) + 1)
    for i, raw in enumerate(raws):
        if i == cut:
            snap = json.loads(json.dumps(run.book.snapshot()))
            copy = OrderBook.restore(snap)
            assert copy.snapshot() == run.book.snapshot()
            copy.check()
        cmd, on_reference = run.make(raw)
        events = run.step(cmd, on_reference)
        if copy is not None:
            again = apply(copy, cmd)
            assert [render(e) for e in again] == [render(e) for e in events]
    if copy is not None:
        assert copy.snapshot() == run.book.snapshot()
