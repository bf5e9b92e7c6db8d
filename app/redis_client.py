"""The web process's Redis connection: one pool per process, made lazily after fork.

The pool is bounded and waiting (``store.pool``): at most ``redis_pool_size``
connections per web process (``REDIS_POOL_SIZE``), and a request that finds them all
busy waits up to ``redis_pool_wait_ms`` (``REDIS_POOL_WAIT_MS``) before it is answered
503 ``OVERLOADED`` (``app.errors``). gunicorn.conf.py states what that means per node.
"""

from __future__ import annotations

import redis
from flask import Flask, current_app

from store.pool import waiting_client


def connect(url: str, max_connections: int = 32, wait_seconds: float = 2.0) -> redis.Redis:
    """A client with short timeouts, so an outage fails fast (503), and a bounded pool."""
    return waiting_client(
        url,
        max_connections=max_connections,
        wait_seconds=wait_seconds,
        socket_timeout=5,
        socket_connect_timeout=2,
        health_check_interval=30,
        retry_on_timeout=False,
        decode_responses=True,
    )


def client_for(app: Flask) -> redis.Redis:
    """The app's client, made on first use (after fork: never shared between workers)."""
    ext = app.extensions
    if "redis" not in ext:
        s = app.config["SETTINGS"]
        ext["redis"] = connect(s.redis_url, s.redis_pool_size, s.redis_pool_wait_ms / 1000)
    return ext["redis"]


def get_redis() -> redis.Redis:
    return client_for(current_app)


def init_app(app: Flask) -> None:
    app.extensions.pop("redis", None)
    app.extensions.pop("trading", None)  # app.trading's desk holds the client
