"""order numbers and versions: a short sequential number per order, a version per change;
1C's own document id per order

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Existing orders are numbered in the order they were placed.
BACKFILL = """
UPDATE orders SET number = (
    SELECT n FROM (
        SELECT id, row_number() OVER (ORDER BY created_at, id) AS n FROM orders
    ) AS numbered WHERE numbered.id = orders.id
)
"""


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("number", sa.BigInteger(), nullable=True))
        batch.add_column(
            sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False)
        )
    op.execute(BACKFILL)
    with op.batch_alter_table("orders") as batch:
        batch.alter_column("number", existing_type=sa.BigInteger(), nullable=False)
        batch.create_index("ix_orders_number", ["number"], unique=True)
    with op.batch_alter_table("order_1c") as batch:
        batch.add_column(sa.Column("id_1c", sa.String(length=128), nullable=True))
        batch.create_index("ix_order_1c_id_1c", ["id_1c"])
        batch.create_index("ix_order_1c_number_1c", ["number_1c"])
    if postgres:
        # Owned by the column, so TRUNCATE ... RESTART IDENTITY restarts it too.
        op.execute("CREATE SEQUENCE orders_number_seq OWNED BY orders.number")
        op.execute(
            "SELECT setval('orders_number_seq', COALESCE((SELECT MAX(number) FROM orders), 0) + 1,"
            " false)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SEQUENCE IF EXISTS orders_number_seq")
    with op.batch_alter_table("order_1c") as batch:
        batch.drop_index("ix_order_1c_number_1c")
        batch.drop_index("ix_order_1c_id_1c")
        batch.drop_column("id_1c")
    with op.batch_alter_table("orders") as batch:
        batch.drop_index("ix_orders_number")
        batch.drop_column("version")
        batch.drop_column("number")
