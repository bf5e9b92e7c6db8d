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


def insert_ignore(conn: sa.Connection, table: sa.Table, rows: list[dict],
                  update: bool = False) -> None:
    """INSERT rows, skipping any whose primary key is already there (``update``: replace
    its other columns instead, for rows a later copy may supersede)."""
    if not rows:
        return
    dialects = {"postgresql": postgresql, "sqlite": sqlite}
    if conn.dialect.name not in dialects:
        raise NotImplementedError(f"archive on {conn.dialect.name!r} is not supported")
    stmt = dialects[conn.dialect.name].insert(table)
    if update:
        keys = [c.name for c in table.primary_key.columns]
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_={
            c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys})
    else:
        stmt = stmt.on_conflict_do_nothing()
    conn.execute(stmt, rows)
