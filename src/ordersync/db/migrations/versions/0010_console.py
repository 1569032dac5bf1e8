"""the console: staff users, the order timeline, customer search keys, a store's active holds

- `users`: staff accounts of the console (ui/), with argon2 password hashes.
- `order_timeline`: a copy of every order event, kept `ui.timeline_days` (the outbox is
  pruned once delivered); filled here from the order events the outbox still holds.
- `orders.customer_phone` and `orders.customer_name`: the search keys of the customer
  (domain/customers.py), filled here in batches of their own transactions, then indexed.
- `ix_holds_store_active`: the pick list of a store.

On PostgreSQL the indexes on orders and holds are built CONCURRENTLY and the backfill commits
batch by batch, so neither table is locked for long.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

from ordersync.domain.customers import customer_keys

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
BATCH = 5000
ACTIVE = "state = 'active'"


def _keyed(length: int) -> sa.types.TypeEngine[Any]:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("store_ids", sa.JSON(), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("locale", sa.String(length=8), nullable=True),
        sa.Column("session_version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    op.create_table(
        "order_timeline",
        sa.Column("event_id", BigId, autoincrement=False, nullable=False),
        sa.Column("order_id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_order_timeline")),
    )
    op.create_index("ix_order_timeline_order_id", "order_timeline", ["order_id", "event_id"])
    op.create_index("ix_order_timeline_created_at", "order_timeline", ["created_at"])
    op.execute(
        "INSERT INTO order_timeline (event_id, order_id, type, payload, created_at) "
        "SELECT id, aggregate_id, type, payload, created_at FROM outbox_events "
        "WHERE aggregate_type = 'order'"
    )
    # Adding nullable columns without a default changes no row: instant on both databases.
    op.add_column("orders", sa.Column("customer_phone", _keyed(32), nullable=True))
    op.add_column("orders", sa.Column("customer_name", _keyed(255), nullable=True))
    if postgres:
        with op.get_context().autocommit_block():
            _backfill_customer_keys()
            for name, table, columns, where in _INDEXES:
                op.create_index(
                    name,
                    table,
                    columns,
                    postgresql_concurrently=True,
                    postgresql_where=sa.text(where) if where else None,
                )
    else:
        _backfill_customer_keys()
        for name, table, columns, where in _INDEXES:
            op.create_index(name, table, columns, sqlite_where=sa.text(where) if where else None)


_INDEXES: list[tuple[str, str, list[str], str | None]] = [
    ("ix_orders_customer_phone", "orders", ["customer_phone"], None),
    ("ix_orders_customer_name", "orders", ["customer_name"], None),
    ("ix_holds_store_active", "holds", ["store_id", "order_id"], ACTIVE),
]


def _backfill_customer_keys() -> None:
    bind = op.get_bind()
    after = ""
    select = sa.text(
        "SELECT id, customer FROM orders WHERE id > :after ORDER BY id LIMIT :n"
    ).columns(sa.column("id", sa.String()), sa.column("customer", sa.JSON()))
    update = sa.text(
        "UPDATE orders SET customer_phone = :phone, customer_name = :name WHERE id = :id"
    )
    while True:
        rows = bind.execute(select, {"after": after, "n": BATCH}).all()
        if not rows:
            return
        keyed = []
        for order_id, customer in rows:
            if isinstance(customer, str):
                customer = json.loads(customer)
            phone, name = customer_keys(customer if isinstance(customer, dict) else {})
            if phone is not None or name is not None:
                keyed.append({"id": order_id, "phone": phone, "name": name})
        if keyed:
            bind.execute(update, keyed)
        after = rows[-1][0]


def downgrade() -> None:
    for name, table, _, _ in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("customer_name")
        batch.drop_column("customer_phone")
    op.drop_index("ix_order_timeline_created_at", table_name="order_timeline")
    op.drop_index("ix_order_timeline_order_id", table_name="order_timeline")
    op.drop_table("order_timeline")
    op.drop_table("users")
