"""stock_movements lose their (document_type, document_id) index, which no query reads

Every movement paid an entry in it (a 1C import writes a million at once, all under the same
long key): about a quarter of a movement's insert with its four indexes. The ledger is read
by product (and store), never by document; a document's own record is stock_documents.

On PostgreSQL the index is dropped CONCURRENTLY, so the table stays writable meanwhile; the
downgrade builds it again the same way.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_NAME = "ix_stock_movements_document"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_NAME}")
    else:
        op.drop_index(_NAME, table_name="stock_movements")


def downgrade() -> None:
    columns = ["document_type", "document_id"]
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_NAME}")  # an interrupted build
            op.create_index(_NAME, "stock_movements", columns, postgresql_concurrently=True)
    else:
        op.create_index(_NAME, "stock_movements", columns)
