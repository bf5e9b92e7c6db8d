"""Archive engines, migrations and idempotent inserts.

``ARCHIVE_URL`` is any SQLAlchemy URL: the default is a SQLite file under ``var/`` (WAL
mode, so web processes read while the mover writes); production uses PostgreSQL through
psycopg 3 (``postgresql+psycopg://user:pass@host/db``).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url

MIGRATIONS = Path(__file__).with_name("migrations")
_engines: dict[tuple[int, str], Engine] = {}
_lock = threading.Lock()


class ArchiveUnavailable(Exception):
    """The archive database could not be reached or answered with an error."""


def engine(url: str) -> Engine:
    """One engine per process and URL (made after fork: a pool must not cross processes)."""
    key = (os.getpid(), url)
    with _lock:
        found = _engines.get(key)
        if found is None:
            found = _engines[key] = _make_engine(url)
        return found


def _make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        eng = sa.create_engine(url, connect_args={"timeout": 10})

        @sa.event.listens_for(eng, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            # WAL: readers never block the writer; synchronous stays FULL, so a commit is
            # on disk before the mover removes the rows from Redis.
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            dbapi_connection.execute("PRAGMA busy_timeout=10000")

        return eng
    connect_args = {"connect_timeout": 3} if parsed.get_backend_name() == "postgresql" else {}
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5,
                            connect_args=connect_args)


def dispose_all() -> None:
    with _lock:
        for eng in _engines.values():
            eng.dispose()
        _engines.clear()


def migrate(url: str) -> None:
    """Bring the archive's schema to the newest migration (idempotent; ``alembic upgrade``)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine(url).begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def insert_ignore(conn: sa.Connection, table: sa.Table, rows: list[dict]) -> None:
    """INSERT rows, skipping any whose primary key is already there."""
    if not rows:
        return
    name = conn.dialect.name
    if name == "postgresql":
        stmt = postgresql.insert(table).on_conflict_do_nothing()
    elif name == "sqlite":
        stmt = sqlite.insert(table).on_conflict_do_nothing()
    else:  # any other database: plain INSERT ... and let the key reject a double
        raise NotImplementedError(f"archive on {name!r} is not supported")
    conn.execute(stmt, rows)
