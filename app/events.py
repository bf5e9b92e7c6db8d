"""The web process's one Redis pub/sub connection, fanned out to in-process listeners.

The matching worker publishes one COMMIT message per commit on the symbol's events
channel (inside the commit's script), the accept path one ACCEPTED message per order
(``store.events`` makes, frames and parses both; the hub parses with it),
both with SPUBLISH (sharded pub/sub: on a Redis Cluster a message only travels within
its slot's shard, and the channel is a key of the publishing script).
``EventHub`` holds ONE connection per web process with an SSUBSCRIBE on each configured
market's channel, in a daemon thread started lazily after fork (``get_hub(app)``), and
hands every message to the listeners registered for its symbol (WebSocket connections,
``app.ws``) and wakes the REST ``?wait=true`` waiters (``wait_for``).

Listener protocol (called on the hub thread; all must return at once, never block):
  ``on_batches(batches: list[Batch]) -> bool`` - one read's messages for the listener's
                                            symbols, one Batch per symbol, each in
                                            order; True: the listener wants ``wake()``
  ``wake()``                              - everything queued is there
  ``on_resync()``                         - the hub reconnected: messages may be lost,
                                            re-read state (books: new snapshot; trades:
                                            backfill from the trades stream)
Register for one symbol, or for ``ALL`` (every symbol: order_status by orderId).

Batching: after each read the hub pauses so the next read takes everything published
meanwhile; a listener then handles, and a socket writes, once per pause instead of once
per message. The pause grows with the fan-out it saves: 40 us per listener served by
the last read, between 1 ms and ``window`` (``WS_BATCH_MS``, 20 ms). A few sockets get
their events within about a millisecond; at a thousand sockets the per-socket cost
(a wake-up and a write on each side) is paid 50 times a second, not once per commit.
REST waiters are released as each message is read, before the pause.

Reconnect: on any Redis error the hub reconnects with exponential backoff (0.1 s .. 5 s),
then calls ``on_resync()`` on every listener and re-checks every REST waiter's
``already_done()`` (a commit may have been missed while disconnected).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable

import redis

from app.cached import per_process
from store import connect
from store import events as store_events

log = logging.getLogger(__name__)

ALL = "*"
_EXTENSION = "event_hub"
_hubs: list[EventHub] = []
_hubs_lock = threading.Lock()


class _Waiter:
    __slots__ = ("sequence", "event", "already_done")

    def __init__(self, sequence: int, already_done: Callable[[], bool]):
        self.sequence = sequence
        self.event = threading.Event()
        self.already_done = already_done


class Batch:
    """One symbol's messages from one hub read, in publish order, shared by all of the
    symbol's listeners. ``memo`` keeps what listeners derive from it (frames, merged
    book changes), built once by the first listener that needs it."""

    __slots__ = ("symbol", "events", "commits", "memo")

    def __init__(self, symbol: str):
        self.symbol = symbol
        self.events: list[dict] = []  # every message (commits, accepted, ...)
        self.commits: list[dict] = []  # the commit messages among them
        self.memo: dict = {}


class EventHub:
    """One pub/sub connection, many listeners. Thread-safe; start() is idempotent."""

    PAUSE_PER_LISTENER = 40e-6
    MIN_PAUSE = 0.001

    def __init__(self, redis_url: str, symbols, *, window: float = 0.020,
                 idle_ping_seconds: float = 5.0, client_factory: Callable | None = None):
        self.redis_url = redis_url
        self.symbols = tuple(symbols)  # the markets whose channels the hub subscribes to
        # The store's kind decides the client (store.connect.events_client: Sentinel,
        # Cluster); by default a plain client of redis_url.
        self._client_factory = client_factory or (lambda: redis.Redis.from_url(
            self.redis_url, socket_connect_timeout=2, socket_keepalive=True))
        self.window = window
        self.idle_ping_seconds = idle_ping_seconds
        self._lock = threading.Lock()
        self._listeners: dict[str, frozenset] = {}  # copy-on-write: read lock-free
        self._waiters: dict[str, list] = {}  # symbol -> heap of (sequence, n, _Waiter)
        self._counter = itertools.count()
        self._last_sequence: dict[str, int] = {}
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pubsub = None
        self.pid = os.getpid()
        # Counters, for /metrics and tests.
        self.messages = 0
        self.gaps = 0
        self.reconnects = 0
        self.bad_messages = 0

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> EventHub:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="event-hub", daemon=True
                )
                self._thread.start()
        return self

    def wait_ready(self, timeout: float) -> bool:
        """True once every market's subscription is confirmed by Redis."""
        return self._ready.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._ready.clear()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._lock:
            waiters = [w for heap in self._waiters.values() for _, _, w in heap]
        for w in waiters:  # release blocked REST requests; they re-read the store
            w.event.set()

    # -- listeners ------------------------------------------------------------------
    def add_listener(self, symbol: str, listener) -> None:
        with self._lock:
            self._listeners[symbol] = self._listeners.get(symbol, frozenset()) | {listener}

    def remove_listener(self, symbol: str, listener) -> None:
        with self._lock:
            current = self._listeners.get(symbol)
            if current and listener in current:
                rest = current - {listener}
                if rest:
                    self._listeners[symbol] = rest
                else:
                    del self._listeners[symbol]

    def listener_count(self) -> int:
        listeners = set()
        for group in list(self._listeners.values()):
            listeners |= group
        return len(listeners)

    def last_sequence(self, symbol: str) -> int | None:
        """The last commit sequence this hub saw for ``symbol`` (None: none yet)."""
        return self._last_sequence.get(symbol)

    # -- REST ?wait=true ------------------------------------------------------------
    def wait_for(
        self,
        symbol: str,
        sequence: int,
        timeout: float,
        already_done: Callable[[], bool],
    ) -> bool:
        """Block until a commit of ``symbol`` with sequence >= ``sequence`` is seen.

        Registers first, then asks ``already_done()`` (the caller reads the applied
        cursor), so a commit landing between the caller's accept and this call is never
        missed. True: done; False: timed out.
        """
        self.start()
        waiter = _Waiter(sequence, already_done)
        entry = (sequence, next(self._counter), waiter)
        with self._lock:
            last = self._last_sequence.get(symbol)
            if last is not None and last >= sequence:
                return True
            heapq.heappush(self._waiters.setdefault(symbol, []), entry)
        try:
            # A commit published before our subscription is live would be missed: on a
            # process's first use wait (bounded) for Redis to confirm it, then look.
            deadline = time.monotonic() + timeout
            if not self._ready.is_set():
                self._ready.wait(timeout)
            if already_done():
                return True
            return waiter.event.wait(max(0.0, deadline - time.monotonic()))
        finally:
            with self._lock:
                heap = self._waiters.get(symbol)
                if heap and entry in heap and not waiter.event.is_set():
                    heap.remove(entry)
                    heapq.heapify(heap)
                if heap == []:
                    self._waiters.pop(symbol, None)

    def _release_waiters(self, symbol: str, sequence: int) -> None:
        with self._lock:
            heap = self._waiters.get(symbol)
            if not heap:
                return
            while heap and heap[0][0] <= sequence:
                heapq.heappop(heap)[2].event.set()
            if not heap:
                del self._waiters[symbol]

    def _recheck_waiters(self) -> None:
        with self._lock:
            waiters = [w for heap in self._waiters.values() for _, _, w in heap]
        for w in waiters:
            try:
                if w.already_done():
                    w.event.set()
            except Exception:  # a store error: the waiter times out on its own
                log.debug("waiter recheck failed", exc_info=True)

    # -- the thread -----------------------------------------------------------------
    def _connect(self):
        return store_events.subscribe(self._client_factory(), self.symbols)

    def _run(self) -> None:
        backoff = 0.1
        first = True
        while not self._stop.is_set():
            client = pubsub = None
            try:
                client, pubsub = self._connect()
                self._pubsub = pubsub
                if not first:
                    self.reconnects += 1
                    log.warning("event hub reconnected to Redis; resyncing listeners")
                    self._resync()
                elif self._all_listeners():
                    # Registered while Redis was unreachable at start: resync them too.
                    self._resync()
                else:
                    # A REST waiter registered before the subscription was confirmed may
                    # have missed its commit: re-check it now that nothing can be missed.
                    self._recheck_waiters()
                first = False
                self._ready.set()
                backoff = 0.1
                self._loop(pubsub)
            except (redis.exceptions.RedisError, OSError) as err:
                if not self._stop.is_set():
                    log.warning("event hub lost Redis (%s); retrying in %.1fs", err, backoff)
            except Exception:
                log.exception("event hub crashed; restarting")
            finally:
                self._ready.clear()
                for closable in (pubsub, client):
                    try:
                        if closable is not None:
                            closable.close()
                    except Exception:
                        pass
            if self._stop.wait(backoff):
                break
            backoff = min(backoff * 2, 5.0)

    def _loop(self, pubsub) -> None:
        last_rx = time.monotonic()
        pinged = False
        while not self._stop.is_set():
            msg = pubsub.get_message(timeout=0.5)
            now = time.monotonic()
            if msg is None:
                idle = now - last_rx
                if idle > 3 * self.idle_ping_seconds:
                    raise redis.exceptions.ConnectionError("pub/sub connection silent")
                if idle > self.idle_ping_seconds and not pinged:
                    pubsub.ping()
                    pinged = True
                continue
            last_rx, pinged = now, False
            batch = []
            while msg is not None:  # everything already buffered, up to a bound
                if msg["type"] == store_events.MESSAGE_TYPE:
                    batch.append(msg)
                if len(batch) >= 5000:
                    break
                msg = pubsub.get_message(timeout=0)
            served = self._dispatch(batch)
            # Let the next messages gather (see Batching above). This also lets the
            # connections and REST requests run: under gevent nothing else runs while this
            # loop does; under threads it drops the GIL.
            time.sleep(min(self.window, max(self.MIN_PAUSE, served * self.PAUSE_PER_LISTENER)))

    def _resync(self) -> None:
        for listener in self._all_listeners():
            try:
                listener.on_resync()
            except Exception:
                log.exception("listener resync failed")
        self._recheck_waiters()

    def _all_listeners(self) -> set:
        out = set()
        for group in list(self._listeners.values()):
            out |= group
        return out

    def _dispatch(self, messages: list) -> int:
        """Hand ``messages`` to the listeners; returns how many listeners got some."""
        batches: dict[str, Batch] = {}
        for msg in messages:
            parsed = self._parse(msg["channel"], msg["data"])
            if parsed is not None:
                symbol, event = parsed
                batch = batches.get(symbol)
                if batch is None:
                    batch = batches[symbol] = Batch(symbol)
                batch.events.append(event)
                if event.get("type") == "commit":
                    batch.commits.append(event)
        # Each listener gets all its symbols' batches in one call: one write per socket
        # per read, whatever the number of symbols it follows.
        targets: dict = {}
        everyone = self._listeners.get(ALL)
        for symbol, batch in batches.items():
            listeners = self._listeners.get(symbol)
            if everyone:
                listeners = (listeners | everyone) if listeners else everyone
            for listener in listeners or ():
                got = targets.get(listener)
                if got is None:
                    targets[listener] = [batch]
                else:
                    got.append(batch)
        for listener, its_batches in targets.items():
            try:
                if listener.on_batches(its_batches):
                    listener.wake()
            except Exception:
                log.exception("listener failed")
        return len(targets)

    def _parse(self, channel, data) -> tuple[str, dict] | None:
        """The message's symbol and parsed event; commit bookkeeping (REST waiters, the
        chain check) happens here, per message."""
        try:
            symbol = store_events.symbol_of(channel)
            event = store_events.parse(data)
        except Exception:
            self.bad_messages += 1
            log.warning("unparseable event on %r", channel)
            return None
        self.messages += 1
        event["symbol"] = symbol  # the channel's symbol is the one listeners go by
        if event.get("type") == "commit":
            sequence, prev = event.get("sequence"), event.get("prevSequence")
            if isinstance(sequence, int):
                last = self._last_sequence.get(symbol)
                if last is not None and prev != last and sequence > last:
                    # Listeners see it too (their own chain check) and resnapshot.
                    self.gaps += 1
                    log.warning("%s: commit chain gap (%s -> %s)", symbol, last, prev)
                if last is None or sequence > last:
                    self._last_sequence[symbol] = sequence
                self._release_waiters(symbol, sequence)
        return symbol, event


def get_hub(app) -> EventHub:
    """This process's hub (made and started on first use, after fork)."""
    def make() -> EventHub:
        settings = app.config["SETTINGS"]
        hub = EventHub(settings.redis_url, settings.symbols, window=settings.ws_batch_ms / 1000,
                       client_factory=lambda: connect.events_client(settings))
        _hubs.append(hub)
        return hub

    return per_process(app, _EXTENSION, _hubs_lock, make).start()


def stop_all() -> None:
    """Stop every hub of this process (gunicorn worker exit)."""
    with _hubs_lock:
        hubs = [h for h in _hubs if h.pid == os.getpid()]
        _hubs.clear()
    for hub in hubs:
        hub.stop()


def stop_app(app) -> None:
    """Stop ``app``'s hub if it made one (a test's app, before its Redis goes away)."""
    with _hubs_lock:
        hub = app.extensions.pop(_EXTENSION, None)
        if hub in _hubs:
            _hubs.remove(hub)
    if hub is not None:
        hub.stop()
