"""Reading what the database holds, for the integration tests' assertions.

Everything here reads through `db.uow_read()` (or `read_stock`), never through the return
values of the use cases, so a test checks what was really written."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Row, Table, func, select

from ordersync.db import ledger
from ordersync.db.tables import (
    holds,
    metadata,
    orders,
    outbox_events,
    stock_levels,
    stock_movements,
)
from ordersync.db.unit_of_work import Database
from tests.support import Network

D = Decimal


async def stock(db: Database, net: Network) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    """(on_hand, reserved) by (sku, store code), for every stock level that exists."""
    skus = {v: k for k, v in net.products.items()}
    codes = {v: k for k, v in net.stores.items()}
    async with db.uow_read() as uow:
        levels = await uow.read_stock(list(net.products.values()))
    return {(skus[x.product_id], codes[x.store_id]): (x.on_hand, x.reserved) for x in levels}


async def level(db: Database, net: Network, sku: str, store: str) -> tuple[Decimal, Decimal]:
    """(on_hand, reserved) of one stock level; (0, 0) when the level does not exist."""
    async with db.uow_read() as uow:
        found = await uow.read_stock([net.products[sku]], [net.stores[store]])
    if not found:
        return D(0), D(0)
    assert len(found) == 1
    return found[0].on_hand, found[0].reserved


async def rows(
    db: Database, table: Table, *where: ColumnElement[bool], order_by: Any = None
) -> list[Row[Any]]:
    stmt = select(table).where(*where)
    if order_by is not None:
        stmt = stmt.order_by(order_by)
    elif "id" in table.c:
        stmt = stmt.order_by(table.c.id)
    async with db.uow_read() as uow:
        return list((await uow.conn.execute(stmt)).all())


async def count(db: Database, table: Table, *where: ColumnElement[bool]) -> int:
    async with db.uow_read() as uow:
        stmt = select(func.count()).select_from(table).where(*where)
        return int((await uow.conn.execute(stmt)).scalar_one())


async def order_row(db: Database, order_id: str) -> Row[Any]:
    found = await rows(db, orders, orders.c.id == order_id)
    assert len(found) == 1, f"order {order_id}: {len(found)} rows"
    return found[0]


async def holds_of(db: Database, order_id: str) -> list[Row[Any]]:
    return await rows(db, holds, holds.c.order_id == order_id)


async def events(db: Database, type_: str | None = None) -> list[Row[Any]]:
    where = [] if type_ is None else [outbox_events.c.type == type_]
    return await rows(db, outbox_events, *where)


async def movements(
    db: Database,
    net: Network,
    sku: str | None = None,
    store: str | None = None,
    reason: str | None = None,
) -> list[Row[Any]]:
    m = stock_movements.c
    where: list[ColumnElement[bool]] = []
    if sku is not None:
        where.append(m.product_id == net.products[sku])
    if store is not None:
        where.append(m.store_id == net.stores[store])
    if reason is not None:
        where.append(m.reason == reason)
    return await rows(db, stock_movements, *where)


async def drift(db: Database) -> tuple[int, list[ledger.Drift]]:
    async with db.uow_read() as uow:
        return await ledger.drift(uow.conn)


async def snapshot(db: Database) -> dict[str, Any]:
    """Row counts of every table and every stock figure: equal snapshots mean nothing was
    written in between (timestamps aside)."""
    result: dict[str, Any] = {}
    sl = stock_levels.c
    async with db.uow_read() as uow:
        for table in metadata.sorted_tables:
            stmt = select(func.count()).select_from(table)
            result[table.name] = int((await uow.conn.execute(stmt)).scalar_one())
        figures = await uow.conn.execute(
            select(sl.product_id, sl.store_id, sl.on_hand, sl.reserved).order_by(
                sl.product_id, sl.store_id
            )
        )
        result["stock"] = [tuple(r) for r in figures.all()]
        states = await uow.conn.execute(select(holds.c.id, holds.c.state).order_by(holds.c.id))
        result["hold_states"] = [tuple(r) for r in states.all()]
        statuses = await uow.conn.execute(
            select(orders.c.id, orders.c.status, orders.c.payment_status).order_by(orders.c.id)
        )
        result["order_statuses"] = [tuple(r) for r in statuses.all()]
    return result
