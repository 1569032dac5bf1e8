"""the Bitrix site's orders in: its events inbox, the site orders seen and their versions, the
catch-up watermark; orders.confirmed_at

- `bitrix_inbox`: outgoing events of the site (POST /bitrix/events), applied by the site worker.
- `bitrix_orders`: each site order the hub has seen, its hub order and the site version applied.
- `bitrix_watermarks`: the dateUpdate the catch-up poll of sale.order.list has reached.
- `orders.confirmed_at`: an order confirmed (by phone, by the site's status or cash on delivery)
  keeps its unpaid holds to the channel's longer confirmed limit.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PENDING = "state = 'pending'"


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "bitrix_inbox",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("site_order_id", sa.String(length=32), nullable=True),
        sa.Column("xml_id", sa.String(length=128), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bitrix_inbox")),
    )
    op.create_index(
        "ix_bitrix_inbox_pending",
        "bitrix_inbox",
        ["id"],
        postgresql_where=sa.text(PENDING),
        sqlite_where=sa.text(PENDING),
    )
    op.create_table(
        "bitrix_orders",
        sa.Column("site_order_id", sa.String(length=32), nullable=False),
        sa.Column("order_id", sa.String(length=36), nullable=True),
        sa.Column("site_version", sa.Integer(), nullable=False),
        sa.Column("account_number", sa.String(length=64), nullable=True),
        sa.Column("date_update", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("site_order_id", name=op.f("pk_bitrix_orders")),
    )
    op.create_index("ix_bitrix_orders_order_id", "bitrix_orders", ["order_id"])
    op.create_table(
        "bitrix_watermarks",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("date_update", sa.DateTime(timezone=True), nullable=True),
        sa.Column("polled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_bitrix_watermarks")),
    )


def downgrade() -> None:
    op.drop_table("bitrix_watermarks")
    op.drop_index("ix_bitrix_orders_order_id", table_name="bitrix_orders")
    op.drop_table("bitrix_orders")
    op.drop_index("ix_bitrix_inbox_pending", table_name="bitrix_inbox")
    op.drop_table("bitrix_inbox")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("confirmed_at")
