"""The web stack's floor for ``bench.load --compare``: bare Flask, one Redis SET per POST.

``gunicorn -c gunicorn.conf.py bench.floor:app`` (the service's gunicorn settings): what
Flask + gunicorn/gevent + redis-py cost per request on this machine with nothing of ours
(no hooks, validation, Lua, logging or Celery). The service cannot take orders faster
than this.
"""

from __future__ import annotations

import os

import redis
from flask import Flask, request

app = Flask(__name__)
_clients: dict[int, redis.Redis] = {}  # per process: made after gunicorn's fork


def _redis() -> redis.Redis:
    r = _clients.get(os.getpid())
    if r is None:
        r = _clients[os.getpid()] = redis.Redis.from_url(os.environ["REDIS_URL"])
    return r


@app.post("/api/orders")
def place():
    _redis().set(f"floor:{os.getpid()}", request.get_data())
    return {"status": "PENDING"}, 202


@app.get("/api/health")
def health():
    return {"status": "ok"}
