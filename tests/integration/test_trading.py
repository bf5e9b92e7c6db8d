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


@pytest.mark.parametrize("extra", [
    {},
    {"clientOrderId": "c-9", "postOnly": True},
    {"orderType": "STOP_LIMIT", "stopPrice": "101"},
    {"timeInForce": "GTD", "expireTime": None},  # filled in below: 60 s ahead
])
def test_the_journal_entry_and_hash_are_codec_order_fields(settings, extra):
    """accept.lua gets the values only and names them itself: what it writes must be
    ``codec.order_fields`` exactly (names, values, order), which replay and the matcher
    read (one batch of two and one single call)."""
    import time

    from store import codec, keys

    if "expireTime" in extra:
        extra = {**extra, "expireTime": int(time.time() * 1000) + 60_000}
    desk = _desk(settings)
    r = desk.redis  # decoded replies
    orders = [_load(desk, extra), _load(desk, {**extra, "clientOrderId": None})]
    placed = trading.place(desk, "carol", orders, ["rid.0", "rid.1"])
    placed += trading.place(desk, "carol", [_load(desk, {"type": "SELL"})], ["rid.2"])
    sent = [*orders, _load(desk, {"type": "SELL"})]
    entries = r.xrange(keys.journal("BTC-USD"))
    assert len(entries) == 3
    for (entry_id, fields), p, request, rid in zip(entries, placed, sent,
                                                   ["rid.0", "rid.1", "rid.2"], strict=True):
        want = codec.order_fields(p.order["id"], "carol", request, rid)
        ts = str(p.order["timestamp"])
        assert list(fields.items()) == [("op", "place"), ("ts", ts),
                                        *zip(want[::2], want[1::2], strict=True)]
        assert entry_id == f"{p.sequence}-1"
        h = r.hgetall(keys.order(p.order["id"]))
        assert {k: h[k] for k in want[::2]} == dict(zip(want[::2], want[1::2], strict=True))
        if request["expire_time"] is not None:
            assert r.zscore(keys.gtd("BTC-USD"), p.order["id"]) == float(request["expire_time"])
        else:
            assert r.zscore(keys.gtd("BTC-USD"), p.order["id"]) is None
