"""tills: on_hand may go below zero (completed till sales), displaced holds, returned units on
order lines, till shifts, the till review queue, and the Evotor channel's own state (inbox,
entities, product uuids, published products, catch-up watermarks, linked accounts)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ON_HAND_CHECK = "ck_stock_levels_on_hand_non_negative"


def _stock_levels_checks(keep_on_hand: bool) -> None:
    """PostgreSQL drops or adds the constraint alone (no rewrite, a brief lock). SQLite has no
    ALTER for constraints: the table is copied without (or with) the check."""
    if op.get_bind().dialect.name == "postgresql":
        if keep_on_hand:
            op.execute(
                f"ALTER TABLE stock_levels ADD CONSTRAINT {ON_HAND_CHECK} CHECK (on_hand >= 0)"
                " NOT VALID"
            )
        else:
            op.execute(f"ALTER TABLE stock_levels DROP CONSTRAINT {ON_HAND_CHECK}")
        return
    with op.batch_alter_table("stock_levels", recreate="always") as batch_op:
        if keep_on_hand:
            batch_op.create_check_constraint(op.f(ON_HAND_CHECK), sa.text("on_hand >= 0"))
        else:
            batch_op.drop_constraint(op.f(ON_HAND_CHECK), type_="check")


def upgrade() -> None:
    _stock_levels_checks(keep_on_hand=False)
    op.create_index(
        "ix_stock_levels_negative",
        "stock_levels",
        ["store_id", "product_id"],
        postgresql_where=sa.text("on_hand < 0"),
        sqlite_where=sa.text("on_hand < 0"),
    )
    with op.batch_alter_table("stores", schema=None) as batch_op:
        batch_op.add_column(sa.Column("evotor_uuid", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_stores_evotor_uuid", ["evotor_uuid"], unique=True)
    op.add_column(
        "order_lines",
        sa.Column("returned", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column("holds", sa.Column("replaces", sa.BigInteger(), nullable=True))
    op.add_column("pos_transactions", sa.Column("shift", sa.String(length=40), nullable=True))
    op.create_index(
        "ix_pos_transactions_store_transaction",
        "pos_transactions",
        ["store_id", "transaction_id"],
    )
    op.create_index(
        "ix_pos_transactions_store_original",
        "pos_transactions",
        ["store_id", "original_transaction_id"],
    )
    op.create_table(
        "till_review",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=True),
        sa.Column("document_type", sa.String(length=32), nullable=False),
        sa.Column("document_id", sa.String(length=160), nullable=False),
        sa.Column("pos_id", sa.String(length=64), nullable=True),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("commodity_uuid", sa.String(length=64), nullable=True),
        sa.Column("code", sa.String(length=128), nullable=True),
        sa.Column("barcode", sa.String(length=128), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("quantity", sa.BigInteger(), nullable=True),
        sa.Column("price", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_till_review")),
    )
    op.create_index("ix_till_review_document", "till_review", ["document_type", "document_id"])
    op.create_index(
        "ix_till_review_open",
        "till_review",
        ["id"],
        postgresql_where=sa.text("resolved_at IS NULL"),
        sqlite_where=sa.text("resolved_at IS NULL"),
    )
    _evotor_tables()


def _evotor_tables() -> None:
    op.create_table(
        "evotor_inbox",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("store_uuid", sa.String(length=64), nullable=False),
        sa.Column("document_uuid", sa.String(length=64), nullable=True),
        sa.Column("feed", sa.String(length=16), nullable=False),
        sa.Column("evotor_type", sa.String(length=32), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evotor_inbox")),
    )
    op.create_index(
        "ix_evotor_inbox_document", "evotor_inbox", ["store_uuid", "document_uuid"], unique=True
    )
    op.create_index(
        "ix_evotor_inbox_pending",
        "evotor_inbox",
        ["id"],
        postgresql_where=sa.text("state = 'pending'"),
        sqlite_where=sa.text("state = 'pending'"),
    )
    op.create_table(
        "evotor_entities",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("uuid", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("store_uuid", sa.String(length=64), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kind", "uuid", name=op.f("pk_evotor_entities")),
    )
    op.create_table(
        "evotor_products",
        sa.Column("evotor_uuid", sa.String(length=64), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(length=8), nullable=False),
        sa.Column("store_uuid", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("evotor_uuid", name=op.f("pk_evotor_products")),
    )
    op.create_index("ix_evotor_products_product", "evotor_products", ["product_id"])
    op.create_index(
        "ix_evotor_products_published",
        "evotor_products",
        ["product_id"],
        unique=True,
        postgresql_where=sa.text("origin = 'hub'"),
        sqlite_where=sa.text("origin = 'hub'"),
    )
    op.create_table(
        "evotor_published",
        sa.Column("store_uuid", sa.String(length=64), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("store_uuid", "product_id", name=op.f("pk_evotor_published")),
    )
    op.create_table(
        "evotor_watermarks",
        sa.Column("store_uuid", sa.String(length=64), nullable=False),
        sa.Column("closed_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("polled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("store_uuid", name=op.f("pk_evotor_watermarks")),
    )
    op.create_table(
        "evotor_accounts",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=True),
        sa.Column("cloud_token", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_evotor_accounts")),
    )


def downgrade() -> None:
    for table in (
        "evotor_accounts",
        "evotor_watermarks",
        "evotor_published",
        "evotor_products",
        "evotor_entities",
        "evotor_inbox",
        "till_review",
    ):
        op.drop_table(table)
    op.drop_index("ix_pos_transactions_store_original", table_name="pos_transactions")
    op.drop_index("ix_pos_transactions_store_transaction", table_name="pos_transactions")
    with op.batch_alter_table("pos_transactions", schema=None) as batch_op:
        batch_op.drop_column("shift")
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.drop_column("replaces")
    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.drop_column("returned")
    with op.batch_alter_table("stores", schema=None) as batch_op:
        batch_op.drop_index("ix_stores_evotor_uuid")
        batch_op.drop_column("evotor_uuid")
    op.drop_index("ix_stock_levels_negative", table_name="stock_levels")
    # Settle levels below zero first (a receipt or a count): on SQLite the copy of the table
    # would refuse them; on PostgreSQL the check is restored NOT VALID, for new writes only.
    _stock_levels_checks(keep_on_hand=True)
