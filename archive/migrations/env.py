"""Alembic environment: run by ``archive.db.migrate`` with a connection in
``config.attributes["connection"]`` (or, from the alembic CLI, ``sqlalchemy.url``)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from archive.tables import metadata

config = context.config


def _run(connection: sa.Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Two processes migrating at once (an archiver and `make run`): one waits.
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(17017017)"))
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    with sa.create_engine(config.get_main_option("sqlalchemy.url")).begin() as conn:
        _run(conn)
