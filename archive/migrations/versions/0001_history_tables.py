"""History tables: orders, order fills, trades, journal.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("symbol", sa.String, nullable=False),
        sa.Column("account", sa.String, nullable=False),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("side", sa.String, nullable=False),
        sa.Column("coid", sa.String),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("fields", sa.Text, nullable=False),
    )
    op.create_index("ix_orders_account_n", "orders", ["account", "n"])
    op.create_index("ix_orders_account_coid", "orders", ["account", "coid"])
    op.create_table(
        "order_fills",
        sa.Column("order_id", sa.String, primary_key=True),
        sa.Column("trade_seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("symbol", sa.String, nullable=False),
    )
    op.create_table(
        "trades",
        sa.Column("symbol", sa.String, primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_table(
        "journal",
        sa.Column("symbol", sa.String, primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("fields", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for name in ("journal", "trades", "order_fills", "orders"):
        op.drop_table(name)
