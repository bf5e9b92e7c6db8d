"""The archive's tables (SQLAlchemy Core). The schema itself is made by the Alembic
migrations in ``archive/migrations``; keep the two in step.

Each table's primary key is the row's natural identity (order id, symbol + sequence), so
copying a row that is already there is a no-op (``db.insert_ignore``): a mover that died
after its archive commit and runs again doubles nothing.

Orders keep the whole Redis hash as JSON (``fields``), so an archived order renders the
exact JSON it had in Redis, whatever fields the order carries; the columns beside it are
what the reads filter and sort on.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, MetaData, String, Table, Text

metadata = MetaData()

orders = Table(
    "orders", metadata,
    Column("id", String, primary_key=True),
    Column("symbol", String, nullable=False),
    Column("account", String, nullable=False),
    Column("n", BigInteger, nullable=False),  # the account's acceptance number: list order
    Column("status", String, nullable=False),
    Column("side", String, nullable=False),
    Column("coid", String),
    Column("updated_at", BigInteger, nullable=False),
    Column("fields", Text, nullable=False),
    # GET /api/orders: an account's orders newest first; clientOrderId replay.
    Index("ix_orders_account_n", "account", "n"),
    Index("ix_orders_account_coid", "account", "coid"),
)

order_fills = Table(
    "order_fills", metadata,
    Column("order_id", String, primary_key=True),
    Column("trade_seq", BigInteger, primary_key=True, autoincrement=False),
    Column("symbol", String, nullable=False),
)

trades = Table(
    "trades", metadata,
    Column("symbol", String, primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts", BigInteger, nullable=False),
    Column("body", Text, nullable=False),  # the trade's contract JSON, as Redis held it
)

journal = Table(
    "journal", metadata,
    Column("symbol", String, primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("fields", Text, nullable=False),  # the stream entry's fields as JSON
)

checkpoints = Table(
    "checkpoints", metadata,
    Column("symbol", String, primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("book", Text, nullable=False),  # archive.checkpoints.snapshot as JSON
)
