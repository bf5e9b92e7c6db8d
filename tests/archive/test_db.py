"""The archive schema: migrations, idempotent inserts, the indexes the reads need."""

from __future__ import annotations

import sqlalchemy as sa

from archive import db, tables


def test_migrate_twice_and_insert_is_idempotent(archive_url):
    db.migrate(archive_url)  # a second upgrade is a no-op
    row = {"symbol": "BTC-USD", "seq": 1, "ts": 5, "body": '{"a":1}'}
    with db.engine(archive_url).begin() as conn:
        db.insert_ignore(conn, tables.trades, [row])
        db.insert_ignore(conn, tables.trades, [row, {**row, "seq": 2, "body": "{}"}])
        db.insert_ignore(conn, tables.trades, [{**row, "body": '{"changed":1}'}])
    with db.engine(archive_url).connect() as conn:
        got = conn.execute(sa.select(tables.trades.c.seq, tables.trades.c.body)
                           .order_by(tables.trades.c.seq)).all()
    assert got == [(1, '{"a":1}'), (2, "{}")]


def test_schema_matches_the_tables(archive_url):
    inspector = sa.inspect(db.engine(archive_url))
    for table in tables.metadata.sorted_tables:
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        assert columns == {c.name for c in table.columns}, table.name
    indexes = {i["name"] for i in inspector.get_indexes("orders")}
    assert {"ix_orders_account_n", "ix_orders_account_coid"} <= indexes


def test_insert_with_update_keeps_the_newest_copy(archive_url):
    row = {"id": "ord_1", "symbol": "BTC-USD", "account": "a", "n": 1, "status": "FILLED",
           "side": "BUY", "coid": None, "updated_at": 5, "fields": "{}"}
    with db.engine(archive_url).begin() as conn:
        db.insert_ignore(conn, tables.orders, [row], update=True)
        db.insert_ignore(conn, tables.orders, [{**row, "updated_at": 6}], update=True)
    with db.engine(archive_url).connect() as conn:
        assert conn.execute(sa.select(tables.orders.c.updated_at)).scalars().all() == [6]
