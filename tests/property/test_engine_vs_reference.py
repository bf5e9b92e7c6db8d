"""The engine against the reference model on random command streams.

Each example is a stream of 200-300 commands (every kind of place, cancels of resting,
final and unknown ids) over a narrow price band so orders cross a lot. After every
command: identical events, ``book.check()``, identical levels, and the per-event
invariants. At one point of the stream the book is snapshotted (through JSON), restored,
and the restored copy must replay the rest of the stream with identical events.
"""

from __future__ import annotations

import json
from collections import defaultdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import (
    CancelOrder,
    LevelChanged,
    OrderBook,
    OrderType,
    OrderUpdated,
    PlaceOrder,
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
)

place_st = st.tuples(
    st.just("place"),
    st.sampled_from(KINDS),
    st.booleans(),  # buy?
    st.integers(0, 8),  # price offset: bids 94-102, asks 98-106 (ignored for MARKET)
    st.integers(1, 12),  # quantity
    st.sampled_from(ACCOUNTS),
    st.sampled_from(STPS + (SelfTradePrevention.NONE,) * 3),
)
cancel_st = st.tuples(
    st.just("cancel"),
    st.sampled_from(("resting", "resting", "any", "unknown")),
    st.integers(0, 10_000),
)
# about one command in six is a cancel, so the book builds some depth
command_st = st.tuples(st.integers(0, 5), place_st, cancel_st).map(
    lambda t: t[2] if t[0] == 0 else t[1]
)
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

    def make(self, raw: tuple):
        """Turn a drawn tuple into a command (and its reference twin, for a place)."""
        self.seq += 1 + self.seq % 3  # increasing, with gaps
        ts = 1_000_000 + self.seq * 7
        if raw[0] == "cancel":
            _, mode, k = raw
            resting = [i for i in self.placed if i in self.book.orders]
            if mode == "resting" and resting:
                oid = resting[k % len(resting)]
            elif mode != "unknown" and self.placed:
                oid = self.placed[k % len(self.placed)]
            else:
                oid = f"unknown-{k}"
            return CancelOrder(self.seq, ts, oid), None
        _, (otype, tif, post_only), buy, price, qty, acct, stp = raw
        oid = f"o{len(self.placed)}"
        self.placed.append(oid)
        cmd = PlaceOrder(
            sequence=self.seq, timestamp=ts, order_id=oid,
            side=Side.BUY if buy else Side.SELL, order_type=OrderType(otype),
            time_in_force=TimeInForce(tif),
            price=(94 if buy else 98) + price if otype == "LIMIT" else None,
            quantity=qty, account_id=acct, post_only=post_only, self_trade_prevention=stp,
        )  # fmt: skip
        twin = RefOrder(
            oid, str(cmd.side), otype, tif, cmd.price, qty, self.seq, acct, post_only, str(stp)
        )
        return cmd, twin

    def step(self, cmd, twin) -> list:
        events = apply(self.book, cmd)
        if twin is None:
            expected = self.ref.cancel(cmd.order_id, cmd.timestamp)
        else:
            expected = self.ref.place(twin, cmd.timestamp)
        got = [render(e) for e in events]
        assert got == expected, f"{cmd}\n engine:    {got}\n reference: {expected}"
        self.book.check()
        assert self.book.last_sequence == cmd.sequence
        for side in (Side.BUY, Side.SELL):
            assert self.book.levels(side, None) == self.ref.levels(str(side))
        bb, ba = self.book.best_bid(), self.book.best_ask()
        assert bb is None or ba is None or bb < ba, "crossed at rest"
        self.invariants(cmd, events)
        return events

    def invariants(self, cmd, events) -> None:
        taker_id = cmd.order_id
        for e in events:
            if isinstance(e, TradeExecuted):
                assert e.sequence == self.last_trade_seq + 1, "trade sequence has a gap"
                self.last_trade_seq = e.sequence
                assert e.quantity > 0
                assert e.taker_order_id == taker_id
                assert e.maker_order_id not in self.final, "a final order traded again"
                assert e.taker_order_id not in self.final, "a final order traded again"
                assert isinstance(cmd, PlaceOrder) and not cmd.post_only, "postOnly took"
                for oid in (e.maker_order_id, e.taker_order_id):
                    self.traded[oid] += e.quantity
                    self.trade_notional[oid] += e.quantity * e.price
            elif isinstance(e, OrderUpdated):
                o = e.order
                assert o.id not in self.final, f"{o.id} updated after it was final"
                assert 0 <= e.filled <= o.quantity
                assert e.filled + (o.quantity - e.filled) == o.quantity
                # each trade's quantity lands on both sides
                assert e.filled == self.traded[o.id], f"{o.id}: filled != sum of its trades"
                assert e.notional == self.trade_notional[o.id]
                assert (e.status == "FILLED") == (e.filled == o.quantity)
                if e.status in ("FILLED", "CANCELLED", "REJECTED"):
                    self.final.add(o.id)
                    assert o.id not in self.book.orders
            else:
                assert isinstance(e, LevelChanged)
                assert self.book.level(e.side, e.price) == (e.quantity, e.orders)
        if isinstance(cmd, PlaceOrder) and cmd.time_in_force == TimeInForce.FOK:
            mine = [e for e in events if isinstance(e, OrderUpdated) and e.order.id == taker_id]
            last = mine[-1]
            assert (last.status, last.filled) in (("FILLED", cmd.quantity), ("CANCELLED", 0)), (
                "FOK is all or nothing"
            )
        if isinstance(cmd, PlaceOrder) and cmd.post_only:
            assert not any(isinstance(e, TradeExecuted) for e in events)


@settings(
    max_examples=200,
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
        cmd, twin = run.make(raw)
        events = run.step(cmd, twin)
        if copy is not None:
            again = apply(copy, cmd)
            assert [render(e) for e in again] == [render(e) for e in events]
    if copy is not None:
        assert copy.snapshot() == run.book.snapshot()
