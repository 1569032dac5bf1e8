"""relay faults: permanent refusals counted apart from outages, the last successful delivery
per lane, and when 1C last confirmed the orders of a sale exchange

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Added columns are nullable or have a constant default: no table rewrite on PostgreSQL.
    with op.batch_alter_table("relay_cursors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refusals", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("succeeded_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("exchange_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("exchange_sessions", schema=None) as batch_op:
        batch_op.drop_column("confirmed_at")
    with op.batch_alter_table("relay_cursors", schema=None) as batch_op:
        batch_op.drop_column("succeeded_at")
        batch_op.drop_column("refusals")
