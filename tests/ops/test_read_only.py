"""A READ_ONLY=true node on a real Redis replica: writes are 403 READ_ONLY_NODE,
reads and health show the primary's data, and its WebSockets relay the trades of
orders placed on the primary node (PUBLISH propagates to replicas)."""

from __future__ import annotations

import json

import pytest
import websocket

from tests.ops.helpers import health, http, settled
from tests.support import wait_until

pytestmark = pytest.mark.slow
BTC = "BTC-USD"


def test_read_only_node_on_a_replica(procs):
    primary = procs.redis_server(name="primary")
    replica = procs.redis_server("--replicaof", "127.0.0.1", str(primary.port), name="replica")
    info = replica.client(decode_responses=True)
    wait_until(lambda: info.info("replication")["master_link_status"] == "up", timeout=20,
               what="replica link up")
    procs.worker(primary.url)
    rw = procs.web(primary.url, name="web-primary")
    ro = procs.web(replica.url, name="web-replica", READ_ONLY="true")
    wait_until(lambda: health(ro)[0] == 200, timeout=30, what="read-only node healthy")
    status, body = health(ro)
    assert body["readOnly"] is True

    for method, path, payload in [
        ("POST", "/api/orders", {"type": "BUY", "price": 1, "quantity": 1}),
        ("POST", "/api/orders?wait=true", {"type": "BUY", "price": 1, "quantity": 1}),
        ("POST", "/api/orders/batch", {"orders": []}),
        ("DELETE", "/api/orders/ord_x", None),
    ]:
        status, body, _ = http(method, f"{ro}{path}", payload)
        assert status == 403 and body["error"]["code"] == "READ_ONLY_NODE", (path, body)

    ws = websocket.create_connection(ro.replace("http", "ws") + "/ws", timeout=15)
    ws.send(json.dumps({"op": "subscribe", "channel": "trade", "symbol": BTC}))
    assert json.loads(ws.recv())["event"] == "subscribed"

    status, maker, _ = http("POST", f"{rw}/api/orders", {"type": "SELL", "price": 10,
                                                        "quantity": 2})
    assert status == 202, maker
    status, taker, _ = http("POST", f"{rw}/api/orders", {"type": "BUY", "price": 10,
                                                        "quantity": 2})
    assert status == 202, taker
    assert settled(rw, taker["id"])["status"] == "FILLED"

    trade = json.loads(ws.recv())
    assert trade["event"] == "trade" and trade["symbol"] == BTC
    assert (trade["makerOrderId"], trade["takerOrderId"]) == (maker["id"], taker["id"])
    ws.close()

    def replicated():
        status, body, _ = http("GET", f"{ro}/api/orders/{taker['id']}")
        return status == 200 and body["status"] == "FILLED" and body

    wait_until(replicated, timeout=10, what="order on the replica")
    assert replicated()["fills"][0]["id"] == trade["id"]
    status, body, _ = http("GET", f"{ro}/api/trades/latest?symbol={BTC}")
    assert status == 200 and [t["id"] for t in body["trades"]] == [trade["id"]]
    status, metrics, _ = http("GET", f"{ro}/metrics")
    assert status == 200 and 'matching_trades_total{symbol="BTC-USD"} 1.0' in metrics
