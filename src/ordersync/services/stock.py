"""Stock documents: receipts, write-offs, inventory counts and transfers."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..domain.commands import StockDocument, StockLine, Transfer
from ..domain.errors import Conflict, InsufficientStock, InvalidRequest
from ..domain.events import dec
from ..domain.quantities import non_negative_quantity, quantity
from ..domain.types import MovementReason
from .context import Context
from .idempotency import Idempotency, claim, remember
from .lookup import resolve_products, store_by_code
from .orders import UowFactory
from .ports import StockChange, StockLevel, StoredResponse, UnitOfWork

Result = dict[str, Any]


async def _lines(
    uow: UnitOfWork, lines: tuple[StockLine, ...], allow_zero: bool = False
) -> list[tuple[int, Decimal]]:
    """(product_id, quantity) totals in lock order; counts may be zero."""
    if not lines:
        raise InvalidRequest("a document has at least one line", field="lines")
    products = await resolve_products(uow, [line.product for line in lines])
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


async def _document(
    uow_factory: UowFactory,
    doc: StockDocument,
    ctx: Context,
    idem: Idempotency[Result] | None,
    reason: MovementReason,
) -> Result | StoredResponse:
    async with uow_factory() as uow:
        replayed = await claim(uow, idem)
        if replayed is not None:
            return replayed
        now = ctx.clock()
        business_time = doc.business_time or now
        store = await store_by_code(uow, doc.store_code)
        request_hash = _document_hash(doc.lines, "")
        earlier = await _applied(uow, reason.value, store.id, doc.document_id, request_hash)
        if earlier is not None:
            return await _answered(uow, idem, earlier)
        lines = await _lines(uow, doc.lines, allow_zero=reason is MovementReason.COUNT)
        levels: list[Result] = []
        short: list[Result] = []
        for product_id, qty in lines:
            change = StockChange(
                product_id, store.id, qty, reason, reason.value, doc.document_id, business_time, now
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
            "document_type": reason.value,
            "document_id": doc.document_id,
            "store": store.code,
            "levels": levels,
        }
        await uow.record_document(
            reason.value, store.id, doc.document_id, request_hash, result, now
        )
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
