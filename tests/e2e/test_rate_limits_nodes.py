"""Rate limits shared by every web process: two gunicorn nodes of two workers each on one
Redis; requests alternate between the nodes on fresh connections (so both workers of a
node serve them), and the limit holds for their sum."""

from __future__ import annotations

import http.client
import time

import orjson
import pytest

from store import keys
from tests.support import free_port, start_gunicorn, stop

pytestmark = pytest.mark.slow


def call(port: int, method: str, path: str, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, orjson.dumps(body) if body is not None else None,
                     {"Content-Type": "application/json", "Connection": "close"})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), orjson.loads(resp.read())
    finally:
        conn.close()


def test_limits_hold_for_the_sum_of_two_nodes_and_their_workers(redis_url, r, tmp_path):
    nodes, ports = [], [free_port(), free_port()]
    try:
        for i, port in enumerate(ports):
            nodes.append(start_gunicorn(
                redis_url, port, tmp_path / f"web{i}.log", WEB_CONCURRENCY="2",
                RATE_LIMITS="read=40/day write=10/day",
                GUNICORN_CMD_ARGS=f"--bind 127.0.0.1:{port}"))
        day = time.time() // 86400
        reads = [call(ports[i % 2], "GET", "/api/time")[0] for i in range(60)]
        order = {"symbol": "ETH-USD", "side": "SELL", "price": "12", "quantity": "1"}
        writes = [call(ports[i % 2], "POST", "/api/orders", order) for i in range(15)]
        if time.time() // 86400 != day:
            pytest.skip("a UTC day boundary passed mid-test (the windows reset)")
        assert reads.count(200) == 40 and reads.count(429) == 20
        assert reads[:40] == [200] * 40  # every process saw the others' count at once
        statuses = [w[0] for w in writes]
        assert statuses == [202] * 10 + [429] * 5
        status, headers, body = writes[-1]
        assert body["error"]["code"] == "RATE_LIMITED" and int(headers["Retry-After"]) >= 1
        assert int(r.get(keys.seq("ETH-USD"))) == 10  # refused orders left no trace
        metrics = [http.client.HTTPConnection("127.0.0.1", p, timeout=10) for p in ports]
        text = ""
        for conn in metrics:
            conn.request("GET", "/metrics")
            text += conn.getresponse().read().decode()
            conn.close()
        # Each node reports the sum over its own workers; the two nodes add up to 5.
        refused = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                      if line.startswith('matching_rate_limited_total{route="/api/orders"'))
        assert refused == 5
    finally:
        for proc in nodes:
            stop(proc)
