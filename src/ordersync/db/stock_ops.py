"""Every change of a stock level, in one place.

Each operation is one conditional UPDATE (zero rows changed means refused, never a read
followed by a write), and writes its movement and its outbox event in the same transaction.
Callers touch stock rows in (product_id, store_id) order so that concurrent transactions
cannot deadlock (domain.allocation.merge_by_stock_row gives that order).

One write has no condition: `take_sold`, a completed till sale, which is recorded whatever
the level says and may take `on_hand` below zero. A level that goes below zero, or comes
back from it, also writes a `stock.negative` event.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    and_,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain import events
from ..services.ports import StockChange, StockLevel
from .outbox import add_event
from .tables import stock_levels, stock_movements
from .types import Quantity

_RETURNING = (
    stock_levels.c.product_id,
    stock_levels.c.store_id,
    stock_levels.c.on_hand,
    stock_levels.c.reserved,
)


def _qty(value: Decimal) -> BindParameter[Decimal]:
    """A quantity bound as scaled units. Explicit, because in `on_hand - reserved >= n` the
    difference is typed as a plain integer and would bind `n` unscaled."""
    return bindparam(None, value, type_=Quantity())


def _row_of(change: StockChange) -> ColumnElement[bool]:
    return and_(
        stock_levels.c.product_id == change.product_id,
        stock_levels.c.store_id == change.store_id,
    )


async def _apply(
    conn: AsyncConnection,
    change: StockChange,
    stmt: object,
    movement: Decimal | None,
    *,
    stock_event: bool = True,
) -> StockLevel | None:
    result = await conn.execute(stmt.returning(*_RETURNING))  # type: ignore[attr-defined]
    row = result.first()
    if row is None:
        return None
    stock = StockLevel(row.product_id, row.store_id, row.on_hand, row.reserved)
    if movement is not None and movement != 0:
        await _record_movement(conn, change, movement)
        before = stock.on_hand - movement
        if (before < 0) != (stock.on_hand < 0):
            await _record_negative_event(conn, change, stock)
    if stock_event:
        await _record_stock_event(conn, change, stock)
    return stock


async def hold_stock(
    conn: AsyncConnection, change: StockChange, safety_stock: Decimal
) -> StockLevel | None:
    """reserved += n where on_hand - reserved - safety >= n."""
    sl = stock_levels.c
    stmt = (
        update(stock_levels)
        .where(_row_of(change))
        .where(sl.on_hand - sl.reserved - _qty(safety_stock) >= _qty(change.quantity))
        .values(reserved=sl.reserved + _qty(change.quantity), updated_at=change.recorded_at)
    )
    return await _apply(conn, change, stmt, None)


async def release_hold(conn: AsyncConnection, change: StockChange) -> StockLevel | None:
    """reserved -= n: a cancelled or expired order gives its stock back."""
    sl = stock_levels.c
    stmt = (
        update(stock_levels)
        .where(_row_of(change))
        .where(sl.reserved >= _qty(change.quantity))
        .values(reserved=sl.reserved - _qty(change.quantity), updated_at=change.recorded_at)
    )
    return await _apply(conn, change, stmt, None)


async def consume_hold(conn: AsyncConnection, change: StockChange) -> StockLevel | None:
    """on_hand -= n and reserved -= n: a shipped order takes what it held."""
    sl = stock_levels.c
    stmt = (
        update(stock_levels)
        .where(_row_of(change))
        .where(sl.reserved >= _qty(change.quantity))
        .where(sl.on_hand >= _qty(change.quantity))
        .values(
            on_hand=sl.on_hand - _qty(change.quantity),
            reserved=sl.reserved - _qty(change.quantity),
            updated_at=change.recorded_at,
        )
    )
    return await _apply(conn, change, stmt, -change.quantity)


async def deduct_stock(conn: AsyncConnection, change: StockChange) -> StockLevel | None:
    """on_hand -= n where on_hand - reserved >= n: a till sale, a write-off, a transfer out.
    Units held for orders cannot be taken."""
    sl = stock_levels.c
    stmt = (
        update(stock_levels)
        .where(_row_of(change))
        .where(sl.on_hand - sl.reserved >= _qty(change.quantity))
        .values(on_hand=sl.on_hand - _qty(change.quantity), updated_at=change.recorded_at)
    )
    return await _apply(conn, change, stmt, -change.quantity)


async def take_sold(conn: AsyncConnection, change: StockChange) -> StockLevel:
    """on_hand -= n, whatever it was, creating the level if there was none: a completed till
    sale (the customer has left with the goods). The caller has already made room by
    displacing holds where it could (services/till_sale.py)."""
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    base = dialect_insert(stock_levels).values(
        product_id=change.product_id,
        store_id=change.store_id,
        on_hand=-change.quantity,
        reserved=Decimal(0),
        updated_at=change.recorded_at,
    )
    stmt = base.on_conflict_do_update(
        index_elements=[stock_levels.c.product_id, stock_levels.c.store_id],
        set_={
            "on_hand": stock_levels.c.on_hand + base.excluded.on_hand,
            "updated_at": base.excluded.updated_at,
        },
    )
    row = await _apply(conn, change, stmt, -change.quantity)
    assert row is not None  # an upsert always returns its row
    return row


async def lock_levels(
    conn: AsyncConnection, product_id: int, store_ids: Sequence[int]
) -> dict[int, StockLevel]:
    """One product's levels at these stores, locked in store order (the fixed order); a store
    without a level is absent. On SQLite the write transaction already excludes others."""
    stmt = (
        select(*_RETURNING)
        .where(stock_levels.c.product_id == product_id, stock_levels.c.store_id.in_(store_ids))
        .order_by(stock_levels.c.store_id)
        .with_for_update()
    )
    rows = (await conn.execute(stmt)).all()
    return {r.store_id: StockLevel(r.product_id, r.store_id, r.on_hand, r.reserved) for r in rows}


async def add_stock(conn: AsyncConnection, change: StockChange) -> StockLevel:
    """on_hand += n, creating the stock level if there was none: receipts, returns, transfers in."""
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    base = dialect_insert(stock_levels).values(
        product_id=change.product_id,
        store_id=change.store_id,
        on_hand=change.quantity,
        reserved=Decimal(0),
        updated_at=change.recorded_at,
    )
    stmt = base.on_conflict_do_update(
        index_elements=[stock_levels.c.product_id, stock_levels.c.store_id],
        set_={
            "on_hand": stock_levels.c.on_hand + base.excluded.on_hand,
            "updated_at": base.excluded.updated_at,
        },
    )
    row = await _apply(conn, change, stmt, change.quantity)
    assert row is not None  # an upsert always returns its row
    return row


async def set_on_hand(
    conn: AsyncConnection, change: StockChange, *, stock_event: bool = True
) -> tuple[StockLevel, Decimal]:
    """An inventory count: on_hand becomes the counted figure (change.quantity); the difference
    is recorded as a `count` movement. The row is locked before it is read. Without
    `stock_event` the caller writes the level's figure in an event of its own (the 1C
    import's stock.levels_changed, one per product)."""
    await ensure_stock_level(conn, change.product_id, change.store_id, change.recorded_at)
    current = (
        await conn.execute(select(stock_levels.c.on_hand).where(_row_of(change)).with_for_update())
    ).scalar_one()
    delta = change.quantity - current
    stmt = (
        update(stock_levels)
        .where(_row_of(change))
        .values(on_hand=change.quantity, updated_at=change.recorded_at)
    )
    row = await _apply(conn, change, stmt, delta, stock_event=stock_event)
    assert row is not None
    return row, delta


async def ensure_stock_level(
    conn: AsyncConnection, product_id: int, store_id: int, now: datetime
) -> None:
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    await conn.execute(
        dialect_insert(stock_levels)
        .values(
            product_id=product_id,
            store_id=store_id,
            on_hand=Decimal(0),
            reserved=Decimal(0),
            updated_at=now,
        )
        .on_conflict_do_nothing()
    )


async def read_stock(
    conn: AsyncConnection, product_ids: Sequence[int], store_ids: Sequence[int] | None = None
) -> list[StockLevel]:
    stmt = select(*_RETURNING).where(stock_levels.c.product_id.in_(product_ids))
    if store_ids is not None:
        stmt = stmt.where(stock_levels.c.store_id.in_(store_ids))
    rows = (await conn.execute(stmt)).all()
    return [StockLevel(r.product_id, r.store_id, r.on_hand, r.reserved) for r in rows]


async def _record_movement(conn: AsyncConnection, change: StockChange, quantity: Decimal) -> None:
    await conn.execute(
        insert(stock_movements).values(
            product_id=change.product_id,
            store_id=change.store_id,
            quantity=quantity,
            reason=str(change.reason),
            document_type=change.document_type,
            document_id=change.document_id,
            business_time=change.business_time,
            recorded_at=change.recorded_at,
        )
    )


async def _record_negative_event(
    conn: AsyncConnection, change: StockChange, row: StockLevel
) -> None:
    await add_event(
        conn,
        events.STOCK_NEGATIVE,
        events.AGGREGATE_STOCK,
        events.stock_aggregate_id(row.product_id, row.store_id),
        events.stock_negative(
            row.product_id, row.store_id, row.on_hand, str(change.reason), change.document_id
        ),
        change.recorded_at,
    )


async def negative_levels(conn: AsyncConnection) -> int:
    """How many levels are below zero (the partial index ix_stock_levels_negative)."""
    # A literal, not a parameter: the planner then proves the partial index's predicate.
    stmt = select(func.count()).select_from(stock_levels).where(text("on_hand < 0"))
    return int((await conn.execute(stmt)).scalar_one())


async def _record_stock_event(conn: AsyncConnection, change: StockChange, row: StockLevel) -> None:
    await add_event(
        conn,
        events.STOCK_CHANGED,
        events.AGGREGATE_STOCK,
        events.stock_aggregate_id(row.product_id, row.store_id),
        events.stock_changed(
            row.product_id,
            row.store_id,
            row.on_hand,
            row.reserved,
            str(change.reason),
            change.document_type,
            change.document_id,
        ),
        change.recorded_at,
    )
