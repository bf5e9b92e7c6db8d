"""The web process's Redis connection: one pool per process, made lazily after fork."""

from __future__ import annotations

import redis
from flask import Flask, current_app


def connect(url: str) -> redis.Redis:
    """A client with short timeouts and retry-on-reconnect, so an outage fails fast (503)."""
    return redis.Redis.from_url(
        url,
        socket_timeout=5,
        socket_connect_timeout=2,
        health_check_interval=30,
        retry_on_timeout=False,
        decode_responses=True,
    )


def get_redis() -> redis.Redis:
    ext = current_app.extensions
    if "redis" not in ext:
        ext["redis"] = connect(current_app.config["SETTINGS"].redis_url)
    return ext["redis"]


def init_app(app: Flask) -> None:
    app.extensions.pop("redis", None)
