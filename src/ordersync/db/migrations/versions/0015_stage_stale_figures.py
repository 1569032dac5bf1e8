"""staged items keep which of their figures differed from the hub's levels when they were read

A 1C re-import compares each staged batch with the stock levels while the next batch is still
being parsed (db/exchange_stock.py, compare_staged); the apply then looks up the levels of the
figures that differed only. A bit per figure (the first figure's is 1); NULL: not compared (the
apply compares every figure).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("exchange_stage_items", sa.Column("stale", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("exchange_stage_items") as batch:
        batch.drop_column("stale")
