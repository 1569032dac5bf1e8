"""the 1C exchange: sessions, files, staging, 1C figures, log; movements without FKs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.alter_column(
            "sku", existing_type=sa.String(length=64), type_=sa.String(length=128)
        )

    op.create_table(
        "exchange_files",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("last_chunk_hash", sa.String(length=64), nullable=True),
        sa.Column("formed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("staged", sa.Integer(), nullable=False),
        sa.Column("applied", sa.Integer(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_files")),
        sa.UniqueConstraint("session_id", "name", name="uq_exchange_files_session_name"),
    )
    op.create_table(
        "exchange_chunks",
        sa.Column("file_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("chunk", sa.Integer(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("file_id", "chunk", name=op.f("pk_exchange_chunks")),
    )
    op.create_table(
        "exchange_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("session_id", sa.String(length=36), nullable=True),
        sa.Column("file_name", sa.String(length=255), nullable=True),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_log")),
    )
    with op.batch_alter_table("exchange_log", schema=None) as batch_op:
        batch_op.create_index("ix_exchange_log_at", ["at"], unique=False)

    op.create_table(
        "exchange_sessions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("cookie_hash", sa.String(length=64), nullable=False),
        sa.Column("login", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=16), nullable=True),
        sa.Column("pending_query", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_sessions")),
        sa.UniqueConstraint("cookie_hash", name=op.f("uq_exchange_sessions_cookie_hash")),
    )
    op.create_table(
        "exchange_stage_items",
        sa.Column("file_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("xml_id", sa.String(length=128), nullable=False),
        sa.Column("article", sa.String(length=128), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("unit", sa.String(length=8), nullable=True),
        sa.Column("barcode", sa.String(length=64), nullable=True),
        sa.Column("price", sa.BigInteger(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=True),
        sa.Column(
            "store_numbers",
            sa.JSON().with_variant(postgresql.ARRAY(sa.Integer()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "quantities",
            sa.JSON().with_variant(postgresql.ARRAY(sa.BigInteger()), "postgresql"),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("file_id", "seq", name=op.f("pk_exchange_stage_items")),
    )
    op.create_table(
        "exchange_stage_stores",
        sa.Column("file_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("xml_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("file_id", "number", name=op.f("pk_exchange_stage_stores")),
    )
    op.create_table(
        "order_1c",
        sa.Column("order_id", sa.String(length=36), nullable=False),
        sa.Column("number_1c", sa.String(length=128), nullable=True),
        sa.Column("version", sa.String(length=64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_order_1c")),
    )
    op.create_table(
        "stock_1c_figures",
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("hub_on_hand", sa.BigInteger(), nullable=False),
        sa.Column("formed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("product_id", "store_id", name=op.f("pk_stock_1c_figures")),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("exported_1c_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_orders_not_in_1c",
            ["updated_at"],
            unique=False,
            postgresql_where=sa.text("exported_1c_at IS NULL OR updated_at > exported_1c_at"),
            sqlite_where=sa.text("exported_1c_at IS NULL OR updated_at > exported_1c_at"),
        )

    with op.batch_alter_table("stock_movements", schema=None) as batch_op:
        batch_op.create_index(
            "ix_stock_movements_hub_recorded_at",
            ["recorded_at"],
            unique=False,
            postgresql_where=sa.text("reason <> 'exchange_1c'"),
            sqlite_where=sa.text("reason <> 'exchange_1c'"),
        )
        batch_op.drop_constraint(
            batch_op.f("fk_stock_movements_product_id_products"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_stock_movements_store_id_stores"), type_="foreignkey"
        )


def downgrade() -> None:
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.alter_column(
            "sku", existing_type=sa.String(length=128), type_=sa.String(length=64)
        )

    with op.batch_alter_table("stock_movements", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_stock_movements_store_id_stores"), "stores", ["store_id"], ["id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_stock_movements_product_id_products"), "products", ["product_id"], ["id"]
        )
        batch_op.drop_index(
            "ix_stock_movements_hub_recorded_at",
            postgresql_where=sa.text("reason <> 'exchange_1c'"),
            sqlite_where=sa.text("reason <> 'exchange_1c'"),
        )

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_orders_not_in_1c",
            postgresql_where=sa.text("exported_1c_at IS NULL OR updated_at > exported_1c_at"),
            sqlite_where=sa.text("exported_1c_at IS NULL OR updated_at > exported_1c_at"),
        )
        batch_op.drop_column("exported_1c_at")

    op.drop_table("stock_1c_figures")
    op.drop_table("order_1c")
    op.drop_table("exchange_stage_stores")
    op.drop_table("exchange_stage_items")
    op.drop_table("exchange_sessions")
    with op.batch_alter_table("exchange_log", schema=None) as batch_op:
        batch_op.drop_index("ix_exchange_log_at")

    op.drop_table("exchange_log")
    op.drop_table("exchange_files")
    op.drop_table("exchange_chunks")
