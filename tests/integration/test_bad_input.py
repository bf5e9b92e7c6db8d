"""Hostile and malformed input: every case is a 4xx JSON error envelope, never HTML or a
500, and nothing is stored (Redis key count unchanged) and nothing queued (the Celery
queue of the symbol stays absent). Flask test client + real Redis, no worker."""

from __future__ import annotations

import base64
import json

import pytest

from store.read import encode_cursor

QUEUE = b"matching.BTC-USD"
GOOD = {"symbol": "BTC-USD", "side": "BUY", "price": "100.01", "quantity": "0.5"}


def good(**changes) -> dict:
    body = {**GOOD, **changes}
    return {k: v for k, v in body.items() if v is not _DROP}


_DROP = object()


@pytest.fixture
def check(client, r):
    """Send one request; assert a 4xx JSON envelope and that nothing was stored or queued."""
    baseline = r.dbsize()

    def _check(method, path, status=400, code=None, **kwargs):
        resp = client.open(path, method=method, **kwargs)
        assert resp.status_code == status, (method, path, resp.status_code, resp.data[:300])
        assert resp.mimetype == "application/json", resp.data[:200]
        err = resp.get_json()["error"]
        assert isinstance(err["code"], str) and isinstance(err["message"], str)
        assert set(err) <= {"code", "message", "fields"}
        if code is not None:
            assert err["code"] == code, err
        assert r.dbsize() == baseline, "something was stored"
        assert r.llen(QUEUE) == 0 and not r.exists(QUEUE), "something was queued"
        return err

    return _check


def post_raw(check, data, content_type="application/json", path="/api/orders", **kw):
    return check("POST", path, data=data, content_type=content_type, **kw)


# ---------------------------------------------------------------- bodies


@pytest.mark.parametrize("data", [
    b"", b"{", b"{'a': 1}", b'{"quantity": 1,}', b"\xff\xfe", b'{"a": NaN}',
    b'{"price": Infinity}', b'{"price": -Infinity}', b"[" * 50_000 + b"]" * 50_000,
])
def test_bad_json_is_400(check, data):
    post_raw(check, data)
    post_raw(check, data, path="/api/orders/batch")


@pytest.mark.parametrize("data", [b"[]", b"null", b"1", b'"order"', b"true", b"[{}]"])
def test_non_object_body_is_400(check, data):
    post_raw(check, data)
    post_raw(check, data, path="/api/orders/batch")


@pytest.mark.parametrize("body,field", [
    (good(quantity=True), "quantity"),
    (good(quantity=False), "quantity"),
    (good(price=True), "price"),
    (good(postOnly=1), "postOnly"),
    (good(postOnly="true"), "postOnly"),
    (good(postOnly=0), "postOnly"),
    (good(quantity=[1]), "quantity"),
    (good(quantity={"v": 1}), "quantity"),
    (good(quantity=None), "quantity"),
    (good(quantity=_DROP), "quantity"),
    (good(symbol=5), "symbol"),
    (good(side=1), "side"),
    (good(side="buy"), "side"),
    (good(side=_DROP), "type"),
    (good(type="HOLD"), "type"),
    (good(orderType="STOP"), "orderType"),
    (good(timeInForce="DAY"), "timeInForce"),
    (good(selfTradePrevention="ALWAYS"), "selfTradePrevention"),
    (good(price="1e2"), "price"),
    (good(price="0x10"), "price"),
    (good(price="-1"), "price"),
    (good(price=" "), "price"),
    (good(price="NaN"), "price"),
    (good(price="Infinity"), "price"),
    (good(price=-100), "price"),
    (good(price=0), "price"),
    (good(price="0.00"), "price"),
    (good(quantity=-1), "quantity"),
    (good(quantity=0), "quantity"),
    (good(price=0.30000000000000004), "price"),
    (good(price="0.30000000000000004"), "price"),
    (good(price="100.001"), "price"),
    (good(quantity="0.0001"), "quantity"),
    (good(quantity="1.00000000000000000000001"), "quantity"),
    (good(price=10_000_000.01), "price"),
    (good(price=1e300), "price"),
    (good(quantity=1_000_001), "quantity"),
    (good(quantity=10**40), "quantity"),
    (good(extra=1), "extra"),
    (good(Price=100), "Price"),
    (good(symbol="DOGE-USD"), "symbol"),
    (good(symbol=""), "symbol"),
    (good(type="SELL"), "side"),
    (good(orderType="MARKET"), "price"),
    (good(price=_DROP), "price"),
    (good(price=None), "price"),
    (good(price=_DROP, orderType="MARKET", timeInForce="GTC"), "timeInForce"),
    (good(postOnly=True, timeInForce="IOC"), "postOnly"),
    (good(postOnly=True, timeInForce="FOK"), "postOnly"),
    (good(postOnly=True, price=_DROP, orderType="MARKET"), "postOnly"),
    (good(clientOrderId=""), "clientOrderId"),
    (good(clientOrderId="a" * 65), "clientOrderId"),
    (good(clientOrderId="has space"), "clientOrderId"),
    (good(clientOrderId="é"), "clientOrderId"),
    (good(clientOrderId="a/b"), "clientOrderId"),
    (good(clientOrderId=12), "clientOrderId"),
    # stop orders and GTD
    (good(orderType="STOP_LIMIT"), "stopPrice"),
    (good(orderType="STOP_LIMIT", stopPrice="100.001"), "stopPrice"),
    (good(orderType="STOP_LIMIT", stopPrice=-1), "stopPrice"),
    (good(orderType="STOP_LIMIT", stopPrice=0), "stopPrice"),
    (good(orderType="STOP_LIMIT", stopPrice=100, price=_DROP), "price"),
    (good(stopPrice="100"), "stopPrice"),
    (good(orderType="STOP_MARKET", stopPrice=100), "price"),
    (good(orderType="STOP_LIMIT", stopPrice=100, postOnly=True), "postOnly"),
    (good(orderType="STOP_LIMIT", stopPrice=100, timeInForce="IOC"), "timeInForce"),
    (good(orderType="STOP_MARKET", price=_DROP, stopPrice=100, timeInForce="FOK"),
     "timeInForce"),
    (good(orderType="STOP_LIMIT", stopPrice=100, timeInForce="GTD",
          expireTime=4_000_000_000_000), "timeInForce"),
    (good(timeInForce="GTD"), "expireTime"),
    (good(timeInForce="GTD", expireTime=1), "expireTime"),
    (good(timeInForce="GTD", expireTime=4_102_444_800_000), "expireTime"),  # year 2100
    (good(timeInForce="GTD", expireTime="soon"), "expireTime"),
    (good(timeInForce="GTD", expireTime=4.5), "expireTime"),
    (good(expireTime=4_000_000_000_000), "expireTime"),
    (good(orderType="MARKET", price=_DROP, timeInForce="GTD"), "timeInForce"),
])
def test_invalid_order_is_400_with_the_field_named(client, check, body, field):
    err = check("POST", "/api/orders", json=body, code="VALIDATION_ERROR")
    assert field in err.get("fields", {}), err
    # the same order inside a batch is a per-item error, and nothing is stored either
    resp = client.post("/api/orders/batch", json={"orders": [body]})
    assert resp.status_code == 202, resp.get_json()
    (item,) = resp.get_json()["results"]
    assert item["error"]["code"] == "VALIDATION_ERROR" and field in item["error"]["fields"]
    check("GET", "/api/orders/nothing", status=404)  # the stores are still untouched


def test_sanity_the_good_order_is_accepted(client, r):
    assert client.post("/api/orders", json=good()).status_code == 202
    assert r.llen(QUEUE) == 1


@pytest.mark.parametrize("body", [
    {}, {"orders": "x"}, {"orders": {}}, {"orders": None}, {"orders": []},
    {"orders": [GOOD] * 101}, {"orders": [GOOD], "extra": 1},
])
def test_bad_batch_envelope_is_400(check, body):
    check("POST", "/api/orders/batch", json=body, code="VALIDATION_ERROR")


def test_huge_body_is_413(check):
    blob = json.dumps({**GOOD, "pad": "x" * 300_000})
    check("POST", "/api/orders", status=413, data=blob, content_type="application/json")
    big = {"orders": [dict(GOOD, clientOrderId="c" * 64)] * 100 + [{"pad": "x" * 300_000}]}
    check("POST", "/api/orders/batch", status=413, json=big)


@pytest.mark.parametrize("content_type", [
    None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
    "application/xml"])
def test_wrong_content_type_is_415(check, content_type):
    kwargs = {"data": json.dumps(GOOD)}
    if content_type:
        kwargs["content_type"] = content_type
    check("POST", "/api/orders", status=415, **kwargs)
    check("POST", "/api/orders/batch", status=415, **kwargs)


# ---------------------------------------------------------------- query strings


def _b64(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


@pytest.mark.parametrize("path", [
    "/api/orders?limit=0", "/api/orders?limit=1001", "/api/orders?limit=abc",
    "/api/orders?limit=1.5", "/api/orders?limit=-1", "/api/orders?limit=",
    "/api/orders?status=DONE", "/api/orders?status=", "/api/orders?status=OPEN,,NOPE",
    "/api/orders?side=buy", "/api/orders?type=BUY&side=SELL", "/api/orders?symbol=NOPE",
    "/api/orders?foo=1", "/api/orders?limit=1&limit=2",
    "/api/orders?cursor=!!!", "/api/orders?cursor=abc", f"/api/orders?cursor={_b64([1])}",
    f"/api/orders?cursor={_b64(['x', 'y'])}", f"/api/orders?cursor={_b64([1.5, 'y'])}",
    f"/api/orders?cursor={_b64([True, 'y'])}", f"/api/orders?cursor={_b64([10**400, 'y'])}",
    f"/api/orders?cursor={_b64({'a': 1})}",
    "/api/orderbook?levels=0", "/api/orderbook?levels=1001", "/api/orderbook?levels=x",
    "/api/orderbook?symbol=NOPE", "/api/orderbook?depth=5",
    "/api/orderbook/depth?levels=0", "/api/orderbook/depth?levels=5000",
    "/api/orderbook/depth?symbol=btc-usd",
    "/api/trades?limit=0", "/api/trades?limit=1001", "/api/trades?cursor=zzz",
    f"/api/trades?cursor={_b64([0])}", f"/api/trades?cursor={_b64([-5])}",
    f"/api/trades?cursor={_b64(['7'])}", f"/api/trades?cursor={_b64([True])}",
    f"/api/trades?cursor={_b64([10**30])}", f"/api/trades?cursor={_b64([1, 2])}",
    "/api/trades?symbol=NOPE", "/api/trades?since=1",
    "/api/trades/latest?limit=0", "/api/trades/latest?limit=1001",
    "/api/trades/latest?cursor=abc", "/api/trades/latest?symbol=NOPE",
    "/api/markets?symbol=BTC-USD", "/api/markets?x=1",
])
def test_bad_query_is_400(check, path):
    check("GET", path, code="VALIDATION_ERROR")


@pytest.mark.parametrize("query", [
    "wait=maybe", "wait=true&timeout=-1", "wait=true&timeout=30001", "timeout=abc",
    "foo=1", "wait=1&wait=0"])
def test_bad_wait_arguments_are_400(check, query):
    check("POST", f"/api/orders?{query}", json=GOOD, code="VALIDATION_ERROR")


def test_bad_cancel_arguments_are_4xx(client, check, r):
    check("DELETE", "/api/orders/ord_unknown", status=404, code="ORDER_NOT_FOUND")
    check("DELETE", "/api/orders/ord_unknown?wait=perhaps", code="VALIDATION_ERROR")
    check("GET", "/api/orders/" + "x" * 5000, status=404)


def test_cursors_from_the_service_still_work(client):
    """The cursor checks above reject forgeries, not the real thing."""
    assert client.get(f"/api/trades?cursor={encode_cursor(5)}").status_code == 200
    assert client.get(f"/api/orders?cursor={encode_cursor(123, 'ord_x')}").status_code == 200


# ---------------------------------------------------------------- routes and methods


@pytest.mark.parametrize("path", ["/api", "/api/order", "/api/orders/x/y",
                                  "/api/orderbook/x", "/index.html", "/api/trades/latest/1"])
def test_unknown_routes_are_404_json(check, path):
    check("GET", path, status=404, code="NOT_FOUND")
    check("POST", path, status=404, json=GOOD)


@pytest.fixture
def resting(client, r):
    """A PENDING order (no worker runs here) and the key count after placing it."""
    resp = client.post("/api/orders", json=good(clientOrderId="keep-1"))
    assert resp.status_code == 202
    return resp.get_json()["id"], r.dbsize(), r.llen(QUEUE)


def _unchanged(client, r, resting, method, path, status, code, field=None, **kwargs):
    resp = client.open(path, method=method, **kwargs)
    assert resp.status_code == status, (path, resp.get_json())
    err = resp.get_json()["error"]
    assert err["code"] == code, err
    if field is not None:
        assert field in err.get("fields", {}), err
    assert (r.dbsize(), r.llen(QUEUE)) == resting[1:], "something was stored or queued"
    return err


@pytest.mark.parametrize("body,field", [
    ({"quantity": "0.5"}, "quantity"),  # not below the quantity
    ({"quantity": "0.6"}, "quantity"),
    ({"quantity": "0.0001"}, "quantity"),  # not a lot multiple
    ({"quantity": 0}, "quantity"), ({"quantity": -1}, "quantity"),
    ({"quantity": "x"}, "quantity"), ({}, "quantity"), ({"quantity": 0.1, "price": 1}, "price"),
])
def test_bad_reduce_is_400_and_changes_nothing(client, r, resting, body, field):
    _unchanged(client, r, resting, "PATCH", f"/api/orders/{resting[0]}", 400,
               "VALIDATION_ERROR", field, json=body)


def test_reduce_and_replace_of_unknown_orders_are_404(client, r, resting):
    _unchanged(client, r, resting, "PATCH", "/api/orders/ord_nope", 404, "ORDER_NOT_FOUND",
               json={"quantity": 0.1})
    _unchanged(client, r, resting, "POST", "/api/orders/ord_nope/replace", 404,
               "ORDER_NOT_FOUND", json=GOOD)
    _unchanged(client, r, resting, "DELETE", "/api/orders/by-client-id/nope", 404,
               "ORDER_NOT_FOUND")
    _unchanged(client, r, resting, "DELETE", "/api/orders/by-client-id/keep-1?symbol=ETH-USD",
               404, "ORDER_NOT_FOUND")


@pytest.mark.parametrize("body,field", [
    (good(symbol="ETH-USD", price="100", quantity="1"), "symbol"),
    (good(side="SELL"), "side"),
    (good(side=_DROP, type="SELL"), "type"),
    (good(price="1.001"), "price"),
    (good(extra=1), "extra"),
])
def test_bad_replace_is_400_and_changes_nothing(client, r, resting, body, field):
    _unchanged(client, r, resting, "POST", f"/api/orders/{resting[0]}/replace", 400,
               "VALIDATION_ERROR", field, json=body)


def test_clientorderid_reused_for_another_order_is_409(client, r, resting):
    err = _unchanged(client, r, resting, "POST", "/api/orders", 409, "CLIENT_ORDER_ID_REUSED",
                     "clientOrderId", json=good(clientOrderId="keep-1", quantity="0.6"))
    assert resting[0] in err["message"]
    # the same request again is the idempotent replay: 200 with the original
    again = client.post("/api/orders", json=good(clientOrderId="keep-1"))
    assert again.status_code == 200 and again.get_json()["id"] == resting[0]


def test_test_order_validates_and_stores_nothing(client, r, resting):
    resp = client.post("/api/orders/test", json=good())
    assert resp.status_code == 200 and resp.get_json() == {"valid": True}
    assert (r.dbsize(), r.llen(QUEUE)) == resting[1:]
    _unchanged(client, r, resting, "POST", "/api/orders/test", 400, "VALIDATION_ERROR",
               "price", json=good(price="0.001"))
    _unchanged(client, r, resting, "POST", "/api/orders/test?wait=true", 400,
               "VALIDATION_ERROR", json=good())


@pytest.mark.parametrize("path", [
    "/api/orders?symbol=NOPE", "/api/orders?wait=maybe", "/api/orders?foo=1",
    "/api/orders?timeout=-1",
])
def test_bad_cancel_all_query_is_400(client, r, resting, path):
    _unchanged(client, r, resting, "DELETE", path, 400, "VALIDATION_ERROR")


@pytest.mark.parametrize("query", ["wait=true", "foo=1"])
def test_unknown_query_arguments_on_batch_are_400(client, r, resting, query):
    _unchanged(client, r, resting, "POST", f"/api/orders/batch?{query}", 400,
               "VALIDATION_ERROR", json={"orders": [GOOD]})


@pytest.mark.parametrize("method,path", [
    ("PUT", "/api/orders"), ("PATCH", "/api/orders"), ("GET", "/api/orders/o/replace"),
    ("PUT", "/api/orders/ord_x"), ("POST", "/api/orders/ord_x"),
    ("DELETE", "/api/orderbook"), ("POST", "/api/trades"),
    ("POST", "/api/markets"), ("POST", "/api/health"), ("PUT", "/api/trades/latest"),
])
def test_wrong_methods_are_405_json(check, method, path):
    check(method, path, status=405, code="METHOD_NOT_ALLOWED")


# ---------------------------------------------------------------- messages a new user meets


def test_negative_quantity_as_string_or_number_gets_one_message(check):
    as_text = check("POST", "/api/orders", json=good(quantity="-1"))["fields"]["quantity"]
    as_number = check("POST", "/api/orders", json=good(quantity=-1))["fields"]["quantity"]
    assert as_text == as_number and "greater than 0" in as_text[0]


def test_every_missing_field_is_reported_at_once(check):
    fields = check("POST", "/api/orders", json={})["fields"]
    assert {"quantity", "type", "side", "price"} <= set(fields), fields
    fields = check("POST", "/api/orders", json={"quantity": 1, "price": 1})["fields"]
    assert set(fields) == {"type", "side"} and "side" in fields["side"][0]


def test_unknown_status_message_names_the_valid_ones(check):
    err = check("GET", "/api/orders?status=open")
    message = err["fields"]["status"][0]
    assert "['" not in message and "'open'" in message and "UNTRIGGERED" in message


def test_client_order_id_message_says_the_rule(check):
    message = check("POST", "/api/orders", json=good(clientOrderId="a b"))["fields"][
        "clientOrderId"][0]
    assert "64" in message and "A-Z" in message


def test_413_names_the_limit(check, app):
    blob = json.dumps({**GOOD, "pad": "x" * 300_000})
    err = check("POST", "/api/orders", status=413, data=blob, content_type="application/json")
    assert str(app.config["MAX_CONTENT_LENGTH"]) in err["message"]
