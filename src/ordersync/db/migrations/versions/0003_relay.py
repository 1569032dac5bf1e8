"""the outbox relay: delivery order (seq, lane), cursors per sink and lane, dead letters

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Wakes the relay when events commit (one notification per transaction: PostgreSQL folds
# identical ones), so a quiet system delivers within milliseconds instead of a poll.
NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION ordersync_outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ordersync_outbox', '');
    RETURN NULL;
END
$$
"""
NOTIFY_TRIGGER = """
CREATE TRIGGER outbox_events_notify AFTER INSERT ON outbox_events
FOR EACH STATEMENT EXECUTE FUNCTION ordersync_outbox_notify()
"""

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "relay_cursors",
        sa.Column("sink", sa.String(length=64), nullable=False),
        sa.Column("lane", sa.SmallInteger(), nullable=False),
        sa.Column("delivered_seq", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_total", sa.BigInteger(), nullable=False),
        sa.Column("batches_total", sa.BigInteger(), nullable=False),
        sa.Column("failures_total", sa.BigInteger(), nullable=False),
        sa.Column("latency_sum", sa.Float(), nullable=False),
        sa.Column("latency_le_0_05", sa.BigInteger(), nullable=False),
        sa.Column("latency_le_0_1", sa.BigInteger(), nullable=False),
        sa.Column("latency_le_0_25", sa.BigInteger(), nullable=False),
        sa.Column("latency_le_0_5", sa.BigInteger(), nullable=False),
        sa.Column("latency_le_1", sa.BigInteger(), nullable=False),
        sa.Column("latency_le_2_5", sa.BigInteger(), nullable=False),
        sa.Column("latency_le_5", sa.BigInteger(), nullable=False),
        sa.Column("latency_le_10", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("sink", "lane", name=op.f("pk_relay_cursors")),
    )
    op.create_table(
        "relay_dead",
        sa.Column("sink", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("dead_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sink", "event_id", name=op.f("pk_relay_dead")),
    )
    op.create_table(
        "relay_state",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_relay_state")),
    )
    op.execute("INSERT INTO relay_state (name, value) VALUES ('last_seq', 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(NOTIFY_FUNCTION)
        op.execute(NOTIFY_TRIGGER)
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("lane", sa.SmallInteger(), nullable=True))
        batch_op.create_index("ix_outbox_events_lane_seq", ["lane", "seq"], unique=False)
        batch_op.create_index(
            "ix_outbox_events_unsequenced",
            ["id"],
            unique=False,
            postgresql_where=sa.text("seq IS NULL"),
            sqlite_where=sa.text("seq IS NULL"),
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS outbox_events_notify ON outbox_events")
        op.execute("DROP FUNCTION IF EXISTS ordersync_outbox_notify()")

    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outbox_events_unsequenced",
            postgresql_where=sa.text("seq IS NULL"),
            sqlite_where=sa.text("seq IS NULL"),
        )
        batch_op.drop_index("ix_outbox_events_lane_seq")
        batch_op.drop_column("lane")
        batch_op.drop_column("seq")

    op.drop_table("relay_state")
    op.drop_table("relay_dead")
    op.drop_table("relay_cursors")
