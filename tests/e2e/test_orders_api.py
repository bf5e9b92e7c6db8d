"""Every REST endpoint of api.md section 3 (except /metrics) against a real worker and Redis.

Each test draws fresh symbols (``stack.symbol()``), so books start empty without flushing
Redis under the running worker (see conftest.py).
"""

from __future__ import annotations

import json
import random
import threading
from collections import defaultdict

import pytest

from schemas.markets import get_market
from settings import MarketConfig
from store import journal, keys
from tests.e2e.conftest import DEFAULT_SYMBOL, THIRD
from tests.replay import diff_against_replay
from tests.support import durable_keys, order, wait_until

pytestmark = pytest.mark.slow


# ---------------------------------------------------------------- helpers


def place(client, body, wait=False, status=None):
    resp = client.post("/api/orders?wait=true" if wait else "/api/orders", json=body)
    expected = status or (201 if wait else 202)
    assert resp.status_code == expected, resp.get_json()
    return resp.get_json()


def get(client, order_id) -> dict:
    resp = client.get(f"/api/orders/{order_id}")
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def walk(client, path: str, key: str, limit: int) -> list:
    """Follow nextCursor to the end; returns every item in page order."""
    items, cursor, pages = [], None, 0
    while True:
        sep = "&" if "?" in path else "?"
        url = f"{path}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(url).get_json()
        assert len(body[key]) <= limit
        items += body[key]
        cursor, pages = body["nextCursor"], pages + 1
        assert pages < 1000
        if cursor is None:
            return items


@pytest.fixture(scope="module")
def orphan_app(stack):
    """The same stack plus a market no worker matches: its orders stay PENDING."""
    from app import create_app

    extra = MarketConfig("ORPHAN-USD", stack.settings.markets[0].tick_size,
                         stack.settings.markets[0].lot_size)
    return create_app(stack.settings.replace(markets=stack.settings.markets + (extra,)))


# ---------------------------------------------------------------- place


def test_place_returns_202_pending_then_the_worker_opens_it(stack):
    c, s = stack.client, stack.symbol()
    o = place(c, order(s, "BUY", "1.5", "101.25", clientOrderId="p-1"))
    assert o["id"].startswith("ord_") and o["status"] == "PENDING"
    assert (o["symbol"], o["type"], o["side"], o["orderType"], o["timeInForce"]) == (
        s, "BUY", "BUY", "LIMIT", "GTC")
    assert (o["price"], o["quantity"], o["filledQuantity"], o["remainingQuantity"]) == (
        101.25, 1.5, 0.0, 1.5)
    assert o["postOnly"] is False and o["averagePrice"] is None and o["reason"] is None
    assert o["clientOrderId"] == "p-1" and o["sequence"] == 1
    assert isinstance(o["timestamp"], int) and o["updatedAt"] == o["timestamp"]
    stack.drained(s)
    after = get(c, o["id"])
    assert after["status"] == "OPEN" and after["fills"] == []
    assert after["sequence"] == 1 and after["updatedAt"] >= after["timestamp"]


def test_default_symbol_is_the_first_market(stack):
    body = {"side": "SELL", "quantity": 0.001, "price": 999999, "postOnly": True}
    o = place(stack.client, body)
    assert o["symbol"] == DEFAULT_SYMBOL


def test_place_wait_returns_201_with_fills(stack):
    c, s = stack.client, stack.symbol()
    maker = place(c, order(s, "SELL", "2", "100.50"), wait=True)
    assert maker["status"] == "OPEN" and maker["fills"] == []
    taker = place(c, order(s, "BUY", 0.5, 101), wait=True)
    assert taker["status"] == "FILLED" and taker["filledQuantity"] == 0.5
    assert taker["remainingQuantity"] == 0.0 and taker["averagePrice"] == 100.5
    (fill,) = taker["fills"]
    assert fill == {
        "id": fill["id"], "symbol": s, "buyOrderId": taker["id"], "sellOrderId": maker["id"],
        "makerOrderId": maker["id"], "takerOrderId": taker["id"], "takerSide": "BUY",
        "price": 100.5, "quantity": 0.5, "sequence": 1, "timestamp": taker["timestamp"],
    }
    m = get(c, maker["id"])
    assert m["status"] == "PARTIAL" and m["filledQuantity"] == 0.5
    assert m["remainingQuantity"] == 1.5 and m["fills"] == [fill]


def test_place_wait_times_out_with_202(orphan_app):
    resp = orphan_app.test_client().post(
        "/api/orders?wait=true&timeout=300", json=order("ORPHAN-USD", "BUY", 1, 10))
    assert resp.status_code == 202
    assert resp.get_json()["status"] == "PENDING"


def test_same_client_order_id_returns_the_original_with_200(stack):
    c, s = stack.client, stack.symbol()
    first = place(c, order(s, "BUY", 1, 10, clientOrderId="same-id_1"))
    stack.drained(s)
    seq_before, keys_before = journal.last_sequence(stack.r, s), durable_keys(stack.r)
    again = c.post("/api/orders", json=order(s, "BUY", "1.000", "10.00",
                                              clientOrderId="same-id_1"))
    assert again.status_code == 200
    # the same clientOrderId with another order is a reuse: 409, nothing placed
    reused = c.post("/api/orders", json=order(s, "SELL", 3, 12, clientOrderId="same-id_1"))
    assert reused.status_code == 409
    assert reused.get_json()["error"]["code"] == "CLIENT_ORDER_ID_REUSED"
    body = again.get_json()
    assert body["id"] == first["id"] and body["side"] == "BUY" and body["status"] == "OPEN"
    assert journal.last_sequence(stack.r, s) == seq_before
    assert durable_keys(stack.r) == keys_before
    listed = c.get(f"/api/orders?symbol={s}").get_json()["orders"]
    assert [o["id"] for o in listed] == [first["id"]]


# ---------------------------------------------------------------- batch


def test_batch_accepts_in_array_order_with_per_item_errors(stack):
    c, s = stack.client, stack.symbol()
    items = [order(s, "BUY", 1, 10), order(s, "BUY", 1, "10.001"), order(s, "SELL", 2, 11),
             "not an object", order("NOPE-USD", "BUY", 1, 1), order(s, "BUY", 1, 9)]
    resp = c.post("/api/orders/batch", json={"orders": items})
    assert resp.status_code == 202
    results = resp.get_json()["results"]
    assert len(results) == len(items)
    ok = [results[i] for i in (0, 2, 5)]
    assert [o["sequence"] for o in ok] == [1, 2, 3]
    assert [o["price"] for o in ok] == [10.0, 11.0, 9.0]
    for i, field in ((1, "price"), (3, "_schema"), (4, "symbol")):
        err = results[i]["error"]
        assert err["code"] == "VALIDATION_ERROR" and field in err["fields"], results[i]
    assert journal.last_sequence(stack.r, s) == 3
    stack.drained(s)
    assert {get(c, o["id"])["status"] for o in ok} == {"OPEN"}


def test_batch_size_limits(stack):
    c, s = stack.client, stack.symbol()
    full = [order(s, "BUY", 1, 1 + i) for i in range(100)]
    resp = c.post("/api/orders/batch", json={"orders": full})
    assert resp.status_code == 202 and len(resp.get_json()["results"]) == 100
    over = c.post("/api/orders/batch", json={"orders": full + [order(s, "BUY", 1, 1)]})
    assert over.status_code == 400 and over.get_json()["error"]["code"] == "VALIDATION_ERROR"
    assert c.post("/api/orders/batch", json={"orders": []}).status_code == 400
    assert journal.last_sequence(stack.r, s) == 100


# ---------------------------------------------------------------- list, get


def test_list_filters_newest_first_and_pagination(stack):
    c = stack.client
    s1, s2 = stack.symbol(), stack.symbol()
    placed = []
    for i in range(24):
        s = (s1, s2)[i % 2]
        side = ("BUY", "SELL")[(i // 2) % 2]
        price = 50 - i if side == "BUY" else 60 + i  # never crossing: all rest
        placed.append(place(c, order(s, side, 1, price)))
    stack.drained(s1), stack.drained(s2)
    cancelled = {placed[i]["id"] for i in (0, 3, 4)}
    for oid in cancelled:
        assert c.delete(f"/api/orders/{oid}?wait=true").status_code == 200

    def listed(query):
        body = c.get(f"/api/orders?{query}").get_json()
        assert body["nextCursor"] is None
        return body["orders"]

    mine = listed(f"symbol={s1}")
    assert {o["id"] for o in mine} == {o["id"] for o in placed if o["symbol"] == s1}
    # newest first: by acceptance time, and by sequence within a symbol
    assert [o["sequence"] for o in mine] == sorted((o["sequence"] for o in mine), reverse=True)
    assert [o["timestamp"] for o in mine] == sorted((o["timestamp"] for o in mine),
                                                     reverse=True)
    sells = listed(f"symbol={s2}&side=SELL")
    assert sells and all(o["side"] == "SELL" and o["symbol"] == s2 for o in sells)
    assert listed(f"symbol={s2}&type=SELL") == sells
    assert {o["id"] for o in sells} == {
        o["id"] for o in placed if o["symbol"] == s2 and o["side"] == "SELL"}
    gone = listed(f"symbol={s1}&status=CANCELLED") + listed(f"symbol={s2}&status=CANCELLED")
    assert {o["id"] for o in gone} == cancelled
    both = listed(f"symbol={s1}&status=OPEN,CANCELLED")
    assert len(both) == 12
    assert {o["status"] for o in listed(f"symbol={s1}&status=OPEN")} == {"OPEN"}

    # pagination walks every item exactly once, in the unpaged order
    for symbol in (s1, s2):
        whole = listed(f"symbol={symbol}&limit=1000")
        for limit in (1, 5, 7, 12):
            paged = walk(c, f"/api/orders?symbol={symbol}", "orders", limit)
            assert [o["id"] for o in paged] == [o["id"] for o in whole]
    open_paged = walk(c, f"/api/orders?symbol={s2}&status=OPEN,PENDING", "orders", 4)
    assert len(open_paged) == 12 - len(cancelled & {o["id"] for o in placed[1::2]})


def test_list_is_newest_first_within_one_millisecond(stack):
    c, s = stack.client, stack.symbol()
    batch = [order(s, "BUY", 1, 1 + i) for i in range(20)]
    c.post("/api/orders/batch", json={"orders": batch})
    listed = c.get(f"/api/orders?symbol={s}").get_json()["orders"]
    assert [o["sequence"] for o in listed] == list(range(20, 0, -1))


def test_get_order_and_404(stack):
    c, s = stack.client, stack.symbol()
    o = place(c, order(s, "SELL", 1, 20), wait=True)
    assert get(c, o["id"])["id"] == o["id"]
    resp = c.get("/api/orders/ord_doesnotexist")
    assert resp.status_code == 404
    assert resp.get_json()["error"]["code"] == "ORDER_NOT_FOUND"


# ---------------------------------------------------------------- cancel


def test_cancel_202_wait_200_409_404(stack):
    c, s = stack.client, stack.symbol()
    a = place(c, order(s, "BUY", 1, 10), wait=True)
    b = place(c, order(s, "BUY", 2, 11), wait=True)
    resp = c.delete(f"/api/orders/{a['id']}")
    assert resp.status_code == 202
    assert resp.get_json()["id"] == a["id"] and resp.get_json()["status"] in ("OPEN",
                                                                             "CANCELLED")
    stack.drained(s)
    assert get(c, a["id"])["status"] == "CANCELLED"
    resp = c.delete(f"/api/orders/{b['id']}?wait=true")
    assert resp.status_code == 200
    body = resp.get_json()
    assert (body["status"], body["reason"], body["remainingQuantity"]) == (
        "CANCELLED", "USER_CANCELLED", 0.0)
    again = c.delete(f"/api/orders/{b['id']}")
    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "ORDER_NOT_CANCELLABLE"
    assert c.delete("/api/orders/ord_nope").status_code == 404
    book = c.get(f"/api/orderbook?symbol={s}").get_json()
    assert book["bids"] == [] and book["asks"] == []


def test_cancel_of_a_filled_order_is_409(stack):
    c, s = stack.client, stack.symbol()
    maker = place(c, order(s, "SELL", 1, 10), wait=True)
    place(c, order(s, "BUY", 1, 10), wait=True)
    resp = c.delete(f"/api/orders/{maker['id']}?wait=true")
    assert resp.status_code == 409 and "FILLED" in resp.get_json()["error"]["message"]


# ---------------------------------------------------------------- market data


def _book(stack, s):
    c = stack.client
    for side, qty, price in (("BUY", 1, "100.00"), ("BUY", "0.5", "101.00"),
                             ("BUY", "0.25", "101.00"), ("SELL", 2, "103.00"),
                             ("SELL", 1, "105.50"), ("BUY", 3, "99.99")):
        place(c, order(s, side, qty, price))
    return stack.drained(s)


def test_orderbook(stack):
    s = stack.symbol()
    applied = _book(stack, s)
    book = stack.client.get(f"/api/orderbook?symbol={s}").get_json()
    assert book["symbol"] == s and book["sequence"] == applied == 6
    assert book["bids"] == [{"price": 101.0, "quantity": 0.75, "orders": 2},
                            {"price": 100.0, "quantity": 1.0, "orders": 1},
                            {"price": 99.99, "quantity": 3.0, "orders": 1}]
    assert book["asks"] == [{"price": 103.0, "quantity": 2.0, "orders": 1},
                            {"price": 105.5, "quantity": 1.0, "orders": 1}]
    assert (book["bestBid"], book["bestAsk"], book["spread"], book["midPrice"]) == (
        101.0, 103.0, 2.0, 102.0)
    assert isinstance(book["timestamp"], int)
    top = stack.client.get(f"/api/orderbook?symbol={s}&levels=1").get_json()
    assert len(top["bids"]) == 1 and len(top["asks"]) == 1
    empty = stack.client.get(f"/api/orderbook?symbol={stack.symbol()}").get_json()
    assert (empty["bids"], empty["asks"], empty["spread"], empty["midPrice"]) == (
        [], [], None, None)


def test_depth_is_cumulative(stack):
    s = stack.symbol()
    applied = _book(stack, s)
    d = stack.client.get(f"/api/orderbook/depth?symbol={s}").get_json()
    assert d["symbol"] == s and d["sequence"] == applied
    assert d["bids"] == [{"price": 101.0, "quantity": 0.75, "total": 0.75},
                         {"price": 100.0, "quantity": 1.0, "total": 1.75},
                         {"price": 99.99, "quantity": 3.0, "total": 4.75}]
    assert d["asks"] == [{"price": 103.0, "quantity": 2.0, "total": 2.0},
                         {"price": 105.5, "quantity": 1.0, "total": 3.0}]
    assert len(stack.client.get(f"/api/orderbook/depth?symbol={s}&levels=2")
               .get_json()["bids"]) == 2


def test_trades_newest_first_paging_and_latest(stack):
    c, s = stack.client, stack.symbol()
    place(c, order(s, "SELL", "1.3", 100))
    for i in range(13):
        place(c, order(s, "BUY", "0.1", 100 + i, timeInForce="IOC"))
    stack.drained(s)
    whole = c.get(f"/api/trades?symbol={s}").get_json()
    assert whole["nextCursor"] is None
    seqs = [t["sequence"] for t in whole["trades"]]
    assert seqs == list(range(13, 0, -1))  # newest first, gap-free
    assert all(t["price"] == 100.0 and t["quantity"] == 0.1 for t in whole["trades"])
    assert all(t["takerSide"] == "BUY" for t in whole["trades"])
    for limit in (1, 4, 13):
        paged = walk(c, f"/api/trades?symbol={s}", "trades", limit)
        assert paged == whole["trades"]
    latest = c.get(f"/api/trades/latest?symbol={s}&limit=3").get_json()
    assert [t["sequence"] for t in latest["trades"]] == [13, 12, 11]
    assert len(c.get(f"/api/trades/latest?symbol={s}").get_json()["trades"]) == 13


def test_markets(stack):
    c, s = stack.client, stack.symbol()
    place(c, order(s, "SELL", 2, "100.10"))
    place(c, order(s, "BUY", "0.5", "99.90"))
    place(c, order(s, "BUY", "0.75", "100.10", timeInForce="IOC"))
    stack.drained(s)
    markets = {m["symbol"]: m for m in c.get("/api/markets").get_json()["markets"]}
    assert set(markets) == set(stack.settings.symbols)
    assert markets[s] == {"symbol": s, "tickSize": 0.01, "lotSize": 0.001, "lastPrice": 100.1,
                          "bestBid": 99.9, "bestAsk": 100.1, "volume24h": 0.75}
    fresh = markets[stack.symbol()]
    assert (fresh["lastPrice"], fresh["bestBid"], fresh["volume24h"]) == (None, None, 0.0)


def test_health(stack, orphan_app):
    resp = stack.client.get("/api/health")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["status"] == "ok" and body["redis"]["ok"] is True
    for info in body["symbols"].values():
        assert info["ok"] and info["heartbeatAgeMs"] is not None and info["lag"] >= 0
    down = orphan_app.test_client().get("/api/health")
    assert down.status_code == 503
    assert down.get_json()["symbols"]["ORPHAN-USD"]["ok"] is False


def test_openapi_documents_every_route(stack):
    resp = stack.client.get("/api/openapi.json")
    assert resp.status_code == 200
    doc = resp.get_json()
    assert doc["openapi"].startswith("3.") and doc["info"]["title"] and doc["info"]["version"]
    schemas = doc["components"]["schemas"]
    for name in ("Order", "Trade", "OrderWithFills", "PlaceOrder", "Error"):
        assert name in schemas, name
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops
                  if method in ("get", "post", "delete", "put", "patch")}
    for rule in stack.app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule in ("/ws", "/metrics"):
            continue
        if rule.endpoint.startswith("dashboard."):  # the trading page and its files: not API
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in documented, (path, method)
    # every operation answers something documented, every $ref resolves
    text = json.dumps(doc)
    for ref in set(part.split('"')[0] for part in text.split('"$ref": "')[1:]):
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in schemas, ref
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if method == "parameters":
                continue
            assert op.get("responses"), (path, method)
            for p in op.get("parameters", []):
                assert p["in"] in ("query", "path") and "schema" in p
    listing = {p["name"] for p in doc["paths"]["/api/orders"]["get"]["parameters"]}
    assert {"symbol", "status", "side", "type", "limit", "cursor"} <= listing
    page = stack.client.get("/api/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "/api/orders/batch" in html and "http://" not in html and "https://" not in html


# ---------------------------------------------------------------- matching rules


def test_market_order_rules(stack):
    c, s = stack.client, stack.symbol()
    empty = place(c, order(s, "BUY", 1, orderType="MARKET"), wait=True)
    assert (empty["status"], empty["reason"], empty["timeInForce"]) == (
        "CANCELLED", "NO_LIQUIDITY", "IOC")
    place(c, order(s, "SELL", 1, "100.01"))
    place(c, order(s, "SELL", 1, "100.02"))
    taker = place(c, order(s, "BUY", 3, orderType="MARKET"), wait=True)
    assert (taker["status"], taker["reason"]) == ("CANCELLED", "IOC_REMAINDER")
    assert taker["filledQuantity"] == 2.0 and taker["remainingQuantity"] == 0.0
    assert taker["averagePrice"] == 100.015
    assert [f["price"] for f in taker["fills"]] == [100.01, 100.02]  # best price first


def test_ioc_rules(stack):
    c, s = stack.client, stack.symbol()
    place(c, order(s, "SELL", 1, 100))
    no_cross = place(c, order(s, "BUY", 1, 99, timeInForce="IOC"), wait=True)
    assert (no_cross["status"], no_cross["reason"], no_cross["filledQuantity"]) == (
        "CANCELLED", "IOC_REMAINDER", 0.0)
    partial = place(c, order(s, "BUY", 3, 100, timeInForce="IOC"), wait=True)
    assert (partial["status"], partial["reason"], partial["filledQuantity"]) == (
        "CANCELLED", "IOC_REMAINDER", 1.0)
    book = c.get(f"/api/orderbook?symbol={s}").get_json()
    assert book["bids"] == [] and book["asks"] == []


def test_fok_rules(stack):
    c, s = stack.client, stack.symbol()
    place(c, order(s, "SELL", 1, 100))
    place(c, order(s, "SELL", 1, 101))
    stack.drained(s)
    before = c.get(f"/api/orderbook?symbol={s}").get_json()
    no = place(c, order(s, "BUY", 3, 101, timeInForce="FOK"), wait=True)
    assert (no["status"], no["reason"], no["fills"]) == ("CANCELLED", "FOK_NOT_FILLABLE", [])
    after = c.get(f"/api/orderbook?symbol={s}").get_json()
    assert (after["bids"], after["asks"]) == (before["bids"], before["asks"])
    yes = place(c, order(s, "BUY", 2, 101, timeInForce="FOK"), wait=True)
    assert yes["status"] == "FILLED" and len(yes["fills"]) == 2
    mkt = place(c, order(s, "SELL", 1, orderType="MARKET", timeInForce="FOK"), wait=True)
    assert (mkt["status"], mkt["reason"]) == ("CANCELLED", "FOK_NOT_FILLABLE")


def test_post_only_rules(stack):
    c, s = stack.client, stack.symbol()
    place(c, order(s, "SELL", 1, 100))
    rejected = place(c, order(s, "BUY", 1, 100, postOnly=True), wait=True)
    assert (rejected["status"], rejected["reason"], rejected["fills"]) == (
        "REJECTED", "POST_ONLY_WOULD_CROSS", [])
    rests = place(c, order(s, "BUY", 1, "99.99", postOnly=True), wait=True)
    assert (rests["status"], rests["postOnly"]) == ("OPEN", True)


def test_price_time_priority_and_partial_rest(stack):
    c, s = stack.client, stack.symbol()
    first = place(c, order(s, "SELL", 1, 100))
    second = place(c, order(s, "SELL", 1, 100))
    better = place(c, order(s, "SELL", 1, "99.50"))
    t1 = place(c, order(s, "BUY", "1.5", 100), wait=True)
    assert [f["makerOrderId"] for f in t1["fills"]] == [better["id"], first["id"]]
    assert [f["price"] for f in t1["fills"]] == [99.5, 100.0]  # the maker's price
    assert t1["status"] == "FILLED" and t1["averagePrice"] == 99.666667
    assert get(c, first["id"])["status"] == "PARTIAL"
    assert get(c, second["id"])["status"] == "OPEN"
    t2 = place(c, order(s, "BUY", 2, "100.01"), wait=True)
    assert [(f["makerOrderId"], f["quantity"]) for f in t2["fills"]] == [
        (first["id"], 0.5), (second["id"], 1.0)]
    assert (t2["status"], t2["filledQuantity"], t2["remainingQuantity"]) == (
        "PARTIAL", 1.5, 0.5)
    book = c.get(f"/api/orderbook?symbol={s}").get_json()
    assert book["bids"] == [{"price": 100.01, "quantity": 0.5, "orders": 1}]
    assert book["asks"] == []


def test_market_configured_by_env_on_a_third_symbol(stack):
    c, s = stack.client, THIRD["symbol"]
    bad = [order(s, "BUY", "0.5", "12.3455"), order(s, "BUY", "0.05", "12.345"),
           order(s, "BUY", 1, "5000.001")]
    for body in bad:
        assert c.post("/api/orders", json=body).status_code == 400, body
    maker = place(c, order(s, "SELL", "1.2", "12.345"), wait=True)
    assert (maker["price"], maker["quantity"]) == (12.345, 1.2)
    taker = place(c, order(s, "BUY", "0.3", "4999.999"), wait=True)
    assert taker["status"] == "FILLED" and taker["fills"][0]["price"] == 12.345
    markets = {m["symbol"]: m for m in c.get("/api/markets").get_json()["markets"]}
    assert (markets[s]["tickSize"], markets[s]["lotSize"], markets[s]["volume24h"]) == (
        0.001, 0.1, 0.3)
    assert diff_against_replay(stack.r, get_market(stack.settings, s)) == []


# ---------------------------------------------------------------- concurrency


def test_concurrent_clients_end_in_the_replayed_state(stack):
    """16 threads post random crossing orders, batches and cancels on two symbols at once;
    afterwards Redis equals a replay of the journal through the reference model."""
    symbols = (stack.symbol(), stack.symbol())
    seen = defaultdict(list)  # symbol -> every sequence handed out
    errors = []
    lock = threading.Lock()

    def random_order(rng, symbol):
        side = rng.choice(("BUY", "SELL"))
        kind = rng.random()
        ticks = 10_000 + rng.randint(-6, 6) + (-2 if side == "BUY" else 2)
        body = order(symbol, side, f"0.{rng.randint(1, 30):03d}", f"{ticks / 100:.2f}")
        if kind < 0.08:
            del body["price"]
            body["orderType"] = "MARKET"
        elif kind < 0.18:
            body["timeInForce"] = "IOC"
        elif kind < 0.24:
            body["timeInForce"] = "FOK"
        elif kind < 0.32:
            body["postOnly"] = True
        return body

    def client_thread(n):
        rng = random.Random(n)
        c = stack.app.test_client()
        mine = []
        try:
            for _ in range(30):
                symbol = rng.choice(symbols)
                roll = rng.random()
                if roll < 0.15 and mine:
                    resp = c.delete(f"/api/orders/{rng.choice(mine)}")
                    assert resp.status_code in (202, 409), resp.get_json()
                    if resp.status_code == 202:
                        continue
                elif roll < 0.25:
                    batch = [random_order(rng, symbol) for _ in range(rng.randint(2, 8))]
                    resp = c.post("/api/orders/batch", json={"orders": batch})
                    assert resp.status_code == 202
                    got = resp.get_json()["results"]
                    with lock:
                        seen[symbol] += [o["sequence"] for o in got]
                    assert [o["sequence"] for o in got] == sorted(o["sequence"] for o in got)
                    mine += [o["id"] for o in got]
                else:
                    resp = c.post("/api/orders", json=random_order(rng, symbol))
                    assert resp.status_code == 202, resp.get_json()
                    o = resp.get_json()
                    with lock:
                        seen[symbol].append(o["sequence"])
                    mine.append(o["id"])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=client_thread, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    for s in symbols:
        applied = stack.drained(s, timeout=60)
        seqs = sorted(seen[s])
        assert len(seqs) == len(set(seqs)), "a sequence was handed out twice"
        journaled = [cmd.sequence for cmd, _ in journal.read_after(stack.r, s, 0)]
        assert journaled == list(range(1, applied + 1))
        assert set(seqs) <= set(journaled)
        trade_seqs = [keys.sequence_of(eid) for eid, _ in stack.r.xrange(keys.trades(s))]
        assert trade_seqs == list(range(1, len(trade_seqs) + 1)) and trade_seqs
        assert diff_against_replay(stack.r, get_market(stack.settings, s)) == []
        book = stack.client.get(f"/api/orderbook?symbol={s}&levels=1000").get_json()
        if book["bids"] and book["asks"]:
            assert book["bestBid"] < book["bestAsk"], "crossed book at rest"
    wait_until(lambda: stack.client.get("/api/health").status_code == 200, timeout=10)
