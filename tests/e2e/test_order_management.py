"""Order management end to end (README "Order management"): reduce, replace, cancel-all,
stop orders, GTD expiry, test orders and clientOrderId look-ups, through REST against a
real matching worker and Redis; the events the worker publishes (what the WebSocket relay
forwards as ``order_status`` and ``orderbook``); and the journal replays to exactly what
Redis holds. Each test draws fresh symbols (see conftest.py).
"""

from __future__ import annotations

import time

import pytest

from schemas.markets import get_market
from store import events, keys
from store.verify import check_symbol
from tests.replay import diff_against_replay
from tests.support import order, wait_until

pytestmark = pytest.mark.slow


def call(client, method, path, status, body=None) -> dict:
    resp = client.open(path, method=method, json=body)
    assert resp.status_code == status, (method, path, resp.status_code, resp.get_json())
    return resp.get_json()


def book(client, symbol) -> dict:
    b = call(client, "GET", f"/api/orderbook?symbol={symbol}", 200)
    return {"bids": [(x["price"], x["quantity"], x["orders"]) for x in b["bids"]],
            "asks": [(x["price"], x["quantity"], x["orders"]) for x in b["asks"]]}


def consistent(stack, symbol) -> None:
    """State equals the replay of the journal: reference model, engine and store.verify."""
    stack.drained(symbol)
    market = get_market(stack.settings, symbol)
    assert diff_against_replay(stack.r, market) == []
    diffs, _ = check_symbol(stack.r, market)
    assert diffs == []


class Events:
    """The commit messages the worker publishes for one symbol (the relay's input)."""

    def __init__(self, r, symbol):
        self.pubsub = r.pubsub()
        self.pubsub.ssubscribe(keys.events_channel(symbol))
        self.pubsub.get_message(timeout=5)  # the subscribe confirmation

    def until(self, predicate, timeout=20.0) -> list[dict]:
        seen, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self.pubsub.get_message(timeout=0.5)
            if msg and msg["type"] == "smessage":
                seen.append(events.parse(msg["data"]))  # either shape (store/events.py)
                if predicate(seen[-1]):
                    return seen
        raise AssertionError(f"no matching event; saw {seen}")

    def close(self):
        self.pubsub.close()


# ---------------------------------------------------------------- reduce


def test_reduce_keeps_queue_priority_and_lowers_the_level(stack):
    c, s = stack.client, stack.symbol()
    first = call(c, "POST", "/api/orders?wait=true", 201, order(s, "BUY", "2", "100"))
    second = call(c, "POST", "/api/orders?wait=true", 201, order(s, "BUY", "2", "100"))
    events = Events(stack.r, s)
    try:
        reduced = call(c, "PATCH", f"/api/orders/{first['id']}?wait=true", 200,
                       {"quantity": "0.5"})
        assert (reduced["quantity"], reduced["remainingQuantity"], reduced["status"]) == (
            0.5, 0.5, "OPEN")
        msgs = events.until(lambda m: m.get("type") == "commit")
    finally:
        events.close()
    (commit,) = [m for m in msgs if m.get("type") == "commit"]
    assert commit["changes"] == [{"side": "BUY", "price": 100.0, "quantity": 2.5, "orders": 2}]
    assert [(o["id"], o["quantity"]) for o in commit["orders"]] == [(first["id"], 0.5)]
    assert book(c, s)["bids"] == [(100.0, 2.5, 2)]
    # the reduced order kept its place: it fills first
    sell = call(c, "POST", "/api/orders?wait=true", 201, order(s, "SELL", "0.5", "100"))
    assert [f["makerOrderId"] for f in sell["fills"]] == [first["id"]]
    assert call(c, "GET", f"/api/orders/{second['id']}", 200)["status"] == "OPEN"
    # reduce a final order: 409, nothing journaled
    seq = int(stack.r.get(keys.seq(s)))
    err = call(c, "PATCH", f"/api/orders/{first['id']}", 409, {"quantity": "0.1"})
    assert err["error"]["code"] == "ORDER_NOT_AMENDABLE"
    assert int(stack.r.get(keys.seq(s))) == seq
    consistent(stack, s)


def test_reduce_to_the_filled_quantity_cancels_the_rest(stack):
    c, s = stack.client, stack.symbol()
    buy = call(c, "POST", "/api/orders?wait=true", 201, order(s, "BUY", "3", "100"))
    call(c, "POST", "/api/orders?wait=true", 201, order(s, "SELL", "1", "100"))
    done = call(c, "PATCH", f"/api/orders/{buy['id']}?wait=true", 200, {"quantity": "1"})
    assert (done["status"], done["reason"], done["quantity"], done["filledQuantity"]) == (
        "CANCELLED", "USER_CANCELLED", 3.0, 1.0)
    assert book(c, s)["bids"] == []
    consistent(stack, s)


# ---------------------------------------------------------------- replace


def test_replace_cancels_the_original_and_returns_the_new_order(stack):
    c, s = stack.client, stack.symbol()
    old = call(c, "POST", "/api/orders?wait=true", 201, order(s, "BUY", "1", "99"))
    queued = call(c, "POST", f"/api/orders/{old['id']}/replace", 202,
                  {"side": "BUY", "price": "98", "quantity": "2"})  # symbol: the original's
    assert queued["replacesOrderId"] == old["id"] and queued["status"] == "PENDING"
    assert queued["symbol"] == s and queued["id"] != old["id"]
    stack.drained(s)
    assert call(c, "GET", f"/api/orders/{old['id']}", 200)["status"] == "CANCELLED"
    new = call(c, "GET", f"/api/orders/{queued['id']}", 200)
    assert (new["status"], new["price"], new["replacesOrderId"]) == ("OPEN", 98.0, old["id"])
    assert book(c, s)["bids"] == [(98.0, 2.0, 1)]
    # with wait=true: 200 with the processed new order
    again = call(c, "POST", f"/api/orders/{new['id']}/replace?wait=true", 200,
                 order(s, "BUY", "1", "97"))
    assert again["status"] == "OPEN" and again["replacesOrderId"] == new["id"]
    # a final original: 409, nothing journaled
    err = call(c, "POST", f"/api/orders/{old['id']}/replace", 409, order(s, "BUY", "1", "97"))
    assert err["error"]["code"] == "ORDER_NOT_REPLACEABLE"
    consistent(stack, s)


# ---------------------------------------------------------------- cancel-all


def test_cancel_all_on_one_symbol_cancels_open_untriggered_and_pending(stack):
    c, s, other = stack.client, stack.symbol(), stack.symbol()
    a = call(c, "POST", "/api/orders?wait=true", 201, order(s, "BUY", "1", "90"))
    b = call(c, "POST", "/api/orders?wait=true", 201, order(s, "SELL", "1", "110"))
    stop = call(c, "POST", "/api/orders?wait=true", 201,
                order(s, "BUY", "1", orderType="STOP_MARKET", stopPrice="120"))
    assert stop["status"] == "UNTRIGGERED"
    keep = call(c, "POST", "/api/orders?wait=true", 201, order(other, "BUY", "1", "90"))
    pending = call(c, "POST", "/api/orders", 202, order(s, "BUY", "1", "91"))
    body = call(c, "DELETE", f"/api/orders?symbol={s}&wait=true", 200)
    cancelled = {o["id"] for o in body["orders"]}
    assert {a["id"], b["id"], stop["id"], pending["id"]} <= cancelled
    assert all(o["status"] == "CANCELLED" for o in body["orders"])
    assert call(c, "GET", f"/api/orders/{keep['id']}", 200)["status"] == "OPEN"
    assert book(c, s) == {"bids": [], "asks": []}
    queued = call(c, "DELETE", f"/api/orders?symbol={other}", 202)
    assert [r["symbol"] for r in queued["requests"]] == [other]
    assert queued["requests"][0]["sequence"] == int(stack.r.get(keys.seq(other)))
    stack.drained(other)
    assert call(c, "GET", f"/api/orders/{keep['id']}", 200)["status"] == "CANCELLED"
    consistent(stack, s)
    consistent(stack, other)


# ---------------------------------------------------------------- stops


def test_stop_orders_wait_untriggered_then_trigger_and_cascade(stack):
    c, s = stack.client, stack.symbol()
    call(c, "POST", "/api/orders?wait=true", 201, order(s, "SELL", "1", "100"))
    call(c, "POST", "/api/orders?wait=true", 201, order(s, "BUY", "1", "100"))  # last: 100
    late = call(c, "POST", "/api/orders?wait=true", 201, order(
        s, "BUY", "1", orderType="STOP_MARKET", stopPrice="102"))
    early = call(c, "POST", "/api/orders?wait=true", 201, order(
        s, "BUY", "1", "101", orderType="STOP_LIMIT", stopPrice="101"))
    assert (late["status"], early["status"]) == ("UNTRIGGERED", "UNTRIGGERED")
    assert early["stopPrice"] == 101.0 and book(c, s)["bids"] == []
    listed = call(c, "GET", f"/api/orders?symbol={s}&status=UNTRIGGERED", 200)["orders"]
    assert {o["id"] for o in listed} == {late["id"], early["id"]}
    rejected = call(c, "POST", "/api/orders?wait=true", 201, order(
        s, "SELL", "1", orderType="STOP_MARKET", stopPrice="100"))
    assert (rejected["status"], rejected["reason"]) == ("REJECTED", "STOP_WOULD_TRIGGER")
    for price in ("101", "102", "103"):
        call(c, "POST", "/api/orders?wait=true", 201, order(s, "SELL", "1", price))
    # a trade at 101 triggers "early": a LIMIT at 101 with no ask left at 101, so it rests;
    # nothing reaches 102 yet
    taker = call(c, "POST", "/api/orders?wait=true", 201, order(s, "BUY", "1", "101"))
    assert taker["status"] == "FILLED"
    early_now = call(c, "GET", f"/api/orders/{early['id']}", 200)
    assert (early_now["status"], early_now["orderType"]) == ("OPEN", "STOP_LIMIT")
    assert call(c, "GET", f"/api/orders/{late['id']}", 200)["status"] == "UNTRIGGERED"
    # a trade at 102 triggers "late": a MARKET that takes 103
    call(c, "POST", "/api/orders?wait=true", 201, order(s, "BUY", "1", "102"))
    late_now = call(c, "GET", f"/api/orders/{late['id']}", 200)
    assert (late_now["status"], late_now["averagePrice"]) == ("FILLED", 103.0)
    assert book(c, s) == {"bids": [(101.0, 1.0, 1)], "asks": []}
    consistent(stack, s)


def test_stop_can_be_reduced_and_cancelled_while_untriggered(stack):
    c, s = stack.client, stack.symbol()
    st = call(c, "POST", "/api/orders?wait=true", 201, order(
        s, "SELL", "2", "90", orderType="STOP_LIMIT", stopPrice="95"))
    reduced = call(c, "PATCH", f"/api/orders/{st['id']}?wait=true", 200, {"quantity": "1"})
    assert (reduced["status"], reduced["quantity"]) == ("UNTRIGGERED", 1.0)
    gone = call(c, "DELETE", f"/api/orders/{st['id']}?wait=true", 200)
    assert (gone["status"], gone["reason"]) == ("CANCELLED", "USER_CANCELLED")
    consistent(stack, s)


def test_batch_accepts_stops_and_gtd(stack):
    c, s = stack.client, stack.symbol()
    expire = int(time.time() * 1000) + 3_600_000
    body = {"orders": [order(s, "BUY", "1", orderType="STOP_MARKET", stopPrice="10"),
                       order(s, "BUY", "1", "9", timeInForce="GTD", expireTime=expire)]}
    results = call(c, "POST", "/api/orders/batch", 202, body)["results"]
    assert [r["orderType"] for r in results] == ["STOP_MARKET", "LIMIT"]
    assert results[1]["expireTime"] == expire
    stack.drained(s)
    assert [call(c, "GET", f"/api/orders/{r['id']}", 200)["status"] for r in results] == [
        "UNTRIGGERED", "OPEN"]
    consistent(stack, s)


# ---------------------------------------------------------------- GTD


def test_gtd_order_expires_by_a_journaled_command(stack):
    c, s = stack.client, stack.symbol()
    expire = int(time.time() * 1000) + 1_500
    o = call(c, "POST", "/api/orders?wait=true", 201,
             order(s, "BUY", "1", "50", timeInForce="GTD", expireTime=expire))
    assert (o["status"], o["timeInForce"], o["expireTime"]) == ("OPEN", "GTD", expire)
    wait_until(lambda: call(c, "GET", f"/api/orders/{o['id']}", 200)["status"] == "CANCELLED",
               timeout=30, interval=0.1, what="GTD expiry")
    done = call(c, "GET", f"/api/orders/{o['id']}", 200)
    assert done["reason"] == "EXPIRED" and done["updatedAt"] >= expire  # never early
    print(f"GTD expired {done['updatedAt'] - expire} ms after expireTime")
    assert book(c, s)["bids"] == []
    entries = stack.r.xrange(keys.journal(s))
    assert [f["op"] for _, f in entries] == ["place", "expire"]
    consistent(stack, s)


# ---------------------------------------------------------------- test orders, clientOrderId


def test_test_order_validates_without_placing(stack):
    c, s = stack.client, stack.symbol()
    assert call(c, "POST", "/api/orders/test", 200, order(s, "BUY", "1", "10")) == {
        "valid": True}
    assert stack.r.get(keys.seq(s)) is None
    err = call(c, "POST", "/api/orders/test", 400, order(s, "BUY", "1", "10.001"))
    assert "price" in err["error"]["fields"]


def test_lookup_and_cancel_by_client_order_id(stack):
    c, s = stack.client, stack.symbol()
    o = call(c, "POST", "/api/orders?wait=true", 201,
             order(s, "BUY", "1", "10", clientOrderId=f"mine-{s}"))
    listed = call(c, "GET", f"/api/orders?clientOrderId=mine-{s}&symbol={s}", 200)
    assert [x["id"] for x in listed["orders"]] == [o["id"]] and listed["nextCursor"] is None
    other = stack.symbol()
    assert call(c, "GET", f"/api/orders?clientOrderId=mine-{s}&symbol={other}", 200)[
        "orders"] == []
    gone = call(c, "DELETE", f"/api/orders/by-client-id/mine-{s}?symbol={s}&wait=true", 200)
    assert (gone["id"], gone["status"]) == (o["id"], "CANCELLED")
    err = call(c, "DELETE", f"/api/orders/by-client-id/mine-{s}?symbol={s}", 409)
    assert err["error"]["code"] == "ORDER_NOT_CANCELLABLE"
    consistent(stack, s)
