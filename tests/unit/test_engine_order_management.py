"""One test per order-management rule of the engine (reduce, replace, cancel-all, expire,
stop orders): the README's "Order management" section states them."""

from __future__ import annotations

import json

import pytest

from engine import (
    RANK_SHIFT,
    CancelAll,
    ExpireOrder,
    OrderBook,
    OrderType,
    PlaceOrder,
    Reason,
    ReduceOrder,
    Side,
    Status,
    TimeInForce,
    apply,
)

from .test_engine_rules import Market as BaseMarket
from .test_engine_rules import level_events, trades, updates

BUY, SELL = Side.BUY, Side.SELL


class Market(BaseMarket):
    def order(self, oid, side, price, qty, *, otype="LIMIT", tif="GTC", stop=None,
              replaces=None, account="anonymous"):  # fmt: skip
        seq, ts = self._next()
        cmd = PlaceOrder(seq, ts, oid, side, OrderType(otype), TimeInForce(tif), price, qty,
                         account, stop_price=stop, replaces_order_id=replaces)
        return self._run(cmd)

    def stop(self, oid, side, stop, qty, price=None):
        otype = "STOP_MARKET" if price is None else "STOP_LIMIT"
        return self.order(oid, side, price, qty, otype=otype, stop=stop)

    def reduce(self, oid, qty):
        seq, ts = self._next()
        return self._run(ReduceOrder(seq, ts, oid, qty))

    def expire(self, oid):
        seq, ts = self._next()
        return self._run(ExpireOrder(seq, ts, oid))

    def cancel_all(self, account):
        seq, ts = self._next()
        return self._run(CancelAll(seq, ts, account))

    def _run(self, cmd):
        events = apply(self.book, cmd)
        self.book.check()
        return events


@pytest.fixture
def m():
    return Market()


def ids(book, side, price):
    return [o.id for o in book.level_orders(side, price)]


# ------------------------------------------------------------------ reduce


def test_reduce_keeps_the_queue_position_and_lowers_the_level(m):
    m.place("a", BUY, 100, 5)
    m.place("b", BUY, 100, 5)
    ev = m.reduce("a", 2)
    assert updates(ev) == [("a", Status.OPEN, None, 0)]
    assert ev[0].quantity == 2
    assert level_events(ev) == [(BUY, 100, 7, 2)]
    assert ids(m.book, BUY, 100) == ["a", "b"]
    assert trades(m.place("s", SELL, 100, 2)) == [(100, 2, "a", "s")]


def test_reduce_of_a_partial_order_keeps_filled_and_shrinks_remaining(m):
    m.place("a", BUY, 100, 10)
    m.place("s", SELL, 100, 4)
    ev = m.reduce("a", 6)
    assert updates(ev) == [("a", Status.PARTIAL, None, 4)]
    assert m.book.orders["a"].remaining == 2
    assert level_events(ev) == [(BUY, 100, 2, 1)]


def test_reduce_to_filled_or_below_cancels_the_rest_with_quantity_unchanged(m):
    m.place("a", BUY, 100, 10)
    m.place("s", SELL, 100, 4)
    ev = m.reduce("a", 4)
    assert updates(ev) == [("a", Status.CANCELLED, Reason.USER_CANCELLED, 4)]
    assert ev[0].quantity == 10
    assert level_events(ev) == [(BUY, 100, 0, 0)]


def test_reduce_that_is_no_longer_a_reduction_changes_nothing(m):
    m.place("a", BUY, 100, 10)
    m.reduce("a", 5)
    assert m.reduce("a", 7) == []  # an earlier reduce went lower: the later one is void
    assert m.book.orders["a"].quantity == 5


def test_reduce_of_a_final_or_unknown_order_changes_nothing(m):
    m.place("a", BUY, 100, 1)
    m.cancel("a")
    assert m.reduce("a", 1) == [] and m.reduce("nope", 1) == []


# ------------------------------------------------------------------ replace


def test_replace_cancels_the_original_and_places_the_new_order_in_one_command(m):
    m.place("a", BUY, 100, 5)
    m.place("b", BUY, 100, 5)
    ev = m.order("a2", BUY, 100, 3, replaces="a")
    assert updates(ev) == [("a", Status.CANCELLED, Reason.USER_CANCELLED, 0),
                           ("a2", Status.OPEN, None, 0)]
    assert ids(m.book, BUY, 100) == ["b", "a2"]  # the new order lost priority
    assert m.book.orders["a2"].replaces_order_id == "a"


def test_replace_may_trade_at_once(m):
    m.place("a", BUY, 90, 5)
    m.place("s", SELL, 100, 2)
    ev = m.order("a2", BUY, 100, 5, replaces="a")
    assert trades(ev) == [(100, 2, "s", "a2")]
    assert "a" not in m.book.orders


def test_replace_of_a_final_original_is_rejected_original_not_open(m):
    m.place("a", BUY, 100, 1)
    m.place("s", SELL, 100, 1)  # a fills
    ev = m.order("a2", BUY, 101, 1, replaces="a")
    assert updates(ev) == [("a2", Status.REJECTED, Reason.ORIGINAL_NOT_OPEN, 0)]
    assert len(ev) == 1 and "a2" not in m.book.orders


# ------------------------------------------------------------------ cancel-all and expire


def test_cancel_all_cancels_every_resting_and_untriggered_order_of_the_account(m):
    m.order("a1", BUY, 100, 1, account="alice")
    m.order("b1", BUY, 100, 1, account="bob")
    m.order("a2", SELL, 110, 1, account="alice")
    m.place("t", SELL, 100, 1)  # a1 came first and fills
    m.order("a3", BUY, 99, 1, account="alice")
    m.order("a4", BUY, None, 1, otype="STOP_MARKET", stop=120, account="alice")
    ev = m.cancel_all("alice")
    assert [u[0] for u in updates(ev)] == ["a2", "a3", "a4"]
    assert all(u[2] == Reason.USER_CANCELLED for u in updates(ev))
    assert set(m.book.orders) == {"b1"} and not m.book.stops


def test_expire_cancels_with_reason_expired(m):
    m.order("g", BUY, 100, 2, tif="GTD")
    ev = m.expire("g")
    assert updates(ev) == [("g", Status.CANCELLED, Reason.EXPIRED, 0)]
    assert level_events(ev) == [(BUY, 100, 0, 0)]
    assert m.expire("g") == []


def test_gtd_rests_like_gtc(m):
    ev = m.order("g", SELL, 100, 2, tif="GTD")
    assert updates(ev) == [("g", Status.OPEN, None, 0)]


# ------------------------------------------------------------------ stops


def trade_at(m, price, qty=1):
    m.place(f"mk{m.seq}", SELL, price, qty)
    return m.place(f"tk{m.seq}", BUY, price, qty)


def test_stop_waits_untriggered_outside_the_book(m):
    ev = m.stop("st", BUY, 105, 1, price=106)
    assert updates(ev) == [("st", Status.UNTRIGGERED, None, 0)]
    assert "st" in m.book.stops and m.book.levels(BUY) == []


def test_stop_with_no_trade_yet_waits(m):
    m.stop("st", SELL, 105, 1)
    assert "st" in m.book.stops


def test_stop_whose_condition_holds_on_arrival_is_rejected_stop_would_trigger(m):
    trade_at(m, 100)
    assert updates(m.stop("b", BUY, 100, 1))[0][1:3] == (Status.REJECTED,
                                                         Reason.STOP_WOULD_TRIGGER)
    assert updates(m.stop("s", SELL, 100, 1))[0][1:3] == (Status.REJECTED,
                                                          Reason.STOP_WOULD_TRIGGER)
    m.stop("b2", BUY, 101, 1)
    m.stop("s2", SELL, 99, 1)
    assert set(m.book.stops) == {"b2", "s2"}


def test_buy_stop_triggers_when_last_reaches_it_and_enters_as_market(m):
    trade_at(m, 100)
    m.stop("st", BUY, 102, 1)
    m.place("ask", SELL, 103, 5)
    ev = trade_at(m, 102)
    assert ("st" not in m.book.stops) and trades(ev)[-1] == (103, 1, "ask", "st")
    assert updates(ev)[-1] == ("st", Status.FILLED, None, 1)
    assert m.book.last_price == 103


def test_sell_stop_triggers_when_last_falls_to_it(m):
    trade_at(m, 100)
    m.stop("st", SELL, 98, 1, price=97)
    m.place("bid", BUY, 98, 1)
    ev = m.place("hit", SELL, 98, 1)
    # the stop enters as a GTC LIMIT at 97 with nothing left to take: it rests
    assert updates(ev)[-1] == ("st", Status.OPEN, None, 0)
    assert m.book.orders["st"].order_type == OrderType.STOP_LIMIT  # keeps its orderType


def test_stop_triggers_on_any_trade_of_the_command_not_only_the_last(m):
    trade_at(m, 100)
    m.stop("st", BUY, 102, 1)
    m.place("a1", SELL, 102, 1)
    m.place("bid", BUY, 90, 1)
    ev = m.place("sweep", BUY, 102, 1)  # trades at 102: last = 102
    assert "st" not in m.book.stops
    assert updates(ev)[-1][0] == "st"


def test_triggered_stops_enter_by_lowest_sequence_and_cascade(m):
    trade_at(m, 100)
    m.stop("s1", BUY, 103, 1)  # triggered second (by s2's trade)
    m.stop("s2", BUY, 101, 1)
    m.place("x1", SELL, 101, 1)
    m.place("x2", SELL, 103, 1)
    m.place("x3", SELL, 104, 1)
    ev = m.place("go", BUY, 101, 1)  # trades at 101: s2 enters, takes 103: s1 enters
    order = [t[3] for t in trades(ev)]
    assert order == ["go", "s2", "s1"]
    assert not m.book.stops


def test_triggered_stops_of_one_command_enter_in_sequence_order(m):
    trade_at(m, 100)
    m.stop("late", BUY, 101, 1)
    m.stop("early_low", BUY, 102, 1)
    m.place("x", SELL, 102, 3)
    ev = m.place("go", BUY, 102, 1)  # trade at 102 triggers both; lower sequence first
    assert [t[3] for t in trades(ev)] == ["go", "late", "early_low"]


def test_triggered_stop_limit_queues_behind_orders_already_at_its_price(m):
    trade_at(m, 100)
    m.stop("st", SELL, 99, 1, price=95)  # placed before "bid"
    m.place("bid95", BUY, 95, 1)
    m.place("ask95", SELL, 96, 1)  # an ask that stays
    m.place("b", BUY, 99, 1)
    m.place("s", SELL, 99, 1)  # trades at 99: the stop enters, sells 1 to bid95 at 95
    assert "st" not in m.book.stops
    m.place("other", SELL, 97, 1)
    m.stop("st2", SELL, 94, 2, price=97)  # later stop at 97, triggered later
    m.place("b2", BUY, 94, 1)
    m.place("s2", SELL, 94, 1)  # trades at 94: st2 enters at 97, no bid crosses: rests
    assert ids(m.book, SELL, 97) == ["other", "st2"]
    st2 = m.book.orders["st2"]
    assert st2.rank > m.book.orders["other"].rank and st2.rank >> RANK_SHIFT == m.seq


def test_untriggered_stop_can_be_reduced_and_cancelled(m):
    m.stop("st", BUY, 105, 5)
    ev = m.reduce("st", 2)
    assert updates(ev) == [("st", Status.UNTRIGGERED, None, 0)] and ev[0].quantity == 2
    assert len(ev) == 1  # not in the book: no level change
    ev = m.cancel("st")
    assert updates(ev) == [("st", Status.CANCELLED, Reason.USER_CANCELLED, 0)]
    assert not m.book.stops


def test_only_trades_trigger_stops(m):
    trade_at(m, 100)
    m.stop("st", BUY, 101, 1)
    m.place("b", BUY, 150, 1)  # a bid far above: no trade, no trigger
    assert "st" in m.book.stops


def test_snapshot_restore_keeps_stops_ranks_and_last_price(m):
    trade_at(m, 100)
    m.stop("st", SELL, 99, 1, price=97)
    m.stop("keep", BUY, 110, 1)
    m.place("b", BUY, 99, 1)
    m.place("other", SELL, 97, 2)  # trades 1 at 99 and rests; the stop enters behind it
    snap = json.loads(json.dumps(m.book.snapshot()))
    copy = OrderBook.restore(snap)
    copy.check()
    assert copy.snapshot() == m.book.snapshot()
    assert copy.last_price == 99 and set(copy.stops) == {"keep"}
    assert [o.id for o in copy.level_orders(SELL, 97)] == ["other", "st"]
