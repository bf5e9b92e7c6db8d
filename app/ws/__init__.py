"""``/ws``: the real-time relay and order entry (api.md §4, §5).

Three parts: ``transport`` (the WebSocket protocol: handshake, framing, pings, the
non-blocking write), ``feeds`` (pure: book chain, trade runs, gaps, order_status
pieces) and ``connection`` (ops, subscriptions, auth, the threads); ``entry`` is order
entry's glue to the REST path. Reads go through ``store.relay``. Tunables (app.config
``WS_*`` or a Settings field of the same lower-case name): ``DEFAULTS``.
"""

from __future__ import annotations

import logging

from flask import Flask, current_app

from app.ws import transport
from app.ws.connection import (
    DEFAULTS,
    GOING_AWAY,
    MAX_FRAME_BYTES,
    Connection,
    close_all,
    connection_count,
)

__all__ = ["DEFAULTS", "GOING_AWAY", "MAX_FRAME_BYTES", "close_all", "connection_count",
           "init_app"]

log = logging.getLogger(__name__)
INTERNAL_ERROR = (1011, "internal error")


def init_app(app: Flask) -> None:
    transport.init_app(app, websocket)


def websocket(raw_socket) -> None:
    """The route, once upgraded: the connection runs on this greenlet for its life."""
    conn = None
    try:
        conn = Connection(raw_socket, current_app._get_current_object())
        conn.run()
    except ConnectionAbortedError:
        pass
    except Exception:  # never let Flask write an HTTP error onto the socket
        log.exception("ws connection failed")
        if conn is not None:
            conn.transport.close(*INTERNAL_ERROR)
    finally:
        if conn is not None:
            conn.transport.release()
