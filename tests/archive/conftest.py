"""Archive fixtures: every archive test runs on SQLite and on a real PostgreSQL of its own."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from archive import db, tables
from localrun.postgres import PostgresServer


@pytest.fixture(scope="session")
def postgres():
    server = PostgresServer().start()
    yield server
    db.dispose_all()
    server.cleanup()


@pytest.fixture(params=["sqlite", "postgresql"])
def archive_url(request, tmp_path):
    """A migrated, empty archive."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'archive.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres").url
    db.migrate(url)
    with db.engine(url).begin() as conn:
        for table in reversed(tables.metadata.sorted_tables):
            conn.execute(sa.delete(table))
    return url


@pytest.fixture
def archive_settings(settings, archive_url):
    """Settings with the archive on, everything final immediately due to move, a book
    checkpoint every 5 commands (so the journal moves too)."""
    return settings.replace(archive_url=archive_url, archive_after_seconds=0.0,
                            archive_batch=50, checkpoint_every=5)
