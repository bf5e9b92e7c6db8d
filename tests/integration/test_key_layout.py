"""The key layout of a Redis Cluster on one Redis: every key of a symbol in the symbol's
slot, ids that name their symbol, per-(account, symbol) indexes merged for account-wide
reads (api.md §8)."""

from __future__ import annotations

import time

from redis.crc import key_slot

from app import create_app
from store import keys

BTC, ETH = "BTC-USD", "ETH-USD"


def _place(client, symbol, status=202, **body):
    resp = client.post("/api/orders", json={"symbol": symbol, "type": "BUY", "price": "100",
                                            "quantity": "1", **body})
    assert resp.status_code == status, resp.get_json()
    return resp.get_json()


def test_every_key_is_in_its_symbols_slot(client, r):
    for symbol in (BTC, ETH):
        _place(client, symbol, clientOrderId="k1")
        _place(client, symbol, timeInForce="GTD", expireTime=int(time.time() * 1000) + 60_000)
    names = [k.decode() for k in r.keys("me:*")]
    assert any(":o:" in k for k in names) and any(":a:" in k for k in names)
    for name in names:
        tag = name[name.index("{") + 1: name.index("}")]  # no key without a tag
        assert tag in (BTC, ETH), name
        assert key_slot(name.encode()) == key_slot(keys.seq(tag).encode()), name


def test_an_order_id_names_its_symbol(client):
    order = _place(client, ETH)
    assert keys.order_symbol(order["id"]) == ETH
    assert client.get(f"/api/orders/{order['id']}").get_json()["symbol"] == ETH
    token = order["id"][-keys.TOKEN_LENGTH:]
    for bad in ("ord_unknown", f"ord_DOGE-USD_{token}", f"ord_{ETH}_{token[:-1]}",
                f"ord_{BTC}_{token}", token, "ord_{x}_" + token):
        assert client.get(f"/api/orders/{bad}").status_code == 404, bad
        assert client.delete(f"/api/orders/{bad}").status_code == 404, bad


def test_account_wide_list_merges_symbols_newest_first(client):
    placed = [_place(client, (BTC, ETH)[i % 3 == 0], price=f"{100 + i}")["id"]
              for i in range(13)]
    seen, cursor = [], None
    while True:
        page = client.get("/api/orders?limit=4" + (f"&cursor={cursor}" if cursor else ""))
        body = page.get_json()
        seen += [(o["id"], o["timestamp"]) for o in body["orders"]]
        cursor = body["nextCursor"]
        if not cursor:
            break
    ids = [oid for oid, _ in seen]
    assert sorted(ids) == sorted(placed)  # every order once, across the pages
    stamps = [ts for _, ts in seen]
    assert stamps == sorted(stamps, reverse=True)  # newest first across symbols
    for symbol in (BTC, ETH):  # exactly newest first within a symbol
        assert [i for i in ids if keys.order_symbol(i) == symbol] == [
            i for i in placed[::-1] if keys.order_symbol(i) == symbol]
    only_eth = [o["id"] for o in client.get(f"/api/orders?symbol={ETH}").get_json()["orders"]]
    assert only_eth == [oid for oid in placed[::-1] if keys.order_symbol(oid) == ETH]


def test_client_order_id_is_unique_per_account_and_symbol(client):
    btc = _place(client, BTC, clientOrderId="same")
    eth = _place(client, ETH, clientOrderId="same")
    assert btc["id"] != eth["id"]
    again = _place(client, BTC, status=200, clientOrderId="same")
    assert again["id"] == btc["id"]
    both = client.get("/api/orders?clientOrderId=same").get_json()["orders"]
    assert sorted(o["id"] for o in both) == sorted([btc["id"], eth["id"]])
    one = client.get(f"/api/orders?clientOrderId=same&symbol={ETH}").get_json()["orders"]
    assert [o["id"] for o in one] == [eth["id"]]
    ambiguous = client.delete("/api/orders/by-client-id/same")
    assert ambiguous.status_code == 400
    assert "symbol" in ambiguous.get_json()["error"]["fields"]
    cancelled = client.delete(f"/api/orders/by-client-id/same?symbol={ETH}")
    assert cancelled.status_code == 202 and cancelled.get_json()["id"] == eth["id"]


def test_the_open_orders_cap_is_per_account_and_symbol(settings):
    client = create_app(settings.replace(max_open_orders_per_account=2)).test_client()
    _place(client, BTC)
    _place(client, BTC)
    refused = _place(client, BTC, status=429)
    assert refused["error"]["code"] == "TOO_MANY_OPEN_ORDERS"
    _place(client, ETH)  # another market: its own cap
