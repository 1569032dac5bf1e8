"""The receipt feed, `POST /api/v2/receipts`: one event `{id, timestamp, userId, type:
"ReceiptCreated", version, data: {...}}` (definitions.yaml#/receipt). The deprecated v1 feed
posted an array of flat receipts (`uuid`, `deviceUuid`, `storeUuid`, `employeeUuid`,
`items[].uuid`: the older definitions.yaml), and paths.yaml still says the body "contains one
or more receipts": so an array is read too, of either shape.

A receipt's `data.id` is the uuid of the SELL or PAYBACK document of the same sale, so both
become the same TillDocument key and the hub applies the sale once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .documents import line_quantity
from .errors import EvotorErrorItem, EvotorRequestError, incorrect
from .model import FREE_PRICE_COMMODITY, STOCK_TYPES, Feed, TillDocument, TillDocumentKind, TillLine
from .values import Fields, magnitude, normalize_id
from .wire import loads

RECEIPT_CREATED = "ReceiptCreated"
RECEIPT_TYPES = {"SELL", "PAYBACK"}
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True, slots=True)
class ReceiptEvent:
    event_id: str | None  # None for a deprecated flat receipt
    timestamp: int | None  # as sent ("Unix milliseconds"; the documented example has 16 digits)
    user_id: str | None  # the Evotor account, 01-000000000000001
    event_type: str
    version: str | None
    receipt: TillDocument | None  # None for an event type the hub does not act on
    total_amount: Decimal | None = None
    total_discount: Decimal | None = None
    total_tax: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ReceiptRejected:
    index: int
    event_id: str | None
    receipt_uuid: str | None
    errors: tuple[EvotorErrorItem, ...]


ReceiptResult = ReceiptEvent | ReceiptRejected


def read_receipts(body: bytes | str | Any) -> list[ReceiptResult]:
    """The body of `POST /api/v2/receipts`: one event, or an array (the deprecated form)."""
    parsed = loads(body) if isinstance(body, bytes | str) else body
    if isinstance(parsed, dict):
        return [_read_one(0, parsed, "")]
    if not isinstance(parsed, list):
        raise incorrect("body", "not a receipt event")
    return [_read_one(index, raw, f"[{index}]") for index, raw in enumerate(parsed)]


def read_receipt_event(raw: Any, path: str = "") -> ReceiptEvent:
    f = Fields(raw, path)
    if "data" not in f.raw and ("uuid" in f.raw or "items" in f.raw):
        receipt, totals = _receipt(f, flat=True)
        return ReceiptEvent(None, None, None, RECEIPT_CREATED, "1", receipt, *totals)
    event_type = f.text("type", required=True)
    assert event_type is not None
    event = {
        "event_id": f.ident("id"),
        "timestamp": f.lenient("integer", "timestamp"),
        "user_id": f.text("userId"),
        "event_type": event_type,
        "version": f.text("version"),
    }
    if event_type != RECEIPT_CREATED:
        return ReceiptEvent(**event, receipt=None)
    receipt, totals = _receipt(Fields(f.value("data", required=True), f.at("data")), flat=False)
    return ReceiptEvent(
        **event,
        receipt=receipt,
        total_amount=totals[0],
        total_discount=totals[1],
        total_tax=totals[2],
    )


def _read_one(index: int, raw: Any, path: str) -> ReceiptResult:
    try:
        return read_receipt_event(raw, path)
    except EvotorRequestError as exc:
        event_id, receipt_uuid = _identity(raw)
        return ReceiptRejected(index, event_id, receipt_uuid, exc.items)


def _identity(raw: Any) -> tuple[str | None, str | None]:
    if not isinstance(raw, dict):
        return None, None
    data = raw.get("data")
    if isinstance(data, dict):
        event_id, receipt = raw.get("id"), data.get("id")
    else:
        event_id, receipt = None, raw.get("uuid")
    return (
        normalize_id(event_id) if isinstance(event_id, str) else None,
        normalize_id(receipt) if isinstance(receipt, str) else None,
    )


def _receipt(
    d: Fields, flat: bool
) -> tuple[TillDocument, tuple[Decimal | None, Decimal | None, Decimal | None]]:
    """`data` of a v2 event (`id`, `storeId`, `deviceId`, `employeeId`, `items[].id`) or a
    deprecated flat receipt (`uuid`, `storeUuid`, `deviceUuid`, `employeeUuid`,
    `items[].uuid`)."""
    names = _FLAT if flat else _EVENT
    evotor_type = (d.text("type", required=True) or "").upper()
    known = evotor_type in RECEIPT_TYPES
    kind = STOCK_TYPES[evotor_type] if known else TillDocumentKind.IGNORED
    ignored = kind is TillDocumentKind.IGNORED
    uuid, store = d.ident(names["id"], required=True), d.ident(names["store"], required=True)
    assert uuid is not None and store is not None
    total = d.lenient("money", "totalAmount")
    document = TillDocument(
        store_uuid=store,
        uuid=uuid,
        evotor_type=evotor_type,
        kind=kind,
        closed_at=d.lenient("moment", "dateTime") if ignored else d.moment("dateTime", True),
        device_uuid=d.lenient("ident", names["device"]),
        session_number=d.lenient("text", "shiftId"),
        closed_by=d.lenient("ident", names["employee"]),
        close_result_sum=total,
        payment_source=d.lenient("text", "paymentSource"),
        lines=() if ignored else tuple(_items(d, kind, names["item"])),
        feed=Feed.RECEIPTS,
    )
    totals = (total, d.lenient("money", "totalDiscount"), d.lenient("money", "totalTax"))
    return document, totals


_EVENT = {
    "id": "id",
    "store": "storeId",
    "device": "deviceId",
    "employee": "employeeId",
    "item": "id",
}
_FLAT = {
    "id": "uuid",
    "store": "storeUuid",
    "device": "deviceUuid",
    "employee": "employeeUuid",
    "item": "uuid",
}


def _items(d: Fields, kind: TillDocumentKind, id_key: str) -> list[TillLine]:
    lines = []
    for position, item in enumerate(d.objects("items"), start=1):
        product = item.text(id_key, max_length=64)
        normal = normalize_id(product) if product else None
        free = normal is None or normal == FREE_PRICE_COMMODITY
        is_uuid = normal is not None and _UUID.fullmatch(normal) is not None
        price, total = _amount(item, "price"), _amount(item, "sumPrice")
        discount = _amount(item, "discount")
        lines.append(
            TillLine(
                position=position,
                commodity_uuid=normal if is_uuid and not free else None,
                # "id: product uuid, or a shop's own code" (definitions.yaml#/receipt)
                commodity_code=None if is_uuid or free else product,
                name=item.text("name"),
                quantity=line_quantity(item, "quantity", kind),
                price=price,
                sum=total,
                # sumPrice read as the total before the item's discount: the documentation
                # does not say which
                result_sum=None if total is None else total - (discount or 0),
                discount=discount,
                cost_price=item.cost("costPrice"),
                barcode=item.text("barcode"),
                measure_name=item.text("measureName"),
                commodity_type=item.text("itemType"),
                tax_sum=magnitude(item.lenient("money", "tax")),
                tax_percent=item.lenient("quantity", "taxPercent"),
                free_price=free,
            )
        )
    return lines


def _amount(f: Fields, key: str) -> Decimal | None:
    return magnitude(f.money(key))
