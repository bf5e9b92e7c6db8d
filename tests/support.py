"""Helpers for tests: the local processes (``localrun.processes``, re-exported here so
``from tests.support import RedisServer, start_worker, ...`` goes on working) and a few
request and key helpers of the tests' own."""

from __future__ import annotations

import http.client

import orjson
import redis

from localrun.processes import (  # noqa: F401  (re-exported)
    ROOT,
    VENV_BIN,
    RedisServer,
    free_port,
    service_env,
    start_gunicorn,
    start_worker,
    stop,
    wait_until,
)


def durable_keys(r: redis.Redis) -> set:
    """Every key but the wake flags, which the worker clears and which expire by themselves."""
    return {k for k in r.scan_iter(count=1000)
            if not (k.endswith(b":wake") if isinstance(k, bytes) else k.endswith(":wake"))}


def order(symbol, side, quantity, price=None, **extra) -> dict:
    """A POST /api/orders body (price only when given: MARKET orders have none)."""
    body = {"symbol": symbol, "side": side, "quantity": quantity, **extra}
    if price is not None:
        body["price"] = price
    return body


def http_json(port: int, method: str, path: str, body=None,
              headers: dict | None = None) -> tuple[int, object]:
    """One JSON request to a web node on 127.0.0.1:PORT: (status, parsed body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, orjson.dumps(body) if body is not None else None,
                     {"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, orjson.loads(resp.read())
    finally:
        conn.close()


