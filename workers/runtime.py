"""The worker process's state: one matcher per owned symbol and a maintenance thread.

The thread (every 250 ms) renews the leases, writes the heartbeat, and sweeps: a
symbol whose journal is ahead of its cursor with no wake-up task on the way gets one
(this is what applies a command whose web process died before sending its task).
Books are only touched by the task thread (solo pool, concurrency 1).
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from schemas.markets import get_market
from settings import Settings, load_settings
from store import keys
from store.commit import VOLUME_BUCKET_MS
from workers.apply import SymbolMatcher
from workers.celery_app import app as celery_app
from workers.celery_app import send_wakeup
from workers.lease import Lease

log = logging.getLogger(__name__)

TICK_SECONDS = 0.25
_runtime: Runtime | None = None
_lock = threading.Lock()


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=10,
                                socket_connect_timeout=2, health_check_interval=10)


class Runtime:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.r = connect(settings.redis_url)
        self.symbols = settings.worker_symbols or settings.symbols
        self.matchers = {
            s: SymbolMatcher(self.r, get_market(settings, s), Lease(self.r, s), settings,
                             requeue=self._requeue)
            for s in self.symbols
        }
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._maintain, name="maintenance", daemon=True)

    def _requeue(self, symbol: str) -> None:
        send_wakeup(celery_app, symbol, 0)

    def start(self) -> None:
        self._tick()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        for m in self.matchers.values():
            try:
                m.lease.release()
            except redis.RedisError:
                pass

    def drain(self, symbol: str, sequence: int) -> int:
        matcher = self.matchers.get(symbol)
        if matcher is None:
            log.warning("task for %s, which this worker does not own", symbol)
            return 0
        if not matcher.lease.held:
            matcher.lease.renew()
        return matcher.drain()

    def _maintain(self) -> None:
        failures = 0
        while not self._stop.wait(TICK_SECONDS if not failures else min(2.0, 0.25 * failures)):
            try:
                self._tick()
                failures = 0
            except redis.RedisError as exc:
                failures += 1
                for m in self.matchers.values():
                    m.lease.held = False
                if failures in (1, 10) or failures % 100 == 0:
                    log.warning("maintenance: Redis unavailable (%s); retrying", exc)
            except Exception:
                failures += 1
                log.exception("maintenance tick failed")

    def _tick(self) -> None:
        now = int(time.time() * 1000)
        for symbol, matcher in self.matchers.items():
            was_held = matcher.lease.held
            if not matcher.lease.renew():
                if was_held:
                    log.warning("lost the lease of %s; another worker writes it", symbol)
                matcher.book = None
                continue
            if not was_held:
                log.info("holding the lease of %s", symbol)
            pipe = self.r.pipeline(transaction=False)
            pipe.set(keys.heartbeat(symbol), now)
            pipe.get(keys.seq(symbol))
            pipe.get(keys.applied(symbol))
            _, accepted, applied = pipe.execute()
            accepted, applied = int(accepted or 0), int(applied or 0)
            if accepted > applied and self.r.set(keys.wake(symbol), "1", nx=True, px=1000):
                send_wakeup(celery_app, symbol, accepted)
            if now % 3_600_000 < TICK_SECONDS * 1000:
                self._prune_volume(symbol, now)

    def _prune_volume(self, symbol: str, now: int) -> None:
        oldest = (now - 90_000_000) // VOLUME_BUCKET_MS  # keep 25 h of minute buckets
        old = [m for m in self.r.hkeys(keys.volume(symbol)) if int(m) < oldest]
        if old:
            self.r.hdel(keys.volume(symbol), *old)


def get() -> Runtime:
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = Runtime(load_settings())
        return _runtime


def start() -> None:
    get().start()


def stop() -> None:
    if _runtime is not None:
        _runtime.stop()
