"""A store's pick list: the delivery and pickup orders holding stock there now (active holds,
so not yet shipped, handed over, cancelled or expired), oldest first, with what to take from
the shelf for each. Served by ix_holds_store_active."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.types import Fulfillment, HoldState, OrderStatus, PaymentStatus, Unit
from .tables import holds, orders, products


@dataclass(frozen=True, slots=True)
class PickLine:
    line_no: int
    sku: str
    name: str
    unit: Unit
    quantity: Decimal  # held at this store (a delivery line may be split across stores)


@dataclass(slots=True)
class PickOrder:
    id: str
    number: int
    fulfillment: Fulfillment
    status: OrderStatus
    payment_status: PaymentStatus
    store_id: int | None
    customer: dict[str, Any]
    created_at: datetime
    lines: list[PickLine] = field(default_factory=list)


async def pick_list(conn: AsyncConnection, store_id: int, limit: int = 500) -> list[PickOrder]:
    h, o, p = holds.c, orders.c, products.c
    waiting = (
        select(h.order_id)
        .where(h.store_id == store_id, h.state == HoldState.ACTIVE.value)
        .distinct()
        .subquery()
    )
    heads = (
        await conn.execute(
            select(orders)
            .where(o.id.in_(select(waiting.c.order_id)), o.status == OrderStatus.PLACED.value)
            .order_by(o.created_at, o.id)
            .limit(limit)
        )
    ).all()
    found = {
        r.id: PickOrder(
            r.id,
            r.number,
            Fulfillment(r.fulfillment),
            OrderStatus(r.status),
            PaymentStatus(r.payment_status),
            r.store_id,
            r.customer if isinstance(r.customer, dict) else {},
            r.created_at,
        )
        for r in heads
    }
    if not found:
        return []
    rows = await conn.execute(
        select(h.order_id, h.line_no, p.sku, p.name, p.unit, h.quantity)
        .join(products, p.id == h.product_id)
        .where(
            h.order_id.in_(list(found)),
            h.store_id == store_id,
            h.state == HoldState.ACTIVE.value,
        )
        .order_by(h.order_id, h.line_no, h.id)
    )
    for r in rows:
        found[r.order_id].lines.append(PickLine(r.line_no, r.sku, r.name, Unit(r.unit), r.quantity))
    return list(found.values())
