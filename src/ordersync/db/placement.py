"""Writing a new order with its holds, atomically.

On PostgreSQL this is one statement sent in autocommit mode: the stock rows are locked in
(product, store) order, conditionally updated, and the order, lines, holds, idempotency
record and outbox events are inserted by the same statement. The hot stock row's lock is
held only while the server finishes the statement and commits, never across a round trip
to the application. If any planned row no longer has the units, `ordersync_assert` raises
and the whole statement, hence everything, is undone.

On SQLite (one writer at a time, BEGIN IMMEDIATE) the same writes run as statements in the
unit of work's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain import events
from ..domain.allocation import Allocation, merge_by_stock_row
from ..domain.errors import AlreadyRecorded, StockRace
from ..domain.orders import Order
from ..domain.quantities import MONEY_SCALE, QUANTITY_SCALE, to_units
from ..domain.types import HoldReason
from ..services.ports import StockChange, StoredResponse
from . import idempotency, orders, stock_ops
from .outbox import add_event

IdempotencyRecord = tuple[str, str, str, StoredResponse]

PG_PLACE_ORDER = text(
    """
WITH req AS (
    SELECT * FROM unnest(
        CAST(:r_product AS integer[]), CAST(:r_store AS integer[]),
        CAST(:r_qty AS bigint[]), CAST(:r_safety AS bigint[])
    ) AS r(product_id, store_id, qty, safety)
),
locked AS MATERIALIZED (
    SELECT s.product_id, s.store_id
    FROM stock_levels s JOIN req r USING (product_id, store_id)
    ORDER BY s.product_id, s.store_id
    FOR UPDATE OF s
),
held AS (
    UPDATE stock_levels s
    SET reserved = s.reserved + r.qty, updated_at = CAST(:now AS timestamptz)
    FROM req r, locked l
    WHERE s.product_id = r.product_id AND s.store_id = r.store_id
      AND l.product_id = s.product_id AND l.store_id = s.store_id
      AND s.on_hand - s.reserved - r.safety >= r.qty
    RETURNING s.product_id, s.store_id, s.on_hand, s.reserved
),
new_order AS (
    INSERT INTO orders (id, channel, source, fulfillment, status, payment_status, store_id,
        total, currency, customer, comment, external_id, pos_id, pos_transaction_id,
        hold_expires_at, created_at, updated_at)
    VALUES (CAST(:id AS text), :channel, :source, :fulfillment, :status, :payment_status,
        CAST(:store_id AS integer), :total, :currency, CAST(:customer AS json), :comment,
        :external_id, NULL, NULL, CAST(:expires_at AS timestamptz), CAST(:now AS timestamptz),
        CAST(:now AS timestamptz))
),
new_lines AS (
    INSERT INTO order_lines (order_id, line_no, product_id, quantity, price)
    SELECT CAST(:id AS text), l.* FROM unnest(
        CAST(:l_no AS integer[]), CAST(:l_product AS integer[]),
        CAST(:l_qty AS bigint[]), CAST(:l_price AS bigint[])
    ) AS l
),
new_holds AS (
    INSERT INTO holds (order_id, line_no, product_id, store_id, quantity, state,
        created_at, expires_at)
    SELECT CAST(:id AS text), h.line_no, h.product_id, h.store_id, h.qty, 'active',
        CAST(:now AS timestamptz), CAST(:expires_at AS timestamptz)
    FROM unnest(
        CAST(:h_line AS integer[]), CAST(:h_product AS integer[]),
        CAST(:h_store AS integer[]), CAST(:h_qty AS bigint[])
    ) AS h(line_no, product_id, store_id, qty)
),
order_event AS (
    INSERT INTO outbox_events (type, aggregate_type, aggregate_id, payload, created_at)
    VALUES (CAST(:order_event_type AS text), 'order', CAST(:id AS text),
        CAST(:order_payload AS json), CAST(:now AS timestamptz))
),
stock_events AS (
    INSERT INTO outbox_events (type, aggregate_type, aggregate_id, payload, created_at)
    SELECT CAST(:stock_event_type AS text), 'stock', h.product_id || ':' || h.store_id,
        json_build_object(
            'product_id', h.product_id, 'store_id', h.store_id,
            'on_hand', trim_scale(h.on_hand / 1000.0)::text,
            'reserved', trim_scale(h.reserved / 1000.0)::text,
            'available', trim_scale((h.on_hand - h.reserved) / 1000.0)::text,
            'reason', CAST(:hold_reason AS text), 'document_type', 'order',
            'document_id', CAST(:id AS text)),
        CAST(:now AS timestamptz)
    FROM held h
),
remembered AS (
    INSERT INTO idempotency_keys (principal, key, request_hash, status_code, response,
        created_at)
    SELECT CAST(:idem_principal AS text), CAST(:idem_key AS text), CAST(:idem_hash AS text),
        CAST(:idem_status AS integer), CAST(:idem_body AS json), CAST(:now AS timestamptz)
    WHERE CAST(:idem_key AS text) IS NOT NULL
)
SELECT ordersync_assert((SELECT count(*) FROM held) = CAST(:rows AS bigint), 'stock_race')
"""
)

_UNIQUE_VIOLATION = "23505"
_RAISE_EXCEPTION = "P0001"


def _sqlstate(exc: DBAPIError) -> str | None:
    orig = exc.orig
    return getattr(orig, "sqlstate", None) or getattr(
        getattr(orig, "__cause__", None), "sqlstate", None
    )


async def place_order_postgres(
    conn: AsyncConnection,
    order: Order,
    allocations: Sequence[Allocation],
    safety_by_store: dict[int, Decimal],
    response: IdempotencyRecord | None,
) -> None:
    rows = merge_by_stock_row(allocations)
    q = QUANTITY_SCALE
    params = {
        "r_product": [p for p, _, _ in rows],
        "r_store": [s for _, s, _ in rows],
        "r_qty": [to_units(n, q) for _, _, n in rows],
        "r_safety": [to_units(safety_by_store[s], q) for _, s, _ in rows],
        "rows": len(rows),
        "now": order.created_at,
        "expires_at": order.hold_expires_at,
        "id": order.id,
        "channel": order.channel.value,
        "source": order.source.value,
        "fulfillment": order.fulfillment.value,
        "status": order.status.value,
        "payment_status": order.payment_status.value,
        "store_id": order.store_id,
        "total": to_units(order.total, MONEY_SCALE),
        "currency": order.currency,
        "customer": json.dumps(order.customer),
        "comment": order.comment,
        "external_id": order.external_id,
        "l_no": [x.line_no for x in order.lines],
        "l_product": [x.product_id for x in order.lines],
        "l_qty": [to_units(x.quantity, q) for x in order.lines],
        "l_price": [to_units(x.price, MONEY_SCALE) for x in order.lines],
        "h_line": [a.line_no for a in allocations],
        "h_product": [a.product_id for a in allocations],
        "h_store": [a.store_id for a in allocations],
        "h_qty": [to_units(a.quantity, q) for a in allocations],
        "order_event_type": events.ORDER_CREATED,
        "order_payload": json.dumps(events.order_summary(order)),
        "stock_event_type": events.STOCK_CHANGED,
        "hold_reason": HoldReason.HOLD.value,
        "idem_principal": response[0] if response else None,
        "idem_key": response[1] if response else None,
        "idem_hash": response[2] if response else None,
        "idem_status": response[3].status_code if response else None,
        "idem_body": json.dumps(response[3].body) if response else None,
    }
    try:
        await conn.execute(PG_PLACE_ORDER, params)
    except DBAPIError as exc:
        state = _sqlstate(exc)
        if state == _RAISE_EXCEPTION and "stock_race" in str(exc.orig):
            raise StockRace("a planned store no longer has the units") from exc
        if state == _UNIQUE_VIOLATION:
            raise AlreadyRecorded("the order's idempotency key or external id exists") from exc
        raise


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
