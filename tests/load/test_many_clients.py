"""Many REST clients at once on one node, on real processes: gunicorn as the Procfile
runs it (gunicorn.conf.py, gevent, WEB_CONCURRENCY=2), a real matching worker and a
redis-server of the test's own.

Sizes: ``CROWD_READERS`` / ``CROWD_WRITERS`` (default 1000 / 500, the issue's figure);
``make test-crowd`` runs them again with several requests per client.
"""

from __future__ import annotations

import os

import pytest

from localrun.crowd import Crowd, request
from localrun.node import HEADERS, Node

pytestmark = pytest.mark.slow

READERS = int(os.environ.get("CROWD_READERS", "1000"))
WRITERS = int(os.environ.get("CROWD_WRITERS", "500"))
ROUNDS = int(os.environ.get("CROWD_ROUNDS", "1"))  # requests per client


def read(i: int):
    path = ("/api/orderbook?symbol=BTC-USD", "/api/trades/latest?symbol=ETH-USD",
            "/api/markets")[i % 3]
    return ("GET", path, request("GET", path))


def write(i: int):
    # Resting limit orders far from each other: nothing crosses, every order stays listed.
    buy = i % 2 == 0
    body = {"symbol": "BTC-USD", "side": "BUY" if buy else "SELL",
            "price": "100.00" if buy else "200.00", "quantity": "0.001"}
    return ("POST", "/api/orders", request("POST", "/api/orders", body, HEADERS))


def acknowledged(outcome) -> list[str]:
    return [a.json()["id"] for a in outcome.answers if a.method == "POST" and a.status == 202]


@pytest.fixture
def node(tmp_path):
    n = Node(tmp_path)
    yield n
    n.close()


def test_a_crowd_of_readers_and_writers_gets_no_5xx_and_loses_no_write(node):
    plans = [[read(i + k) for k in range(ROUNDS)] for i in range(READERS)]
    plans += [[write(i + k) for k in range(ROUNDS)] for i in range(WRITERS)]
    outcome = Crowd(node.port).run(plans)
    print(f"\n{READERS} readers + {WRITERS} writers x {ROUNDS}: {outcome.statuses()} "
          f"in {outcome.seconds:.1f} s")
    assert outcome.connect_errors == 0
    assert outcome.server_errors() == []
    assert len(outcome.answers) == (READERS + WRITERS) * ROUNDS
    assert {a.status for a in outcome.answers} <= {200, 202}
    acked = acknowledged(outcome)
    assert len(acked) == WRITERS * ROUNDS
    listed = node.listed_ids()
    assert sorted(listed) == sorted(acked)  # none lost, none doubled
    # What gunicorn.conf.py promises: 2 x (pool 32 + hub 1 + Celery producers <= 10) for
    # the web, a dozen at most for the worker (store pool 4 + Celery) and this test's.
    opened = node.redis.client().info("clients")["connected_clients"]
    print(f"Redis connections open after the crowd: {opened}")
    assert opened <= 2 * (32 + 1 + 10) + 12


def test_far_past_capacity_writes_are_refused_quickly_never_lost(tmp_path):
    """Capacity is the pool: one Redis connection per process, waited for 100 ms. Redis
    stalls for a second (CLIENT PAUSE) while 300 writes arrive: the one that holds the
    connection waits it out, the others are answered 503 OVERLOADED with Retry-After
    when their wait runs out. Every 202 is listed, no 503 is."""
    node = Node(tmp_path, WEB_CONCURRENCY="1", REDIS_POOL_SIZE="1", REDIS_POOL_WAIT_MS="100")
    try:
        admin = node.redis.client()
        admin.execute_command("CLIENT", "PAUSE", "1000", "ALL")
        outcome = Crowd(node.port).run([[write(i)] for i in range(300)])
        overloaded = [a for a in outcome.answers if a.status == 503]
        waits = sorted(a.seconds for a in overloaded)
        print(f"\n300 writes into a stalled pool: {outcome.statuses()}; 503 after "
              f"{waits[0]:.3f}..{waits[-1]:.3f} s" if waits else outcome.statuses())
        assert outcome.connect_errors == 0
        assert {a.status for a in outcome.answers} <= {202, 503}
        assert overloaded, "the stalled pool should have refused writes"
        for a in overloaded:
            assert a.json()["error"]["code"] == "OVERLOADED"
            assert a.retry_after == "1"
        admin.ping()  # answered once the pause is over
        acked = acknowledged(outcome)
        assert sorted(node.listed_ids()) == sorted(acked)
        metrics = Crowd(node.port).run([[("GET", "/metrics", request("GET", "/metrics"))]])
        text = metrics.answers[0].body.decode()
        assert f'matching_overloaded_total{{surface="rest"}} {float(len(overloaded))}' in text
        admin.close()
    finally:
        node.close()
