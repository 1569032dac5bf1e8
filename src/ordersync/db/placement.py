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
from typing import Any

import asyncpg
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain import events
from ..domain.allocation import Allocation, merge_by_stock_row
from ..domain.errors import AlreadyRecorded, StockRace
from ..domain.orders import Order
from ..domain.quantities import MONEY_SCALE, QUANTITY_SCALE, from_units, to_units
from ..domain.types import HoldReason, Unit
from ..services.ports import Product, StockChange, StockLevel, StoredResponse
from . import idempotency, orders, stock_ops
from .outbox import add_event

IdempotencyRecord = tuple[str, str, str, StoredResponse]

# Parameters: $1 stock products, $2 stock stores, $3 quantities, $4 safety stocks (one per
# stock row, in lock order); $5 row count; $6 now; $7 hold expiry; $8 order id; $9 channel;
# $10 source; $11 fulfillment; $12 status; $13 payment status; $14 store; $15 total;
# $16 currency; $17 customer; $18 comment; $19 external id; $20-$23 lines (no, product,
# quantity, price); $24-$27 holds (line, product, store, quantity); $28 order.created payload;
# $29-$33 idempotency (principal, key, hash, status, body). Quantities and money are scaled.
PG_PLACE_ORDER = """
WITH req AS (
    SELECT * FROM unnest($1::integer[], $2::integer[], $3::bigint[], $4::bigint[])
        AS r(product_id, store_id, qty, safety)
),
locked AS MATERIALIZED (
    SELECT s.product_id, s.store_id
    FROM stock_levels s JOIN req r USING (product_id, store_id)
    ORDER BY s.product_id, s.store_id
    FOR UPDATE OF s
),
held AS (
    UPDATE stock_levels s
    SET reserved = s.reserved + r.qty, updated_at = $6::timestamptz
    FROM req r, locked l
    WHERE s.product_id = r.product_id AND s.store_id = r.store_id
      AND l.product_id = s.product_id AND l.store_id = s.store_id
      AND s.on_hand - s.reserved - r.safety >= r.qty
    RETURNING s.product_id, s.store_id, s.on_hand, s.reserved
),
new_order AS (
    INSERT INTO orders (id, channel, source, fulfillment, status, payment_status, store_id,
        total, currency, customer, comment, external_id, hold_expires_at, created_at,
        updated_at)
    VALUES ($8::text, $9, $10, $11, $12, $13, $14::integer, $15, $16, $17::json, $18, $19,
        $7::timestamptz, $6::timestamptz, $6::timestamptz)
),
new_lines AS (
    INSERT INTO order_lines (order_id, line_no, product_id, quantity, price)
    SELECT $8::text, l.* FROM unnest($20::integer[], $21::integer[], $22::bigint[],
        $23::bigint[]) AS l
),
new_holds AS (
    INSERT INTO holds (order_id, line_no, product_id, store_id, quantity, state,
        created_at, expires_at)
    SELECT $8::text, h.line_no, h.product_id, h.store_id, h.qty, 'active',
        $6::timestamptz, $7::timestamptz
    FROM unnest($24::integer[], $25::integer[], $26::integer[], $27::bigint[])
        AS h(line_no, product_id, store_id, qty)
),
order_event AS (
    INSERT INTO outbox_events (type, aggregate_type, aggregate_id, payload, created_at)
    VALUES ('order.created', 'order', $8::text, $28::json, $6::timestamptz)
),
stock_events AS (
    INSERT INTO outbox_events (type, aggregate_type, aggregate_id, payload, created_at)
    SELECT 'stock.changed', 'stock', h.product_id || ':' || h.store_id,
        json_build_object(
            'product_id', h.product_id, 'store_id', h.store_id,
            'on_hand', trim_scale(h.on_hand / 1000.0)::text,
            'reserved', trim_scale(h.reserved / 1000.0)::text,
            'available', trim_scale((h.on_hand - h.reserved) / 1000.0)::text,
            'reason', 'hold', 'document_type', 'order', 'document_id', $8::text),
        $6::timestamptz
    FROM held h
),
remembered AS (
    INSERT INTO idempotency_keys (principal, key, request_hash, status_code, response,
        created_at)
    SELECT $29::text, $30::text, $31::text, $32::integer, $33::json, $6::timestamptz
    WHERE $30::text IS NOT NULL
)
SELECT ordersync_assert((SELECT count(*) FROM held) = $5::bigint, 'stock_race')
"""

# One read for the plan: the products named by id, SKU or 1C Ид, with their stock levels at
# the candidate stores ($4). A product without stock there comes back with NULL figures.
PG_PRODUCTS_WITH_STOCK = """
SELECT p.id, p.sku, p.xml_id, p.name, p.unit, p.barcode, p.price, p.active,
       s.store_id, s.on_hand, s.reserved
FROM products p
LEFT JOIN stock_levels s ON s.product_id = p.id AND s.store_id = ANY($4::integer[])
WHERE p.id = ANY($1::integer[]) OR p.sku = ANY($2::text[]) OR p.xml_id = ANY($3::text[])
"""


async def products_with_stock_postgres(
    apg: Any,
    ids: Sequence[int],
    skus: Sequence[str],
    xml_ids: Sequence[str],
    store_ids: Sequence[int],
) -> tuple[list[Product], list[StockLevel]]:
    rows = await apg.fetch(
        PG_PRODUCTS_WITH_STOCK, list(ids), list(skus), list(xml_ids), list(store_ids)
    )
    products: dict[int, Product] = {}
    stock: list[StockLevel] = []
    for r in rows:
        if r["id"] not in products:
            price = r["price"]
            products[r["id"]] = Product(
                r["id"],
                r["sku"],
                r["xml_id"],
                r["name"],
                Unit(r["unit"]),
                r["barcode"],
                None if price is None else from_units(price, MONEY_SCALE),
                r["active"],
            )
        if r["store_id"] is not None:
            stock.append(
                StockLevel(
                    r["id"],
                    r["store_id"],
                    from_units(r["on_hand"], QUANTITY_SCALE),
                    from_units(r["reserved"], QUANTITY_SCALE),
                )
            )
    return list(products.values()), stock


async def place_order_postgres(
    apg: Any,
    order: Order,
    allocations: Sequence[Allocation],
    safety_by_store: dict[int, Decimal],
    response: IdempotencyRecord | None,
) -> None:
    """The one-statement placement on a raw asyncpg connection in autocommit mode."""
    rows = merge_by_stock_row(allocations)
    q = QUANTITY_SCALE
    lines = order.lines
    idem: tuple[Any, ...] = (None,) * 5
    if response is not None:
        principal, key, request_hash, stored = response
        idem = (principal, key, request_hash, stored.status_code, json.dumps(stored.body))
    try:
        await apg.execute(
            PG_PLACE_ORDER,
            [p for p, _, _ in rows],
            [s for _, s, _ in rows],
            [to_units(n, q) for _, _, n in rows],
            [to_units(safety_by_store[s], q) for _, s, _ in rows],
            len(rows),
            order.created_at,
            order.hold_expires_at,
            order.id,
            order.channel.value,
            order.source.value,
            order.fulfillment.value,
            order.status.value,
            order.payment_status.value,
            order.store_id,
            to_units(order.total, MONEY_SCALE),
            order.currency,
            json.dumps(order.customer),
            order.comment,
            order.external_id,
            [x.line_no for x in lines],
            [x.product_id for x in lines],
            [to_units(x.quantity, q) for x in lines],
            [to_units(x.price, MONEY_SCALE) for x in lines],
            [a.line_no for a in allocations],
            [a.product_id for a in allocations],
            [a.store_id for a in allocations],
            [to_units(a.quantity, q) for a in allocations],
            json.dumps(events.order_summary(order)),
            *idem,
        )
    except asyncpg.RaiseError as exc:
        if "stock_race" in str(exc):
            raise StockRace("a planned store no longer has the units") from exc
        raise
    except asyncpg.UniqueViolationError as exc:
        raise AlreadyRecorded("the order's idempotency key or external id exists") from exc


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
