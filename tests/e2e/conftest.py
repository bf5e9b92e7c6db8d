"""A real stack for end-to-end tests: the session redis-server, one real matching worker
process per test module, and the Flask test client of ``create_app``.

The worker keeps books in memory, so Redis is never flushed under it: it is flushed
once before the worker starts (module setup), and every test draws fresh symbols from a
pool of markets configured through the ``MARKETS`` env var (the worker's and the app's
settings both come from ``settings.load_settings``). A test therefore starts on empty
books with no flush and no worker restart.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field

import pytest
import redis

from settings import Settings, load_settings
from store import keys
from tests.support import start_worker, stop, wait_until

DEFAULT_SYMBOL = "BTC-USD"  # first market: requests without a symbol go here
THIRD = {"symbol": "SOL-USD", "tickSize": "0.001", "lotSize": "0.1", "maxPrice": "5000",
         "maxQuantity": "100000"}
POOL_SIZE = 48


def market_pool() -> list[dict]:
    """BTC-USD, ETH-USD, the env-configured third market, then fresh BTC-like symbols."""
    pool = [{"symbol": DEFAULT_SYMBOL, "tickSize": "0.01", "lotSize": "0.001"},
            {"symbol": "ETH-USD", "tickSize": "0.01", "lotSize": "0.01"}, THIRD]
    pool += [{"symbol": f"T{i:02d}-USD", "tickSize": "0.01", "lotSize": "0.001"}
             for i in range(POOL_SIZE)]
    return pool


@dataclass
class Stack:
    url: str
    settings: Settings
    app: object
    client: object
    r: redis.Redis  # decode_responses=True
    worker: object
    _fresh: itertools.count = field(default_factory=itertools.count)

    def symbol(self) -> str:
        """A symbol no other test of this module has touched (empty book, sequence 0)."""
        n = next(self._fresh)
        if n >= POOL_SIZE:
            raise RuntimeError("market pool exhausted: raise POOL_SIZE")
        return f"T{n:02d}-USD"

    def drained(self, symbol: str, timeout: float = 30.0) -> int:
        """Wait until the worker applied everything accepted for ``symbol``."""
        def done():
            accepted = int(self.r.get(keys.seq(symbol)) or 0)
            return int(self.r.get(keys.applied(symbol)) or 0) == accepted
        wait_until(done, timeout=timeout, interval=0.02, what=f"{symbol} drained")
        return int(self.r.get(keys.applied(symbol)) or 0)


def _heartbeats(r: redis.Redis, symbols) -> bool:
    return all(r.exists(keys.heartbeat(s)) for s in symbols)


@pytest.fixture(scope="module")
def stack(redis_server, tmp_path_factory):
    url = redis_server.url
    r = redis.Redis.from_url(url, decode_responses=True)
    r.flushall()  # no worker runs yet: safe
    markets_json = json.dumps(market_pool())
    settings = load_settings({"REDIS_URL": url, "MARKETS": markets_json, "RATE_LIMITS": "off"})
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    worker = start_worker(url, log, MARKETS=markets_json)
    try:
        wait_until(lambda: _heartbeats(r, settings.symbols), timeout=60, interval=0.1,
                   what="matching worker heartbeats")
        from app import create_app

        app = create_app(settings)
        client = app.test_client()
        wait_until(lambda: client.get("/api/health").status_code == 200, timeout=30,
                   what="/api/health 200")
        yield Stack(url, settings, app, client, r, worker)
    finally:
        from app import events

        events.stop_all()  # this process's pub/sub threads: the Redis may go away next
        stop(worker)
        r.close()
    if worker.returncode not in (0, -15, None):
        pytest.fail(f"worker exited with {worker.returncode}; see {log}")
