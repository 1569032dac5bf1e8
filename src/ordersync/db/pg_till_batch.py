"""A batch of completed till sales of one store on PostgreSQL, in one transaction of a few
set-based statements (the Evotor cloud sends documents 50 at a time, and a statement per row
would cost more than the rows): the inbox rows marked done, the POS transactions, their
orders, lines and `order.created` events, what each sold (for returns), and the stock.

Only sales that free units cover go this way: the levels are read first and the sales are
taken greedily in order; the stock statement locks the rows in product order, deducts where
`on_hand - reserved >= n` and asserts that every row had the units, so a sale that raced
another undoes the whole batch (the caller then records the sales one by one, as it does
for those left out: sales that displace holds or take a level below zero). A sale already
recorded, or an inbox row another applier holds, undoes it the same way.

Stock events: one `stock.changed` per level per batch (its figures after the batch), where
the one-by-one path writes one per sale; movements are per sale and product, as always.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from ..domain import events
from ..domain.quantities import MONEY_SCALE, QUANTITY_SCALE, to_units
from ..services.ports import SaleForBatch

DONE = """
UPDATE evotor_inbox i SET state = 'done', applied_at = $2, claimed_until = NULL,
    attempts = i.attempts + 1, result = r.result
FROM unnest($1::bigint[], $3::json[]) AS r(id, result)
WHERE i.id = r.id AND i.state = 'pending' AND (i.claimed_until IS NULL OR i.claimed_until < $2)
RETURNING i.id
"""

RECORDS = """
INSERT INTO pos_transactions (store_id, pos_id, transaction_id, kind, order_id,
    original_transaction_id, request_hash, result, business_time, recorded_at, shift)
SELECT $1, x.pos_id, x.tx, 'sale', x.order_id, NULL, x.hash, x.result, x.at, $2, x.shift
FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::json[], $8::timestamptz[],
            $9::text[]) AS x(pos_id, tx, order_id, hash, result, at, shift)
ON CONFLICT DO NOTHING
RETURNING transaction_id
"""

SOLD = """
INSERT INTO pos_returned (store_id, pos_id, transaction_id, product_id, sold, returned)
SELECT $1, x.pos_id, x.tx, x.product_id, x.qty, 0
FROM unnest($2::text[], $3::text[], $4::integer[], $5::bigint[]) AS x(pos_id, tx, product_id, qty)
"""

NUMBERS = "SELECT nextval('orders_number_seq') FROM generate_series(1, $1::integer)"

ORDERS = """
WITH made AS (
    INSERT INTO orders (id, number, channel, source, fulfillment, status, payment_status,
        store_id, total, currency, customer, pos_id, pos_transaction_id, created_at,
        updated_at, paid_at, shipped_at, completed_at)
    SELECT o.id, o.number, 'pos', 'offline', 'in_store', 'completed', 'paid', $1, o.total,
        'RUB', '{}', o.pos_id, o.tx, o.at, $2, o.at, o.at, o.at
    FROM unnest($3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::text[],
                $8::timestamptz[]) AS o(id, number, total, pos_id, tx, at)
), lines AS (
    INSERT INTO order_lines (order_id, line_no, product_id, quantity, price)
    SELECT * FROM unnest($9::text[], $10::integer[], $11::integer[], $12::bigint[],
                         $13::bigint[])
)
INSERT INTO outbox_events (type, aggregate_type, aggregate_id, payload, created_at)
SELECT 'order.created', 'order', e.id, e.payload, $2
FROM unnest($3::text[], $14::json[]) AS e(id, payload)
"""

# $1 store, $2 now, $3-$4 per product (in lock order): product, units; $5-$8 per sale and
# product: product, units, document, business time; $9 rows expected, $10 the last document.
STOCK = """
WITH req AS (
    SELECT * FROM unnest($3::integer[], $4::bigint[]) AS r(product_id, qty)
),
locked AS MATERIALIZED (
    SELECT s.product_id FROM stock_levels s JOIN req r USING (product_id)
    WHERE s.store_id = $1
    ORDER BY s.product_id
    FOR NO KEY UPDATE OF s
),
taken AS (
    UPDATE stock_levels s SET on_hand = s.on_hand - r.qty, updated_at = $2
    FROM req r, locked l
    WHERE s.store_id = $1 AND s.product_id = r.product_id AND l.product_id = s.product_id
      AND s.on_hand - s.reserved >= r.qty
    RETURNING s.product_id, s.store_id, s.on_hand, s.reserved
),
moves AS (
    INSERT INTO stock_movements (product_id, store_id, quantity, reason, document_type,
        document_id, business_time, recorded_at)
    SELECT m.product_id, $1, -m.qty, 'pos_sale', 'pos_sale', m.doc, m.at, $2
    FROM unnest($5::integer[], $6::bigint[], $7::text[], $8::timestamptz[])
        AS m(product_id, qty, doc, at)
),
stock_events AS (
    INSERT INTO outbox_events (type, aggregate_type, aggregate_id, payload, created_at)
    SELECT 'stock.changed', 'stock', t.product_id || ':' || t.store_id,
        json_build_object(
            'product_id', t.product_id, 'store_id', t.store_id,
            'on_hand', trim_scale(t.on_hand / 1000.0)::text,
            'reserved', trim_scale(t.reserved / 1000.0)::text,
            'available', trim_scale((t.on_hand - t.reserved) / 1000.0)::text,
            'reason', 'pos_sale', 'document_type', 'pos_sale', 'document_id', $10::text),
        $2
    FROM taken t
)
SELECT ordersync_assert((SELECT count(*) FROM taken) = $9, 'stock_race')
"""

LEVELS = """
SELECT product_id, on_hand - reserved AS free FROM stock_levels
WHERE store_id = $1 AND product_id = ANY($2::integer[])
"""

EARLIER_RETURNS = """
SELECT DISTINCT original_transaction_id FROM pos_transactions
WHERE store_id = $1 AND kind = 'return' AND original_transaction_id = ANY($2::text[])
"""


class Interrupted(Exception):
    """The batch could not be written as planned; nothing of it was."""


async def fitting(apg: Any, store_id: int, sales: Sequence[SaleForBatch]) -> list[SaleForBatch]:
    """The sales that free units cover, taken in order (one read, no lock), and that no
    return recorded earlier names (those link as they are recorded one by one)."""
    products = sorted({p for s in sales for p, _ in s.totals})
    free = {
        r["product_id"]: Decimal(r["free"]) for r in await apg.fetch(LEVELS, store_id, products)
    }
    named = {
        r[0] for r in await apg.fetch(EARLIER_RETURNS, store_id, [s.transaction_id for s in sales])
    }
    chosen: list[SaleForBatch] = []
    for sale in sales:
        need = [(p, to_units(q, QUANTITY_SCALE)) for p, q in sale.totals]
        if sale.transaction_id in named or any(free.get(p, Decimal(-1)) < n for p, n in need):
            continue
        for p, n in need:
            free[p] -= n
        chosen.append(sale)
    return chosen


async def record(apg: Any, store_id: int, sales: Sequence[SaleForBatch], now: datetime) -> None:
    """Everything in one transaction, or nothing (Interrupted)."""
    try:
        async with apg.transaction():
            await _record(apg, store_id, sales, now)
    except asyncpg.RaiseError as exc:
        raise Interrupted(str(exc)) from exc
    except asyncpg.UniqueViolationError as exc:
        raise Interrupted(str(exc)) from exc


async def _record(apg: Any, store_id: int, sales: Sequence[SaleForBatch], now: datetime) -> None:
    orders = [s for s in sales if s.order is not None]
    if orders:
        numbers = [r[0] for r in await apg.fetch(NUMBERS, len(orders))]
        for sale, number in zip(orders, numbers, strict=True):
            assert sale.order is not None
            sale.order.number = int(number)
            sale.result["order_number"] = int(number)
    done = await apg.fetch(
        DONE, [s.inbox_id for s in sales], now, [json.dumps(s.result) for s in sales]
    )
    if len(done) != len(sales):
        raise Interrupted("an inbox document is done or held by another applier")
    recorded = await apg.fetch(
        RECORDS,
        store_id,
        now,
        [s.pos_id for s in sales],
        [s.transaction_id for s in sales],
        [s.order.id if s.order else None for s in sales],
        [s.request_hash for s in sales],
        [json.dumps(s.result) for s in sales],
        [s.business_time for s in sales],
        [s.shift for s in sales],
    )
    if len(recorded) != len(sales):
        raise Interrupted("a sale of the batch was recorded already")
    if orders:
        await apg.execute(ORDERS, store_id, now, *_orders_args(orders))
    q = QUANTITY_SCALE
    sold = [(s, p, n) for s in sales for p, n in s.totals]
    await apg.execute(
        SOLD,
        store_id,
        [s.pos_id for s, _, _ in sold],
        [s.transaction_id for s, _, _ in sold],
        [p for _, p, _ in sold],
        [to_units(n, q) for _, _, n in sold],
    )
    per_level: dict[int, int] = defaultdict(int)
    for _, p, n in sold:
        per_level[p] += to_units(n, q)
    levels = sorted(per_level.items())
    await apg.execute(
        STOCK,
        store_id,
        now,
        [p for p, _ in levels],
        [n for _, n in levels],
        [p for _, p, _ in sold],
        [to_units(n, q) for _, _, n in sold],
        [f"{s.pos_id}:{s.transaction_id}" for s, _, _ in sold],
        [s.business_time for s, _, _ in sold],
        len(levels),
        f"{sales[-1].pos_id}:{sales[-1].transaction_id}",
    )


def _orders_args(sales: Sequence[SaleForBatch]) -> list[Any]:
    orders = [s.order for s in sales if s.order is not None]
    lines = [(o, line) for o in orders for line in o.lines]
    return [
        [o.id for o in orders],
        [o.number for o in orders],
        [to_units(o.total, MONEY_SCALE) for o in orders],
        [o.pos_id for o in orders],
        [o.pos_transaction_id for o in orders],
        [o.created_at for o in orders],
        [o.id for o, _ in lines],
        [line.line_no for _, line in lines],
        [line.product_id for _, line in lines],
        [to_units(line.quantity, QUANTITY_SCALE) for _, line in lines],
        [to_units(line.price, MONEY_SCALE) for _, line in lines],
        [json.dumps(events.order_summary(o)) for o in orders],
    ]


class PgSaleBatches:
    """services.ports.SaleBatches on a connection of the placement pool."""

    def __init__(self, acquire: Any, release: Any) -> None:
        self._acquire, self._release = acquire, release

    async def fitting(self, store_id: int, sales: Sequence[SaleForBatch]) -> list[SaleForBatch]:
        apg = await self._acquire()
        try:
            return await fitting(apg, store_id, sales)
        finally:
            await self._release(apg)

    async def record(self, store_id: int, sales: Sequence[SaleForBatch], now: datetime) -> bool:
        apg = await self._acquire()
        try:
            await record(apg, store_id, sales, now)
            return True
        except Interrupted:
            return False
        finally:
            await self._release(apg)
