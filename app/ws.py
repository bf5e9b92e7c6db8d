"""``/ws``: the real-time relay (api.md §4, §5), on flask-sock.

One ``Connection`` per socket. Its own thread (the gunicorn worker thread running the
route) does all the work for it: reads client frames, reads snapshots, formats and
sends. The hub thread (``app.events``) only appends each batch of messages to the
connection's bounded deque and sets its wake event, or, when the connection is idle and
in step, writes the batch's frames itself without blocking; so a slow socket never
holds back the hub, the matcher or the other clients. Past ``ws_queue_max`` queued
messages the client is closed with 1008 "slow consumer". A batch's frames are built
once, by the first connection that needs them, and the same bytes go to every
connection that is in step; one write per connection per hub read.

orderbook: the listener is registered before the snapshot is read; queued commits at or
below the snapshot sequence are dropped, each later commit must chain (its
``prevSequence`` equals the last commit this connection accounted for) or the
connection sends a fresh snapshot. Commits with no book change advance the chain but
send nothing, so ``prevSequence`` in what the client receives is always the sequence of
the previous orderbook message it got for that symbol. The commits of one batch (one
hub read, app.events "Batching") go out as ONE update: each changed level with its
last total, the ``sequence`` of the last commit that changed a level (market-data
conflation; exact, since changes are totals).
trade: every trade once, in sequence; a hole (hub reconnect, missed message) is filled
from the trades stream ``keys.trades(S)``.
order_status: by symbol or by orderId; after ``auth`` only that account's orders. When
auth is required, order_status needs ``auth`` first.

Beyond api.md §4: acks ``{"event": "unsubscribed", ...}`` and ``{"event":
"authenticated", "accountId"}``; update ``changes`` also carry the level's ``orders``
count (as the snapshot levels do), so a client rebuilds exactly the REST book.
Tunables (app.config ``WS_*`` or a Settings field of the same lower-case name):
``DEFAULTS`` below. permessage-deflate is declined: frames are built once per batch and
the same bytes go to every client.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
import weakref
from collections import deque

import orjson
import redis
from flask import Flask, current_app, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed

from app.auth import account_for_key
from app.events import ALL, get_hub
from app.market_feed import MarketBatch, get_feed
from app.ratelimit import ConnectionSlots, FrameBudget, config_for
from schemas import ws as frames
from schemas.checksum import checksum_of_levels
from schemas.markets import get_market
from schemas.ws import FrameError
from store import keys, read
from store.pool import PoolExhausted

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 64 * 1024  # a larger client frame gets FRAME_TOO_LARGE, socket stays open
HARD_FRAME_BYTES = 1024 * 1024  # a larger one closes the socket (1009), never buffered
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
GOING_AWAY = (1001, "server shutting down")

sock = Sock()
_connections: weakref.WeakSet = weakref.WeakSet()
_connections_lock = threading.Lock()


def _option(app: Flask, name: str):
    """app.config["WS_..."] first, then a Settings field of that name, then the default."""
    settings = app.config["SETTINGS"]
    return app.config.get(name.upper(), getattr(settings, name, DEFAULTS[name]))


def init_app(app: Flask) -> None:
    app.config.setdefault(
        "SOCK_SERVER_OPTIONS",
        {
            "ping_interval": _option(app, "ws_ping_interval"),
            "max_message_size": HARD_FRAME_BYTES,
        },
    )
    sock.init_app(app)

    @app.before_request
    def _no_permessage_deflate():
        # Frames are small JSON sent to many clients: compressing each one per client
        # costs more CPU than it saves, and uncompressed frames are built once per
        # message and shared. Hide the client's offer from simple-websocket's handshake.
        if request.path == "/ws":
            request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)


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


# -- helpers ----------------------------------------------------------------------------
def _text_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented server text frame (RFC 6455 §5.2)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


class _LockedSocket:
    """The raw socket, with whole-buffer sends serialized between the connection's thread,
    simple-websocket's reader thread (which answers pings and sends keepalives) and the
    hub thread (``send_nowait``)."""

    def __init__(self, raw):
        self._raw = raw
        self._fd = raw.fileno()
        self._lock = threading.Lock()
        self._rest = b""  # the unsent tail of a partial send_nowait: goes out first

    def send(self, data) -> int:
        with self._lock:
            if self._rest:
                self._raw.sendall(self._rest)
                self._rest = b""
            # One send() usually takes it all; gevent's sendall() would first ask the
            # kernel for SO_SNDBUF, a second syscall on every write.
            sent = self._raw.send(data)
            if sent < len(data):
                self._raw.sendall(memoryview(data)[sent:])
        return len(data)

    sendall = send

    def send_nowait(self, data: bytes) -> bool:
        """Write without ever waiting (for the hub thread). False, nothing written, when
        another thread is sending, a tail is pending or the kernel buffer is full. The
        fd is non-blocking (the socket has a timeout), so os.write cannot block."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if self._rest:
                return False
            try:
                sent = os.write(self._fd, data)
            except OSError:  # full (EAGAIN) or broken: the connection's thread finds out
                return False
            self._rest = data[sent:]
            return True
        finally:
            self._lock.release()

    @property
    def pending(self) -> bool:
        return bool(self._rest)

    def flush(self) -> None:
        if self._rest:
            self.send(b"")

    def recv(self, n):
        return self._raw.recv(n)

    def fileno(self):
        return self._raw.fileno()

    def close(self):
        self._raw.close()

    def __getattr__(self, name):
        return getattr(self._raw, name)


class _Book:
    __slots__ = ("chain", "last_sent")

    def __init__(self):
        self.chain: int | None = None  # last commit accounted for (None: need a snapshot)
        self.last_sent: int | None = None  # sequence of the last orderbook message sent


# -- the connection ---------------------------------------------------------------------
class Connection:
    def __init__(self, ws, app: Flask):
        self.ws = ws
        self.app = app
        self.settings = app.config["SETTINGS"]
        self.hub = get_hub(app)
        self.queue_max = int(_option(app, "ws_queue_max"))
        self.max_subs = int(_option(app, "ws_max_subscriptions"))
        self.snapshot_levels = int(_option(app, "ws_snapshot_levels"))
        self._wake = ws.event  # set by simple-websocket on inbound frames, by us on events
        self.queue: deque = deque()  # app.events.Batch
        # Messages queued (hub thread) and taken (own thread): each counter has one
        # writer, so the difference, the backlog, needs no lock.
        self._queued = self._taken = 0
        # Held by our own thread while it handles anything; the hub writes directly
        # (``_send_now``) only when it can take it.
        self._busy = threading.Lock()
        self._killed: tuple[int, str] | None = None
        self._resync = False
        self.books: dict[str, _Book] = {}
        self.trades: dict[str, int] = {}  # symbol -> last trade sequence sent
        self.status_symbols: set[str] = set()
        self.status_orders: set[str] = set()
        self.market: set[tuple] = set()  # (ticker|candles, symbol, interval or None)
        limits = config_for(app)  # app.ratelimit: ws_frames per connection, ws_connections
        self.frame_budget = FrameBudget(limits.ws_frames) if limits.enabled else None
        self.conn_id, self.ip = secrets.token_hex(8), None
        self._slots, self._slot_renewed = None, time.monotonic()
        self.account: str | None = None
        self._registered: set[str] = set()  # hub registrations (symbols, ALL)
        self._redis = None
        raw = ws.sock
        try:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, int(_option(app, "ws_sndbuf")))
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            raw.settimeout(float(_option(app, "ws_send_timeout")))
        except OSError:
            pass
        ws.sock = _LockedSocket(raw)

    # hub thread -----------------------------------------------------------------------
    def on_batches(self, batches) -> bool:
        if self._killed is not None:
            return False
        wanted = [b for b in batches if self._wants(b)]
        if not wanted:
            return False
        if not self.queue and self._send_now(wanted):
            return self.ws.sock.pending  # a partial write: our thread sends the rest
        for batch in wanted:
            self._queued += len(batch.events)
            self.queue.append(batch)  # no per-listener allocation: the hub's batch itself
        if self._queued - self._taken > self.queue_max:
            self.kill(SLOW_CONSUMER)
            return False
        return True

    def _send_now(self, batches) -> bool:
        """The common case, done on the hub thread: the connection is idle and in step
        with the stream, so write the batches' shared frames without waking its thread.
        False (nothing done) whenever anything else is needed; the batches are queued."""
        if self._resync or self.status_symbols or self.status_orders:
            return False
        if not self._busy.acquire(blocking=False):
            return False  # our thread is handling something (it drains the queue next)
        try:
            frames, advances = [], []
            for batch in batches:  # one symbol each: their steps are independent
                step = self._in_step(batch)
                if step is None:
                    return False
                frames += step[0]
                advances.append(step[1])
            if frames and not self.ws.sock.send_nowait(b"".join(frames)):
                return False
            for advance in advances:
                advance()
            return True
        finally:
            self._busy.release()

    def wake(self) -> None:
        if not self._wake.is_set():  # set() takes a lock; skip it when already set
            self._wake.set()

    def on_resync(self) -> None:
        self._resync = True
        self._wake.set()

    def kill(self, reason: tuple[int, str]) -> None:
        if self._killed is None:
            self._killed = reason
        self.queue.clear()
        self._wake.set()

    def _wants(self, batch) -> bool:
        symbol = batch.symbol
        if batch.commits and (symbol in self.books or symbol in self.trades):
            return True
        return bool(self.status_orders) or symbol in self.status_symbols

    # own thread -----------------------------------------------------------------------
    def run(self) -> None:
        self.ip = request.remote_addr or "unknown"
        if not self._admit():
            return
        with _connections_lock:
            _connections.add(self)
        try:
            self._loop()
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
            self._registered.clear()
            if self.market:
                feed = get_feed(self.app)
                for _, symbol, _ in self.market:
                    feed.remove(symbol, self)

    def _loop(self) -> None:
        ws = self.ws
        while True:
            self._wake.wait(30)
            self._wake.clear()
            self._renew_slot()
            with self._busy:
                if not self._step(ws):
                    return

    def _step(self, ws) -> bool:
        """Everything there is to do now; False: the connection is over."""
        try:
            ws.sock.flush()  # the tail of a partial write from the hub goes first
        except OSError:
            ws.connected = False
        while ws.input_buffer and self._killed is None:
            self._handle(ws.input_buffer.pop(0))
        if self._killed is not None:
            code, message = self._killed
            if ws.connected:
                try:
                    ws.close(reason=code, message=message)
                except OSError:
                    ws.connected = False
            return False
        if not ws.connected:
            return False
        if self._resync:
            self._resync = False
            self._after_reconnect()
        self._drain()
        return True

    @property
    def redis(self):
        if self._redis is None:
            from app.redis_client import get_redis

            with self.app.app_context():
                self._redis = get_redis()
        return self._redis

    def send_obj(self, obj: dict) -> None:
        self._send_raw(_text_frame(orjson.dumps(obj)))

    def _send_raw(self, data: bytes) -> None:
        try:
            self.ws.sock.sendall(data)
        except OSError as err:
            # Blocked past ws_send_timeout (or the peer vanished): the stream may hold
            # half a frame, so no close frame can follow. Drop the connection.
            log.debug("ws send failed (%s); dropping connection", err)
            self.ws.connected = False
            try:
                self.ws.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            raise ConnectionAbortedError from err

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
    def _handle(self, data) -> None:
        if self.frame_budget is not None and not self._within_budget():
            return
        if len(data) > MAX_FRAME_BYTES:
            self._error(frames.FRAME_TOO_LARGE, f"A frame is at most {MAX_FRAME_BYTES} bytes.")
            return
        try:
            raw = orjson.loads(data)
        except orjson.JSONDecodeError:
            self._error(frames.BAD_FRAME, "A frame is one JSON object.")
            return
        try:
            frame = frames.parse_frame(raw)
            getattr(self, f"_op_{frame.op}")(frame)
        except FrameError as err:
            self._error(err.code, err.message)
        except redis.exceptions.RedisError as err:
            self._store_error(err, "The order store is unreachable or busy; retry.")

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
        self.ws.close(reason=TOO_MANY_CONNECTIONS_CLOSE[0], message=TOO_MANY_CONNECTIONS_CLOSE[1])
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

    # ticker and candles (app.market_feed) ---------------------------------------------
    def _subscribe_market(self, frame) -> None:
        target = (frame.channel, frame.symbol, frame.interval)
        if target not in self.market and self._sub_count() >= self.max_subs:
            raise FrameError(frames.TOO_MANY_SUBSCRIPTIONS,
                             f"At most {self.max_subs} subscriptions per connection.")
        feed = get_feed(self.app)
        self.market.add(target)
        feed.add(frame.symbol, self)
        ack = {"event": "subscribed", "channel": frame.channel, "symbol": frame.symbol}
        if frame.interval is not None:
            ack["interval"] = frame.interval
        self.send_obj(ack)
        current = feed.current(*target)
        if current is not None:
            self._send_raw(_text_frame(current))

    def _unsubscribe_market(self, frame) -> None:
        self.market.discard((frame.channel, frame.symbol, frame.interval))
        if not any(symbol == frame.symbol for _, symbol, _ in self.market):
            get_feed(self.app).remove(frame.symbol, self)
        ack = {"event": "unsubscribed", "channel": frame.channel, "symbol": frame.symbol}
        if frame.interval is not None:
            ack["interval"] = frame.interval
        self.send_obj(ack)

    def on_market(self, batch) -> None:
        """A MarketBatch from the feed thread: queued for our own thread to send."""
        if self._killed is None:
            self.queue.append(batch)
            self.wake()

    def _market_frames(self, batch, out: list) -> None:
        memo = batch.memo
        symbol = batch.symbol
        if batch.ticker is not None and ("ticker", symbol, None) in self.market:
            frame = memo.get("ticker")
            if frame is None:
                frame = memo["ticker"] = _text_frame(batch.ticker)
            out.append(frame)
        for interval, payloads in batch.candles.items():
            if ("candles", symbol, interval) in self.market:
                frame = memo.get(interval)
                if frame is None:
                    frame = memo[interval] = b"".join(map(_text_frame, payloads))
                out.append(frame)

    def _register(self, target: str) -> None:
        if target not in self._registered:
            self._registered.add(target)
            self.hub.add_listener(target, self)

    def _unregister_unused(self) -> None:
        used = set(self.books) | set(self.trades) | self.status_symbols
        if self.status_orders:
            used.add(ALL)
        for target in self._registered - used:
            self._registered.discard(target)
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
        if not already and self._sub_count() >= self.max_subs:
            raise FrameError(
                frames.TOO_MANY_SUBSCRIPTIONS,
                f"At most {self.max_subs} subscriptions per connection.",
            )
        if channel == "order_status" and self.settings.auth_required and self.account is None:
            raise FrameError(frames.AUTH_FAILED, "order_status needs {'op': 'auth'} first.")
        ack = {"event": "subscribed", "channel": channel}
        if frame.order_id is not None:
            ack["orderId"] = frame.order_id
        else:
            ack["symbol"] = symbol
        self.hub.wait_ready(2.0)  # first use in this process: subscription confirmed
        if channel in ("orderbook", "trade"):
            # Registered first, then the store is read: nothing published in between is
            # missed. A read that fails leaves the client NOT subscribed and told so.
            if channel == "orderbook":  # commits meanwhile queue (the snapshot sorts them)
                book = self.books.get(symbol) or _Book()
                book.chain = book.last_sent = None  # subscribing again: a fresh snapshot
                self.books[symbol] = book
            self._register(symbol)
            try:
                if channel == "orderbook":
                    data = self._read_book(symbol)
                elif symbol not in self.trades:
                    last = self.redis.get(keys.trade_seq(symbol))
                    self.trades[symbol] = int(last) if last else 0
            except redis.exceptions.RedisError as err:
                (self.books if channel == "orderbook" else self.trades).pop(symbol, None)
                self._unregister_unused()
                self._store_error(err, f"Subscribing to {channel} {symbol} failed; retry.",
                                  channel=channel, symbol=symbol)
                return
            self.send_obj(ack)
            if channel == "orderbook":
                self._send_snapshot(symbol, book, data)
        elif frame.order_id is not None:
            self.status_orders.add(frame.order_id)
            self._register(ALL)
            self.send_obj(ack)
        else:
            self.status_symbols.add(symbol)
            self._register(symbol)
            self.send_obj(ack)

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
            self.status_orders.discard(frame.order_id)
        else:
            self.status_symbols.discard(symbol)
        self._unregister_unused()
        ack = {"event": "unsubscribed", "channel": channel}
        if frame.order_id is not None:
            ack["orderId"] = frame.order_id
        else:
            ack["symbol"] = symbol
        self.send_obj(ack)

    # outbound ---------------------------------------------------------------------------
    def _read_book(self, symbol: str) -> dict:
        return read.orderbook(self.redis, get_market(self.settings, symbol),
                              self.snapshot_levels)

    def _snapshot(self, symbol: str, book: _Book) -> None:
        try:
            data = self._read_book(symbol)
        except redis.exceptions.RedisError as err:
            # Stay subscribed; the next commit or the hub's reconnect retries.
            book.chain = book.last_sent = None
            log.warning("ws: snapshot of %s failed: %s", symbol, err)
            self._store_error(err, f"Snapshot of {symbol} unavailable; retrying.",
                              channel="orderbook", symbol=symbol)
            return
        self._send_snapshot(symbol, book, data)

    def _send_snapshot(self, symbol: str, book: _Book, data: dict) -> None:
        sequence = int(data["sequence"])
        book.chain = book.last_sent = sequence
        self.send_obj({
            "event": "orderbook", "type": "snapshot", "symbol": symbol,
            "sequence": sequence, "bids": data["bids"], "asks": data["asks"],
            "checksum": checksum_of_levels(data["bids"], data["asks"]),
        })

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
            batch = queue.popleft()
            self._taken += len(batch.events)
            self._process(batch, out)
            if len(out) >= 256:  # one write per batch of frames, not per frame
                self._flush(out)
        self._flush(out)

    def _flush(self, out: list[bytes]) -> None:
        if out:
            self._send_raw(b"".join(out))
            out.clear()

    def _process(self, batch, out: list) -> None:
        if type(batch) is MarketBatch:
            return self._market_frames(batch, out)
        symbol = batch.symbol
        step = self._in_step(batch)
        if step is not None:
            frames, advance = step
            out.extend(frames)
            advance()
        elif batch.commits:  # a gap, a snapshot mid-batch, a trade hole: commit by commit
            book = self.books.get(symbol)
            for event in batch.commits:
                if book is not None:
                    self._book_update(symbol, book, event, out)
                if symbol in self.trades:
                    self._trades(symbol, event, out)
        if self.status_symbols or self.status_orders:
            for event in batch.events:
                if event.get("orders"):
                    self._orders(symbol, batch, event, out)

    # The fast path: a connection in step with the stream (the usual case) takes the
    # frames the first such connection built for the whole batch, so the per-client work
    # is a few lookups per batch, not per message.
    def _in_step(self, batch):
        """(frames, advance) for the book and trade channels when this connection is in
        step with ``batch``: no snapshot, backfill or per-commit work needed. Changes
        nothing until ``advance()`` is called. None otherwise."""
        symbol = batch.symbol
        if not batch.commits:
            return [], _nothing
        frames = []
        book = self.books.get(symbol)
        merged = None
        if book is not None:
            merged = _merged_book(batch)
            if merged is None or book.chain != merged.prev:
                return None
            if merged.changes:
                frames.append(_book_frame(batch, merged, book.last_sent))
        run = None
        if symbol in self.trades:
            run = _trade_run(batch)
            if run is None:
                return None
            if run.first is not None:
                if self.trades[symbol] != run.first - 1:
                    return None
                frames.append(run.frames)

        def advance():
            if merged is not None:
                book.chain = merged.sequence
                if merged.changes:
                    book.last_sent = merged.changed_at
            if run is not None and run.first is not None:
                self.trades[symbol] = run.last

        return frames, advance

    def _book_update(self, symbol: str, book: _Book, event: dict, out: list) -> None:
        sequence, prev = event.get("sequence"), event.get("prevSequence")
        if book.chain is None or prev != book.chain:
            if book.chain is not None and sequence <= book.chain:
                return  # already in the snapshot
            # No snapshot yet (store was down) or a gap: a fresh snapshot covers it.
            self._flush(out)
            self._snapshot(symbol, book)
            return
        book.chain = sequence
        changes = event.get("changes")
        if not changes:
            return  # nothing for the book; the chain moved on silently
        out.append(_text_frame(orjson.dumps({
            "event": "orderbook", "type": "update", "symbol": symbol,
            "sequence": sequence, "prevSequence": book.last_sent, "changes": changes,
            "checksum": event.get("checksum"),
        })))
        book.last_sent = sequence

    def _trades(self, symbol: str, event: dict, out: list) -> None:
        for trade in event.get("trades") or ():
            seq = trade.get("sequence")
            last = self.trades.get(symbol)
            if last is None or not isinstance(seq, int) or seq <= last:
                continue
            if seq > last + 1:
                self._flush(out)
                if not self._backfill(symbol, seq - 1):
                    return  # closed (1013): never skip the hole
                if self.trades.get(symbol, seq) >= seq:
                    continue
            out.append(_trade_frame(trade))
            self.trades[symbol] = seq

    def _backfill(self, symbol: str, upto: int | None) -> bool:
        """Send trades after the last one sent, up to ``upto`` (None: all), from the stream.
        A read that keeps failing closes the connection (1013): False."""
        last = self.trades.get(symbol)
        if last is None:
            return True
        for pause in (*BACKFILL_RETRIES, None):
            try:
                entries = self.redis.xrange(
                    keys.trades(symbol),
                    min=keys.stream_id(last + 1),
                    max=keys.stream_id(upto) if upto is not None else "+",
                )
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
        frames_out = []
        for entry_id, fields in entries:
            trade = fields.get(b"t") or fields.get("t")
            if not trade:
                continue
            if isinstance(trade, str):
                trade = trade.encode()
            frames_out.append(_text_frame(b'{"event":"trade",' + trade.lstrip()[1:]))
            self.trades[symbol] = keys.sequence_of(entry_id)
        if frames_out:
            self._flush(frames_out)
        return True

    def _orders(self, symbol: str, batch, event: dict, out: list) -> None:
        by_symbol = symbol in self.status_symbols
        account = self.account
        if account is None and self.settings.auth_required:
            return
        for order in event["orders"]:
            if not (by_symbol or order.get("id") in self.status_orders):
                continue
            if account is not None and order.get("accountId") != account:
                continue
            key = ("o", id(order))  # the order dict lives as long as the batch
            frame = batch.memo.get(key)
            if frame is None:
                frame = batch.memo[key] = _text_frame(
                    orjson.dumps({"event": "order_status", **order}))
            out.append(frame)


# -- what a batch means for every connection, worked out once (memoized on the batch) ----
class _MergedBook:
    """A batch's commits as one orderbook update: valid when they chain one to the next.
    ``changes`` keeps each level's last total (a later change of a level replaces the
    earlier one, which is exact because changes carry new totals, not deltas)."""

    __slots__ = ("prev", "sequence", "changed_at", "changes", "checksum")

    def __init__(self, prev, sequence, changed_at, changes, checksum=None):
        self.prev = prev  # prevSequence of the first commit
        self.sequence = sequence  # the last commit
        self.changed_at = changed_at  # the last commit that changed a level
        self.changes = changes
        self.checksum = checksum  # of the book after changed_at (the worker's)


def _merged_book(batch) -> _MergedBook | None:
    memo = batch.memo
    if "book" in memo:
        return memo["book"]
    merged = None
    commits = batch.commits
    prev = commits[0].get("prevSequence")
    chained = isinstance(prev, int)
    last, changed_at, levels, checksum = prev, None, {}, None
    for event in commits:
        sequence = event.get("sequence")
        if not (chained and isinstance(sequence, int) and event.get("prevSequence") == last):
            chained = False
            break
        last = sequence
        for change in event.get("changes") or ():
            levels[(change.get("side"), change.get("price"))] = change
            changed_at = sequence
            checksum = event.get("checksum")
    if chained:
        merged = _MergedBook(prev, last, changed_at, list(levels.values()), checksum)
    memo["book"] = merged
    return merged


class _TradeRun:
    __slots__ = ("first", "last", "frames")

    def __init__(self, first: int | None, last: int | None, frames: bytes):
        self.first, self.last, self.frames = first, last, frames  # first None: no trades


_NO_TRADES = _TradeRun(None, None, b"")


def _trade_run(batch) -> _TradeRun | None:
    """The batch's trades as one run of frames; None when their sequences have a hole."""
    memo = batch.memo
    if "trades" in memo:
        return memo["trades"]
    trades = [t for event in batch.commits for t in event.get("trades") or ()]
    run = _NO_TRADES
    if trades:
        seqs = [t.get("sequence") for t in trades]
        first = seqs[0]
        if isinstance(first, int) and seqs == list(range(first, first + len(seqs))):
            run = _TradeRun(first, seqs[-1], b"".join(map(_trade_frame, trades)))
        else:
            run = None
    memo["trades"] = run
    return run


def _book_frame(batch, merged: _MergedBook, last_sent: int | None) -> bytes:
    key = ("book", last_sent)  # connections in step share last_sent, hence the frame
    frame = batch.memo.get(key)
    if frame is None:
        frame = batch.memo[key] = _text_frame(orjson.dumps({
            "event": "orderbook", "type": "update", "symbol": batch.symbol,
            "sequence": merged.changed_at, "prevSequence": last_sent,
            "changes": merged.changes, "checksum": merged.checksum,
        }))
    return frame


def _nothing() -> None:
    pass


def _trade_frame(trade: dict) -> bytes:
    return _text_frame(orjson.dumps({"event": "trade", **trade}))


@sock.route("/ws")
def websocket(ws) -> None:
    try:
        Connection(ws, current_app._get_current_object()).run()
    except (ConnectionAbortedError, ConnectionClosed):
        pass
    except Exception:  # never let Flask write an HTTP error onto the socket
        log.exception("ws connection failed")
