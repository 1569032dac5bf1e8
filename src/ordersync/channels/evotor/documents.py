"""Till documents as the Evotor cloud sends them (`PUT .../stores/{storeUuid}/documents`, an
array) and serves them (`GET .../documents`), read into TillDocument: the neutral shape the hub
acts on, which a receipt event (receipts.py) also becomes.

Shaped by evotor/documentation-api: `definitions.yaml#/document` and `#/transaction` for the
fields, `pos-docs/*.json` for what each type carries (the lines of SELL, PAYBACK, ACCEPT,
WRITE_OFF and RETURN are REGISTER_POSITION transactions, INVENTORY's are INVENTORY ones with a
`balanceQuantity` that may be a string; BUY and BUYBACK come in the V2 layout with `id`,
`storeId` and `body.positions`).

Lines are read as magnitudes (model.py says why): a PAYBACK's negative quantities become
positive ones in a document whose stock effect is IN.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

from .errors import EvotorErrorItem, EvotorRequestError, incorrect, missing
from .model import (
    FREE_PRICE_COMMODITY,
    STOCK_TYPES,
    DocumentRejected,
    DocumentResult,
    Payment,
    TillDocument,
    TillDocumentKind,
    TillLine,
)
from .values import Fields, magnitude, normalize_id
from .wire import loads

_LINE_TRANSACTIONS = frozenset({"REGISTER_POSITION", "INVENTORY"})


def read_documents(body: bytes | str | Any, store_uuid: str) -> list[DocumentResult]:
    """A `PUT .../stores/{storeUuid}/documents` body (raw bytes, or already parsed by
    wire.loads): one result per document, in order. Raises EvotorRequestError only when the
    request as a whole is unreadable (not JSON, not an array, a bad store id)."""
    store = _path_store(store_uuid)
    parsed = loads(body) if isinstance(body, bytes | str) else body
    if isinstance(parsed, dict):
        parsed = [parsed]  # one document where the documentation says an array of them
    if not isinstance(parsed, list):
        raise incorrect("body", "not an array of documents")
    return [_read_one(index, raw, store) for index, raw in enumerate(parsed)]


def batch_errors(results: list[DocumentResult]) -> list[EvotorErrorItem]:
    """Every problem of the rejected documents, its subject under the document's index
    (`[2].transactions[1].quantity`): the body of a 400 that says which ones failed."""
    return [
        item.under(f"[{result.index}]")
        for result in results
        if isinstance(result, DocumentRejected)
        for item in result.errors
    ]


def read_document(raw: Any, store_uuid: str | None = None) -> TillDocument:
    """One document; `store_uuid` is the store of the request path, if any."""
    store_uuid = None if store_uuid is None else _path_store(store_uuid)
    f = Fields(raw)
    evotor_type = _required_text(f, "type").upper()
    kind = STOCK_TYPES.get(evotor_type, TillDocumentKind.IGNORED)
    header = _header(f, store_uuid, evotor_type, kind)
    if kind is TillDocumentKind.IGNORED:
        return TillDocument(**header)
    if not f.has("transactions") and isinstance(f.raw.get("body"), dict):
        return _with_body(header, Fields(f.raw["body"], "body"), kind)
    return _with_transactions(header, f, kind)


def _read_one(index: int, raw: Any, store: str) -> DocumentResult:
    try:
        return read_document(raw, store)
    except EvotorRequestError as exc:
        uuid, evotor_type = _identity(raw)
        return DocumentRejected(index, uuid, evotor_type, exc.items)


def _identity(raw: Any) -> tuple[str | None, str | None]:
    if not isinstance(raw, dict):
        return None, None
    uuid = raw.get("uuid") or raw.get("id")
    kind = raw.get("type")
    return (
        normalize_id(uuid) if isinstance(uuid, str) else None,
        kind if isinstance(kind, str) else None,
    )


def _path_store(store_uuid: str) -> str:
    store = Fields({"storeUuid": store_uuid}).ident("storeUuid")
    if store is None:
        raise missing("storeUuid")
    return store


def _required_text(f: Fields, key: str) -> str:
    text = f.text(key, required=True)
    assert text is not None
    return text


def _header(
    f: Fields, path_store: str | None, evotor_type: str, kind: TillDocumentKind
) -> dict[str, Any]:
    """The fields every document has, in the V1 layout (`uuid`, `storeUuid`, `deviceUuid`,
    `deviceId` the IMEI) or the V2 one (`id`, `storeId`, `deviceId` a uuid, `deviceImei`)."""
    uuid = f.ident("uuid") or f.ident("id")
    if uuid is None:
        raise missing("uuid")
    if kind is TillDocumentKind.IGNORED:
        closed_at = f.lenient("moment", "closeDate")
    else:
        closed_at = f.moment("closeDate", required=True)
    device_uuid, device_id = _device(f)
    return {
        "store_uuid": _store(f, path_store),
        "uuid": uuid,
        "evotor_type": evotor_type,
        "kind": kind,
        "closed_at": closed_at,
        "number": f.lenient("integer", "number"),
        "device_uuid": device_uuid,
        "device_id": device_id,
        "session_uuid": f.lenient("ident", "sessionUUID") or f.lenient("ident", "sessionId"),
        "session_number": f.lenient("text", "sessionNumber"),
        "opened_at": f.lenient("moment", "openDate"),
        "opened_by": f.lenient("ident", "openUserUuid"),
        "closed_by": f.lenient("ident", "closeUserUuid") or f.lenient("ident", "closeUserId"),
        "close_sum": f.lenient("money", "closeSum"),
        "close_result_sum": f.lenient("money", "closeResultSum"),
    }


def _store(f: Fields, path_store: str | None) -> str:
    key = "storeUuid" if f.has("storeUuid") else "storeId"
    own = f.ident(key)
    if own is not None and path_store is not None and own != path_store:
        raise incorrect(key, "not the store the documents were sent for", own)
    store = own or path_store
    if store is None:
        raise missing("storeUuid")
    return store


def _device(f: Fields) -> tuple[str | None, str | None]:
    device_uuid = f.lenient("ident", "deviceUuid")
    imei = f.lenient("text", "deviceImei")
    device_id = f.lenient("text", "deviceId")
    if device_id is not None and not device_id.isdigit():
        device_uuid, device_id = device_uuid or normalize_id(device_id), None  # V2: a uuid
    return device_uuid, imei or device_id


def _with_transactions(header: dict[str, Any], f: Fields, kind: TillDocumentKind) -> TillDocument:
    lines: list[TillLine] = []
    payments: list[Payment] = []
    extra: dict[str, Any] = {}
    for t in f.objects("transactions", required=True):
        ttype = (t.text("type") or "").upper()
        if ttype in _LINE_TRANSACTIONS:
            lines.append(_line(t, kind, len(lines) + 1))
        elif ttype == "POSITION_TAX" and lines:
            lines[-1] = _with_tax(lines[-1], t)
        elif ttype == "PAYMENT":
            payments.append(_payment(t, "paymentType"))
        elif ttype in ("DOCUMENT_OPEN", "DOCUMENT_CLOSE"):
            if extra.get("base_document_uuid") is None:  # DOCUMENT_OPEN names it first
                extra["base_document_uuid"] = t.ident("baseDocumentUUID")
                extra["base_document_number"] = t.text("baseDocumentNumber")
        elif ttype == "DOCUMENT_CLOSE_FPRINT":
            extra["fiscal_receipt_number"] = t.lenient("text", "receiptNumber")
            extra["fiscal_document_number"] = t.lenient("text", "documentNumber")
    return TillDocument(**header, **extra, payments=tuple(payments), lines=tuple(lines))


def _with_body(header: dict[str, Any], body: Fields, kind: TillDocumentKind) -> TillDocument:
    """The V2 layout of pos-docs/14-BUY.json and 15-BUYBACK.json: `body.positions`,
    `body.payments`, `body.posPrintResults`, `body.baseDocumentId`."""
    lines = [_position(p, kind, index + 1) for index, p in enumerate(body.objects("positions"))]
    payments = [_payment(p, "type") for p in body.objects("payments")]
    printed = list(body.objects("posPrintResults"))
    return TillDocument(
        **header,
        base_document_uuid=body.ident("baseDocumentId"),
        base_document_number=body.text("baseDocumentNumber"),
        fiscal_receipt_number=printed[0].lenient("text", "receiptNumber") if printed else None,
        fiscal_document_number=printed[0].lenient("text", "documentNumber") if printed else None,
        payments=tuple(payments),
        lines=tuple(lines),
    )


def _line(t: Fields, kind: TillDocumentKind, position: int) -> TillLine:
    commodity = t.ident("commodityUuid")
    amounts = _amounts(t, "price", "resultPrice", "sum", "resultSum")
    return TillLine(
        position=position,
        commodity_uuid=None if _is_free(commodity) else commodity,
        commodity_code=t.text("commodityCode"),
        name=t.text("commodityName"),
        quantity=line_quantity(t, "quantity", kind),
        **amounts,
        cost_price=t.cost("costPrice"),
        barcode=t.text("barcode"),
        mark=t.text("mark"),
        measure_name=t.text("measureName"),
        commodity_type=t.text("commodityType"),
        balance_quantity=t.lenient("quantity", "balanceQuantity"),
        free_price=_is_free(commodity),
    )


def _position(p: Fields, kind: TillDocumentKind, position: int) -> TillLine:
    product = p.ident("productId")
    tax = Fields(p.raw["tax"], p.at("tax")) if isinstance(p.raw.get("tax"), dict) else None
    return TillLine(
        position=position,
        commodity_uuid=None if _is_free(product) else product,
        commodity_code=p.text("code"),
        name=p.text("productName"),
        quantity=line_quantity(p, "quantity", kind),
        **_amounts(p, "price", "resultPrice", "sum", "resultSum"),
        cost_price=p.cost("costPrice"),
        barcode=p.text("barcode"),
        mark=p.text("mark"),
        measure_name=p.text("measureName"),
        commodity_type=p.text("productType"),
        tax=tax.text("type") if tax else None,
        tax_sum=tax.lenient("money", "sum") if tax else None,
        free_price=_is_free(product),
    )


def line_quantity(f: Fields, key: str, kind: TillDocumentKind) -> Decimal:
    """The line's quantity as a magnitude. A PAYBACK sends its lines negative (pos-docs/
    03-PAYBACK.json); any other document sending one is refused rather than guessed at."""
    quantity = f.quantity(key, required=True)
    assert quantity is not None
    if kind is TillDocumentKind.CUSTOMER_RETURN:
        return abs(quantity)
    if quantity < 0:
        raise incorrect(f.at(key), "negative outside a PAYBACK", quantity)
    return quantity


def _amounts(f: Fields, *keys: str) -> dict[str, Any]:
    names = ("price", "result_price", "sum", "result_sum")
    values = {name: magnitude(f.money(key)) for name, key in zip(names, keys, strict=True)}
    if values["sum"] is not None and values["result_sum"] is not None:
        values["discount"] = values["sum"] - values["result_sum"]
    return values


def _with_tax(line: TillLine, t: Fields) -> TillLine:
    return dataclasses.replace(
        line,
        tax=t.lenient("text", "tax"),
        tax_sum=magnitude(t.lenient("money", "taxSum")),
        tax_percent=t.lenient("quantity", "taxPercent"),
    )


def _payment(t: Fields, type_key: str) -> Payment:
    amount = t.money("sum", required=True)
    assert amount is not None
    return Payment(t.text(type_key) or "UNKNOWN", amount, t.lenient("text", "rrn"))


def _is_free(commodity: str | None) -> bool:
    return commodity is None or commodity == FREE_PRICE_COMMODITY
