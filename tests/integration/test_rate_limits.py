"""REST rate limits in-process (Flask test client) on a real Redis: headers, 429 envelope,
per key or IP, writes apart from reads, a batch counting its orders, a refused request
changing nothing, trusted proxies, /metrics. Windows are a day long so no window ends
mid-test (``same_day`` retries the rare test that straddles midnight UTC)."""

from __future__ import annotations

import functools
import time

import pytest
from prometheus_client import REGISTRY

from app import create_app
from app.ratelimit import ConfigError, parse_config
from store import keys

LIMITS = "read=5/day write=3/day ws_frames=5/second ws_connections=2"
ORDER = {"symbol": "ETH-USD", "side": "BUY", "price": "10", "quantity": "1"}


def same_day(test):
    """Run ``test`` again (once) if a UTC day boundary passed while it ran."""
    @functools.wraps(test)
    def run(*args, **kwargs):
        day = time.time() // 86400
        try:
            return test(*args, **kwargs)
        except AssertionError:
            if time.time() // 86400 == day:
                raise
            return test(*args, **kwargs)
    return run


@pytest.fixture
def limited(settings):
    app = create_app(settings.replace(rate_limits=LIMITS, api_keys={"key-a": "alice"}))
    return app.test_client()


def refused(resp) -> bool:
    if resp.status_code != 429:
        return False
    assert resp.json["error"]["code"] == "RATE_LIMITED", resp.json
    assert "retry in" in resp.json["error"]["message"]
    assert 1 <= int(resp.headers["Retry-After"]) <= 86400
    assert resp.headers["RateLimit-Remaining"] == "0"
    return True


@same_day
def test_reads_count_down_then_429_with_headers(limited):
    for remaining in (4, 3, 2, 1, 0):
        resp = limited.get("/api/markets")
        assert resp.status_code == 200
        assert resp.headers["RateLimit-Limit"] == "5"
        assert resp.headers["RateLimit-Remaining"] == str(remaining)
        assert 1 <= int(resp.headers["RateLimit-Reset"]) <= 86400
        assert "Retry-After" not in resp.headers
    assert refused(limited.get("/api/orderbook"))
    assert refused(limited.get("/api/orderbook?levels=oops"))  # counted before validation
    # Probes and docs are never limited; an API key has its own bucket; a bad key does not.
    health = limited.get("/api/health")
    assert health.status_code in (200, 503) and "RateLimit-Limit" not in health.headers
    assert limited.get("/metrics").status_code == 200
    assert limited.get("/api/markets", headers={"X-API-Key": "key-a"}).status_code == 200
    assert refused(limited.get("/api/markets", headers={"X-API-Key": "wrong"}))


@same_day
def test_writes_apart_a_batch_counts_its_orders_and_refusals_change_nothing(limited, r):
    def journal():
        return int(r.get(keys.seq("ETH-USD")) or 0)

    before = REGISTRY.get_sample_value("matching_rate_limited_total",
                                       {"route": "/api/orders/batch", "scope": "write"}) or 0
    assert limited.post("/api/orders", json=ORDER).status_code == 202
    assert limited.get("/api/markets").headers["RateLimit-Remaining"] == "4"  # reads apart
    batch = {"orders": [ORDER, ORDER, ORDER]}
    assert refused(limited.post("/api/orders/batch", json=batch))  # 3 > the 2 left
    assert journal() == 1  # nothing accepted
    resp = limited.post("/api/orders/batch", json={"orders": [ORDER, ORDER]})
    assert resp.status_code == 202 and resp.headers["RateLimit-Remaining"] == "0"
    assert journal() == 3
    assert refused(limited.post("/api/orders", json=ORDER))
    assert refused(limited.delete("/api/orders/ord_x"))  # every write method counts
    assert journal() == 3
    assert REGISTRY.get_sample_value("matching_rate_limited_total", {
        "route": "/api/orders/batch", "scope": "write"}) == before + 1
    text = limited.get("/metrics").get_data(as_text=True)
    assert 'matching_rate_limited_total{route="/api/orders",scope="write"}' in text


@same_day
def test_forwarded_for_only_with_trusted_proxies(settings):
    def spend(client, headers):
        return [client.get("/api/time", headers=headers).status_code for _ in range(6)]

    plain = create_app(settings.replace(rate_limits=LIMITS)).test_client()
    assert spend(plain, {})[-1] == 429
    # Without TRUSTED_PROXIES a client cannot pick a fresh bucket by sending the header.
    assert spend(plain, {"X-Forwarded-For": "203.0.113.9"}) == [429] * 6
    proxied = create_app(settings.replace(rate_limits=LIMITS, trusted_proxies=1)).test_client()
    # Behind one proxy: the client is the last entry, the one the proxy appended.
    got = spend(proxied, {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"})
    assert got == [200] * 5 + [429]
    assert spend(proxied, {"X-Forwarded-For": "203.0.113.8"}) == [200] * 5 + [429]


def test_off_and_bad_config():
    assert parse_config("off").enabled is False
    config = parse_config("write=7/minute")
    assert [str(i) for i in config.write] == ["7 per 1 minute"]
    assert [i.amount for i in config.read] == [1200]  # the default where not named
    for bad in ("writes=1/minute", "read", "read=lots", "ws_connections=x"):
        with pytest.raises(ConfigError, match="RATE_LIMITS"):
            parse_config(bad)


def test_frame_budget_refuses_once_then_drops_then_closes():
    from app.ratelimit import FrameBudget

    budget = FrameBudget(parse_config("ws_frames=3/second").ws_frames)
    verdicts = [budget.take(now=100.1 + i / 100) for i in range(8)]
    assert verdicts == ["ok"] * 3 + ["refuse", "drop", "drop", "close", "close"]
    assert budget.take(now=101.0) == "ok"  # a new window


def test_on_a_replica_requests_are_served_unlimited(tmp_path, settings):
    from tests.support import RedisServer

    primary = RedisServer(tmp_path / "p").start()
    replica = RedisServer(tmp_path / "r", extra=("--replicaof", "127.0.0.1",
                                                 str(primary.port))).start()
    try:
        client = create_app(settings.replace(rate_limits=LIMITS, read_only=True,
                                             rate_limit_redis_url=replica.url)).test_client()
        for _ in range(7):
            resp = client.get("/api/time")
            assert resp.status_code == 200 and "RateLimit-Limit" not in resp.headers
        counted = create_app(settings.replace(rate_limits=LIMITS, read_only=True,
                                              rate_limit_redis_url=primary.url)).test_client()
        assert counted.get("/api/time").headers["RateLimit-Remaining"] == "4"
    finally:
        replica.stop()
        primary.stop()


def test_two_windows_count_in_one_trip_and_survive_a_script_flush(redis_url, r):
    from app.ratelimit import Limiter

    limiter = Limiter(redis_url, parse_config("write=5/minute,7/day"))
    r.script_flush()  # as after a Redis restart: the counting script is gone
    got = [limiter.hit("write", "ip:t", limiter.config.write, now=1000.0) for _ in range(3)]
    assert [(ok, t[1]) for ok, t in got] == [(True, 4), (True, 3), (True, 2)]
    r.script_flush()
    ok, (item, remaining, reset) = limiter.hit("write", "ip:t", limiter.config.write, cost=3,
                                               now=1000.0)
    assert (ok, item.amount, remaining, reset) == (False, 5, 0, 20)  # 1000 s -> 1020 s
    ok, (item, remaining, _) = limiter.hit("write", "ip:t", limiter.config.write, cost=2,
                                           now=1000.0)
    assert (ok, item.amount, remaining) == (True, 5, 0)  # the refused 3 were given back
