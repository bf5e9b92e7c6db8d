"""The service on a real Redis Cluster (3 primaries + 3 replicas, a broker Redis beside).

Symbols are picked so that every primary holds some (each test checks it where it
matters). On the cluster: REST place / match / cancel through gunicorn, the WebSocket
orderbook chain (gap-free prevSequence, checksum equal to the book's), the worker killed
-9 and restarted under load (nothing lost, state equals the replay), and the failover of
the primary holding the busy symbol's slot (nothing acknowledged lost with
REPLICA_ACKS=1, trades seen before unchanged, read-only node on the replicas answers).
"""

from __future__ import annotations

import json
import time
import zlib

import pytest
import websocket

from store import connect, keys
from store.verify import verify
from tests.ha.failover import NOWHERE, WEB_ENV, Service, SymbolLoad, run_failover
from tests.support import free_port, http_json, order, start_gunicorn, stop, wait_until


def spread_symbols(setup, per_primary: int = 2) -> tuple[str, ...]:
    """Symbols whose slots cover every primary, ``per_primary`` each."""
    by_port: dict[int, list[str]] = {s.port: [] for s in setup.primaries()}
    for i in range(1000):
        symbol = f"C{i:02d}-USD"
        port = setup.server_of(keys.journal(symbol)).port
        if len(by_port[port]) < per_primary:
            by_port[port].append(symbol)
        if all(len(v) == per_primary for v in by_port.values()):
            break
    return tuple(s for group in by_port.values() for s in group)


@pytest.fixture(scope="module")
def service(cluster_setup, tmp_path_factory):
    svc = Service(cluster_setup, tmp_path_factory.mktemp("svc"), spread_symbols(cluster_setup),
                  replica_acks=1)
    try:
        yield svc.start()
    finally:
        svc.stop()


def test_rest_on_the_cluster_and_keys_on_every_primary(service):
    port = service.web_port
    for symbol in service.symbols:
        status, maker = http_json(port, "POST", "/api/orders?wait=true",
                                  order(symbol, "SELL", "0.5", "100"))
        assert status == 201, maker
        status, taker = http_json(port, "POST", "/api/orders?wait=true",
                                  order(symbol, "BUY", "0.2", "100"))
        assert status == 201 and taker["status"] == "FILLED", taker
        assert [f["price"] for f in taker["fills"]] == [100.0]
        status, got = http_json(port, "GET", f"/api/orders/{maker['id']}")
        assert status == 200 and got["status"] == "PARTIAL"
        status, _ = http_json(port, "DELETE", f"/api/orders/{maker['id']}?wait=true")
        assert status == 200
        status, trades = http_json(port, "GET", f"/api/trades?symbol={symbol}")
        assert status == 200 and trades["trades"][0]["quantity"] == 0.2
    status, mine = http_json(port, "GET", "/api/orders?limit=1000")  # merged over symbols
    assert status == 200
    assert {o["symbol"] for o in mine["orders"]} >= set(service.symbols)
    for server in service.setup.primaries():  # every primary holds some of the store
        c = server.client()
        try:
            assert c.dbsize() > 0, f"primary {server.port} holds no key"
        finally:
            c.close()


def test_rate_limits_count_on_the_cluster(service):
    """With rate limits on and no RATE_LIMIT_REDIS_URL, a web node on a Cluster store counts
    on the Cluster itself (``redis+cluster://``, one script call per window)."""
    port = free_port()
    web = start_gunicorn(NOWHERE, port, service.directory / "web-limited.log", **WEB_ENV,
                         **service.env(RATE_LIMITS="write=5/minute,7/day"))
    try:
        wait_until(lambda: http_json(port, "GET", "/api/health")[0] == 200, timeout=30,
                   interval=0.2, what="the rate-limited web node")
        symbol = service.symbols[1]
        codes = [http_json(port, "POST", "/api/orders", order(symbol, "BUY", "0.01", "1"))[0]
                 for _ in range(6)]
        assert codes == [202] * 5 + [429], codes
    finally:
        stop(web)
    r = connect.tool_client(service.settings)
    try:
        counters = [k for node in r.get_primaries()
                    for k in r.scan_iter(match="me:rl:*", target_nodes=node)]
        assert len(counters) >= 2, counters  # the minute and the day window, in the Cluster
    finally:
        r.close()


def test_websocket_book_chain_and_checksum_on_the_cluster(service):
    symbol = service.symbols[-1]
    ws = websocket.create_connection(f"ws://127.0.0.1:{service.web_port}/ws", timeout=10)
    try:
        ws.send(json.dumps({"op": "subscribe", "channel": "orderbook", "symbol": symbol}))
        book, last, updates = {}, None, 0
        for i in range(12):
            side, price = ("BUY", f"{90 + i}") if i % 2 else ("SELL", f"{110 + i}")
            status, _ = http_json(service.web_port, "POST", "/api/orders",
                                  order(symbol, side, "0.01", price))
            assert status == 202
        deadline = time.monotonic() + 20
        while len(book) < 12 and time.monotonic() < deadline:
            msg = json.loads(ws.recv())
            if msg.get("event") != "orderbook":
                continue
            if msg["type"] == "snapshot":
                book = {(side, lv["price"]): lv["quantity"] for side, key in
                        (("BUY", "bids"), ("SELL", "asks")) for lv in msg[key]}
            else:
                assert msg["prevSequence"] == last, (msg, last)  # gap-free chain
                updates += 1
                for ch in msg["changes"]:
                    if ch["quantity"] == 0:
                        book.pop((ch["side"], ch["price"]), None)
                    else:
                        book[(ch["side"], ch["price"])] = ch["quantity"]
            last = msg["sequence"]
            assert msg["checksum"] == _checksum(book), msg
        assert updates > 0 and len(book) >= 12
    finally:
        ws.close()


def _checksum(book: dict) -> int:
    """CRC32 of the best 25 bids then asks as ``price:quantity`` (api.md), independently
    of schemas.checksum, as tests/e2e/test_ws.py computes it."""
    bids = sorted(((p, q) for (side, p), q in book.items() if side == "BUY"), reverse=True)
    asks = sorted((p, q) for (side, p), q in book.items() if side == "SELL")
    text = "|".join(f"{p!r}:{q!r}" for p, q in bids[:25] + asks[:25])
    return zlib.crc32(text.encode()) & 0xFFFFFFFF


def test_worker_killed_under_load_on_the_cluster(service):
    load = SymbolLoad(service.web_port, 11, service.symbols, threads=3).start()
    try:
        time.sleep(1.5)
        service.restart_worker(0)  # one shard's worker; the others match on
        time.sleep(1.5)
    finally:
        stats = load.stop()
    service.drained()
    assert not stats.bad, stats.bad[:3]
    r = connect.tool_client(service.settings)
    try:
        missing = [oid for oid in stats.acked
                   if r.hget(keys.order(oid), "status") in (None, "PENDING")]
        assert missing == []
        assert verify(r, service.settings) == []
    finally:
        r.close()


def test_failover_of_the_busy_symbols_primary(service):
    fig = run_failover(service, busy=service.symbols[0], seed=5)
    print(fig.summary())
    assert fig.acknowledged > 100
    assert fig.lost == 0 and fig.doubled == 0, fig.details[:10]
    assert fig.bad_answers == []
    assert fig.ws_trades_missing_or_changed == 0, fig.details[:10]
    assert fig.verify_diffs == []
    assert fig.seconds_to_first_commit is not None
    # The other primaries' symbols keep matching while the busy one's slot has no primary:
    # each shard has its own worker (Service.worker_groups), so none waits on the dead
    # shard's retries. Before one worker per shard: 1 commit in all during a 3.7 s gap.
    gap = fig.other_symbols_commits_during_gap
    assert gap and len(gap) == len(service.symbols) - 2, gap  # 2 symbols per primary
    assert all(n >= 10 for n in gap.values()), gap
    assert fig.read_only_before == fig.read_only_after == len(service.symbols)
    wait_until(lambda: len(service.setup.primaries()) == 3, timeout=30,
               what="three primaries again")
