"""The bare reference of bench/orders.py: the thinnest ASGI app that places the same order.

No framework, no authentication, no validation beyond what the statement needs, no idempotency:
a raw ASGI callable that reads the JSON body of `POST /orders` (bench/orders.lua's request: one
line, `{"sku": ..., "quantity": ...}`), and writes in ONE statement the rows the hub writes for
that order: the conditional stock update at the bench's warehouse (WH1), the order with its next
number, its line, its hold, the `order.created` and `stock.changed` outbox events and the
order's first timeline entry. 201 with `{"id", "number"}`, or 409 when the stock row did not
have the units. It is what the hub is compared with (issue 12): the limit of this server,
this database and this machine for the same writes.

Served by the same server as the hub (uvicorn, httptools, uvloop, the same worker count):

    ORDERSYNC_BARE_DSN=postgresql://postgres@127.0.0.1:5432/ordersync_bench \\
        .venv/bin/uvicorn bare_app:app --app-dir bench --workers 2 --port 8766 \\
        --http httptools --loop uvloop --no-access-log
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import asyncpg

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

POOL_SIZE = 10  # as the hub's db_pool_size default

# $1 order id, $2 SKU, $3 quantity (scaled by 1000). The store is the bench's WH1, the first
# store serving online, as the hub's plan picks for these orders.
PLACE = """
WITH store AS (
    SELECT id FROM stores WHERE code = 'WH1'
),
held AS (
    UPDATE stock_levels s
    SET reserved = s.reserved + $3, updated_at = now()
    FROM products p, store w
    WHERE p.sku = $2 AND s.product_id = p.id AND s.store_id = w.id
      AND s.on_hand - s.reserved >= $3
    RETURNING s.product_id, s.store_id, s.on_hand, s.reserved, p.price
),
new_order AS (
    INSERT INTO orders (id, number, channel, source, fulfillment, status, payment_status,
        total, currency, customer, hold_expires_at, created_at, updated_at)
    SELECT $1, nextval('orders_number_seq'), 'online', 'order', 'delivery', 'placed', 'unpaid',
        h.price * $3 / 1000, 'RUB', '{}', now() + interval '30 minutes', now(), now()
    FROM held h
    RETURNING id, number, total
),
new_line AS (
    INSERT INTO order_lines (order_id, line_no, product_id, quantity, price)
    SELECT $1, 1, h.product_id, $3, h.price FROM held h, new_order o
),
new_hold AS (
    INSERT INTO holds (order_id, line_no, product_id, store_id, quantity, state, created_at,
        expires_at)
    SELECT $1, 1, h.product_id, h.store_id, $3, 'active', now(), now() + interval '30 minutes'
    FROM held h, new_order o
),
order_event AS (
    INSERT INTO outbox_events (type, aggregate_type, aggregate_id, payload, created_at)
    SELECT 'order.created', 'order', $1,
        json_build_object('order_id', $1, 'number', o.number, 'channel', 'online',
            'source', 'order', 'fulfillment', 'delivery', 'store_id', NULL,
            'status', 'placed', 'payment_status', 'unpaid',
            'total', trim_scale(o.total / 100.0)::text, 'currency', 'RUB',
            'external_id', NULL, 'pos_id', NULL, 'pos_transaction_id', NULL,
            'lines', json_build_array(json_build_object('line_no', 1,
                'product_id', h.product_id, 'quantity', trim_scale($3 / 1000.0)::text,
                'price', trim_scale(h.price / 100.0)::text))),
        now()
    FROM held h, new_order o
    RETURNING id, payload
),
timeline AS (
    INSERT INTO order_timeline (event_id, order_id, type, payload, created_at)
    SELECT id, $1, 'order.created', payload, now() FROM order_event
),
stock_event AS (
    INSERT INTO outbox_events (type, aggregate_type, aggregate_id, payload, created_at)
    SELECT 'stock.changed', 'stock', h.product_id || ':' || h.store_id,
        json_build_object('product_id', h.product_id, 'store_id', h.store_id,
            'on_hand', trim_scale(h.on_hand / 1000.0)::text,
            'reserved', trim_scale(h.reserved / 1000.0)::text,
            'available', trim_scale((h.on_hand - h.reserved) / 1000.0)::text,
            'reason', 'hold', 'document_type', 'order', 'document_id', $1),
        now()
    FROM held h
)
SELECT number FROM new_order
"""


class BareApp:
    def __init__(self) -> None:
        self.pool: asyncpg.Pool | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["method"] != "POST" or scope["path"] != "/orders":
            await _answer(send, 404, b'{"error":"not_found"}')
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            line = json.loads(body)["lines"][0]
            sku = str(line["sku"])
            quantity = round(float(line["quantity"]) * 1000)
        except (ValueError, KeyError, IndexError, TypeError):
            await _answer(send, 422, b'{"error":"invalid_request"}')
            return
        order_id = str(uuid.uuid4())
        assert self.pool is not None
        number = await self.pool.fetchval(PLACE, order_id, sku, quantity)
        if number is None:
            await _answer(send, 409, b'{"error":"insufficient_stock"}')
            return
        await _answer(send, 201, json.dumps({"id": order_id, "number": number}).encode())

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.pool = await asyncpg.create_pool(
                    os.environ["ORDERSYNC_BARE_DSN"], min_size=1, max_size=POOL_SIZE
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.pool is not None:
                    await self.pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


app = BareApp()
