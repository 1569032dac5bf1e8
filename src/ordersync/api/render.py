"""Domain objects as JSON bodies. Decimals become strings so no client reads a float."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from ..db.till_review import StoredReview
from ..domain.events import dec
from ..domain.orders import KOPECK, Order
from ..services.ports import Product, StockLevel, Store


def money(value: Decimal) -> str:
    """Money with its two places, as a till prints it: 349.00, 31.20."""
    return str(value.quantize(KOPECK))


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def order(o: Order, store_codes: dict[int, str]) -> dict[str, Any]:
    return {
        "id": o.id,
        "number": o.number,
        "version": o.version,
        "channel": o.channel.value,
        "source": o.source.value,
        "fulfillment": o.fulfillment.value,
        "status": o.status.value,
        "payment_status": o.payment_status.value,
        "store": None if o.store_id is None else store_codes.get(o.store_id),
        "total": money(o.total),
        "currency": o.currency,
        "lines": [
            {
                "line_no": x.line_no,
                "product_id": x.product_id,
                "sku": x.sku,
                "quantity": dec(x.quantity),
                "price": money(x.price),
                "returned": dec(x.returned),
                "amount": money(x.amount),
                "holds": [
                    {
                        "store": store_codes.get(h.store_id),
                        "quantity": dec(h.quantity),
                        "state": h.state.value,
                    }
                    for h in x.holds
                ],
            }
            for x in o.lines
        ],
        "customer": o.customer,
        "comment": o.comment,
        "external_id": o.external_id,
        "pos_id": o.pos_id,
        "pos_transaction_id": o.pos_transaction_id,
        "hold_expires_at": _time(o.hold_expires_at),
        "created_at": _time(o.created_at),
        "updated_at": _time(o.updated_at),
        "paid_at": _time(o.paid_at),
        "shipped_at": _time(o.shipped_at),
        "completed_at": _time(o.completed_at),
        "cancelled_at": _time(o.cancelled_at),
        "confirmed_at": _time(o.confirmed_at),
        "attention": [
            {"id": a.id, "code": a.code, "detail": a.detail, "at": _time(a.at)} for a in o.attention
        ],
    }


def store(s: Store) -> dict[str, Any]:
    return {
        "id": s.id,
        "code": s.code,
        "xml_id": s.xml_id,
        "name": s.name,
        "kind": s.kind.value,
        "serves_online": s.serves_online,
        "online_priority": s.online_priority,
        "is_pickup_point": s.is_pickup_point,
        "safety_stock": dec(s.safety_stock),
        "pos_mode": s.pos_mode.value,
        "active": s.active,
        "evotor_uuid": s.evotor_uuid,
    }


def product(p: Product) -> dict[str, Any]:
    return {
        "id": p.id,
        "sku": p.sku,
        "xml_id": p.xml_id,
        "name": p.name,
        "unit": p.unit.value,
        "barcode": p.barcode,
        "price": None if p.price is None else money(p.price),
        "active": p.active,
    }


def stock_level(level: StockLevel, store_code: str, safety: Any) -> dict[str, Any]:
    return {
        "product_id": level.product_id,
        "store": store_code,
        "store_id": level.store_id,
        "on_hand": dec(level.on_hand),
        "reserved": dec(level.reserved),
        "available": dec(level.on_hand - level.reserved),
        "available_online": dec(max(level.on_hand - level.reserved - safety, 0 * safety)),
        # below zero: a till sold more than the hub knew of, until a receipt, transfer or
        # count settles it
        "negative": level.on_hand < 0,
    }


def review_item(r: StoredReview, store_codes: dict[int, str]) -> dict[str, Any]:
    x = r.item
    return {
        "id": r.id,
        "kind": x.kind,
        "store": None if x.store_id is None else store_codes.get(x.store_id),
        "document_type": x.document_type,
        "document_id": x.document_id,
        "pos_id": x.pos_id,
        "position": x.position,
        "commodity_uuid": x.commodity_uuid,
        "code": x.code,
        "barcode": x.barcode,
        "name": x.name,
        "quantity": None if x.quantity is None else dec(x.quantity),
        "price": None if x.price is None else money(x.price),
        "reason": x.reason,
        "detail": x.detail,
        "created_at": _time(r.created_at),
        "resolved_at": _time(r.resolved_at),
        "resolution": r.resolution,
    }
