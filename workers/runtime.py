"""The worker process's state: one matcher per owned symbol and a maintenance thread.

A wake-up task runs ``Runtime.drain``: every owned symbol in turn, then a short linger on
all their journals before going idle (see its docstring).

The thread (every 250 ms) renews the leases, writes the heartbeat, journals an expire
command for each GTD order whose expireTime has come (the clock stays outside the engine,
so replay is exact), and sweeps: a symbol whose journal is ahead of its cursor with no
wake-up task on the way gets one (this is what applies a command whose web process died
before sending its task, and the expiries just journaled).
Books are only touched by the task thread (solo pool, concurrency 1).
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from schemas.markets import get_market
from settings import Settings, load_settings
from store import connect as store_connect
from store import journal, upkeep
from store.commit import VOLUME_BUCKET_MS
from store.lease import Lease
from workers.apply import SymbolMatcher
from workers.celery_app import app as celery_app
from workers.celery_app import send_wakeup

log = logging.getLogger(__name__)

TICK_SECONDS = 0.25
# Two threads use the store (the task thread, one command or pipeline at a time, and the
# maintenance thread): 4 connections leave room for a reconnect, and a wait instead of
# "Too many connections" if anything ever holds more. Plus Celery's broker connections.
STORE_CONNECTIONS = 4
_runtime: Runtime | None = None
_lock = threading.Lock()


def connect(settings: Settings) -> redis.Redis:
    """The worker's store client (store.connect: single Redis, Sentinel or Cluster)."""
    return store_connect.store_client(
        settings, max_connections=STORE_CONNECTIONS, wait_seconds=10, read_only=False,
        decode_responses=True, socket_timeout=10, socket_connect_timeout=2,
        health_check_interval=10)


class Runtime:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.r = connect(settings)
        self.symbols = settings.worker_symbols or settings.symbols
        self.matchers = {
            s: SymbolMatcher(self.r, get_market(settings, s), Lease(self.r, s), settings)
            for s in self.symbols
        }
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._maintain, name="maintenance", daemon=True)

    def start(self) -> None:
        try:
            self._tick()  # take the leases and send wake-ups for any backlog right away
        except redis.RedisError as exc:
            log.warning("Redis unavailable at start (%s); the maintenance thread retries", exc)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        for m in self.matchers.values():
            try:
                m.lease.release()
            except redis.RedisError:
                pass

    def drain(self, symbol: str, sequence: int) -> int:
        """Apply every owned symbol's journal, a batch of each in turn, until all are idle.

        Any task drains them all: one thread serves every symbol fairly, and a busy symbol
        cannot starve another. Before going idle it waits ``worker_linger_ms`` on all the
        journals at once, so under steady flow commands are applied as they land, with no
        Celery hop. A long run hands back to Celery after ``worker_max_drain_ms`` (its
        heartbeats and acks) by queueing a task for itself.
        """
        if symbol not in self.matchers:
            log.warning("task for %s, which this worker does not own", symbol)
            return 0
        for m in self.matchers.values():
            if not m.lease.held:
                m.lease.renew()
        s = self.settings
        deadline = time.monotonic() + s.worker_max_drain_ms / 1000
        applied, idle_checked = 0, False
        while True:
            done = sum(m.step() for m in self.matchers.values())
            applied += done
            if done:
                idle_checked = False
                if time.monotonic() > deadline:
                    send_wakeup(celery_app, symbol, 0)  # wake flags are set: no one else will
                    return applied
                continue
            if idle_checked:
                return applied
            cursors = {m.symbol: m.cursor for m in self.matchers.values()
                       if m.lease.held and m.cursor is not None}
            if journal.wait_after_any(self.r, cursors, s.worker_linger_ms):
                continue
            # Idle: clear the wake flags so the next accept sends a task, then look once
            # more for a command accepted just before its flag went (no task for it).
            # While we drain, the flags stay set and accepts send no task at all.
            upkeep.clear_wakes(self.r, self.matchers)
            idle_checked = True

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
                    m.book = None  # reload from the store (after a failover: its new primary)
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
            journal.journal_due_expiries(self.r, symbol)
            accepted, applied = upkeep.beat(self.r, symbol, now)
            if accepted > applied and upkeep.claim_wake(self.r, symbol):
                send_wakeup(celery_app, symbol, accepted)
            if now % 3_600_000 < TICK_SECONDS * 1000:
                self._prune_volume(symbol, now)

    def _prune_volume(self, symbol: str, now: int) -> None:
        oldest = (now - 90_000_000) // VOLUME_BUCKET_MS  # keep 25 h of minute buckets
        upkeep.prune_volume(self.r, symbol, oldest)


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
