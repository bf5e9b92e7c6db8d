"""The socket side of ``/ws``: the only code that knows simple-websocket (flask-sock's
server) and its internals, RFC 6455 server framing, and the non-blocking write.

``Transport`` wraps one simple-websocket ``Server``. Three threads send on its socket:
the connection's own thread (``send``), simple-websocket's reader thread (pings, pongs,
the close handshake) and the event hub's thread (``send_nowait``); ``_LockedSocket``
serializes them so frames never interleave. Inbound frames are taken with
``take_inbound()`` after ``wait()`` returns; ``wake()`` ends a ``wait()`` from any thread.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from flask import Flask, request
from flask_sock import Sock

log = logging.getLogger(__name__)

HARD_FRAME_BYTES = 1024 * 1024  # a larger client frame closes the socket (1009), unbuffered

sock = Sock()


def init_app(app: Flask, ping_interval: float) -> None:
    app.config.setdefault("SOCK_SERVER_OPTIONS", {
        "ping_interval": ping_interval,
        "max_message_size": HARD_FRAME_BYTES,
    })
    sock.init_app(app)

    @app.before_request
    def _no_permessage_deflate():
        # Frames are small JSON sent to many clients: compressing each one per client
        # costs more CPU than it saves, and uncompressed frames are built once per
        # message and shared. Hide the client's offer from simple-websocket's handshake.
        if request.path == "/ws":
            request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)


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


class _LockedSocket:
    """The raw socket, with whole-buffer sends serialized between the connection's thread,
    simple-websocket's reader thread and the hub thread (``send_nowait``)."""

    __slots__ = ("_raw", "_fd", "_lock", "_rest")

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
            self._raw.sendall(data)
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

    def recv(self, n):
        return self._raw.recv(n)

    def fileno(self):
        return self._fd

    def close(self):
        self._raw.close()

    def __getattr__(self, name):  # settimeout, shutdown, ... for simple-websocket
        return getattr(self._raw, name)


class Transport:
    """One WebSocket, as the connection sees it: frames out, JSON texts in."""

    __slots__ = ("_ws", "_sock", "_event")

    def __init__(self, ws, *, sndbuf: int, send_timeout: float):
        raw = ws.sock
        try:
            # SO_SNDBUF bounds the kernel memory a slow client can pin; TCP_NODELAY: an
            # event goes out when written, not 40 ms later; the timeout makes the fd
            # non-blocking (send_nowait) and bounds a blocked send (ws_send_timeout).
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            raw.settimeout(send_timeout)
        except OSError:
            pass
        self._ws = ws
        self._sock = ws.sock = _LockedSocket(raw)
        self._event = ws.event  # set by simple-websocket on inbound frames, by wake()

    @property
    def connected(self) -> bool:
        return self._ws.connected

    def wait(self, timeout: float) -> None:
        """Until an inbound frame, a ``wake()`` or ``timeout``; then clear the wake-up."""
        self._event.wait(timeout)
        self._event.clear()

    def wake(self) -> None:
        self._event.set()

    def take_inbound(self):
        """The next complete client message (str or bytes), or None."""
        buffer = self._ws.input_buffer
        return buffer.pop(0) if buffer else None

    def send(self, data: bytes) -> None:
        """Write whole frames, blocking up to the send timeout. Raises
        ``ConnectionAbortedError`` (connection dropped) when that fails."""
        try:
            self._sock.send(data)
        except OSError as err:
            # Blocked past ws_send_timeout (or the peer vanished): the stream may hold
            # half a frame, so no close frame can follow. Drop the connection.
            log.debug("ws send failed (%s); dropping connection", err)
            self.abort()
            raise ConnectionAbortedError from err

    def send_nowait(self, data: bytes) -> bool:
        """Hub thread: write whole frames now or not at all (see ``_LockedSocket``)."""
        return self._sock.send_nowait(data)

    @property
    def pending(self) -> bool:
        """A partial ``send_nowait`` left a tail for ``flush``."""
        return bool(self._sock._rest)

    def flush(self) -> bool:
        """Send the tail a partial ``send_nowait`` left; False: the socket broke."""
        try:
            if self._sock._rest:
                self._sock.send(b"")
            return True
        except OSError:
            self._ws.connected = False
            return False

    def close(self, code: int, message: str) -> None:
        """A close frame with ``code`` and ``message`` (once; a broken socket is dropped)."""
        if self._ws.connected:
            try:
                self._ws.close(reason=code, message=message)
            except OSError:
                self._ws.connected = False

    def abort(self) -> None:
        self._ws.connected = False
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
