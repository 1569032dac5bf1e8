"""Test support: databases on SQLite and PostgreSQL, a seeded network, clocks, tokens."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url

from ordersync.db import catalog, tokens
from ordersync.db.migrate import upgrade
from ordersync.db.tables import metadata
from ordersync.db.unit_of_work import Database
from ordersync.domain.commands import ProductRef, StockDocument, StockLine
from ordersync.domain.types import PosMode, Role, StoreKind, Unit
from ordersync.services import stock
from ordersync.services.context import Context, HoldPolicy

T = TypeVar("T")

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def run_in_thread(coro: Coroutine[Any, Any, T]) -> T:
    """Runs a coroutine to completion on its own loop in another thread (usable from code that
    is called while a test's event loop is running, and for Alembic, which runs its own)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def postgres_admin_url() -> str:
    return os.environ.get("ORDERSYNC_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


async def postgres_reachable() -> bool:
    url = make_url(postgres_admin_url())
    try:
        conn = await asyncpg.connect(
            host=url.host,
            port=url.port or 5432,
            user=url.username,
            database=url.database,
            password=url.password,
            timeout=3,
        )
    except (OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


async def create_postgres_database(name: str) -> str:
    """A fresh, migrated database next to the admin one; returns its URL."""
    admin = make_url(postgres_admin_url())
    conn = await asyncpg.connect(
        host=admin.host,
        port=admin.port or 5432,
        user=admin.username,
        database=admin.database,
        password=admin.password,
    )
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = admin.set(database=name).render_as_string(hide_password=False)
    await asyncio.to_thread(upgrade, url)
    return url


async def drop_postgres_database(name: str) -> None:
    admin = make_url(postgres_admin_url())
    conn = await asyncpg.connect(
        host=admin.host,
        port=admin.port or 5432,
        user=admin.username,
        database=admin.database,
        password=admin.password,
    )
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def migrated_sqlite_template(directory: Path) -> Path:
    template = directory / "template.db"
    if not template.exists():
        upgrade(f"sqlite+aiosqlite:///{template}")
    return template


def fresh_sqlite_url(template: Path, directory: Path, name: str) -> str:
    target = directory / f"{name}.db"
    shutil.copyfile(template, target)
    return f"sqlite+aiosqlite:///{target}"


async def truncate_all(db: Database) -> None:
    names = ", ".join(t.name for t in metadata.sorted_tables)
    async with db.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def context(clock: Clock | None = None, minutes: int = 30) -> Context:
    from ordersync.domain.types import Channel

    return Context(
        holds=HoldPolicy({c: minutes for c in Channel}),
        clock=clock or Clock(),
    )


@dataclass
class Network:
    """A seeded network: stores by code, products by SKU, tokens by role."""

    stores: dict[str, int] = field(default_factory=dict)
    products: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)


STORES: list[dict[str, Any]] = [
    dict(
        code="WH1",
        name="Warehouse",
        kind=StoreKind.WAREHOUSE,
        serves_online=True,
        online_priority=10,
        is_pickup_point=False,
        safety_stock=Decimal(0),
        pos_mode=PosMode.STOCK_ONLY,
    ),
    dict(
        code="S01",
        name="Shop 1",
        kind=StoreKind.SHOP,
        serves_online=True,
        online_priority=20,
        is_pickup_point=True,
        safety_stock=Decimal(1),
        pos_mode=PosMode.ORDER,
    ),
    dict(
        code="S02",
        name="Shop 2",
        kind=StoreKind.SHOP,
        serves_online=False,
        online_priority=30,
        is_pickup_point=True,
        safety_stock=Decimal(0),
        pos_mode=PosMode.STOCK_ONLY,
    ),
]

PRODUCTS: list[tuple[str, Unit, str]] = [
    ("TEA", Unit.PCS, "100.00"),
    ("COFFEE", Unit.PCS, "250.50"),
    ("SUGAR", Unit.KG, "80.00"),
    ("MUG", Unit.PCS, "300.00"),
]


async def seed_network(
    db: Database,
    stock_by_store: dict[str, dict[str, Decimal | int]] | None = None,
    pos_stores: tuple[str, ...] = ("S01",),
) -> Network:
    """Stores WH1 (online, priority 10), S01 (online 20, pickup, safety 1, POS makes orders),
    S02 (pickup only, POS stock only); products TEA, COFFEE, SUGAR (kg), MUG; a token per role
    (the POS token is scoped to `pos_stores`); and the given stock as receipts."""
    now = datetime.now(UTC)
    net = Network()
    async with db.uow() as uow:
        for values in STORES:
            row = await catalog.insert_store(uow.conn, catalog.store_values(**values), now)
            net.stores[row.code] = row.id
        for sku, unit, price in PRODUCTS:
            row = await catalog.insert_product(
                uow.conn,
                {
                    "sku": sku,
                    "xml_id": f"1c-{sku.lower()}",
                    "name": sku.title(),
                    "unit": unit.value,
                    "price": Decimal(price),
                    "barcode": None,
                    "active": True,
                },
                now,
            )
            net.products[sku] = row.id
        for role in Role:
            scope = [net.stores[c] for c in pos_stores] if role is Role.POS else []
            _, token = await tokens.create_token(uow.conn, f"test-{role.value}", role, scope, now)
            net.tokens[role.value] = token
        await uow.commit()
    db.forget_stores()
    for store_code, lines in (stock_by_store or {}).items():
        doc = StockDocument(
            store_code,
            f"SEED-{store_code}",
            tuple(StockLine(ProductRef(sku=sku), Decimal(q)) for sku, q in lines.items()),
        )
        await stock.receive(db.uow, doc, Context(), None)
    return net


async def receive(db: Database, store: str, document_id: str, **quantities: int | str) -> None:
    """A receipt of goods at a store: `receive(db, "WH1", "R1", TEA=5)`."""
    doc = StockDocument(
        store,
        document_id,
        tuple(StockLine(ProductRef(sku=sku), Decimal(q)) for sku, q in quantities.items()),
    )
    await stock.receive(db.uow, doc, Context(), None)


async def open_database(url: str) -> AsyncIterator[Database]:
    db = Database.from_url(url, pool_size=40, catalog_cache_seconds=0)
    try:
        yield db
    finally:
        await db.dispose()
