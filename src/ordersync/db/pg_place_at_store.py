"""An order placed whole at one store on PostgreSQL: ONE statement, ONE round trip.

The common order (every line held at the first store that may give it, as the plan would
make it whenever that store has the units) needs no planning read. This statement names the
products as the caller did (id, SKU or 1C Ид) and, in one implicit transaction:

1. resolves them and checks what the order's use case would check against the catalog (found,
   active, priced, whole pieces, a total in range): when anything fails, nothing is written
   and `ok` is false, and the caller takes the full path, which refuses with its own error;
2. inserts the order (with its number), lines, holds, the `order.created` event (payload
   built as events.order_summary builds it) and its timeline entry, BEFORE touching stock;
3. only then locks the stock rows (several in product order), adds the holds to `reserved` where
   `on_hand - reserved - safety >= n` and writes a `stock.changed` event per row, and calls
   `ordersync_assert`, which raises `stock_race` (undoing everything) when a row lacked the
   units: the caller then plans from a read as before.

The hot row is locked only for its own update, the events and the commit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import asyncpg

from ..domain.commands import LineInput
from ..domain.customers import customer_keys
from ..domain.orders import Order
from ..domain.quantities import MAX_MONEY, MONEY_SCALE, QUANTITY_SCALE, from_units, to_units
from ..services.ports import PlacedLine
from .pg_placement import stock_changed_events

# The stock step. Several rows are locked in product order first, as every writer locks them,
# so that two orders cannot deadlock; one row needs no such step (its update locks it). Both
# wait for the inserts (`written`) before touching stock.
_ORDERED = """want AS MATERIALIZED (
    SELECT l.product_id, sum(l.qty)::bigint AS qty FROM lines l, verdict v WHERE v.ok
    GROUP BY l.product_id
),
locked AS MATERIALIZED (
    SELECT s.product_id
    FROM stock_levels s JOIN want w ON s.product_id = w.product_id AND s.store_id = $20::integer
    WHERE (SELECT n FROM written) > 0
    ORDER BY s.product_id
    FOR NO KEY UPDATE OF s
),
held AS (
    UPDATE stock_levels s
    SET reserved = s.reserved + w.qty, updated_at = $13::timestamptz
    FROM want w, locked k
    WHERE s.product_id = w.product_id AND s.store_id = $20::integer
      AND k.product_id = s.product_id
      AND s.on_hand - s.reserved - $21::bigint >= w.qty
    RETURNING s.product_id, s.store_id, s.on_hand, s.reserved
),
"""

_ONE_ROW = """want AS MATERIALIZED (
    SELECT l.product_id, sum(l.qty)::bigint AS qty FROM lines l, verdict v WHERE v.ok
    GROUP BY l.product_id
),
held AS (
    UPDATE stock_levels s
    SET reserved = s.reserved + w.qty, updated_at = $13::timestamptz
    FROM want w
    WHERE s.product_id = w.product_id AND s.store_id = $20::integer
      AND s.on_hand - s.reserved - $21::bigint >= w.qty
      AND (SELECT n FROM written) > 0
    RETURNING s.product_id, s.store_id, s.on_hand, s.reserved
),
"""

# $1 order id, $2 channel, $3 source, $4 fulfillment, $5 status, $6 payment status, $7 the
# order's store, $8 currency, $9 customer, $10 comment, $11 external id, $12 hold expiry,
# $13 now, $14-$19 lines (no, product id, SKU, 1C Ид, quantity, price or NULL), $20 the store
# holding the lines, $21 its safety stock, $22-$23 the customer's search keys (phone, name),
# $24 the largest total. Quantities and money are scaled integers.
_PLACE_AT_STORE = """
WITH req AS (
    SELECT * FROM unnest($14::integer[], $15::integer[], $16::text[], $17::text[],
        $18::bigint[], $19::bigint[]) AS r(line_no, ref_id, ref_sku, ref_xml, qty, given)
),
lines AS MATERIALIZED (
    SELECT r.line_no, r.qty, p.id AS product_id, p.sku, p.unit, p.active,
        coalesce(r.given, p.price) AS price
    FROM req r
    LEFT JOIN LATERAL (
        SELECT id, sku, unit, active, price FROM products WHERE id = r.ref_id
        UNION ALL
        SELECT id, sku, unit, active, price FROM products WHERE sku = r.ref_sku
        UNION ALL
        SELECT id, sku, unit, active, price FROM products WHERE xml_id = r.ref_xml
        LIMIT 1
    ) p ON true
),
verdict AS MATERIALIZED (
    SELECT coalesce(bool_and(product_id IS NOT NULL AND active AND price IS NOT NULL
               AND (unit <> 'pcs' OR qty % 1000 = 0)), false)
           AND coalesce(sum(round(qty::numeric * price / 1000)), 0) <= $24::numeric AS ok,
        sum(round(qty::numeric * price / 1000)) AS total
    FROM lines
),
new_order AS (
    INSERT INTO orders (id, number, channel, source, fulfillment, status, payment_status,
        store_id, total, currency, customer, comment, external_id, hold_expires_at, created_at,
        updated_at, customer_phone, customer_name)
    SELECT $1::text, nextval('orders_number_seq'), $2::text, $3::text, $4::text, $5::text,
        $6::text, $7::integer, v.total::bigint, $8::text, $9::json, $10::text, $11::text,
        $12::timestamptz, $13::timestamptz, $13::timestamptz, $22::text, $23::text
    FROM verdict v WHERE v.ok
    RETURNING number, total
),
new_lines AS (
    INSERT INTO order_lines (order_id, line_no, product_id, quantity, price)
    SELECT $1::text, l.line_no, l.product_id, l.qty, l.price
    FROM lines l, verdict v WHERE v.ok
    RETURNING 1
),
new_holds AS (
    INSERT INTO holds (order_id, line_no, product_id, store_id, quantity, state, created_at,
        expires_at)
    SELECT $1::text, l.line_no, l.product_id, $20::integer, l.qty, 'active', $13::timestamptz,
        $12::timestamptz
    FROM lines l, verdict v WHERE v.ok
    RETURNING 1
),
order_event AS (
    INSERT INTO outbox_events (type, aggregate_type, aggregate_id, payload, created_at)
    SELECT 'order.created', 'order', $1::text,
        json_build_object('order_id', $1::text, 'number', o.number, 'channel', $2::text,
            'source', $3::text, 'fulfillment', $4::text, 'store_id', $7::integer,
            'status', $5::text, 'payment_status', $6::text,
            'total', trim_scale(o.total / 100.0)::text, 'currency', $8::text,
            'external_id', $11::text, 'pos_id', NULL, 'pos_transaction_id', NULL,
            'lines', (SELECT json_agg(json_build_object('line_no', l.line_no,
                    'product_id', l.product_id, 'quantity', trim_scale(l.qty / 1000.0)::text,
                    'price', trim_scale(l.price / 100.0)::text) ORDER BY l.line_no)
                FROM lines l)),
        $13::timestamptz
    FROM new_order o
    RETURNING id, payload
),
timeline AS (
    INSERT INTO order_timeline (event_id, order_id, type, payload, created_at)
    SELECT id, $1::text, 'order.created', payload, $13::timestamptz FROM order_event
    RETURNING 1
),
written AS MATERIALIZED (
    SELECT (SELECT count(*) FROM new_lines) + (SELECT count(*) FROM new_holds)
        + (SELECT count(*) FROM timeline) AS n
),
{held}
{stock_events}
SELECT v.ok, (SELECT number FROM new_order) AS number,
    (SELECT array_agg(l.product_id ORDER BY l.line_no) FROM lines l) AS product_ids,
    (SELECT array_agg(l.sku ORDER BY l.line_no) FROM lines l) AS skus,
    (SELECT array_agg(l.price ORDER BY l.line_no) FROM lines l) AS prices,
    ordersync_assert(NOT v.ok
        OR (SELECT count(*) FROM held) = (SELECT count(*) FROM want), 'stock_race') AS checked
FROM verdict v
"""
_WITH_EVENTS = _PLACE_AT_STORE.replace(
    "{stock_events}\n", stock_changed_events("$1::text", "$13::timestamptz")
)
PLACE_AT_STORE = _WITH_EVENTS.replace("{held}\n", _ORDERED)
PLACE_ONE_ROW_AT_STORE = _WITH_EVENTS.replace("{held}\n", _ONE_ROW)


def _args(order: Order, lines: Sequence[LineInput], store_id: int, safety: Decimal) -> list[Any]:
    q = QUANTITY_SCALE
    return [
        order.id,
        order.channel.value,
        order.source.value,
        order.fulfillment.value,
        order.status.value,
        order.payment_status.value,
        order.store_id,
        order.currency,
        json.dumps(order.customer),
        order.comment,
        order.external_id,
        order.hold_expires_at,
        order.created_at,
        list(range(1, len(lines) + 1)),
        [x.product.product_id for x in lines],
        [x.product.sku for x in lines],
        [x.product.xml_id for x in lines],
        [to_units(x.quantity, q) for x in lines],
        [None if x.price is None else to_units(x.price, MONEY_SCALE) for x in lines],
        store_id,
        to_units(safety, q),
        *customer_keys(order.customer),
        to_units(MAX_MONEY, MONEY_SCALE),
    ]


async def place_at_store(
    apg: Any, order: Order, lines: Sequence[LineInput], store_id: int, safety: Decimal
) -> tuple[int, list[PlacedLine]] | None:
    """The order's number and its lines as placed, or None when nothing was written: the
    catalog refuses a line, the store lacks the units, or the external id is taken."""
    try:
        query = PLACE_ONE_ROW_AT_STORE if len(lines) == 1 else PLACE_AT_STORE
        row = await apg.fetchrow(query, *_args(order, lines, store_id, safety))
    except asyncpg.RaiseError as exc:
        if "stock_race" in str(exc):
            return None
        raise
    except asyncpg.UniqueViolationError:
        return None
    if row is None or not row["ok"]:
        return None
    placed = [
        PlacedLine(product_id, sku, from_units(price, MONEY_SCALE))
        for product_id, sku, price in zip(
            row["product_ids"], row["skus"], row["prices"], strict=True
        )
    ]
    return int(row["number"]), placed
