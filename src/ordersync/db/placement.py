"""Writing a new order with its holds inside the unit of work's transaction.

Used on SQLite (one writer at a time, BEGIN IMMEDIATE). PostgreSQL has its own one-round-trip
path in pg_placement.py; both are run by the same integration tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain import events
from ..domain.allocation import Allocation, merge_by_stock_row
from ..domain.errors import AlreadyRecorded, StockRace
from ..domain.orders import Order
from ..domain.types import HoldReason
from ..services.ports import IdempotencyRecord, StockChange
from . import idempotency, orders, stock_ops
from .outbox import add_event


async def place_order_in_transaction(
    conn: AsyncConnection,
    order: Order,
    allocations: Sequence[Allocation],
    safety_by_store: dict[int, Decimal],
    response: IdempotencyRecord | None,
    now: datetime,
) -> None:
    try:
        await orders.insert_order(conn, order)
    except IntegrityError as exc:
        raise AlreadyRecorded("an order with this external id exists") from exc
    await orders.insert_holds(conn, order.id, allocations, now, order.hold_expires_at)
    await add_event(
        conn,
        events.ORDER_CREATED,
        events.AGGREGATE_ORDER,
        order.id,
        events.order_summary(order),
        now,
    )
    for product_id, store_id, qty in merge_by_stock_row(allocations):
        change = StockChange(
            product_id, store_id, qty, HoldReason.HOLD, "order", order.id, now, now
        )
        if await stock_ops.hold_stock(conn, change, safety_by_store[store_id]) is None:
            raise StockRace("a planned store no longer has the units")
    if response is not None:
        principal, key, request_hash, stored = response
        await idempotency.save_response(conn, principal, key, request_hash, stored, now)
