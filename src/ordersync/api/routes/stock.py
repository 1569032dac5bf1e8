"""/stock: levels, movements, and the stock documents (admin tokens only)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from ...db import ledger
from ...db.store_stock import store_stock
from ...db.unit_of_work import Database
from ...domain.commands import StockDocument, Transfer
from ...domain.errors import AlreadyRecorded, InvalidRequest, UnknownProduct, UnknownStore
from ...domain.events import dec
from ...domain.types import Role
from ...services import stock as use_cases
from ...services.lookup import resolve_products
from .. import render
from ..decimal_json import DecimalRoute
from ..deps import Auth, Ctx, Db, IdemKey, idempotency, respond
from ..openapi import refusals
from ..schemas import MAX_ID, StockDocumentIn, TransferIn, product_ref

router = APIRouter(prefix="/stock", tags=["stock"], route_class=DecimalRoute)
DOCUMENT = refusals(403, 409)


@router.get(
    "",
    summary="Stock levels: on hand, reserved, available, by product and store",
    description="Name a product (`product_id`, `sku` or `xml_id`) for its levels at every "
    "store (or at `store`); name only a `store` for that store's stock, product by product, "
    "paged by `after_id` and `limit`, searched by `q` (name or SKU containing it, any case; "
    "1C Ид or barcode equal to it).",
)
async def levels(
    principal: Auth,
    db: Db,
    product_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    sku: str | None = None,
    xml_id: str | None = None,
    store: str | None = None,
    q: str | None = None,
    after_id: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> JSONResponse:
    if product_id is None and sku is None and xml_id is None and store is not None:
        return await _store_stock(db, store, q, after_id or 0, limit or 100)
    if q is not None or after_id is not None or limit is not None:
        raise InvalidRequest("q, after_id and limit page a store's stock: name no product")
    stores = await db.fresh_stores()
    by_id = {s.id: s for s in stores}
    store_ids = None
    if store is not None:
        match = [s.id for s in stores if s.code == store]
        if not match:
            raise UnknownStore([store])
        store_ids = match
    ref = product_ref(product_id, sku, xml_id)
    async with db.uow_read() as uow:
        (product,) = await resolve_products(uow, [ref], inactive=True)
        rows = await uow.read_stock([product.id], store_ids)
    if any(r.store_id not in by_id for r in rows):  # a store made by another worker
        db.forget_stores()
        by_id = {s.id: s for s in await db.fresh_stores()}
    items = [
        render.stock_level(r, by_id[r.store_id].code, by_id[r.store_id].safety_stock)
        for r in sorted(rows, key=lambda r: r.store_id)
    ]
    total_on_hand = sum((r.on_hand for r in rows), Decimal(0))
    total_reserved = sum((r.reserved for r in rows), Decimal(0))
    return JSONResponse(
        {
            "product": render.product(product),
            "levels": items,
            "total": {
                "on_hand": dec(total_on_hand),
                "reserved": dec(total_reserved),
                "available": dec(total_on_hand - total_reserved),
            },
        }
    )


async def _store_stock(
    db: Database, code: str, q: str | None, after_id: int, limit: int
) -> JSONResponse:
    found = next((s for s in await db.fresh_stores() if s.code == code), None)
    if found is None:
        raise UnknownStore([code])
    async with db.connect(autocommit=True) as conn:
        rows = await store_stock(conn, found.id, after_id, limit, q)
    return JSONResponse(
        {
            "store": found.code,
            "levels": [
                {
                    **render.stock_level(level, found.code, found.safety_stock),
                    "product": render.product(product),
                }
                for product, level in rows
            ],
            "next_after_id": rows[-1][0].id if len(rows) == limit else None,
        }
    )


@router.get("/movements", summary="The movements of a product, newest first")
async def movements(
    principal: Auth,
    db: Db,
    product_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    sku: str | None = None,
    xml_id: str | None = None,
    store: str | None = None,
    before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    stores = await db.fresh_stores()
    codes = {s.id: s.code for s in stores}
    store_id = None
    if store is not None:
        store_id = next((s.id for s in stores if s.code == store), None)
        if store_id is None:
            raise UnknownStore([store])
    ref = product_ref(product_id, sku, xml_id)
    async with db.uow_read() as uow:
        found = await resolve_products(uow, [ref], inactive=True)
        if not found:
            raise UnknownProduct([ref.label])
        rows = await ledger.movements(uow.conn, found[0].id, store_id, before_id, limit)
    return JSONResponse(
        {
            "product": render.product(found[0]),
            "movements": [
                {
                    "id": m.id,
                    "store": codes.get(m.store_id),
                    "quantity": dec(m.quantity),
                    "reason": m.reason,
                    "document_type": m.document_type,
                    "document_id": m.document_id,
                    "business_time": m.business_time.isoformat(),
                    "recorded_at": m.recorded_at.isoformat(),
                }
                for m in rows
            ],
        }
    )


def _document(body: StockDocumentIn) -> StockDocument:
    return StockDocument(
        body.store,
        body.document_id,
        tuple(x.line() for x in body.lines),
        body.time,
        body.comment,
    )


def _same(result: dict[str, Any]) -> dict[str, Any]:
    return result


async def _run(
    kind: str, body: Any, principal: Auth, db: Db, ctx: Ctx, key: IdemKey
) -> JSONResponse:
    principal.require(Role.ADMIN)
    idem = idempotency(principal, key, 201, _same)
    operations = {
        "receipt": use_cases.receive,
        "write_off": use_cases.write_off,
        "count": use_cases.count,
    }

    async def call() -> Any:
        if kind == "transfer":
            doc = Transfer(
                body.from_store,
                body.to_store,
                body.document_id,
                tuple(x.line() for x in body.lines),
                body.time,
            )
            return await use_cases.transfer(db.uow, doc, ctx, idem)
        return await operations[kind](db.uow, _document(body), ctx, idem)

    try:
        result = await call()
    except AlreadyRecorded:
        result = await call()
    return respond(result, 201, _same)


@router.post(
    "/receipts",
    status_code=201,
    summary="Goods received from a supplier",
    responses=DOCUMENT,
)
async def receipt(
    body: StockDocumentIn, principal: Auth, db: Db, ctx: Ctx, key: IdemKey
) -> JSONResponse:
    return await _run("receipt", body, principal, db, ctx, key)


@router.post(
    "/write-offs",
    status_code=201,
    summary="Damaged or lost goods (free units only)",
    responses=DOCUMENT,
)
async def write_off(
    body: StockDocumentIn, principal: Auth, db: Db, ctx: Ctx, key: IdemKey
) -> JSONResponse:
    return await _run("write_off", body, principal, db, ctx, key)


@router.post(
    "/counts",
    status_code=201,
    summary="An inventory count: on hand becomes the figure",
    responses=DOCUMENT,
)
async def count(
    body: StockDocumentIn, principal: Auth, db: Db, ctx: Ctx, key: IdemKey
) -> JSONResponse:
    return await _run("count", body, principal, db, ctx, key)


@router.post(
    "/transfers",
    status_code=201,
    summary="Free units from one store to another",
    responses=DOCUMENT,
)
async def transfer(
    body: TransferIn, principal: Auth, db: Db, ctx: Ctx, key: IdemKey
) -> JSONResponse:
    return await _run("transfer", body, principal, db, ctx, key)
