"""Orders, their lines and holds: writing, locking and reading them back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, and_, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.allocation import Allocation
from ..domain.customers import customer_keys
from ..domain.orders import LineHold, Order, OrderLine
from ..domain.types import Channel, Fulfillment, HoldState, OrderStatus, PaymentStatus, Source
from ..services.ports import Hold
from . import attention
from .tables import holds, order_attention, order_lines, orders, products


def order_values(order: Order) -> dict[str, Any]:
    phone, name = customer_keys(order.customer)
    return {
        "id": order.id,
        "number": order.number,
        "channel": order.channel.value,
        "source": order.source.value,
        "fulfillment": order.fulfillment.value,
        "status": order.status.value,
        "payment_status": order.payment_status.value,
        "store_id": order.store_id,
        "total": order.total,
        "currency": order.currency,
        "customer": order.customer,
        "comment": order.comment,
        "external_id": order.external_id,
        "pos_id": order.pos_id,
        "pos_transaction_id": order.pos_transaction_id,
        "hold_expires_at": order.hold_expires_at,
        "created_at": order.created_at,
        "updated_at": order.created_at,
        "paid_at": order.paid_at,
        "shipped_at": order.shipped_at,
        "completed_at": order.completed_at,
        "cancelled_at": order.cancelled_at,
        "confirmed_at": order.confirmed_at,
        "customer_phone": phone,
        "customer_name": name,
    }


async def insert_order(conn: AsyncConnection, order: Order) -> None:
    await conn.execute(insert(orders).values(order_values(order)))
    if not order.lines:  # a till shift's order starts empty (services/till_shift.py)
        return
    await conn.execute(
        insert(order_lines),
        [
            {
                "order_id": order.id,
                "line_no": line.line_no,
                "product_id": line.product_id,
                "quantity": line.quantity,
                "price": line.price,
            }
            for line in order.lines
        ],
    )


async def insert_holds(
    conn: AsyncConnection,
    order_id: str,
    allocations: Sequence[Allocation],
    now: datetime,
    expires_at: datetime | None,
) -> None:
    if not allocations:
        return
    await conn.execute(
        insert(holds),
        [
            {
                "order_id": order_id,
                "line_no": a.line_no,
                "product_id": a.product_id,
                "store_id": a.store_id,
                "quantity": a.quantity,
                "state": HoldState.ACTIVE.value,
                "created_at": now,
                "expires_at": expires_at,
            }
            for a in allocations
        ],
    )


def _order(row: Row[Any], lines: list[OrderLine]) -> Order:
    return Order(
        id=row.id,
        channel=Channel(row.channel),
        source=Source(row.source),
        fulfillment=Fulfillment(row.fulfillment),
        status=OrderStatus(row.status),
        payment_status=PaymentStatus(row.payment_status),
        store_id=row.store_id,
        lines=lines,
        created_at=row.created_at,
        currency=row.currency,
        customer=row.customer,
        external_id=row.external_id,
        pos_id=row.pos_id,
        pos_transaction_id=row.pos_transaction_id,
        hold_expires_at=row.hold_expires_at,
        updated_at=row.updated_at,
        paid_at=row.paid_at,
        shipped_at=row.shipped_at,
        completed_at=row.completed_at,
        cancelled_at=row.cancelled_at,
        confirmed_at=row.confirmed_at,
        comment=row.comment,
        number=row.number,
        version=row.version,
    )


async def _lines_of(conn: AsyncConnection, order_ids: Sequence[str]) -> dict[str, list[OrderLine]]:
    stmt = (
        select(order_lines, products.c.sku)
        .join(products, products.c.id == order_lines.c.product_id)
        .where(order_lines.c.order_id.in_(order_ids))
        .order_by(order_lines.c.order_id, order_lines.c.line_no)
    )
    result: dict[str, list[OrderLine]] = {oid: [] for oid in order_ids}
    for r in (await conn.execute(stmt)).all():
        result[r.order_id].append(
            OrderLine(r.line_no, r.product_id, r.quantity, r.price, r.sku, returned=r.returned)
        )
    held = await _holds_of(conn, order_ids)
    for oid, lines in result.items():
        for line in lines:
            line.holds = held.get((oid, line.line_no), [])
    return result


async def _holds_of(
    conn: AsyncConnection, order_ids: Sequence[str]
) -> dict[tuple[str, int], list[LineHold]]:
    """Where each line's stock is (or was) held, by (order, line)."""
    stmt = (
        select(holds.c.order_id, holds.c.line_no, holds.c.store_id, holds.c.quantity, holds.c.state)
        .where(holds.c.order_id.in_(order_ids))
        .order_by(holds.c.order_id, holds.c.line_no, holds.c.id)
    )
    result: dict[tuple[str, int], list[LineHold]] = {}
    for r in (await conn.execute(stmt)).all():
        hold = LineHold(r.store_id, r.quantity, HoldState(r.state))
        result.setdefault((r.order_id, r.line_no), []).append(hold)
    return result


async def get_order(conn: AsyncConnection, order_id: str, lock: bool = False) -> Order | None:
    """The order with its lines; `lock` takes the order row's lock first (before any stock
    row: orders, then stock levels, is the fixed order)."""
    stmt = select(orders).where(orders.c.id == order_id)
    if lock:
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    if row is None:
        return None
    order = _order(row, (await _lines_of(conn, [order_id]))[order_id])
    order.attention = (await attention.open_of(conn, [order_id])).get(order_id, [])
    return order


async def find_by_external_id(
    conn: AsyncConnection, channel: Channel, external_id: str
) -> Order | None:
    row = (
        await conn.execute(
            select(orders.c.id).where(
                orders.c.channel == channel.value, orders.c.external_id == external_id
            )
        )
    ).first()
    return None if row is None else await get_order(conn, row.id)


@dataclass(frozen=True, slots=True)
class OrderFilter:
    channel: Channel | None = None
    store_id: int | None = None
    status: OrderStatus | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    after: tuple[datetime, str] | None = None  # keyset cursor: (created_at, id)
    limit: int = 50
    number: int | None = None
    external_id: str | None = None
    newest_first: bool = False
    attention: bool | None = None  # True: only orders with open attention items


async def list_orders(conn: AsyncConnection, f: OrderFilter) -> list[Order]:
    """Orders in (created_at, id) order, oldest or newest first, after the cursor. By store:
    the orders at that store and those holding (or having held) stock there, so a
    warehouse's delivery orders are its pick list."""
    keys = (orders.c.created_at, orders.c.id)
    order_by = [k.desc() for k in keys] if f.newest_first else list(keys)
    stmt = select(orders).order_by(*order_by).limit(f.limit)
    if f.channel is not None:
        stmt = stmt.where(orders.c.channel == f.channel.value)
    if f.store_id is not None:
        held_there = (
            select(holds.c.id)
            .where(holds.c.order_id == orders.c.id, holds.c.store_id == f.store_id)
            .exists()
        )
        stmt = stmt.where(or_(orders.c.store_id == f.store_id, held_there))
    if f.status is not None:
        stmt = stmt.where(orders.c.status == f.status.value)
    if f.number is not None:
        stmt = stmt.where(orders.c.number == f.number)
    if f.external_id is not None:
        stmt = stmt.where(orders.c.external_id == f.external_id)
    if f.created_from is not None:
        stmt = stmt.where(orders.c.created_at >= f.created_from)
    if f.created_to is not None:
        stmt = stmt.where(orders.c.created_at < f.created_to)
    if f.after is not None:
        at, oid = f.after
        if f.newest_first:
            beyond = or_(
                orders.c.created_at < at, and_(orders.c.created_at == at, orders.c.id < oid)
            )
        else:
            beyond = or_(
                orders.c.created_at > at, and_(orders.c.created_at == at, orders.c.id > oid)
            )
        stmt = stmt.where(beyond)
    if f.attention is not None:
        open_item = (
            select(order_attention.c.id)
            .where(order_attention.c.order_id == orders.c.id)
            .where(order_attention.c.resolved_at.is_(None))
            .exists()
        )
        stmt = stmt.where(open_item if f.attention else ~open_item)
    rows = (await conn.execute(stmt)).all()
    if not rows:
        return []
    ids = [r.id for r in rows]
    lines = await _lines_of(conn, ids)
    items = await attention.open_of(conn, ids)
    found = [_order(r, lines[r.id]) for r in rows]
    for order in found:
        order.attention = items.get(order.id, [])
    return found


async def set_order_fields(conn: AsyncConnection, order_id: str, **values: Any) -> None:
    """Every change of an order goes through here and raises its version."""
    await conn.execute(
        update(orders).where(orders.c.id == order_id).values(version=orders.c.version + 1, **values)
    )


async def set_line_quantity(
    conn: AsyncConnection, order_id: str, line_no: int, quantity: Decimal
) -> None:
    """The caller holds the order's lock and raises its version (set_order_fields)."""
    await conn.execute(
        update(order_lines)
        .where(order_lines.c.order_id == order_id, order_lines.c.line_no == line_no)
        .values(quantity=quantity)
    )


async def next_number(conn: AsyncConnection) -> int:
    """The number the next order gets: from the sequence on PostgreSQL (a refused order may
    leave a gap), the highest plus one on SQLite (one writer at a time, so no two agree)."""
    if conn.dialect.name == "postgresql":
        return int((await conn.execute(text("SELECT nextval('orders_number_seq')"))).scalar_one())
    highest = (await conn.execute(select(func.max(orders.c.number)))).scalar()
    return int(highest or 0) + 1


async def active_holds(conn: AsyncConnection, order_id: str) -> list[Hold]:
    stmt = (
        select(holds)
        .where(holds.c.order_id == order_id, holds.c.state == HoldState.ACTIVE.value)
        .order_by(holds.c.product_id, holds.c.store_id, holds.c.id)
    )
    return [
        Hold(
            r.id, r.line_no, r.product_id, r.store_id, r.quantity, HoldState(r.state), r.expires_at
        )
        for r in (await conn.execute(stmt)).all()
    ]


async def close_holds(
    conn: AsyncConnection, order_id: str, state: HoldState, now: datetime
) -> None:
    await conn.execute(
        update(holds)
        .where(holds.c.order_id == order_id, holds.c.state == HoldState.ACTIVE.value)
        .values(state=state.value, closed_at=now)
    )


async def keep_holds(conn: AsyncConnection, order_id: str) -> None:
    """A paid order's holds no longer expire."""
    await conn.execute(
        update(holds)
        .where(holds.c.order_id == order_id, holds.c.state == HoldState.ACTIVE.value)
        .values(expires_at=None)
    )


async def extend_holds(conn: AsyncConnection, order_id: str, until: datetime) -> None:
    """A confirmed order's active holds expire later."""
    await conn.execute(
        update(holds)
        .where(holds.c.order_id == order_id, holds.c.state == HoldState.ACTIVE.value)
        .values(expires_at=until)
    )


async def orders_with_expired_holds(conn: AsyncConnection, now: datetime, limit: int) -> list[str]:
    stmt = (
        select(orders.c.id)
        .where(
            orders.c.status == OrderStatus.PLACED.value,
            orders.c.payment_status == PaymentStatus.UNPAID.value,
            orders.c.hold_expires_at <= now,
        )
        .order_by(orders.c.hold_expires_at)
        .limit(limit)
    )
    return [r.id for r in (await conn.execute(stmt)).all()]
