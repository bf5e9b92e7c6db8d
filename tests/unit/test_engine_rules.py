"""One test per matching rule of the engine (spec: ../shared/spec/api.md sections 1-2)."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest

from engine import (
    CancelOrder,
    LevelChanged,
    Order,
    OrderBook,
    OrderType,
    OrderUpdated,
    PlaceOrder,
    Reason,
    SelfTradePrevention,
    Side,
    Status,
    TimeInForce,
    TradeExecuted,
    apply,
)

BUY, SELL = Side.BUY, Side.SELL
STP = SelfTradePrevention


class Market:
    """A book plus a sequence counter: terse commands for the tests."""

    def __init__(self) -> None:
        self.book = OrderBook("TEST")
        self.seq = 0

    def _next(self) -> tuple[int, int]:
        self.seq += 1
        return self.seq, 1000 + self.seq

    def place(self, oid, side, price, qty, *, tif="GTC", market=False, account="anonymous",
              post_only=False, stp=STP.NONE):  # fmt: skip
        seq, ts = self._next()
        cmd = PlaceOrder(
            seq, ts, oid, side, OrderType.MARKET if market else OrderType.LIMIT,
            TimeInForce(tif), None if market else price, qty, account, post_only, stp,
        )  # fmt: skip
        events = apply(self.book, cmd)
        self.book.check()
        return events

    def cancel(self, oid):
        seq, ts = self._next()
        events = apply(self.book, CancelOrder(seq, ts, oid))
        self.book.check()
        return events


def kinds(events):
    return [type(e).__name__ for e in events]


def updates(events):
    return [(e.order.id, e.status, e.reason, e.filled) for e in events
            if isinstance(e, OrderUpdated)]  # fmt: skip


def trades(events):
    return [(e.price, e.quantity, e.maker_order_id, e.taker_order_id) for e in events
            if isinstance(e, TradeExecuted)]  # fmt: skip


def level_events(events):
    return [(e.side, e.price, e.quantity, e.orders) for e in events if isinstance(e, LevelChanged)]


@pytest.fixture
def m():
    return Market()


# ------------------------------------------------------------------ priority and price


def test_better_price_matches_first(m):
    m.place("s1", SELL, 102, 1)
    m.place("s2", SELL, 101, 1)
    ev = m.place("b", BUY, 105, 1)
    assert trades(ev) == [(101, 1, "s2", "b")]


def test_equal_price_matches_in_time_order(m):
    m.place("s1", SELL, 101, 1)
    m.place("s2", SELL, 101, 1)
    ev = m.place("b", BUY, 101, 1)
    assert trades(ev) == [(101, 1, "s1", "b")]
    assert [o.id for o in m.book.level_orders(SELL, 101)] == ["s2"]


def test_trade_price_is_the_makers_price(m):
    m.place("b1", BUY, 100, 1)
    ev = m.place("s", SELL, 90, 1)
    assert trades(ev) == [(100, 1, "b1", "s")]
    assert updates(ev)[-1] == ("s", Status.FILLED, None, 1)
    assert ev[2].notional == 100


def test_trade_sequence_is_gap_free_from_one(m):
    m.place("s1", SELL, 100, 1)
    m.place("s2", SELL, 101, 1)
    m.place("x", BUY, 50, 1)
    m.cancel("x")
    ev = m.place("b", BUY, 101, 2)
    ev2 = m.place("s3", SELL, 100, 1)
    ev3 = m.place("b2", BUY, 100, 1)
    seqs = [e.sequence for e in ev + ev2 + ev3 if isinstance(e, TradeExecuted)]
    assert seqs == [1, 2, 3]
    assert m.book.trade_sequence == 3


def test_fill_event_order_is_trade_then_maker_then_taker(m):
    m.place("s1", SELL, 100, 1)
    m.place("s2", SELL, 101, 2)
    ev = m.place("b", BUY, 101, 2)
    assert kinds(ev) == ["TradeExecuted", "OrderUpdated", "OrderUpdated",
                         "TradeExecuted", "OrderUpdated", "OrderUpdated",
                         "LevelChanged", "LevelChanged"]  # fmt: skip
    assert updates(ev) == [
        ("s1", Status.FILLED, None, 1), ("b", Status.PARTIAL, None, 1),
        ("s2", Status.PARTIAL, None, 1), ("b", Status.FILLED, None, 2),
    ]  # fmt: skip
    assert level_events(ev) == [(SELL, 100, 0, 0), (SELL, 101, 1, 1)]


def test_filled_makers_leave_the_book(m):
    m.place("s1", SELL, 100, 1)
    m.place("b", BUY, 100, 1)
    assert m.book.orders == {}
    assert m.book.best_ask() is None and m.book.best_bid() is None


def test_market_order_takes_liquidity_at_any_price(m):
    m.place("s1", SELL, 100, 1)
    m.place("s2", SELL, 1_000_000, 1)
    ev = m.place("b", BUY, None, 2, tif="IOC", market=True)
    assert trades(ev) == [(100, 1, "s1", "b"), (1_000_000, 1, "s2", "b")]
    assert updates(ev)[-1] == ("b", Status.FILLED, None, 2)


# ------------------------------------------------------------------ what happens to the rest


def test_gtc_remainder_rests_open_when_nothing_filled(m):
    ev = m.place("b", BUY, 100, 3)
    assert updates(ev) == [("b", Status.OPEN, None, 0)]
    assert level_events(ev) == [(BUY, 100, 3, 1)]
    assert m.book.best_bid() == 100


def test_gtc_partial_fill_rests_partial_with_no_extra_event(m):
    m.place("s", SELL, 100, 1)
    ev = m.place("b", BUY, 100, 3)
    assert kinds(ev) == ["TradeExecuted", "OrderUpdated", "OrderUpdated",
                         "LevelChanged", "LevelChanged"]  # fmt: skip
    assert updates(ev)[-1] == ("b", Status.PARTIAL, None, 1)
    assert level_events(ev) == [(SELL, 100, 0, 0), (BUY, 100, 2, 1)]
    assert m.book.orders["b"].status == Status.PARTIAL


def test_resting_remainder_goes_to_the_back_of_its_level(m):
    m.place("b1", BUY, 100, 1)
    m.place("s", SELL, 101, 1)
    m.place("b2", BUY, 101, 3)  # fills s, rests 2 at 101
    m.place("b3", BUY, 101, 1)
    m.place("b4", BUY, 100, 1)
    assert [o.id for o in m.book.level_orders(BUY, 101)] == ["b2", "b3"]
    assert [o.id for o in m.book.level_orders(BUY, 100)] == ["b1", "b4"]
    ev = m.place("s2", SELL, 100, 5)
    assert [t[2] for t in trades(ev)] == ["b2", "b3", "b1", "b4"]


def test_ioc_remainder_is_cancelled(m):
    m.place("s", SELL, 100, 1)
    ev = m.place("b", BUY, 100, 3, tif="IOC")
    assert updates(ev)[-1] == ("b", Status.CANCELLED, Reason.IOC_REMAINDER, 1)
    assert "b" not in m.book.orders and m.book.best_bid() is None


def test_ioc_that_fills_nothing_with_liquidity_present_is_ioc_remainder(m):
    m.place("s", SELL, 105, 1)
    ev = m.place("b", BUY, 100, 3, tif="IOC")
    assert ev == [ev[0]] and updates(ev) == [("b", Status.CANCELLED, Reason.IOC_REMAINDER, 0)]


def test_ioc_against_an_empty_side_is_no_liquidity(m):
    m.place("b0", BUY, 100, 1)  # same side does not count
    ev = m.place("b", BUY, 100, 3, tif="IOC")
    assert updates(ev) == [("b", Status.CANCELLED, Reason.NO_LIQUIDITY, 0)]
    ev = m.place("mb", BUY, None, 3, tif="IOC", market=True)
    assert updates(ev) == [("mb", Status.CANCELLED, Reason.NO_LIQUIDITY, 0)]


def test_market_remainder_is_cancelled_when_the_side_runs_out(m):
    m.place("s", SELL, 100, 1)
    ev = m.place("b", BUY, None, 3, tif="IOC", market=True)
    assert updates(ev)[-1] == ("b", Status.CANCELLED, Reason.IOC_REMAINDER, 1)
    assert level_events(ev) == [(SELL, 100, 0, 0)]


# ------------------------------------------------------------------ FOK


def test_fok_that_can_fill_completely_fills(m):
    m.place("s1", SELL, 100, 2)
    m.place("s2", SELL, 101, 2)
    ev = m.place("b", BUY, 101, 4, tif="FOK")
    assert updates(ev)[-1] == ("b", Status.FILLED, None, 4)
    assert m.book.best_ask() is None


def test_fok_that_cannot_fill_completely_changes_nothing(m):
    m.place("s1", SELL, 100, 2)
    m.place("s2", SELL, 102, 2)
    before = m.book.snapshot()
    ev = m.place("b", BUY, 101, 3, tif="FOK")
    assert updates(ev) == [("b", Status.CANCELLED, Reason.FOK_NOT_FILLABLE, 0)]
    assert kinds(ev) == ["OrderUpdated"]
    after = m.book.snapshot()
    assert after["orders"] == before["orders"] and after["trade_sequence"] == 0


def test_market_fok_counts_every_price(m):
    m.place("s1", SELL, 100, 2)
    m.place("s2", SELL, 500, 2)
    assert updates(m.place("b", BUY, None, 5, tif="FOK", market=True)) == [
        ("b", Status.CANCELLED, Reason.FOK_NOT_FILLABLE, 0)
    ]
    assert updates(m.place("b2", BUY, None, 4, tif="FOK", market=True))[-1] == (
        "b2", Status.FILLED, None, 4,
    )  # fmt: skip


def test_fok_liquidity_excludes_own_orders_under_self_trade_prevention(m):
    m.place("s1", SELL, 100, 2, account="al")
    m.place("s2", SELL, 100, 2, account="bo")
    ev = m.place("b", BUY, 100, 3, tif="FOK", account="al", stp=STP.CANCEL_MAKER)
    assert updates(ev) == [("b", Status.CANCELLED, Reason.FOK_NOT_FILLABLE, 0)]
    ev = m.place("b2", BUY, 100, 2, tif="FOK", account="al", stp=STP.CANCEL_MAKER)
    assert updates(ev) == [
        ("s1", Status.CANCELLED, Reason.SELF_TRADE_PREVENTED, 0),
        ("s2", Status.FILLED, None, 2),
        ("b2", Status.FILLED, None, 2),
    ]


def test_fok_liquidity_stops_at_own_order_for_cancel_taker(m):
    m.place("s1", SELL, 100, 1, account="bo")
    m.place("s2", SELL, 100, 1, account="al")
    m.place("s3", SELL, 100, 5, account="bo")
    ev = m.place("b", BUY, 100, 2, tif="FOK", account="al", stp=STP.CANCEL_TAKER)
    assert updates(ev) == [("b", Status.CANCELLED, Reason.FOK_NOT_FILLABLE, 0)]
    ev = m.place("b2", BUY, 100, 2, tif="FOK", account="al", stp=STP.CANCEL_BOTH)
    assert updates(ev) == [("b2", Status.CANCELLED, Reason.FOK_NOT_FILLABLE, 0)]
    assert len(m.book.orders) == 3


# ------------------------------------------------------------------ postOnly


def test_post_only_that_would_cross_is_rejected_and_changes_nothing(m):
    m.place("s", SELL, 100, 1)
    ev = m.place("b", BUY, 100, 1, post_only=True)
    assert kinds(ev) == ["OrderUpdated"]
    assert updates(ev) == [("b", Status.REJECTED, Reason.POST_ONLY_WOULD_CROSS, 0)]
    assert list(m.book.orders) == ["s"] and m.book.trade_sequence == 0


def test_post_only_that_does_not_cross_rests(m):
    m.place("s", SELL, 101, 1)
    ev = m.place("b", BUY, 100, 1, post_only=True)
    assert updates(ev) == [("b", Status.OPEN, None, 0)]
    assert m.book.best_bid() == 100


# ------------------------------------------------------------------ self-trade prevention


def test_self_trade_cancel_maker_cancels_the_maker_and_continues(m):
    m.place("s1", SELL, 100, 1, account="al")
    m.place("s2", SELL, 100, 1, account="bo")
    ev = m.place("b", BUY, 100, 1, account="al", stp=STP.CANCEL_MAKER)
    assert kinds(ev) == ["OrderUpdated", "TradeExecuted", "OrderUpdated", "OrderUpdated",
                         "LevelChanged"]  # fmt: skip
    assert updates(ev) == [
        ("s1", Status.CANCELLED, Reason.SELF_TRADE_PREVENTED, 0),
        ("s2", Status.FILLED, None, 1),
        ("b", Status.FILLED, None, 1),
    ]
    assert level_events(ev) == [(SELL, 100, 0, 0)]


def test_self_trade_cancel_taker_stops_and_cancels_the_taker_whatever_its_tif(m):
    m.place("s1", SELL, 100, 1, account="bo")
    m.place("s2", SELL, 100, 1, account="al")
    ev = m.place("b", BUY, 100, 5, account="al", stp=STP.CANCEL_TAKER)  # GTC
    assert updates(ev) == [
        ("s1", Status.FILLED, None, 1),
        ("b", Status.PARTIAL, None, 1),
        ("b", Status.CANCELLED, Reason.SELF_TRADE_PREVENTED, 1),
    ]
    assert list(m.book.orders) == ["s2"]
    assert level_events(ev) == [(SELL, 100, 1, 1)]


def test_self_trade_cancel_both_cancels_maker_then_taker(m):
    m.place("s1", SELL, 100, 1, account="al")
    m.place("s2", SELL, 100, 1, account="bo")
    ev = m.place("b", BUY, 100, 5, account="al", stp=STP.CANCEL_BOTH)
    assert kinds(ev) == ["OrderUpdated", "OrderUpdated", "LevelChanged"]
    assert updates(ev) == [
        ("s1", Status.CANCELLED, Reason.SELF_TRADE_PREVENTED, 0),
        ("b", Status.CANCELLED, Reason.SELF_TRADE_PREVENTED, 0),
    ]
    assert level_events(ev) == [(SELL, 100, 1, 1)]


def test_self_trade_prevention_needs_the_same_named_account_and_an_active_mode(m):
    m.place("s1", SELL, 100, 1, account="anonymous")
    ev = m.place("b1", BUY, 100, 1, account="anonymous", stp=STP.CANCEL_BOTH)
    assert trades(ev) == [(100, 1, "s1", "b1")]
    m.place("s2", SELL, 100, 1, account="al")
    ev = m.place("b2", BUY, 100, 1, account="al")  # stp NONE: self-trade allowed
    assert trades(ev) == [(100, 1, "s2", "b2")]


def test_self_trade_cancel_taker_does_not_touch_an_unchanged_level(m):
    m.place("s1", SELL, 100, 1, account="al")
    ev = m.place("b", BUY, 100, 1, tif="IOC", account="al", stp=STP.CANCEL_TAKER)
    assert ev[0].reason == Reason.SELF_TRADE_PREVENTED and kinds(ev) == ["OrderUpdated"]


# ------------------------------------------------------------------ cancel


def test_cancel_of_a_resting_order_emits_cancelled_then_level(m):
    m.place("b1", BUY, 100, 2)
    m.place("b2", BUY, 100, 3)
    ev = m.cancel("b1")
    assert updates(ev) == [("b1", Status.CANCELLED, Reason.USER_CANCELLED, 0)]
    assert level_events(ev) == [(BUY, 100, 3, 1)]
    assert kinds(ev) == ["OrderUpdated", "LevelChanged"]


def test_cancel_of_an_unknown_or_final_order_changes_nothing(m):
    m.place("s", SELL, 100, 1)
    m.place("b", BUY, 100, 1)  # both FILLED
    m.place("i", BUY, 100, 1, tif="IOC")  # never rested
    before = m.book.snapshot()
    for oid in ("nope", "s", "b", "i"):
        assert m.cancel(oid) == []
    after = m.book.snapshot()
    assert after["last_sequence"] == before["last_sequence"] + 4
    assert after["orders"] == before["orders"]


def test_cancelled_order_never_trades(m):
    m.place("s1", SELL, 100, 1)
    m.place("s2", SELL, 100, 1)
    m.cancel("s1")
    ev = m.place("b", BUY, 100, 2)
    assert trades(ev) == [(100, 1, "s2", "b")]


def test_cancel_deep_in_a_level_keeps_fifo_and_totals(m):
    for i in range(60):
        m.place(f"s{i}", SELL, 100, 1)
    for i in range(1, 59):  # leave s0 at the head and s59 at the back: lazy deletion
        m.cancel(f"s{i}")
    assert m.book.level(SELL, 100) == (2, 2)
    ev = m.place("b", BUY, 100, 2)
    assert trades(ev) == [(100, 1, "s0", "b"), (100, 1, "s59", "b")]
    assert m.book.best_ask() is None


# ------------------------------------------------------------------ book, sequence, snapshot


def test_updated_at_is_the_command_timestamp(m):
    m.place("s", SELL, 100, 2)
    ev = m.place("b", BUY, 100, 1)
    ts = 1000 + m.seq
    stamps = [e.updated_at for e in ev if isinstance(e, OrderUpdated)]
    assert len(stamps) == 2 and set(stamps) == {ts}  # the maker's fill, the taker's fill
    assert m.book.orders["s"].updated_at == ts


def test_sequence_must_increase(m):
    m.place("b", BUY, 100, 1)
    with pytest.raises(ValueError):
        apply(m.book, CancelOrder(m.seq, 5, "b"))
    assert m.book.last_sequence == m.seq and "b" in m.book.orders


def test_levels_are_best_first_with_totals(m):
    m.place("b1", BUY, 99, 1)
    m.place("b2", BUY, 100, 2)
    m.place("b3", BUY, 100, 3)
    m.place("s1", SELL, 103, 4)
    m.place("s2", SELL, 102, 5)
    assert m.book.levels(BUY, 5) == [(100, 5, 2), (99, 1, 1)]
    assert m.book.levels(SELL, 1) == [(102, 5, 1)]
    assert m.book.level(BUY, 100) == (5, 2) and m.book.level(SELL, 1) == (0, 0)
    assert (m.book.best_bid(), m.book.best_ask()) == (100, 102)


def test_snapshot_restore_round_trips_through_json(m):
    m.place("b1", BUY, 99, 3, account="al")
    m.place("b2", BUY, 99, 3)
    m.place("s1", SELL, 101, 2)
    m.place("x", BUY, 101, 1)
    snap = json.loads(json.dumps(m.book.snapshot()))
    assert [o["id"] for o in snap["orders"]] == ["b1", "b2", "s1"]
    assert snap["orders"][2]["status"] == "PARTIAL" and snap["orders"][0]["side"] == "BUY"
    copy = OrderBook.restore(snap)
    copy.check()
    assert copy.snapshot() == m.book.snapshot()
    cmd = PlaceOrder(99, 7, "s9", SELL, OrderType.LIMIT, TimeInForce.GTC, 99, 4)
    from tests.property.reference import render

    assert [render(e) for e in apply(copy, cmd)] == [render(e) for e in apply(m.book, cmd)]
    assert copy.snapshot() == m.book.snapshot()


def test_rest_rejects_orders_that_would_break_the_book(m):
    m.place("s", SELL, 100, 1)
    o = Order("b", BUY, OrderType.LIMIT, TimeInForce.GTC, 100, 1, 50, 0, status=Status.OPEN)
    with pytest.raises(ValueError):
        m.book.rest(o)  # would cross
    o.price = 99
    m.book.rest(o)
    m.book.check()


def test_check_names_a_broken_invariant(m):
    m.place("b", BUY, 100, 2)
    m.book.orders["b"].filled = 1  # level total no longer matches
    with pytest.raises(AssertionError, match="quantity"):
        m.book.check()


def test_fast_event_constructors_build_equal_events():
    from engine import matcher

    o = Order("a", BUY, OrderType.LIMIT, TimeInForce.GTC, 1, 2, 3, 4)
    args = (o, Status.OPEN, None, 0, 0, 9, 2)
    assert matcher._Updated(*args) == OrderUpdated(*args)
    assert type(matcher._Updated(*args)) is OrderUpdated
    with pytest.raises(dataclasses.FrozenInstanceError):  # still frozen after the swap
        matcher._Updated(*args).status = Status.FILLED
    targs = (1, 2, 3, "m", "t", BUY, 5)
    assert matcher._Trade(*targs) == TradeExecuted(*targs)
    assert matcher._Level(BUY, 1, 2, 3) == LevelChanged(BUY, 1, 2, 3)


# ------------------------------------------------------------------ purity


# What the engine may import: pure computation only. An allow-list, so that a module that
# reads a clock (time, datetime), randomness (random, secrets, uuid), the network (socket,
# http, urllib, redis), files (os, io, pathlib) or threads (threading, _thread, asyncio,
# concurrent, gevent) is refused without anyone having to think of its name first.
ALLOWED = {"__future__", "bisect", "collections", "dataclasses", "decimal", "enum",
           "functools", "heapq", "itertools", "math", "operator", "sortedcontainers", "typing"}
# Builtins that reach outside (files, the terminal, other modules by name).
FORBIDDEN_CALLS = {"open", "input", "print", "breakpoint", "__import__"}


def _engine_sources() -> list[Path]:
    root = Path(__file__).resolve().parents[2] / "engine"
    return sorted(root.rglob("*.py"))


def _io_uses(source: str, filename: str) -> list[str]:
    """Imports outside ALLOWED and calls of FORBIDDEN_CALLS in one module's source."""
    found = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""] if node.level == 0 else []
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in FORBIDDEN_CALLS):
            found.append(f"calls {node.func.id}()")
            continue
        else:
            continue
        found += [f"imports {n}" for n in names if n.split(".")[0] not in ALLOWED]
    return found


def test_engine_imports_no_io():
    sources = _engine_sources()
    assert {p.name for p in sources} >= {"__init__.py", "book.py", "matcher.py", "types.py"}
    for path in sources:
        assert _io_uses(path.read_text(), str(path)) == [], path.name


def test_the_purity_check_refuses_clocks_randomness_network_and_threads():
    """The check above can fail: each kind of outside read is caught, plain or dotted."""
    for source in ("import time", "from datetime import datetime", "import random",
                   "import secrets", "import uuid", "import socket", "import threading",
                   "import _thread", "from concurrent.futures import ThreadPoolExecutor",
                   "import asyncio", "import urllib.request", "import os.path",
                   "x = open('f')", "__import__('time')"):
        assert _io_uses(source, "<test>"), source
    assert _io_uses("from .book import OrderBook\nfrom heapq import heappush", "<t>") == []
