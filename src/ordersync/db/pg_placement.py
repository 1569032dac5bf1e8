"""Order placement on PostgreSQL: one read to plan, one round trip to write.

The write is a single simple-protocol message holding two EXECUTEs of statements prepared
once per pool connection, which PostgreSQL runs as one implicit transaction:

1. `ordersync_place_rows` inserts the order, its lines and holds, the `order.created` event
   and the idempotency record. It takes no stock lock; its foreign-key checks run here.
2. `ordersync_hold_stock` locks the stock rows in (product, store) order, adds the holds to
   `reserved` where `on_hand - reserved - safety >= n`, writes a `stock.changed` event per
   row, and calls `ordersync_assert`, which raises when a row did not have the units, so
   the whole message is undone.

The transaction commits as soon as (2) ends, inside the server: the hot stock row is locked
only for its own update and the commit, never across a round trip to the application.
Because the simple protocol carries no parameters, the arguments of the EXECUTEs are
written as literals by `literal()`, which accepts only the types used here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from ..domain import events
from ..domain.allocation import Allocation, merge_by_stock_row
from ..domain.customers import customer_keys
from ..domain.errors import AlreadyRecorded, InvalidRequest, StockRace
from ..domain.orders import Order
from ..domain.quantities import MONEY_SCALE, QUANTITY_SCALE, from_units, to_units
from ..domain.types import Unit
from ..services.ports import IdempotencyRecord, Product, StockLevel

# $1 order id, $2 channel, $3 source, $4 fulfillment, $5 status, $6 payment status, $7 store,
# $8 total, $9 currency, $10 customer, $11 comment, $12 external id, $13 hold expiry, $14 now,
# $15-$18 lines (no, product, quantity, price), $19-$22 holds (line, product, store,
# quantity), $23 order.created payload, $24-$28 idempotency (principal, key, request hash,
# status, body), $29 the order's number, $30-$31 the customer's search keys (phone, name).
# Quantities and money are scaled integers. The order.created event is also the first entry
# of the order's timeline.
PREPARE_PLACE_ROWS = """
PREPARE ordersync_place_rows (text, text, text, text, text, text, integer, bigint, text, json,
    text, text, timestamptz, timestamptz, integer[], integer[], bigint[], bigint[], integer[],
    integer[], integer[], bigint[], json, text, text, text, integer, json, bigint, text,
    text) AS
WITH new_order AS (
    INSERT INTO orders (id, number, channel, source, fulfillment, status, payment_status,
        store_id, total, currency, customer, comment, external_id, hold_expires_at, created_at,
        updated_at, customer_phone, customer_name)
    VALUES ($1, $29, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $30, $31)
),
new_lines AS (
    INSERT INTO order_lines (order_id, line_no, product_id, quantity, price)
    SELECT $1, l.* FROM unnest($15, $16, $17, $18) AS l
),
new_holds AS (
    INSERT INTO holds (order_id, line_no, product_id, store_id, quantity, state,
        created_at, expires_at)
    SELECT $1, h.line_no, h.product_id, h.store_id, h.qty, 'active', $14, $13
    FROM unnest($19, $20, $21, $22) AS h(line_no, product_id, store_id, qty)
),
order_event AS (
    INSERT INTO outbox_events (type, aggregate_type, aggregate_id, payload, created_at)
    VALUES ('order.created', 'order', $1, $23, $14)
    RETURNING id
),
timeline AS (
    INSERT INTO order_timeline (event_id, order_id, type, payload, created_at)
    SELECT id, $1, 'order.created', $23, $14 FROM order_event
)
INSERT INTO idempotency_keys (principal, key, request_hash, status_code, response, created_at)
SELECT $24, $25, $26, $27, $28, $14 WHERE $25 IS NOT NULL
"""


def stock_changed_events(order_id: str, at: str) -> str:
    """The CTE `stock_events`: a `stock.changed` event per row of the CTE `held` (product_id,
    store_id, on_hand and reserved in thousandths) that an order's holds changed; `order_id`
    and `at` are the SQL of the order's id and of the event's time."""
    return f"""stock_events AS (
    INSERT INTO outbox_events (type, aggregate_type, aggregate_id, payload, created_at)
    SELECT 'stock.changed', 'stock', h.product_id || ':' || h.store_id,
        json_build_object(
            'product_id', h.product_id, 'store_id', h.store_id,
            'on_hand', trim_scale(h.on_hand / 1000.0)::text,
            'reserved', trim_scale(h.reserved / 1000.0)::text,
            'available', trim_scale((h.on_hand - h.reserved) / 1000.0)::text,
            'reason', 'hold', 'document_type', 'order', 'document_id', {order_id}),
        {at}
    FROM held h
)
"""


# $1 products, $2 stores, $3 quantities, $4 safety stocks (one per stock row, in lock order),
# $5 row count, $6 now, $7 order id.
PREPARE_HOLD_STOCK = (
    """
PREPARE ordersync_hold_stock (integer[], integer[], bigint[], bigint[], bigint, timestamptz,
    text) AS
WITH req AS (
    SELECT * FROM unnest($1, $2, $3, $4) AS r(product_id, store_id, qty, safety)
),
locked AS MATERIALIZED (
    SELECT s.product_id, s.store_id
    FROM stock_levels s JOIN req r USING (product_id, store_id)
    ORDER BY s.product_id, s.store_id
    FOR NO KEY UPDATE OF s
),
held AS (
    UPDATE stock_levels s
    SET reserved = s.reserved + r.qty, updated_at = $6
    FROM req r, locked l
    WHERE s.product_id = r.product_id AND s.store_id = r.store_id
      AND l.product_id = s.product_id AND l.store_id = s.store_id
      AND s.on_hand - s.reserved - r.safety >= r.qty
    RETURNING s.product_id, s.store_id, s.on_hand, s.reserved
),
"""
    + stock_changed_events("$7", "$6")
    + """SELECT ordersync_assert((SELECT count(*) FROM held) = $5, 'stock_race')
"""
)

# One read for the plan: the products named by id, SKU or 1C Ид, with their stock levels at
# the candidate stores ($4). A product without stock there comes back with NULL figures.
# The order's number is taken in the same round trip (evaluated once, when a product is found):
# a number taken for an order that is then refused is skipped, as after any rollback.
PRODUCTS_WITH_STOCK = """
WITH next_number AS (SELECT nextval('orders_number_seq') AS number)
SELECT p.id, p.sku, p.xml_id, p.name, p.unit, p.barcode, p.price, p.active,
       s.store_id, s.on_hand, s.reserved, (SELECT number FROM next_number) AS number
FROM products p
LEFT JOIN stock_levels s ON s.product_id = p.id AND s.store_id = ANY($4::integer[])
WHERE p.id = ANY($1::integer[]) OR p.sku = ANY($2::text[]) OR p.xml_id = ANY($3::text[])
"""

NEXT_NUMBER = "SELECT nextval('orders_number_seq')"

READ_STOCK = """
SELECT product_id, store_id, on_hand, reserved FROM stock_levels
WHERE product_id = ANY($1::integer[]) AND ($2::integer[] IS NULL OR store_id = ANY($2))
"""


def literal(value: object) -> str:
    """A PostgreSQL literal for the types the placement passes; anything else is refused."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        raise TypeError("booleans are not used here")
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return _text(value.isoformat())
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, list):
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in value):
            raise TypeError("only integer arrays are used here")
        return "'{" + ",".join(str(int(x)) for x in value) + "}'"
    raise TypeError(f"no literal for {type(value).__name__}")


def _text(value: str) -> str:
    if "\x00" in value:
        raise InvalidRequest("text must not contain NUL characters")
    # A standard string: only the quote is special, as `prepare` makes the session say.
    return "'" + value.replace("'", "''") + "'"


def _execute(name: str, args: Sequence[object]) -> str:
    return f"EXECUTE {name}({', '.join(literal(a) for a in args)})"


async def prepare(apg: Any) -> None:
    """Prepares the two write statements on a new pool connection (asyncpg's `init`).
    Their plans do not depend on the values, so they are planned once, not per order."""
    await apg.execute("SET plan_cache_mode = force_generic_plan")
    # A generic plan lasts as long as the session (until an ANALYZE of its tables), and so do
    # those of the foreign-key checks PostgreSQL runs for these inserts. Planned while
    # `orders` was empty and vacuumed (a new installation, a table just pruned), the check of
    # each order line against its order was a scan of the whole table, kept as it grew (in
    # bench/growth.py: 3,000 orders read per order placed, a quarter more CPU per order).
    # Every statement on these connections reaches its rows by key: never scan a table whole.
    await apg.execute("SET enable_seqscan = off")
    # literal() writes standard strings in UTF-8; make sure the session reads them so.
    await apg.execute("SET standard_conforming_strings = on")
    await apg.execute("SET client_encoding = 'UTF8'")
    await apg.execute(PREPARE_PLACE_ROWS)
    await apg.execute(PREPARE_HOLD_STOCK)


async def products_with_stock(
    apg: Any,
    ids: Sequence[int],
    skus: Sequence[str],
    xml_ids: Sequence[str],
    store_ids: Sequence[int],
) -> tuple[list[Product], list[StockLevel], int | None]:
    """The products and their stock at `store_ids`, and the next order number (None when no
    product was found)."""
    rows = await apg.fetch(
        PRODUCTS_WITH_STOCK, list(ids), list(skus), list(xml_ids), list(store_ids)
    )
    number = int(rows[0]["number"]) if rows else None
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
    return list(products.values()), stock, number


async def read_stock(
    apg: Any, product_ids: Sequence[int], store_ids: Sequence[int] | None
) -> list[StockLevel]:
    rows = await apg.fetch(
        READ_STOCK, list(product_ids), None if store_ids is None else list(store_ids)
    )
    return [
        StockLevel(
            r["product_id"],
            r["store_id"],
            from_units(r["on_hand"], QUANTITY_SCALE),
            from_units(r["reserved"], QUANTITY_SCALE),
        )
        for r in rows
    ]


def _place_rows_args(
    order: Order, allocations: Sequence[Allocation], response: IdempotencyRecord | None
) -> list[object]:
    q = QUANTITY_SCALE
    idem: list[object] = [None] * 5
    if response is not None:
        principal, key, request_hash, stored = response
        idem = [principal, key, request_hash, stored.status_code, json.dumps(stored.body)]
    return [
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
        order.hold_expires_at,
        order.created_at,
        [x.line_no for x in order.lines],
        [x.product_id for x in order.lines],
        [to_units(x.quantity, q) for x in order.lines],
        [to_units(x.price, MONEY_SCALE) for x in order.lines],
        [a.line_no for a in allocations],
        [a.product_id for a in allocations],
        [a.store_id for a in allocations],
        [to_units(a.quantity, q) for a in allocations],
        json.dumps(events.order_summary(order)),
        *idem,
        order.number,
        *customer_keys(order.customer),
    ]


def _hold_stock_args(
    order: Order, allocations: Sequence[Allocation], safety_by_store: dict[int, Decimal]
) -> list[object]:
    rows = merge_by_stock_row(allocations)
    q = QUANTITY_SCALE
    return [
        [p for p, _, _ in rows],
        [s for _, s, _ in rows],
        [to_units(n, q) for _, _, n in rows],
        [to_units(safety_by_store[s], q) for _, s, _ in rows],
        len(rows),
        order.created_at,
        order.id,
    ]


async def place_order(
    apg: Any,
    order: Order,
    allocations: Sequence[Allocation],
    safety_by_store: dict[int, Decimal],
    response: IdempotencyRecord | None,
) -> None:
    """Write the order and take its stock in one round trip, or raise StockRace (a planned
    row no longer has the units) or AlreadyRecorded (idempotency key or external id taken)."""
    message = (
        _execute("ordersync_place_rows", _place_rows_args(order, allocations, response))
        + ";\n"
        + _execute("ordersync_hold_stock", _hold_stock_args(order, allocations, safety_by_store))
    )
    try:
        await apg.execute(message)
    except asyncpg.RaiseError as exc:
        if "stock_race" in str(exc):
            raise StockRace("a planned store no longer has the units") from exc
        raise
    except asyncpg.UniqueViolationError as exc:
        raise AlreadyRecorded("the order's idempotency key or external id exists") from exc
