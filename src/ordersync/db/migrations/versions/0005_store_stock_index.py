"""a store's stock paged by product: stock_levels indexed by (store_id, product_id)

Replaces the index on store_id alone, which it also serves. On PostgreSQL the index is built
CONCURRENTLY, so the stock table stays writable while it is built.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _swap(create: tuple[str, list[str]], drop: str) -> None:
    name, columns = create
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index(name, "stock_levels", columns, postgresql_concurrently=True)
            op.drop_index(drop, table_name="stock_levels", postgresql_concurrently=True)
    else:
        op.create_index(name, "stock_levels", columns)
        op.drop_index(drop, table_name="stock_levels")


def upgrade() -> None:
    _swap(("ix_stock_levels_store_product", ["store_id", "product_id"]), "ix_stock_levels_store_id")


def downgrade() -> None:
    _swap(("ix_stock_levels_store_id", ["store_id"]), "ix_stock_levels_store_product")
