"""the 1C exchange: which stock levels each applied file set (exchange_stock_coverage)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exchange_stock_coverage",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("file_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("formed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_product", sa.Integer(), nullable=False),
        sa.Column("last_product", sa.Integer(), nullable=False),
        sa.Column(
            "product_ids",
            sa.JSON().with_variant(postgresql.ARRAY(sa.Integer()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_stock_coverage")),
    )
    with op.batch_alter_table("exchange_stock_coverage", schema=None) as batch_op:
        batch_op.create_index(
            "ix_exchange_stock_coverage_store_formed", ["store_id", "formed_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("exchange_stock_coverage", schema=None) as batch_op:
        batch_op.drop_index("ix_exchange_stock_coverage_store_formed")
    op.drop_table("exchange_stock_coverage")
