"""an operator may drop a short line: order_lines.quantity may be 0

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29

On PostgreSQL the new check is added NOT VALID (every existing row has a quantity above zero,
which satisfies it): no scan of order_lines under the table lock.
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

OLD = "ck_order_lines_quantity_positive"
NEW = "ck_order_lines_quantity_not_negative"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE order_lines DROP CONSTRAINT {OLD}")
        op.execute(f"ALTER TABLE order_lines ADD CONSTRAINT {NEW} CHECK (quantity >= 0) NOT VALID")
        return
    with op.batch_alter_table("order_lines", recreate="always") as batch:
        batch.drop_constraint(op.f(OLD), type_="check")
        batch.create_check_constraint(op.f(NEW), "quantity >= 0")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE order_lines DROP CONSTRAINT {NEW}")
        op.execute(f"ALTER TABLE order_lines ADD CONSTRAINT {OLD} CHECK (quantity > 0) NOT VALID")
        return
    with op.batch_alter_table("order_lines", recreate="always") as batch:
        batch.drop_constraint(op.f(NEW), type_="check")
        batch.create_check_constraint(op.f(OLD), "quantity > 0")
