"""Sharded workers (one per symbol, queue matching.<SYMBOL>) and /api/health:
200 with every matcher alive, 503 naming only the symbol whose worker was killed
(heartbeat older than HEARTBEAT_STALE_SECONDS), 200 again once a worker is back."""

from __future__ import annotations

import pytest

from tests.ops.helpers import health, http, settled
from tests.support import wait_until

pytestmark = pytest.mark.slow
BTC, ETH = "BTC-USD", "ETH-USD"


def cross(base: str, symbol: str) -> None:
    """A resting SELL and a BUY that takes it, both processed."""
    for side in ("SELL", "BUY"):
        status, body, _ = http("POST", f"{base}/api/orders",
                               {"symbol": symbol, "side": side, "price": 50, "quantity": 1})
        assert status == 202, body
        body = settled(base, body["id"])
    assert body["status"] == "FILLED" and len(body["fills"]) == 1, body


def commit_pids(procs, symbol: str) -> set[int]:
    return {x["pid"] for x in procs.log_lines("worker")
            if x.get("logger") == "workers.apply" and x.get("symbol") == symbol}


def test_workers_per_symbol_and_health(procs):
    redis = procs.redis_server()
    r = redis.client(decode_responses=True)
    btc = procs.worker(redis.url, name="worker-btc", WORKER_SYMBOLS=BTC)
    eth = procs.worker(redis.url, name="worker-eth", WORKER_SYMBOLS=ETH)
    base = procs.web(redis.url)
    wait_until(lambda: health(base)[0] == 200, timeout=30, what="health 200")

    cross(base, BTC)
    cross(base, ETH)
    # Each symbol committed by its own worker process (the commit lines carry the pid).
    wait_until(lambda: commit_pids(procs, BTC) and commit_pids(procs, ETH), timeout=10,
               what="commit log lines")
    assert commit_pids(procs, BTC) == {btc.pid}
    assert commit_pids(procs, ETH) == {eth.pid}
    assert r.exists("me:sym:{BTC-USD}:owner") and r.exists("me:sym:{ETH-USD}:owner")
    assert r.get("me:sym:{BTC-USD}:owner") != r.get("me:sym:{ETH-USD}:owner")

    procs.kill(eth)  # SIGKILL: no lease release, the heartbeat just stops

    def eth_down():
        status, body = health(base)
        return status == 503 and not body["symbols"][ETH]["ok"] and body

    wait_until(eth_down, timeout=20, what="503 for ETH-USD")
    body = eth_down()
    assert body["symbols"][BTC]["ok"] is True
    assert body["symbols"][ETH]["problems"] == ["matcher heartbeat missing or stale"]
    cross(base, BTC)  # the other shard keeps matching

    eth2 = procs.worker(redis.url, name="worker-eth2", WORKER_SYMBOLS=ETH)
    wait_until(lambda: health(base)[0] == 200, timeout=40, what="health 200 again")
    cross(base, ETH)
    wait_until(lambda: eth2.pid in commit_pids(procs, ETH), timeout=10, what="eth2 commits")
