"""Stock documents: receipts, write-offs, inventory counts and transfers."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..domain.commands import StockDocument, StockLine, Transfer, UnmatchedLine
from ..domain.errors import Conflict, InsufficientStock, InvalidRequest
from ..domain.events import dec
from ..domain.quantities import non_negative_quantity, quantity
from ..domain.types import MovementReason
from .context import Context
from .idempotency import Idempotency, claim, remember
from .lookup import resolve_products, store_by_code
from .orders import UowFactory
from .ports import ReviewItem, StockChange, StockLevel, StoredResponse, UnitOfWork

Result = dict[str, Any]


async def _lines(
    uow: UnitOfWork, lines: tuple[StockLine, ...], allow_zero: bool = False, kept: int = 0
) -> list[tuple[int, Decimal]]:
    """(product_id, quantity) totals in lock order; counts may be zero. Products 1C marked
    deleted are still counted, received and written off (they are on the shelf). A till's
    document may have no line the hub could match (`kept`: lines kept for review)."""
    if not lines and not kept:
        raise InvalidRequest("a document has at least one line", field="lines")
    products = await resolve_products(uow, [line.product for line in lines], inactive=True)
    totals: dict[int, Decimal] = defaultdict(Decimal)
    for i, (line, product) in enumerate(zip(lines, products, strict=True)):
        check = non_negative_quantity if allow_zero else quantity
        totals[product.id] += check(line.quantity, product.unit, f"lines[{i}].quantity")
    return sorted(totals.items())


def _document_hash(lines: tuple[StockLine, ...], extra: str) -> str:
    canonical = [[line.product.label, str(line.quantity)] for line in lines]
    return hashlib.sha256(json.dumps([extra, canonical]).encode()).hexdigest()


async def _applied(
    uow: UnitOfWork, document_type: str, store_id: int, document_id: str, request_hash: str
) -> Result | None:
    """The first result of a document sent again; a different document under the same
    number is refused."""
    found = await uow.find_document(document_type, store_id, document_id)
    if found is None:
        return None
    first_hash, result = found
    if first_hash != request_hash:
        raise Conflict(
            f"{document_type} {document_id} was already recorded with other lines",
            document_type=document_type,
            document_id=document_id,
        )
    return {**result, "replayed": True}


async def _answered(uow: UnitOfWork, idem: Idempotency[Result] | None, earlier: Result) -> Result:
    """A document sent again under a new Idempotency-Key: its first result, kept under the key."""
    if idem is not None:
        await remember(uow, idem, earlier)
        await uow.commit()
    return earlier


def _unmatched(store_id: int, kind: str, document_id: str, line: UnmatchedLine) -> ReviewItem:
    return ReviewItem(
        kind="unmatched_line",
        store_id=store_id,
        document_type=kind,
        document_id=document_id,
        reason=line.reason,
        position=line.position,
        commodity_uuid=line.commodity_uuid,
        code=line.code,
        barcode=line.barcode,
        name=line.name,
        quantity=line.quantity,
        price=line.price,
    )


def _level(row: StockLevel, **extra: Any) -> Result:
    return {
        "product_id": row.product_id,
        "store_id": row.store_id,
        "on_hand": dec(row.on_hand),
        "reserved": dec(row.reserved),
        "available": dec(row.on_hand - row.reserved),
        **extra,
    }


async def receive(
    uow_factory: UowFactory, doc: StockDocument, ctx: Context, idem: Idempotency[Result] | None
) -> Result | StoredResponse:
    return await _document(uow_factory, doc, ctx, idem, MovementReason.RECEIPT)


async def write_off(
    uow_factory: UowFactory, doc: StockDocument, ctx: Context, idem: Idempotency[Result] | None
) -> Result | StoredResponse:
    return await _document(uow_factory, doc, ctx, idem, MovementReason.WRITE_OFF)


async def count(
    uow_factory: UowFactory, doc: StockDocument, ctx: Context, idem: Idempotency[Result] | None
) -> Result | StoredResponse:
    return await _document(uow_factory, doc, ctx, idem, MovementReason.COUNT)


async def return_to_supplier(
    uow_factory: UowFactory, doc: StockDocument, ctx: Context, idem: Idempotency[Result] | None
) -> Result | StoredResponse:
    """Goods sent back to the supplier: free units leave, as in a write-off."""
    return await _document(uow_factory, doc, ctx, idem, MovementReason.WRITE_OFF, SUPPLIER_RETURN)


SUPPLIER_RETURN = "supplier_return"


async def _document(
    uow_factory: UowFactory,
    doc: StockDocument,
    ctx: Context,
    idem: Idempotency[Result] | None,
    reason: MovementReason,
    document_type: str | None = None,
) -> Result | StoredResponse:
    async with uow_factory() as uow:
        replayed = await claim(uow, idem)
        if replayed is not None:
            return replayed
        now = ctx.clock()
        business_time = doc.business_time or now
        kind = document_type or reason.value
        store = await store_by_code(uow, doc.store_code)
        request_hash = _document_hash(doc.lines, "")
        earlier = await _applied(uow, kind, store.id, doc.document_id, request_hash)
        if earlier is not None:
            return await _answered(uow, idem, earlier)
        lines = await _lines(
            uow, doc.lines, allow_zero=reason is MovementReason.COUNT, kept=len(doc.unmatched)
        )
        levels: list[Result] = []
        short: list[Result] = []
        for product_id, qty in lines:
            change = StockChange(
                product_id, store.id, qty, reason, kind, doc.document_id, business_time, now
            )
            if reason is MovementReason.RECEIPT:
                levels.append(_level(await uow.add_stock(change)))
            elif reason is MovementReason.WRITE_OFF:
                row = await uow.deduct_stock(change)
                if row is None:
                    short.append({"product_id": product_id, "requested": dec(qty)})
                else:
                    levels.append(_level(row))
            else:
                row, delta = await uow.set_on_hand(change)
                levels.append(_level(row, difference=dec(delta)))
        if short:
            raise InsufficientStock(short, "cannot write off units that are not free")
        result: Result = {
            "document_type": kind,
            "document_id": doc.document_id,
            "store": store.code,
            "levels": levels,
        }
        await uow.record_document(kind, store.id, doc.document_id, request_hash, result, now)
        for line in doc.unmatched:
            await uow.add_review(_unmatched(store.id, kind, doc.document_id, line), now)
        await remember(uow, idem, result)
        await uow.commit()
        return result


async def transfer(
    uow_factory: UowFactory, doc: Transfer, ctx: Context, idem: Idempotency[Result] | None
) -> Result | StoredResponse:
    """Free units leave one store and arrive at the other in one transaction."""
    async with uow_factory() as uow:
        replayed = await claim(uow, idem)
        if replayed is not None:
            return replayed
        now = ctx.clock()
        business_time: datetime = doc.business_time or now
        source = await store_by_code(uow, doc.from_store)
        target = await store_by_code(uow, doc.to_store)
        if source.id == target.id:
            raise InvalidRequest("a transfer goes between two different stores")
        request_hash = _document_hash(doc.lines, target.code)
        earlier = await _applied(uow, "transfer", source.id, doc.document_id, request_hash)
        if earlier is not None:
            return await _answered(uow, idem, earlier)
        lines = await _lines(uow, doc.lines)
        changes = []
        for product_id, qty in lines:
            for store_id, reason in (
                (source.id, MovementReason.TRANSFER_OUT),
                (target.id, MovementReason.TRANSFER_IN),
            ):
                changes.append(
                    StockChange(
                        product_id,
                        store_id,
                        qty,
                        reason,
                        "transfer",
                        doc.document_id,
                        business_time,
                        now,
                    )
                )
        changes.sort(key=lambda c: (c.product_id, c.store_id))  # the fixed lock order
        levels: list[Result] = []
        short: list[Result] = []
        for change in changes:
            if change.reason is MovementReason.TRANSFER_OUT:
                row = await uow.deduct_stock(change)
                if row is None:
                    short.append(
                        {"product_id": change.product_id, "requested": dec(change.quantity)}
                    )
                    continue
            else:
                row = await uow.add_stock(change)
            levels.append(_level(row))
        if short:
            raise InsufficientStock(short, "cannot transfer units that are not free")
        result: Result = {
            "document_type": "transfer",
            "document_id": doc.document_id,
            "from_store": source.code,
            "to_store": target.code,
            "levels": levels,
        }
        await uow.record_document("transfer", source.id, doc.document_id, request_hash, result, now)
        await remember(uow, idem, result)
        await uow.commit()
        return result
