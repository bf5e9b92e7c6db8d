"""``/ws``: the real-time relay and order entry (api.md §4, §5), on flask-sock.

Three parts: ``transport`` (simple-websocket, framing, the non-blocking write),
``feeds`` (pure: book chain, trade runs, gaps, order_status pieces) and ``connection``
(ops, subscriptions, auth, the threads); ``entry`` is order entry's glue to the REST
path. Reads go through ``store.relay``. Tunables (app.config ``WS_*`` or a Settings
field of the same lower-case name): ``DEFAULTS``.
"""

from __future__ import annotations

import logging

from flask import Flask, current_app
from simple_websocket import ConnectionClosed

from app.ws import transport
from app.ws.connection import (
    DEFAULTS,
    GOING_AWAY,
    MAX_FRAME_BYTES,
    Connection,
    close_all,
    connection_count,
    option,
)

__all__ = ["DEFAULTS", "GOING_AWAY", "MAX_FRAME_BYTES", "close_all", "connection_count",
           "init_app", "sock"]

log = logging.getLogger(__name__)
sock = transport.sock


def init_app(app: Flask) -> None:
    transport.init_app(app, ping_interval=option(app, "ws_ping_interval"))


@sock.route("/ws")
def websocket(ws) -> None:
    try:
        Connection(ws, current_app._get_current_object()).run()
    except (ConnectionAbortedError, ConnectionClosed):
        pass
    except Exception:  # never let Flask write an HTTP error onto the socket
        log.exception("ws connection failed")
