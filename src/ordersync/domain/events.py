"""Outbox event types and the shapes of their payloads (facts, named in the past tense)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .orders import Order

STOCK_CHANGED = "stock.changed"
# Levels of one product changed together (a chunk of a 1C import): one event, every figure.
STOCK_LEVELS_CHANGED = "stock.levels_changed"
ORDER_CREATED = "order.created"
ORDER_STATUS_CHANGED = "order.status_changed"
ORDER_PAID = "order.paid"
ORDER_CONFIRMED = "order.confirmed"  # confirmed by a person or the site: holds keep longer
ORDER_ATTENTION = "order.attention"  # an order needs a person (and when that is resolved)
ORDER_HOLDS_MOVED = "order.holds_moved"  # a till sale or an operator moved a line's holds
ORDER_LINE_CANCELLED = "order.line_cancelled"  # an operator dropped a line (short of stock)
ORDER_RETURNED = "order.returned"  # a till return took units of the order back
STOCK_NEGATIVE = "stock.negative"  # a level went below zero (state "negative") or back
CATALOG_CHANGED = "catalog.changed"  # products were created or changed

# The events that carry stock figures; `stock_figures` reads either shape level by level.
STOCK_TYPES = frozenset({STOCK_CHANGED, STOCK_LEVELS_CHANGED})

AGGREGATE_STOCK = "stock"
AGGREGATE_ORDER = "order"
AGGREGATE_CATALOG = "catalog"


def dec(value: Decimal) -> str:
    """A decimal as JSON text without exponent or trailing zeros: 5, 1.25, 0.001."""
    text = format(value.normalize(), "f")
    return text


def stock_aggregate_id(product_id: int, store_id: int) -> str:
    return f"{product_id}:{store_id}"


def stock_changed(
    product_id: int,
    store_id: int,
    on_hand: Decimal,
    reserved: Decimal,
    reason: str,
    document_type: str,
    document_id: str,
) -> dict[str, Any]:
    return {
        "product_id": product_id,
        "store_id": store_id,
        "on_hand": dec(on_hand),
        "reserved": dec(reserved),
        "available": dec(on_hand - reserved),
        "reason": reason,
        "document_type": document_type,
        "document_id": document_id,
    }


def stock_levels_changed(
    product_id: int,
    levels: list[tuple[int, Decimal, Decimal]],
    reason: str,
    document_type: str,
    document_id: str,
) -> dict[str, Any]:
    """One product's levels that changed together, as (store_id, on_hand, reserved) in store
    order; the aggregate is the product (its id as text)."""
    return {
        "product_id": product_id,
        "levels": [
            {
                "store_id": store_id,
                "on_hand": dec(on_hand),
                "reserved": dec(reserved),
                "available": dec(on_hand - reserved),
            }
            for store_id, on_hand, reserved in levels
        ],
        "reason": reason,
        "document_type": document_type,
        "document_id": document_id,
    }


def stock_figures(event_type: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The figures of a stock event level by level, each shaped as a `stock.changed` payload
    (product_id, store_id, on_hand, reserved, available, reason, document_type, document_id);
    no figure for any other event."""
    if event_type == STOCK_CHANGED:
        return [payload]
    if event_type != STOCK_LEVELS_CHANGED:
        return []
    common = {k: v for k, v in payload.items() if k != "levels"}
    return [{**common, **level} for level in payload["levels"]]


def order_summary(order: Order) -> dict[str, Any]:
    return {
        "order_id": order.id,
        "number": order.number,
        "channel": order.channel.value,
        "source": order.source.value,
        "fulfillment": order.fulfillment.value,
        "store_id": order.store_id,
        "status": order.status.value,
        "payment_status": order.payment_status.value,
        "total": dec(order.total),
        "currency": order.currency,
        "external_id": order.external_id,
        "pos_id": order.pos_id,
        "pos_transaction_id": order.pos_transaction_id,
        "lines": [
            {
                "line_no": line.line_no,
                "product_id": line.product_id,
                "quantity": dec(line.quantity),
                "price": dec(line.price),
            }
            for line in order.lines
        ],
    }


def order_status_changed(order_id: str, old: str, new: str, reason: str) -> dict[str, Any]:
    return {"order_id": order_id, "from": old, "to": new, "reason": reason}


def order_attention(
    order_id: str, number: int, attention_id: int, code: str, detail: dict[str, Any], state: str
) -> dict[str, Any]:
    """`state`: "open" when the item is raised, "resolved" when a person or the hub closed it."""
    return {
        "order_id": order_id,
        "number": number,
        "attention_id": attention_id,
        "code": code,
        "detail": detail,
        "state": state,
    }


def stock_negative(
    product_id: int, store_id: int, on_hand: Decimal, reason: str, document_id: str
) -> dict[str, Any]:
    """`state`: "negative" when the level went below zero, "settled" when it came back."""
    return {
        "product_id": product_id,
        "store_id": store_id,
        "on_hand": dec(on_hand),
        "state": "negative" if on_hand < 0 else "settled",
        "reason": reason,
        "document_id": document_id,
    }


def catalog_changed(product_ids: list[int], source: str) -> dict[str, Any]:
    return {"product_ids": sorted(product_ids), "source": source}
