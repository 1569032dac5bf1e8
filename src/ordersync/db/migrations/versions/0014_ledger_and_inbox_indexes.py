"""indexes that keep reads flat as the ledger and the inboxes grow

- stock_movements (product_id, id): the movements page (GET /stock/movements?sku=...) reads a
  product's latest movements over all its stores. With only (product_id, store_id, id)
  PostgreSQL reads every movement of the product and sorts them, so the page slowed as the
  ledger grew (1.4x at 10,000,000 movements, bench/growth.py); now it reads the 50 it shows.
- bitrix_inbox and evotor_inbox, partial on the events that failed (or, for Evotor, could not
  be read): /metrics counts them at every scrape and the console lists them, while the
  inboxes keep every till document for good (their exactly-once record).

On PostgreSQL the indexes are built CONCURRENTLY, so the tables stay writable while they are
built; a build that was interrupted leaves an invalid index, which is dropped first.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_UNAPPLIED = "state IN ('failed', 'rejected')"
_INDEXES: list[tuple[str, str, list[str], str | None]] = [
    ("ix_stock_movements_product_id", "stock_movements", ["product_id", "id"], None),
    ("ix_bitrix_inbox_unapplied", "bitrix_inbox", ["id"], _UNAPPLIED),
    ("ix_evotor_inbox_unapplied", "evotor_inbox", ["id"], _UNAPPLIED),
]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name, table, columns, where in _INDEXES:
        condition = sa.text(where) if where else None
        if postgres:
            with op.get_context().autocommit_block():
                op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
                op.create_index(name, table, columns, postgresql_concurrently=True,
                                postgresql_where=condition)  # fmt: skip
        else:
            op.create_index(name, table, columns, sqlite_where=condition)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name, table, _, _ in reversed(_INDEXES):
        if postgres:
            with op.get_context().autocommit_block():
                op.drop_index(name, table_name=table, postgresql_concurrently=True)
        else:
            op.drop_index(name, table_name=table)
