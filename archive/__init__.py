"""The history archive: where final orders, their fills, trades and old journal entries go.

``tables`` (SQLAlchemy Core tables; Alembic migrations in ``migrations/``), ``db`` (engines,
migrations, idempotent inserts), ``mover`` (Redis -> archive, copy first, remove second),
``reads`` (REST reads that fall back from Redis to the archive), ``verify`` (Redis and the
archive checked together against the journal replay).
"""
