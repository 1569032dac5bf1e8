"""The SQL behind a completed till sale that displaces holds (services/till_sale.py): the
active holds at the sale's store with what decides their turn, the orders' locks (always
before any stock row), and hold history (a displaced hold is closed, new holds carry on)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.types import Channel, Fulfillment, HoldState, PaymentStatus
from ..services.ports import StoreHold
from .tables import holds, orders, products

LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL: FOR UPDATE NOWAIT found the row locked


async def holds_at(
    conn: AsyncConnection, store_id: int, product_ids: Sequence[int]
) -> list[StoreHold]:
    """Served by ix_holds_product_store_state."""
    h, o = holds.c, orders.c
    stmt = (
        select(
            h.id,
            h.order_id,
            o.number,
            h.line_no,
            h.product_id,
            products.c.sku,
            h.store_id,
            h.quantity,
            h.expires_at,
            o.fulfillment,
            o.channel,
            o.payment_status,
            o.created_at,
        )
        .join(orders, o.id == h.order_id)
        .join(products, products.c.id == h.product_id)
        .where(
            h.product_id.in_(product_ids),
            h.store_id == store_id,
            h.state == HoldState.ACTIVE.value,
        )
        .order_by(h.id)
    )
    return [
        StoreHold(
            r.id,
            r.order_id,
            r.number,
            r.line_no,
            r.product_id,
            r.sku,
            r.store_id,
            r.quantity,
            r.expires_at,
            Fulfillment(r.fulfillment),
            Channel(r.channel),
            r.payment_status == PaymentStatus.PAID.value,
            r.created_at,
        )
        for r in (await conn.execute(stmt)).all()
    ]


async def lock_orders(conn: AsyncConnection, order_ids: Sequence[str], wait: bool = True) -> bool:
    """Locks the orders in id order (the fixed order). `wait=False` (NOWAIT, in a savepoint of
    its own): False, and nothing locked, when one is locked by another transaction, which a
    caller holding stock rows must never wait for."""
    if not order_ids or conn.dialect.name != "postgresql":
        return True
    stmt = (
        select(orders.c.id)
        .where(orders.c.id.in_(sorted(order_ids)))
        .order_by(orders.c.id)
        .with_for_update(nowait=not wait)
    )
    if wait:
        await conn.execute(stmt)
        return True
    savepoint = await conn.begin_nested()
    try:
        await conn.execute(stmt)
    except DBAPIError as exc:
        await savepoint.rollback()
        if _sqlstate(exc) != LOCK_NOT_AVAILABLE:
            raise
        return False
    await savepoint.commit()
    return True


def _sqlstate(exc: DBAPIError) -> str | None:
    """asyncpg's SQLSTATE, through SQLAlchemy's adapted exception."""
    cause = getattr(exc.orig, "__cause__", None)
    state = getattr(cause, "sqlstate", None) or getattr(exc.orig, "sqlstate", None)
    return str(state) if state is not None else None


async def close_hold(conn: AsyncConnection, hold_id: int, state: HoldState, now: datetime) -> None:
    await conn.execute(
        update(holds)
        .where(holds.c.id == hold_id, holds.c.state == HoldState.ACTIVE.value)
        .values(state=state.value, closed_at=now)
    )


async def add_hold(
    conn: AsyncConnection,
    order_id: str,
    line_no: int,
    product_id: int,
    store_id: int,
    quantity: Decimal,
    expires_at: datetime | None,
    now: datetime,
    replaces: int | None = None,
) -> None:
    """A new active hold of an order's line (an operator held the line at another store, or
    it carries on a hold a till sale displaced: `replaces`)."""
    await conn.execute(
        insert(holds).values(
            order_id=order_id,
            line_no=line_no,
            product_id=product_id,
            store_id=store_id,
            quantity=quantity,
            state=HoldState.ACTIVE.value,
            created_at=now,
            expires_at=expires_at,
            replaces=replaces,
        )
    )


async def carry_hold(
    conn: AsyncConnection,
    replaced: StoreHold,
    store_id: int,
    quantity: Decimal,
    now: datetime,
) -> None:
    """A new active hold that carries on part of a displaced one, at `store_id`."""
    await add_hold(
        conn,
        replaced.order_id,
        replaced.line_no,
        replaced.product_id,
        store_id,
        quantity,
        replaced.expires_at,
        now,
        replaces=replaced.hold_id,
    )
