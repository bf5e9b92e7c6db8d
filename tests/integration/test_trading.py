"""app.trading, the order entry service, called as the WebSocket relay calls it: no Flask
app or request context, a real Redis."""

from __future__ import annotations

import pytest

from app import trading
from app.errors import ApiError, store_error
from app.redis_client import connect
from store import journal
from store.read import BadCursor
from workers.celery_app import make_celery


def _desk(settings, **changes) -> trading.Desk:
    settings = settings.replace(**changes)
    return trading.Desk(connect(settings), make_celery(settings), settings)


def _load(desk, body):
    return desk.place_schema.load({"type": "BUY", "price": "100", "quantity": "1", **body})


def test_place_journals_and_replays_without_a_request_context(settings, r):
    desk = _desk(settings)
    first = trading.place(desk, "alice", [_load(desk, {"clientOrderId": "c1"})], ["rid-1"])[0]
    assert (first.status, first.order["status"], first.sequence) == (202, "PENDING", 1)
    again = trading.place(desk, "alice", [_load(desk, {"clientOrderId": "c1"})], ["rid-2"])[0]
    assert (again.status, again.order["id"]) == (200, first.order["id"])
    other = trading.place(desk, "alice", [_load(desk, {"clientOrderId": "c1", "price": "99"})],
                          ["rid-3"])[0]
    assert (other.status, other.error.code) == (409, "CLIENT_ORDER_ID_REUSED")
    assert journal.last_sequence(r, "BTC-USD") == 1


def test_a_list_gets_one_outcome_per_order_in_order(settings, r):
    desk = _desk(settings, max_open_orders_per_account=2)
    orders = [_load(desk, {}), _load(desk, {"price": "101"}), _load(desk, {"price": "102"})]
    placed = trading.place(desk, "bob", orders, ["b.0", "b.1", "b.2"])
    assert [p.status for p in placed] == [202, 202, 429]
    assert [p.order["price"] for p in placed[:2]] == [100.0, 101.0]
    assert placed[2].error.code == "TOO_MANY_OPEN_ORDERS"
    assert journal.last_sequence(r, "BTC-USD") == 2


def test_cancel_queues_or_refuses_with_rest_codes(settings, r):
    desk = _desk(settings)
    with pytest.raises(ApiError) as missing:
        trading.cancel(desk, "ord_nope", None, "rid-x")
    assert (missing.value.status, missing.value.code) == (404, "ORDER_NOT_FOUND")
    order = trading.place(desk, "carol", [_load(desk, {})], ["rid-p"])[0].order
    with pytest.raises(ApiError) as foreign:
        trading.cancel(desk, order["id"], "mallory", "rid-m")
    assert foreign.value.status == 404
    queued = trading.cancel(desk, order["id"], "carol", "rid-c")
    assert (queued.outcome, queued.symbol, queued.sequence) == ("queued", "BTC-USD", 2)


def test_store_errors_map_to_client_errors_in_one_place():
    bad = store_error(BadCursor("x"))
    assert (bad.status, bad.code, list(bad.fields)) == (400, "VALIDATION_ERROR", ["cursor"])
    assert store_error(KeyError("not the store's")) is None
