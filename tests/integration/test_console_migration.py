"""Migration 0010 on a database that already has orders: their customer keys are filled in
(batch by batch) and the order events the outbox still holds become their timelines; it
goes back down to 0009 cleanly. On both databases."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from ordersync.db.migrate import downgrade, upgrade
from ordersync.db.unit_of_work import Database
from tests import support

NOW = datetime(2026, 11, 1, 10, 0)  # naive: SQLite stores it so; PostgreSQL takes it


@pytest.fixture
async def empty_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    if not await support.postgres_reachable():
        if support.in_ci():
            pytest.fail("PostgreSQL is not reachable (CI runs every test on it)")
        pytest.skip("PostgreSQL is not reachable")
    name = f"ordersync_mig0010_{os.getpid()}"
    admin = make_url(support.postgres_admin_url())
    conn = await asyncpg.connect(host=admin.host, port=admin.port or 5432, user=admin.username,
                                 database=admin.database)  # fmt: skip
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    yield admin.set(database=name).render_as_string(hide_password=False)
    await support.drop_postgres_database(name)


async def test_0010_fills_the_keys_and_timelines_of_existing_orders_and_goes_back(
    empty_url: str,
) -> None:
    await asyncio.to_thread(upgrade, empty_url, "0009")
    db = Database.from_url(empty_url, pool_size=2)
    customers = [{"name": "Пётр  Иванов", "phone": "8 916 111-22-33"}, {}, {"email": "a@b.c"}]
    try:
        async with db.engine.begin() as conn:
            for n, customer in enumerate(customers, start=1):
                await conn.execute(
                    text(
                        "INSERT INTO orders (id, number, channel, source, fulfillment, status, "
                        "payment_status, total, currency, customer, created_at, updated_at) "
                        "VALUES (:id, :n, 'online', 'order', 'delivery', 'placed', 'unpaid', 0, "
                        "'RUB', :customer, :now, :now)"
                    ),
                    {"id": f"order-{n}", "n": n, "customer": json.dumps(customer), "now": NOW},
                )
            await conn.execute(
                text(
                    "INSERT INTO outbox_events (type, aggregate_type, aggregate_id, payload, "
                    "created_at) VALUES ('order.created', 'order', 'order-1', '{}', :now), "
                    "('stock.changed', 'stock', '1:1', '{}', :now)"
                ),
                {"now": NOW},
            )
    finally:
        await db.dispose()

    await asyncio.to_thread(upgrade, empty_url)

    db = Database.from_url(empty_url, pool_size=2)
    try:
        async with db.engine.connect() as conn:
            keys = (
                await conn.execute(
                    text("SELECT id, customer_phone, customer_name FROM orders ORDER BY id")
                )
            ).all()
            timeline = (await conn.execute(text("SELECT order_id, type FROM order_timeline"))).all()
    finally:
        await db.dispose()
    assert [tuple(k) for k in keys] == [
        ("order-1", "79161112233", "петр иванов"),
        ("order-2", None, None),
        ("order-3", None, None),
    ]
    assert [tuple(t) for t in timeline] == [("order-1", "order.created")]

    await asyncio.to_thread(downgrade, empty_url, "0009")
    await asyncio.to_thread(upgrade, empty_url)
