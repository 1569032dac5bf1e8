"""stock levels without foreign keys: a 1C import writes a million of them at bulk-load speed

A level is created only for a product and a store the hub has (db/stock_ops.py, and the
exchange's bulk apply, which joins the file's items to products and stores), and neither is
ever deleted; the keys' per-row checks cost more than half of inserting a level (5.0 s
against 2.2 s for 200,000 levels). `ordersync check` reports a level of a missing product or
store. Stock movements lost theirs the same way in 0002.

On PostgreSQL the constraints are dropped alone (a brief lock, no rewrite); SQLite copies the
table without them (its partial index is made again after the copy).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_KEYS = (
    ("fk_stock_levels_product_id_products", "products", "product_id"),
    ("fk_stock_levels_store_id_stores", "stores", "store_id"),
)
_NEGATIVE = "on_hand < 0"


def _negative_index() -> None:
    op.create_index(
        "ix_stock_levels_negative",
        "stock_levels",
        ["store_id", "product_id"],
        postgresql_where=sa.text(_NEGATIVE),
        sqlite_where=sa.text(_NEGATIVE),
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, _, _ in _KEYS:
            op.execute(f"ALTER TABLE stock_levels DROP CONSTRAINT {name}")
        return
    op.drop_index("ix_stock_levels_negative", table_name="stock_levels")
    with op.batch_alter_table("stock_levels", recreate="always") as batch_op:
        for name, _, _ in _KEYS:
            batch_op.drop_constraint(op.f(name), type_="foreignkey")
    _negative_index()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, table, column in _KEYS:
            op.execute(
                f"ALTER TABLE stock_levels ADD CONSTRAINT {name} "
                f"FOREIGN KEY ({column}) REFERENCES {table} (id)"
            )
        return
    op.drop_index("ix_stock_levels_negative", table_name="stock_levels")
    with op.batch_alter_table("stock_levels", recreate="always") as batch_op:
        for name, table, column in _KEYS:
            batch_op.create_foreign_key(op.f(name), table, [column], ["id"])
    _negative_index()
