"""An in-process venue for the archive tests: the real Flask app (test client), the real
matcher (engine + fenced commit) and the real mover, on the tests' own Redis and archive."""

from __future__ import annotations

import redis

from app import create_app
from archive.mover import Moved, Mover
from schemas.markets import get_market
from workers.apply import SymbolMatcher
from workers.lease import Lease


class Venue:
    def __init__(self, settings):
        self.settings = settings
        self.r = redis.Redis.from_url(settings.redis_url, decode_responses=True)
        self.http = create_app(settings).test_client()
        self.matchers = []
        for symbol in settings.symbols:
            lease = Lease(self.r, symbol, ttl_ms=600_000)
            assert lease.renew()
            self.matchers.append(SymbolMatcher(self.r, get_market(settings, symbol), lease,
                                               settings))

    def place(self, **body) -> dict:
        reply = self.http.post("/api/orders", json={"quantity": "1", **body})
        assert reply.status_code in (200, 202), reply.get_json()
        return reply.get_json()

    def cancel(self, order_id: str):
        return self.http.delete(f"/api/orders/{order_id}")

    def match(self) -> None:
        for m in self.matchers:
            m.drain()

    def move(self, steps: int | None = None) -> Moved:
        total = Moved()
        for symbol in self.settings.symbols:
            mover = Mover(self.r, self.settings, symbol)
            if steps is None:
                total.add(mover.run(budget_seconds=60))
            else:
                for _ in range(steps):
                    total.add(mover.step())
        return total

    def get(self, path: str, status: int = 200) -> dict:
        reply = self.http.get(path)
        assert reply.status_code == status, (path, reply.get_json())
        return reply.get_json()

    def walk(self, path: str, key: str, limit: int) -> list[dict]:
        """Every item of a paged list, following nextCursor; no item twice."""
        items, cursor = [], None
        sep = "&" if "?" in path else "?"
        while True:
            page = self.get(f"{path}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else ""))
            items += page[key]
            cursor = page["nextCursor"]
            if not cursor:
                return items
