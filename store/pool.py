"""Redis clients whose connection pool is bounded and WAITS for a free connection.

redis-py's default ``ConnectionPool`` opens a new connection for every concurrent
caller up to ``max_connections`` and then raises ``Too many connections`` at once;
under gevent every greenlet that needs Redis is a concurrent caller, so a burst of
clients turned into a burst of 503s. ``BlockingConnectionPool`` instead waits up to
``timeout`` for a connection to come back. A wait that runs out raises
``PoolExhausted`` (a ``redis.ConnectionError``, so every existing "store unavailable"
path still applies), which the web answers 503 ``OVERLOADED`` with ``Retry-After``:
the node is busy, not broken, and nothing was written.
"""

from __future__ import annotations

import select
import threading
import time
from collections import deque
from queue import Full

import redis

try:  # the OS's poll, also when gevent has patched the select module
    from gevent.monkey import get_original

    _native_poll = get_original("select", "poll")
except ImportError:  # pragma: no cover - gevent is a dependency of the web
    _native_poll = select.poll


class PoolExhausted(redis.exceptions.ConnectionError):
    """No Redis connection came free within the pool's wait bound."""


class _Waiter:
    __slots__ = ("event", "item", "served")

    def __init__(self):
        self.event = threading.Event()
        self.item = None
        self.served = False


class _FairQueue:
    """The pool's free connections (the last returned is reused first: warm, and idle
    ones stay idle) with FIRST-COME-FIRST-SERVED waiters: a returned connection is
    handed straight to the longest waiter. ``queue.LifoQueue`` wakes a waiter but lets
    any newcomer take the connection first; the woken waiter then queues again at the
    back, and under a crowd some requests starved past the wait bound while others
    went through at once (p99 7 s at p50 0.1 s). The interface is the part of
    ``queue.Queue`` that ``redis.BlockingConnectionPool`` uses."""

    HANDOFF_WINDOW = 64  # hand-offs per measurement of the service rate
    # Refuse at once only when the queue ahead would take MARGIN times the bound (2x refused
    # 68 of a 5000-socket storm that the bound would have served): the
    # rate is an estimate (measured over short windows, noisy on a busy box).
    MARGIN = 4.0

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self.queue: list = []  # free connections (None: one not made yet)
        self._waiters: deque[_Waiter] = deque()
        self._lock = threading.Lock()
        # Hand-offs per second while callers queue: a newcomer behind more waiters than
        # the pool serves within the wait bound is refused at once, not after the bound
        # (far past capacity, overload is answered in milliseconds).
        # Measured only while callers queue (an idle spell must not count as slowness).
        self._rate: float | None = None
        self._handoffs, self._window_start = 0, None

    def put_nowait(self, item) -> None:
        with self._lock:
            if self._waiters:
                waiter = self._waiters.popleft()
                waiter.item, waiter.served = item, True
                waiter.event.set()
                self._count_handoff()
                return
            if len(self.queue) >= self.maxsize:
                raise Full
            self.queue.append(item)

    def get(self, block: bool = True, timeout: float | None = None):
        with self._lock:
            if self.queue and not self._waiters:
                return self.queue.pop()
            if not block:
                raise PoolExhausted("no Redis connection free")
            if (self._rate and timeout is not None
                    and len(self._waiters) > self.MARGIN * self._rate * timeout):
                raise PoolExhausted(
                    f"{len(self._waiters)} callers ahead; the pool serves "
                    f"{self._rate:.0f}/s: far more than a {timeout:g} s wait")
            waiter = _Waiter()
            self._waiters.append(waiter)
            if self._window_start is None:
                self._handoffs, self._window_start = 0, time.monotonic()
        waiter.event.wait(timeout)
        with self._lock:
            if not waiter.served:  # timed out (a hand-off after this is not ours)
                self._waiters.remove(waiter)
                if not self._waiters:
                    self._window_start = None
                raise PoolExhausted(
                    f"no Redis connection free within {timeout:g} s "
                    f"(all {self.maxsize} in use)")
        return waiter.item

    def _count_handoff(self) -> None:
        self._handoffs += 1
        if self._handoffs >= self.HANDOFF_WINDOW and self._window_start is not None:
            now = time.monotonic()
            elapsed = now - self._window_start
            if elapsed > 0:
                rate = self._handoffs / elapsed
                self._rate = rate if self._rate is None else 0.5 * (self._rate + rate)
            self._handoffs, self._window_start = 0, now
        if not self._waiters:
            self._window_start = None  # contention is over; the next one starts afresh


class _QuickReadyCheck:
    """The pool asks every connection it hands out ``can_read()`` (stray data left by an
    interrupted command, or a closed socket). Under gevent that zero-timeout check went
    through gevent's ``poll`` and the hub. The OS's ``poll`` answers the usual case
    (nothing to read, the hiredis reader empty) in one syscall; anything else still takes
    redis-py's own path, so a dirty or closed connection is found as before.
    Figures (micro-loops under ``monkey.patch_all``, real redis-server): the pool's get +
    release 21.5 -> 7.9 us; one accept EVALSHA 107 -> 63 us of web CPU and a GET 49 ->
    24 us (with accept.lua's shorter ARGV); the web's CPU per single order in ``flock
    /tmp/heavy.lock .venv/bin/python -m bench.load --mode single --seconds 10``: README
    "Cost per order"."""

    def can_read(self, timeout: float = 0) -> bool:
        sock, reader = self._sock, getattr(self._parser, "_reader", None)
        if timeout == 0 and sock is not None and reader is not None and not reader.has_data():
            poller = _native_poll()
            poller.register(sock.fileno(), select.POLLIN)
            if not poller.poll(0):
                return False
        return super().can_read(timeout)


_QUICK: dict[type, type] = {}


def _quick_ready_check(pool) -> None:
    """Give ``pool``'s plain TCP / unix-socket connections the quick check (TLS keeps
    redis-py's: decrypted bytes can wait above the socket, where poll cannot see them)."""
    cls = pool.connection_class
    if issubclass(cls, redis.SSLConnection) or issubclass(cls, _QuickReadyCheck):
        return
    if not issubclass(cls, (redis.Connection, redis.UnixDomainSocketConnection)):
        return
    quick = _QUICK.get(cls)
    if quick is None:
        quick = _QUICK[cls] = type(f"Quick{cls.__name__}", (_QuickReadyCheck, cls), {})
    pool.connection_class = quick


def waiting_pool_class(wait_seconds: float, base=redis.BlockingConnectionPool):
    """A pool class of ``base`` that waits ``wait_seconds`` first-come-first-served: for
    clients that build their pools themselves (RedisCluster per node, Sentinel)."""

    class WaitingPool(base):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("timeout", wait_seconds)
            kwargs["queue_class"] = _FairQueue
            super().__init__(*args, **kwargs)
            _quick_ready_check(self)

    return WaitingPool


def waiting_client(url: str, *, max_connections: int, wait_seconds: float,
                   **kwargs) -> redis.Redis:
    """A client on a pool of at most ``max_connections`` that waits ``wait_seconds``."""
    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=wait_seconds,
        queue_class=_FairQueue, **kwargs)
    _quick_ready_check(pool)
    return redis.Redis(connection_pool=pool)
