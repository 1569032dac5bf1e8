"""a product's movements newest first: stock_movements indexed by (product_id, id)

The movements page (GET /stock/movements?sku=...) reads a product's latest movements over all
its stores. With only (product_id, store_id, id) PostgreSQL reads every movement of the product
and sorts them, so the page slows as the ledger grows (1.4x at 10,000,000 movements,
bench/growth.py); with (product_id, id) it reads the 50 it shows. On PostgreSQL the index is
built CONCURRENTLY, so the ledger stays writable while it is built; a build that was
interrupted leaves an invalid index, which is dropped first.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_NAME = "ix_stock_movements_product_id"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_NAME}")
            op.create_index(
                _NAME, "stock_movements", ["product_id", "id"], postgresql_concurrently=True
            )
    else:
        op.create_index(_NAME, "stock_movements", ["product_id", "id"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.drop_index(_NAME, table_name="stock_movements", postgresql_concurrently=True)
    else:
        op.drop_index(_NAME, table_name="stock_movements")
