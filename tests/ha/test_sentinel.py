"""Failover through Sentinel, on a real primary, replica and three Sentinels.

kill -9 the primary while clients post, cancel, reduce and replace: Sentinel promotes the
replica; web and worker follow by themselves (no restart); every write in the gap is a
503 (never a 500); with REPLICA_ACKS=1 every acknowledged order and cancel exists
afterwards, the state equals the journal's replay, and every trade a WebSocket client
received before the kill exists afterwards with the same id, price, quantity and
sequence. The read-only node (READ_ONLY, on the replica through Sentinel) answers before
and after. Then REPLICATION_TIMEOUT: with the replica gone, an order answers 503 and a
retry with the same clientOrderId, once the replica is back, returns it (200).
"""

from __future__ import annotations

import pytest
import redis

from app.ratelimit import Limiter, parse_config, storage_uri
from tests.ha.failover import Service, run_failover
from tests.support import http_json, wait_until

SYMBOLS = ("BTC-USD", "ETH-USD")


@pytest.fixture(scope="module")
def service(sentinel_setup, tmp_path_factory):
    svc = Service(sentinel_setup, tmp_path_factory.mktemp("svc"), SYMBOLS, replica_acks=1)
    try:
        yield svc.start()
    finally:
        svc.stop()


def test_kill_the_primary_nothing_acknowledged_is_lost(service):
    fig = run_failover(service, seed=7)
    print(fig.summary())
    assert fig.acknowledged > 100
    assert fig.lost == 0 and fig.doubled == 0, fig.details[:10]
    assert fig.bad_answers == []  # no 500 (and every answer JSON)
    assert fig.answers_after_kill.get(503, 0) > 0  # the gap was answered 503 ...
    assert fig.seconds_to_first_ack is not None  # ... and writes came back by themselves
    assert fig.seconds_to_first_commit is not None  # so did the matcher
    assert fig.ws_trades_before_kill > 0
    assert fig.ws_trades_missing_or_changed == 0, fig.details[:10]
    assert fig.verify_diffs == []
    assert fig.read_only_before == fig.read_only_after == len(SYMBOLS)


def test_too_few_replicas_answers_replication_timeout_and_a_retry_returns_it(service):
    setup = service.setup
    body = {"symbol": "BTC-USD", "side": "BUY", "price": "50", "quantity": "0.001",
            "clientOrderId": "ha-timeout-1"}
    setup.replica.kill()
    try:
        status, answer = http_json(service.web_port, "POST", "/api/orders", body)
        assert status == 503, answer
        assert answer["error"]["code"] == "REPLICATION_TIMEOUT"
    finally:
        setup.replica.start()
    # The command took effect on the primary; once a replica acknowledges, the retry
    # with the same clientOrderId returns the original order.
    def retried():
        status, again = http_json(service.web_port, "POST", "/api/orders", body)
        return status == 200 and again
    wait_until(retried, timeout=30, interval=0.2, what="the retry to be acknowledged")
    status, listed = http_json(service.web_port, "GET",
                               "/api/orders?clientOrderId=ha-timeout-1&symbol=BTC-USD")
    assert status == 200 and len(listed["orders"]) == 1


def test_rate_limits_count_on_the_sentinel_primary(sentinel_setup):
    """No RATE_LIMIT_REDIS_URL with a Sentinel store: the limiter finds the primary through
    the Sentinels (``redis+sentinel://``), as the store does."""
    settings = sentinel_setup.settings(RATE_LIMITS="write=3/minute,9/day")
    uri = storage_uri(settings)
    assert uri.startswith("redis+sentinel://"), uri
    limiter = Limiter(uri, parse_config(settings.rate_limits))
    allowed = [limiter.hit("write", "sentinel-test", limiter.config.write)[0]
               for _ in range(4)]
    assert allowed == [True, True, True, False]
    primary = redis.Redis(port=sentinel_setup.master_port())  # after a failover: the new one
    try:
        assert len(list(primary.scan_iter(match="me:rl:write:sentinel-test:*"))) == 2
    finally:
        primary.close()
