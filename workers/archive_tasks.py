"""Celery work of the history archive: ``archive.move`` per symbol, scheduled by beat.

Two processes (Procfile): ``beat`` sends one ``archive.move(SYMBOL)`` per market every
``ARCHIVE_INTERVAL_SECONDS`` to the ``archive`` queue, and ``archiver`` is a Celery worker
that consumes only that queue, never the matcher's: moving history never takes the
matcher's time or its lease. A run that finds the archive database down logs it and
leaves Redis as it was; the next beat tick tries again. Tasks expire after a few
intervals, so a stopped archiver does not come back to a pile of stale ones.

    celery -A workers.archive_tasks beat
    celery -A workers.archive_tasks worker -Q archive --pool=solo
"""

from __future__ import annotations

import logging

import redis
from sqlalchemy.exc import SQLAlchemyError

from archive import db
from archive.mover import move_symbol
from settings import Settings, load_settings
from store import connect
from workers.celery_app import app

log = logging.getLogger(__name__)
ARCHIVE_TASK = "archive.move"
ARCHIVE_QUEUE = "archive"
_clients: dict[str, redis.Redis] = {}
_migrated: set[str] = set()


@app.task(name=ARCHIVE_TASK, ignore_result=True)
def move(symbol: str) -> dict:
    """Move SYMBOL's due history to the archive for up to one interval."""
    settings = load_settings()
    r = _clients.get(settings.redis_url)
    if r is None:
        r = _clients[settings.redis_url] = connect.tool_client(settings)
    try:
        if settings.archive_url not in _migrated:
            db.migrate(settings.archive_url)
            _migrated.add(settings.archive_url)
        moved = move_symbol(r, settings, symbol, settings.archive_interval_seconds)
    except (SQLAlchemyError, redis.RedisError) as exc:
        # Nothing is removed from Redis before the archive committed it: just try later.
        log.warning("archive %s: %s (%s); retrying next run", symbol, type(exc).__name__,
                    str(exc).splitlines()[0])
        return {"error": type(exc).__name__}
    if moved.any:
        log.info("archive %s: moved %d orders, %d trades, %d journal entries", symbol,
                 moved.orders, moved.trades, moved.journal)
    return {"orders": moved.orders, "trades": moved.trades, "journal": moved.journal}


def beat_schedule(settings: Settings) -> dict:
    every = settings.archive_interval_seconds
    return {
        f"archive {symbol}": {
            "task": ARCHIVE_TASK, "schedule": every, "args": (symbol,),
            "options": {"queue": ARCHIVE_QUEUE, "expires": max(3 * every, 5.0)},
        }
        for symbol in settings.symbols
    }


app.conf.beat_schedule = beat_schedule(load_settings())
