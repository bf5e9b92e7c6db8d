"""The socket side of ``/ws``: the only code that knows the WebSocket protocol (RFC 6455):
the opening handshake, framing (wsproto parses what clients send; server frames are
built here), pings, the close handshake and the non-blocking write.

One greenlet per socket (one thread under gthread): the connection's own, the one that
runs the route. ``wait()`` sleeps until the socket is readable, a ``wake()`` from another
thread, the next ping or the timeout; it then reads what arrived without blocking,
answers pings and closes, sends a ping every ``ping_interval`` (a client that has not
answered the last one is closed 1008), and leaves complete client messages for
``take_inbound()``. Two threads send on the socket: the connection's own (``send``) and
the event hub's (``send_nowait``); a lock keeps their frames from interleaving.

Why not simple-websocket (flask-sock's server, used before): it reads every socket on a
thread of its own, with a selector per socket for its pings: a second greenlet, with its
own saved C stack and Python frame stack, per idle socket. Reading on the connection's
greenlet instead took web RSS per idle subscribed socket from 55.7-56.5 KiB to 28.6-34.5
(``python -m bench.ws_bench --idle 2000``, interleaved runs; ``python -m bench.ws_memory``
says where it goes; README "Many clients at once").
"""

from __future__ import annotations

import binascii
import logging
import os
import socket
import threading
import time
from collections import deque

from flask import Flask, Response, request
from wsproto.connection import Connection as _Protocol
from wsproto.connection import ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.utilities import LocalProtocolError, generate_accept_token

log = logging.getLogger(__name__)

HARD_FRAME_BYTES = 1024 * 1024  # a larger client message closes the socket (1009)
MESSAGE_TOO_BIG = (1009, "Message is too big")
PING_TIMEOUT = (1008, "Ping/Pong timeout")
RECV_BYTES = 16384  # one read; client frames are small (ops), a 1 MiB one takes 64
READS_PER_WAIT = 16  # then the others get their turn (the socket is still readable)
# After our close frame, how long to read on for the client's (RFC 6455 7.1.1). Closing
# the socket at once, with client bytes unread, makes the kernel send a reset, and a
# client that was still sending (the rest of an over-long message, a burst of ops)
# could lose our close frame, and its reason, to that reset.
CLOSE_REPLY_SECONDS = 1.0
_PING = b"\x89\x00"  # an unmasked ping frame without payload


def init_app(app: Flask, handler) -> None:
    """``GET /ws`` upgrades and calls ``handler(raw_socket)`` for the socket's life."""
    app.add_url_rule("/ws", "ws", lambda: _upgrade(handler), websocket=True)


def _upgrade(handler):
    environ = request.environ
    raw = environ.get("gunicorn.socket")
    if raw is None:  # only gunicorn hands the socket over (Procfile, tests, benches)
        return Response("WebSocket needs the gunicorn server", 500)
    if request.headers.get("Sec-WebSocket-Version") != "13":
        return Response("Sec-WebSocket-Version 13 only", 426,
                        {"Sec-WebSocket-Version": "13"})
    key = request.headers.get("Sec-WebSocket-Key", "").encode()
    try:
        valid = len(binascii.a2b_base64(key, strict_mode=True)) == 16
    except binascii.Error:
        valid = False
    if not valid:
        return Response("bad Sec-WebSocket-Key", 400)
    # No Sec-WebSocket-Extensions: permessage-deflate is declined. Frames are small JSON
    # sent to many clients: compressing each per client costs more CPU than it saves,
    # and uncompressed frames are built once per message and shared.
    raw.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                + generate_accept_token(key) + b"\r\n\r\n")
    handler(raw)
    return _Upgraded()


class _Upgraded(Response):
    """The socket was the response: gunicorn must write nothing and close it. Raising
    StopIteration from the WSGI response is gunicorn's way (as flask-sock did)."""

    def __call__(self, environ, start_response):
        raise StopIteration


def text_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented server text frame (RFC 6455 §5.2).

    >>> text_frame(b'{"event":"pong"}')[:2]
    b'\\x81\\x10'
    """
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


def _gevent() -> bool:
    try:
        from gevent import monkey
    except ImportError:
        return False
    return monkey.is_module_patched("socket")


class Transport:
    """One WebSocket, as the connection sees it: frames out, client messages in.
    ``Transport.open`` picks the gevent or the threads flavour of the wait."""

    __slots__ = ("_raw", "_fd", "_lock", "_rest", "_proto", "_inbound", "_message",
                 "_message_len", "_ping_interval", "_next_ping", "_pong_due", "connected")

    @staticmethod
    def open(raw, *, sndbuf: int, send_timeout: float, ping_interval: float) -> Transport:
        kind = _GreenTransport if _gevent() else _ThreadTransport
        return kind(raw, sndbuf, send_timeout, ping_interval)

    def __init__(self, raw, sndbuf: int, send_timeout: float, ping_interval: float):
        try:
            # SO_SNDBUF bounds the kernel memory a slow client can pin; TCP_NODELAY: an
            # event goes out when written, not 40 ms later; the timeout makes the fd
            # non-blocking (send_nowait) and bounds a blocked send (ws_send_timeout).
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            raw.settimeout(send_timeout)
        except OSError:
            pass
        self._raw = raw
        self._fd = raw.fileno()
        self._lock = threading.Lock()  # whole-buffer sends: own thread vs the hub's
        self._rest = b""  # the unsent tail of a partial send_nowait: goes out first
        self._proto = _Protocol(ConnectionType.SERVER)
        # Complete client messages (str or bytes), own thread only. A list: an empty deque
        # is 760 B (its first block), an empty list 56 B (tracemalloc, 1,000 sockets).
        self._inbound: list = []
        self._message = None  # the parts of a fragmented message being received
        self._message_len = 0
        self._ping_interval = ping_interval
        self._next_ping = time.monotonic() + ping_interval
        self._pong_due = False  # a ping went out and no pong came back yet
        self.connected = True

    # the connection's own thread ---------------------------------------------------------
    def wait(self, timeout: float) -> None:
        """Until a client frame, a ``wake()``, the next ping or ``timeout``; then read
        what arrived (``take_inbound``) and ping if it is time."""
        if not self.connected:
            return
        interval = self._ping_interval
        if interval:
            timeout = max(0.0, min(timeout, self._next_ping - time.monotonic()))
        self._wait(timeout)
        self._receive()
        if interval and self.connected and time.monotonic() >= self._next_ping:
            self._ping()

    def take_inbound(self):
        """The next complete client message (str or bytes), or None."""
        inbound = self._inbound
        return inbound.pop(0) if inbound else None

    def send(self, data: bytes) -> None:
        """Write whole frames, blocking up to the send timeout. Raises
        ``ConnectionAbortedError`` (connection dropped) when that fails."""
        try:
            self._send(data)
        except OSError as err:
            # Blocked past ws_send_timeout (or the peer vanished): the stream may hold
            # half a frame, so no close frame can follow. Drop the connection.
            log.debug("ws send failed (%s); dropping connection", err)
            self.abort()
            raise ConnectionAbortedError from err

    @property
    def pending(self) -> bool:
        """A partial ``send_nowait`` left a tail for ``flush``."""
        return bool(self._rest)

    def flush(self) -> bool:
        """Send the tail a partial ``send_nowait`` left; False: the socket broke."""
        try:
            if self._rest:
                self._send(b"")
            return True
        except OSError:
            self.connected = False
            return False

    def close(self, code: int, message: str) -> None:
        """A close frame with ``code`` and ``message`` (once; a broken socket is dropped),
        then the client's bytes are read and dropped until its close frame comes back
        (at most ``CLOSE_REPLY_SECONDS``)."""
        if self.connected:
            self.connected = False
            try:
                self._send(self._proto.send(CloseConnection(code, message)))
            except (OSError, LocalProtocolError):
                return
            self._await_close_reply(CLOSE_REPLY_SECONDS)

    def _await_close_reply(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._wait(left)
            data = self._read()
            if data is None:
                return
            if not data:
                continue
            self._proto.receive_data(data)
            if any(type(event) is CloseConnection for event in self._proto.events()):
                return

    def abort(self) -> None:
        self.connected = False
        try:
            self._raw.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def release(self) -> None:
        """The route is over (the server closes the socket itself)."""
        self.connected = False

    # the hub thread ----------------------------------------------------------------------
    def send_nowait(self, data: bytes) -> bool:
        """Write whole frames now or not at all, never waiting. False, nothing written,
        when another thread is sending, a tail is pending or the kernel buffer is full.
        The fd is non-blocking (the socket has a timeout), so os.write cannot block."""
        lock = self._lock
        if not lock.acquire(blocking=False):
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
            lock.release()

    def wake(self) -> None:
        """End a ``wait()``, from any thread."""
        raise NotImplementedError

    # inside ------------------------------------------------------------------------------
    def _wait(self, timeout: float) -> None:
        raise NotImplementedError

    def _read(self) -> bytes | None:
        """What the socket holds now (b"": nothing yet; None: closed or broken)."""
        raise NotImplementedError

    def _send(self, data) -> None:
        with self._lock:
            if self._rest:
                self._raw.sendall(self._rest)
                self._rest = b""
            self._raw.sendall(data)

    def _receive(self) -> None:
        for _ in range(READS_PER_WAIT):
            if not self.connected:
                return
            data = self._read()
            if data is None:  # the peer went away without a close frame
                self.connected = False
                return
            if not data:
                return
            self._proto.receive_data(data)
            self._handle_events()

    def _handle_events(self) -> None:
        for event in self._proto.events():
            kind = type(event)
            if kind is TextMessage or kind is BytesMessage:
                self._message_part(event)
            elif kind is Ping:
                self._send_control(event.response())
            elif kind is Pong:
                self._pong_due = False
            elif kind is CloseConnection:
                # The client's close (answered with its code), or a protocol error the
                # parser found (1002, 1007: closed with that code).
                self._send_control(CloseConnection(event.code, event.reason))
                self.connected = False
            if not self.connected:
                return

    def _message_part(self, event) -> None:
        self._message_len += len(event.data)
        if self._message_len > HARD_FRAME_BYTES:
            self.close(*MESSAGE_TOO_BIG)
            return
        if event.message_finished and self._message is None:
            self._inbound.append(event.data)
            self._message_len = 0
            return
        if self._message is None:
            self._message = []
        self._message.append(event.data)
        if event.message_finished:
            parts, self._message, self._message_len = self._message, None, 0
            self._inbound.append(("" if type(event) is TextMessage else b"").join(parts))

    def _send_control(self, event) -> None:
        try:
            self._send(self._proto.send(event))
        except (OSError, LocalProtocolError):
            self.connected = False

    def _ping(self) -> None:
        if self._pong_due:
            self.close(*PING_TIMEOUT)
            return
        self._pong_due = True
        self._next_ping = time.monotonic() + self._ping_interval
        try:
            self._send(_PING)
        except OSError:
            self.connected = False


class _GreenTransport(Transport):
    """gevent: the connection's greenlet waits on one event, set by ``wake()`` or by a
    read watcher on the socket (no second greenlet). The watcher stays armed across
    waits while the socket is quiet and is disarmed when it fires: a wake-up from the hub
    then costs no read and no epoll change. Not measured alone; with it, fan-out web CPU
    per event was 2.87-2.97 us against 2.98-3.04 with simple-websocket (``python -m
    bench.ws_bench``, 1000 clients, interleaved runs)."""

    __slots__ = ("_io", "_event")

    def __init__(self, raw, *args):
        super().__init__(raw, *args)
        from gevent import get_hub
        from gevent.event import Event

        self._io = get_hub().loop.io(self._fd, 1)  # 1: readable
        self._event = Event()

    def wake(self) -> None:
        self._event.set()

    def _wait(self, timeout: float) -> None:
        if not self._io.active:
            self._io.start(self._readable)
        self._event.wait(timeout)
        self._event.clear()

    def _readable(self) -> None:  # the event loop's callback
        self._io.stop()
        self._event.set()

    def _read(self) -> bytes | None:
        if self._io.active:  # armed, so it has not fired: a wake-up, not the socket
            return b""
        try:
            data = os.read(self._fd, RECV_BYTES)
        except BlockingIOError:
            return b""
        except OSError:
            return None
        if len(data) < RECV_BYTES:  # drained: wait (and re-arm) before reading again
            self._io.start(self._readable)
        return data or None

    def release(self) -> None:
        super().release()
        self._io.close()


class _ThreadTransport(Transport):
    """Threads (gthread): a reader thread per socket does the blocking reads and hands
    the bytes over; the waits stay the connection thread's own."""

    __slots__ = ("_chunks", "_event", "_released")

    def __init__(self, raw, *args):
        super().__init__(raw, *args)
        self._chunks: deque = deque()  # bytes read; None: the socket closed
        self._event = threading.Event()
        self._released = False  # reads go on after our close frame, for the client's
        threading.Thread(target=self._reader, name="ws-reader", daemon=True).start()

    def wake(self) -> None:
        self._event.set()

    def _wait(self, timeout: float) -> None:
        if not self._chunks:
            self._event.wait(timeout)
        self._event.clear()

    def _read(self) -> bytes | None:
        return self._chunks.popleft() if self._chunks else b""

    def release(self) -> None:
        super().release()
        self._released = True

    def _reader(self) -> None:
        while not self._released:
            try:
                data = self._raw.recv(RECV_BYTES)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            self._chunks.append(data or None)
            self._event.set()
            if not data:
                return
