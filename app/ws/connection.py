"""One ``/ws`` client: its ops (subscribe, unsubscribe, ping, auth, place, cancel), its
subscriptions and what it is sent (api.md §4, §5).

Threads. A connection's own thread (the gunicorn worker thread or greenlet running the
route) reads client frames, reads snapshots and backfills through ``store.relay``,
builds and sends frames. The event hub's thread (app.events) calls ``on_batches``; the
market feed's thread ``on_market``. Two rules keep that safe:
- ``queue`` is the hand-off: other threads append batches, the own thread pops them
  (``list.append``/``pop(0)`` are atomic); ``_killed``/``_resync`` are flags set
  by other threads and read by the own thread.
- Everything else (feed positions, subscriptions) is read and changed only by the
  thread holding ``_owner``: the own thread takes it for each step; the hub thread
  only tries it (never waits) to write an in-step batch directly (``_send_now``).

The hub-thread write: when the connection is idle (nothing queued) and in step with
the stream, the hub writes the batch's shared frames itself without waking the
connection's thread (``Transport.send_nowait``). Figure (commit 68cab52, ``make bench-ws``:
1,000 clients on trade+orderbook, 500 orders/s): trade p99 1,072 ms -> 111-144 ms with
batching, merged updates and this write together; every other case (snapshot, gap,
backfill, order_status) goes through the queue. Past ``ws_queue_max`` queued messages
the client is closed with 1008 "slow consumer".

Beyond api.md §4: acks ``{"event": "unsubscribed", ...}`` and ``{"event":
"authenticated", "accountId"}``; update ``changes`` also carry the level's ``orders``
count (as the snapshot levels do), so a client rebuilds exactly the REST book.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
import weakref

import orjson
import redis
from flask import Flask, request

from app.auth import account_for_key
from app.events import ALL, get_hub
from app.market_feed import MarketBatch, get_feed
from app.ratelimit import ConnectionSlots, FrameBudget, config_for
from app.ws import entry, feeds
from app.ws.transport import Transport, text_frame
from schemas import ws as frames
from schemas.markets import get_market
from schemas.ws import FrameError
from store import relay
from store.pool import PoolExhausted

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 64 * 1024  # a larger client frame gets FRAME_TOO_LARGE, socket stays open
DEFAULTS = {
    "ws_queue_max": 1000,  # queued messages per client before "slow consumer"
    "ws_max_subscriptions": 100,
    "ws_ping_interval": 25.0,  # seconds; a client that misses a pong is closed
    "ws_send_timeout": 10.0,  # a send blocked this long aborts the connection
    "ws_sndbuf": 256 * 1024,  # per-socket kernel send buffer: bounds memory per client
    "ws_snapshot_levels": 100_000,  # the whole book: updates can touch any level
}
MARKET_CHANNELS = ("ticker", "candles")
SLOW_CONSUMER = (1008, "slow consumer")
RATE_LIMITED_CLOSE = (1008, "rate limit exceeded")
TOO_MANY_CONNECTIONS_CLOSE = (1008, "too many connections")
# A trade hole that cannot be filled from the stream (store down or overloaded): the
# client is told to come back, never left with a silent gap.
TRADES_UNAVAILABLE = (1013, "try again later: trade backfill failed")
BACKFILL_RETRIES = (0.05, 0.2, 0.5)  # seconds between attempts before closing
_NONE: frozenset = frozenset()
_UNANSWERED = ("", "")  # a frame ignored without an answer (past the rate limit)
WAIT_SECONDS = 30  # the own thread's longest sleep without a frame or an event
GOING_AWAY = (1001, "server shutting down")

_connections: weakref.WeakSet = weakref.WeakSet()  # this process's, for close_all
_connections_lock = threading.Lock()


def close_all(reason: tuple[int, str] = GOING_AWAY) -> int:
    """Close every connection of this process with ``reason`` (shutdown). Returns count."""
    with _connections_lock:
        conns = list(_connections)
    for conn in conns:
        conn.kill(reason)
    return len(conns)


def connection_count() -> int:
    with _connections_lock:
        return len(_connections)


def option(app: Flask, name: str):
    """app.config["WS_..."] first, then a Settings field of that name, then the default."""
    settings = app.config["SETTINGS"]
    return app.config.get(name.upper(), getattr(settings, name, DEFAULTS[name]))


class Limits:
    """The app's per-connection tunables, read once per app (shared by its connections)."""

    __slots__ = ("queue_max", "max_subs", "snapshot_levels", "sndbuf", "send_timeout",
                 "ping_interval")

    def __init__(self, app: Flask):
        self.queue_max = int(option(app, "ws_queue_max"))
        self.max_subs = int(option(app, "ws_max_subscriptions"))
        self.snapshot_levels = int(option(app, "ws_snapshot_levels"))
        self.sndbuf = int(option(app, "ws_sndbuf"))
        self.send_timeout = float(option(app, "ws_send_timeout"))
        self.ping_interval = float(option(app, "ws_ping_interval"))


def limits_for(app: Flask) -> Limits:
    found = app.extensions.get("ws_limits")
    if found is None:
        found = app.extensions["ws_limits"] = Limits(app)
    return found


class Connection:
    __slots__ = (
        "app", "settings", "hub", "limits", "transport", "queue", "_queued", "_taken",
        "_owner", "_killed", "_resync", "books", "trades", "status_symbols",
        "status_orders", "market", "frame_budget", "conn_id", "ip", "_slots",
        "_slot_renewed", "account", "_registered", "_redis", "_entries", "__weakref__",
    )

    def __init__(self, raw_socket, app: Flask):
        self.app = app
        self.settings = app.config["SETTINGS"]
        self.hub = get_hub(app)
        self.limits = limits = limits_for(app)
        self.transport = Transport.open(raw_socket, sndbuf=limits.sndbuf,
                                        send_timeout=limits.send_timeout,
                                        ping_interval=limits.ping_interval)
        # app.events.Batch / MarketBatch, hub -> own thread. A list, not a deque: an empty
        # deque is 760 B (its first block), a list 56 B; every idle socket has one
        # (tracemalloc over 1,000 sockets); pop(0) on a backlog of at most ws_queue_max.
        self.queue: list = []
        # Messages queued (hub thread) and taken (own thread): each counter has one
        # writer, so the difference, the backlog, needs no lock.
        self._queued = self._taken = 0
        self._owner = threading.Lock()  # see the module docstring
        self._killed: tuple[int, str] | None = None
        self._resync = False
        self.books: dict[str, feeds.BookChain] = {}
        self.trades: dict[str, int] = {}  # symbol -> last trade sequence sent
        # Subscription sets are frozensets replaced on change: most sockets never use
        # most of them, and every empty one is the same object (a set() costs 216 B).
        self.status_symbols: frozenset[str] = _NONE
        self.status_orders: frozenset[str] = _NONE
        self.market: frozenset[tuple] = _NONE  # (ticker|candles, symbol, interval or None)
        rate = config_for(app)  # app.ratelimit: ws_frames per connection, ws_connections
        self.frame_budget = FrameBudget(rate.ws_frames) if rate.enabled else None
        self.conn_id, self.ip = secrets.token_hex(8), None
        self._slots, self._slot_renewed = None, time.monotonic()
        self.account: str | None = None
        self._registered: frozenset[str] = _NONE  # hub registrations (symbols, ALL)
        self._redis = None
        self._entries = 0  # orders and cancels sent over this socket (their request ids)

    # hub and feed threads -------------------------------------------------------------
    def on_batches(self, batches) -> bool:
        if self._killed is not None:
            return False
        wanted = [b for b in batches if self._wants(b)]
        if not wanted:
            return False
        if not self.queue and self._send_now(wanted):
            return self.transport.pending  # a partial write: our thread sends the rest
        for batch in wanted:
            self._queued += len(batch.events)
            self.queue.append(batch)  # no per-listener allocation: the hub's batch itself
        if self._queued - self._taken > self.limits.queue_max:
            self.kill(SLOW_CONSUMER)
            return False
        return True

    def _wants(self, batch) -> bool:
        # Read without _owner: a subscription is added before the hub learns of it and
        # a batch wanted after an unsubscribe is filtered when processed.
        symbol = batch.symbol
        if batch.commits and (symbol in self.books or symbol in self.trades):
            return True
        return bool(self.status_orders) or symbol in self.status_symbols

    def _send_now(self, batches) -> bool:
        """The hub thread's direct write (module docstring). False, nothing done, when
        the own thread holds the connection or anything but in-step frames is needed."""
        if not self._owner.acquire(blocking=False):
            return False  # our thread is handling something (it drains the queue next)
        try:
            if self._resync or self.status_symbols or self.status_orders or self.queue:
                return False
            steps = []
            for batch in batches:  # one symbol each: their steps are independent
                step = feeds.in_step(batch, self.books.get(batch.symbol),
                                     self.trades.get(batch.symbol))
                if step is None:
                    return False
                steps.append((batch.symbol, step))
            data = b"".join(f for _, step in steps for f in step.frames)
            if data and not self.transport.send_nowait(data):
                return False
            for symbol, step in steps:
                self._advance(symbol, step)
            return True
        finally:
            self._owner.release()

    def wake(self) -> None:
        self.transport.wake()

    def on_resync(self) -> None:
        self._resync = True
        self.transport.wake()

    def kill(self, reason: tuple[int, str]) -> None:
        if self._killed is None:
            self._killed = reason
        self.queue.clear()
        self.transport.wake()

    def on_market(self, batch) -> None:
        """A MarketBatch from the feed thread: queued for our own thread to send."""
        if self._killed is None:
            self.queue.append(batch)
            self.transport.wake()

    # own thread -----------------------------------------------------------------------
    def run(self) -> None:
        self.ip = request.remote_addr or "unknown"
        if not self._admit():
            return
        with _connections_lock:
            _connections.add(self)
        try:
            while True:
                self.transport.wait(WAIT_SECONDS)
                self._renew_slot()
                with self._owner:
                    if not self._step():
                        return
        finally:
            if self._slots is not None:
                try:
                    self._slots.release(self.ip, self.conn_id)
                except redis.exceptions.RedisError:
                    pass
            with _connections_lock:
                _connections.discard(self)
            for target in list(self._registered):
                self.hub.remove_listener(target, self)
            self._registered = _NONE
            if self.market:
                feed = get_feed(self.app)
                for _, symbol, _ in self.market:
                    feed.remove(symbol, self)

    def _step(self) -> bool:
        """Everything there is to do now; False: the connection is over."""
        transport = self.transport
        transport.flush()  # the tail of a partial write from the hub goes first
        entries: list = []  # order entry frames, answered together (app.ws.entry)
        while self._killed is None and (data := transport.take_inbound()) is not None:
            self._handle(data, entries)
        if entries:
            self._flush(entry.handle(self, entries))
        if self._killed is not None:
            transport.close(*self._killed)
            return False
        if not transport.connected:
            return False
        if self._resync:
            self._resync = False
            self._after_reconnect()
        self._drain()
        return True

    @property
    def redis(self):
        if self._redis is None:
            from app.redis_client import client_for

            self._redis = client_for(self.app)
        return self._redis

    def send_obj(self, obj: dict) -> None:
        self.transport.send(feeds.json_frame(obj))

    def _error(self, code: str, message: str, **about) -> None:
        self.send_obj({"event": "error", "code": code, "message": message, **about})

    def _store_error(self, err: Exception, message: str, **about) -> None:
        """A store read failed: OVERLOADED (no connection free in time) or UNAVAILABLE."""
        if isinstance(err, PoolExhausted):
            from app import metrics

            metrics.count_overloaded("ws")
            self._error("OVERLOADED", message, **about)
        else:
            log.warning("ws: store unavailable: %s", err)
            self._error(frames.UNAVAILABLE, message, **about)

    # inbound frames -------------------------------------------------------------------
    def _handle(self, data, entries: list) -> None:
        """One client frame. Order entry frames are collected in ``entries`` (answered
        together by the caller); anything else first answers the entries before it, so
        answers keep the frames' order."""
        raw, problem = self._decode(data)
        if problem is None and isinstance(raw, dict) and raw.get("op") in entry.OPS:
            entries.append((data, raw))
            return
        if entries:
            self._flush(entry.handle(self, entries))
            entries.clear()
        if problem is not None:
            if problem is not _UNANSWERED:
                self._error(*problem)
            return
        try:
            frame = frames.parse_frame(raw)
            getattr(self, f"_op_{frame.op}")(frame)
        except FrameError as err:
            self._error(err.code, err.message)
        except redis.exceptions.RedisError as err:
            self._store_error(err, "The order store is unreachable or busy; retry.")

    def _decode(self, data):
        """``(parsed frame, None)`` or ``(None, (code, message))`` to answer it with
        (``_UNANSWERED``: a frame past the rate limit, ignored)."""
        if self.frame_budget is not None and not self._within_budget():
            return None, _UNANSWERED
        if len(data) > MAX_FRAME_BYTES:
            return None, (frames.FRAME_TOO_LARGE, f"A frame is at most {MAX_FRAME_BYTES} bytes.")
        try:
            return orjson.loads(data), None
        except orjson.JSONDecodeError:
            return None, (frames.BAD_FRAME, "A frame is one JSON object.")

    def _within_budget(self) -> bool:
        """The ws_frames limit (app.ratelimit.FrameBudget): False, frame not handled."""
        verdict = self.frame_budget.take()
        if verdict == "refuse":
            limit = self.frame_budget.items[0]
            self._error(frames.RATE_LIMITED,
                        f"At most {limit.amount} frames per {limit.get_expiry()} s on a "
                        "connection: frames past it are ignored, and a connection that keeps "
                        "sending is closed.")
        elif verdict == "close":
            self.kill(RATE_LIMITED_CLOSE)
        return verdict == "ok"

    def _admit(self) -> bool:
        """The ws_connections limit per client IP, across every web node. False: refused
        (error event, then a close with the reason)."""
        config = config_for(self.app)
        if not (config.enabled and config.ws_connections):
            return True
        self._slots = ConnectionSlots(self.redis, config.ws_connections)
        try:
            if self._slots.acquire(self.ip, self.conn_id):
                return True
        except redis.exceptions.RedisError:  # no store: nothing works, do not add a refusal
            self._slots = None
            return True
        self._slots = None
        self._error(frames.TOO_MANY_CONNECTIONS,
                    f"At most {config.ws_connections} WebSocket connections per client IP.")
        self.transport.close(*TOO_MANY_CONNECTIONS_CLOSE)
        return False

    def _renew_slot(self) -> None:
        now = time.monotonic()
        if self._slots is not None and now - self._slot_renewed > ConnectionSlots.RENEW_S:
            self._slot_renewed = now
            try:
                self._slots.renew(self.ip, self.conn_id)
            except redis.exceptions.RedisError:
                pass

    def _op_ping(self, frame) -> None:
        self.send_obj({"event": "pong"})

    def _op_auth(self, frame) -> None:
        account = account_for_key(self.settings, frame.api_key)
        if account is None:
            raise FrameError(frames.AUTH_FAILED, "Unknown API key.")
        self.account = account
        self.send_obj({"event": "authenticated", "accountId": account})

    def _check_symbol(self, symbol: str) -> None:
        if symbol not in self.settings.symbols:
            raise FrameError(frames.UNKNOWN_SYMBOL, f"Unknown symbol {symbol!r}.")

    def _sub_count(self) -> int:
        return (
            len(self.books) + len(self.trades)
            + len(self.status_symbols) + len(self.status_orders) + len(self.market)
        )

    def _room_for_one_more(self) -> None:
        if self._sub_count() >= self.limits.max_subs:
            raise FrameError(frames.TOO_MANY_SUBSCRIPTIONS,
                             f"At most {self.limits.max_subs} subscriptions per connection.")

    # ticker and candles (app.market_feed) ---------------------------------------------
    def _subscribe_market(self, frame) -> None:
        target = (frame.channel, frame.symbol, frame.interval)
        if target not in self.market:
            self._room_for_one_more()
        feed = get_feed(self.app)
        self.market = self.market | {target}
        feed.add(frame.symbol, self)
        self.send_obj(_ack("subscribed", frame))
        current = feed.current(*target)
        if current is not None:
            self.transport.send(text_frame(current))

    def _unsubscribe_market(self, frame) -> None:
        self.market = self.market - {(frame.channel, frame.symbol, frame.interval)}
        if not any(symbol == frame.symbol for _, symbol, _ in self.market):
            get_feed(self.app).remove(frame.symbol, self)
        self.send_obj(_ack("unsubscribed", frame))

    def _market_frames(self, batch, out: list) -> None:
        memo = batch.memo
        symbol = batch.symbol
        if batch.ticker is not None and ("ticker", symbol, None) in self.market:
            frame = memo.get("ticker")
            if frame is None:
                frame = memo.setdefault("ticker", text_frame(batch.ticker))
            out.append(frame)
        for interval, payloads in batch.candles.items():
            if ("candles", symbol, interval) in self.market:
                frame = memo.get(interval)
                if frame is None:
                    frame = memo.setdefault(interval, b"".join(map(text_frame, payloads)))
                out.append(frame)

    # subscriptions ----------------------------------------------------------------------
    def _register(self, target: str) -> None:
        if target not in self._registered:
            self._registered = self._registered | {target}
            self.hub.add_listener(target, self)

    def _unregister_unused(self) -> None:
        used = set(self.books) | set(self.trades) | self.status_symbols
        if self.status_orders:
            used.add(ALL)
        for target in self._registered - used:
            self._registered = self._registered - {target}
            self.hub.remove_listener(target, self)

    def _op_subscribe(self, frame) -> None:
        channel, symbol = frame.channel, frame.symbol
        if symbol is not None:
            self._check_symbol(symbol)
        if channel in MARKET_CHANNELS:
            return self._subscribe_market(frame)
        already = (
            (channel == "orderbook" and symbol in self.books)
            or (channel == "trade" and symbol in self.trades)
            or (channel == "order_status" and (
                symbol in self.status_symbols or frame.order_id in self.status_orders))
        )
        if not already:
            self._room_for_one_more()
        if channel == "order_status" and self.settings.auth_required and self.account is None:
            raise FrameError(frames.AUTH_FAILED, "order_status needs {'op': 'auth'} first.")
        self.hub.wait_ready(2.0)  # first use in this process: subscription confirmed
        if channel == "orderbook":
            self._subscribe_book(frame)
        elif channel == "trade":
            self._subscribe_trades(frame)
        elif frame.order_id is not None:
            self.status_orders = self.status_orders | {frame.order_id}
            self._register(ALL)
            self.send_obj(_ack("subscribed", frame))
        else:
            self.status_symbols = self.status_symbols | {symbol}
            self._register(symbol)
            self.send_obj(_ack("subscribed", frame))

    # Registered first, then the store is read: nothing published in between is missed
    # (commits meanwhile queue; the snapshot sorts them). A read that fails leaves the
    # client NOT subscribed and told so.
    def _subscribe_book(self, frame) -> None:
        symbol = frame.symbol
        book = self.books[symbol] = feeds.BookChain()  # subscribing again: a fresh snapshot
        self._register(symbol)
        try:
            data = self._read_book(symbol)
        except redis.exceptions.RedisError as err:
            self._subscribe_failed(err, self.books, frame)
            return
        self.send_obj(_ack("subscribed", frame))
        self.transport.send(book.snapshot_frame(symbol, data))

    def _subscribe_trades(self, frame) -> None:
        symbol = frame.symbol
        if symbol not in self.trades:
            self.trades[symbol] = 0  # the batches meanwhile queue
            self._register(symbol)
            try:
                self.trades[symbol] = relay.trade_sequence(self.redis, symbol)
            except redis.exceptions.RedisError as err:
                self._subscribe_failed(err, self.trades, frame)
                return
        self.send_obj(_ack("subscribed", frame))

    def _subscribe_failed(self, err, feed: dict, frame) -> None:
        feed.pop(frame.symbol, None)
        self._unregister_unused()
        self._store_error(err, f"Subscribing to {frame.channel} {frame.symbol} failed; retry.",
                          channel=frame.channel, symbol=frame.symbol)

    def _op_unsubscribe(self, frame) -> None:
        channel, symbol = frame.channel, frame.symbol
        if symbol is not None:
            self._check_symbol(symbol)
        if channel in MARKET_CHANNELS:
            return self._unsubscribe_market(frame)
        if channel == "orderbook":
            self.books.pop(symbol, None)
        elif channel == "trade":
            self.trades.pop(symbol, None)
        elif frame.order_id is not None:
            self.status_orders = self.status_orders - {frame.order_id}
        else:
            self.status_symbols = self.status_symbols - {symbol}
        self._unregister_unused()
        self.send_obj(_ack("unsubscribed", frame))

    # outbound ---------------------------------------------------------------------------
    def _read_book(self, symbol: str) -> dict:
        return relay.book_snapshot(self.redis, get_market(self.settings, symbol),
                                   self.limits.snapshot_levels)

    def _snapshot(self, symbol: str, book: feeds.BookChain) -> None:
        try:
            data = self._read_book(symbol)
        except redis.exceptions.RedisError as err:
            # Stay subscribed; the next commit or the hub's reconnect retries.
            book.chain = book.last_sent = None
            log.warning("ws: snapshot of %s failed: %s", symbol, err)
            self._store_error(err, f"Snapshot of {symbol} unavailable; retrying.",
                              channel="orderbook", symbol=symbol)
            return
        self.transport.send(book.snapshot_frame(symbol, data))

    def _after_reconnect(self) -> None:
        for symbol, book in list(self.books.items()):
            self._snapshot(symbol, book)
        for symbol in list(self.trades):
            if not self._backfill(symbol, None):
                return

    def _drain(self) -> None:
        out: list[bytes] = []
        queue = self.queue
        while queue and self._killed is None:
            batch = queue.pop(0)
            self._taken += len(batch.events)
            if type(batch) is MarketBatch:
                self._market_frames(batch, out)
            elif self.status_symbols or self.status_orders:
                # Piece by piece, so each order's messages keep their place among the
                # book updates and trades (feeds.runs).
                for piece in feeds.runs(batch):
                    self._feeds(piece, out)
                    self._orders(piece, out)
            else:
                self._feeds(batch, out)
            if len(out) >= 256:  # one write per batch of frames, not per frame
                self._flush(out)
        self._flush(out)

    def _flush(self, out: list[bytes]) -> None:
        if out:
            self.transport.send(b"".join(out))
            out.clear()

    def _advance(self, symbol: str, step: feeds.InStep) -> None:
        book = self.books.get(symbol)
        if book is not None:
            book.chain, book.last_sent = step.chain, step.last_sent
        if step.last_trade is not None and symbol in self.trades:
            self.trades[symbol] = step.last_trade

    def _feeds(self, batch, out: list) -> None:
        """The book and trade frames of ``batch``: shared when in step, else commit by
        commit (a gap, a snapshot mid-batch, a trade hole)."""
        symbol = batch.symbol
        if not batch.commits:
            return
        step = feeds.in_step(batch, self.books.get(symbol), self.trades.get(symbol))
        if step is not None:
            out.extend(step.frames)
            self._advance(symbol, step)
            return
        for event in batch.commits:
            book = self.books.get(symbol)
            if book is not None:
                frame = book.on_commit(symbol, event)
                if frame is feeds.SNAPSHOT_NEEDED:
                    self._flush(out)
                    self._snapshot(symbol, book)
                elif frame is not None:
                    out.append(frame)
            if symbol in self.trades and not self._trades(symbol, event, out):
                return

    def _trades(self, symbol: str, event: dict, out: list) -> bool:
        """False: a hole could not be filled and the connection is closing (1013)."""
        while True:
            sent, last, hole = feeds.step_trades(self.trades[symbol], event.get("trades"))
            out.extend(sent)
            self.trades[symbol] = last
            if hole is None:
                return True
            self._flush(out)
            if not self._backfill(symbol, hole.upto):
                return False  # closed (1013): never skip the hole

    def _backfill(self, symbol: str, upto: int | None) -> bool:
        """Send trades after the last one sent, up to ``upto`` (None: all), from the store.
        A read that keeps failing closes the connection (1013): False."""
        last = self.trades.get(symbol)
        if last is None:
            return True
        for pause in (*BACKFILL_RETRIES, None):
            try:
                missed = relay.trades_after(self.redis, symbol, last, upto)
                break
            except redis.exceptions.RedisError as err:
                log.warning("ws: trade backfill of %s failed: %s", symbol, err)
                if pause is None:
                    if isinstance(err, PoolExhausted):
                        from app import metrics

                        metrics.count_overloaded("ws")
                    self.kill(TRADES_UNAVAILABLE)
                    return False
                time.sleep(pause)
        sent = [feeds.trade_frame(t) for t in missed if t["sequence"] > last]
        if missed:
            last = max(last, missed[-1]["sequence"])
        if upto is not None and last < upto:
            # The stream no longer holds them (moved to the history archive): go on
            # after the hole rather than ask for it again.
            log.warning("ws: trades %s %d..%d not in the stream", symbol, last + 1, upto)
            last = upto
        self.trades[symbol] = last
        self._flush(sent)
        return True

    def _orders(self, batch, out: list) -> None:
        account = self.account
        if account is None and self.settings.auth_required:
            return
        out.extend(feeds.order_frames(batch, batch.symbol in self.status_symbols,
                                      self.status_orders, account))


def _ack(event: str, frame) -> dict:
    ack = {"event": event, "channel": frame.channel}
    if frame.order_id is not None:
        ack["orderId"] = frame.order_id
    else:
        ack["symbol"] = frame.symbol
    if frame.interval is not None:
        ack["interval"] = frame.interval
    return ack
