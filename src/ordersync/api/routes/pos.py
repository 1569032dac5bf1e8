"""/pos: till sales and returns, exactly once per (POS id, transaction id), and the till
review queue (unmatched lines, unlinked returns, what a till sent that the hub could not
apply)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from ...db import till_review
from ...domain.commands import RecordPosReturn, RecordPosSale
from ...domain.errors import NotFound, UnknownStore
from ...domain.types import Role
from ...services import pos as use_cases
from ...services.ports import StoredResponse
from .. import render
from ..auth import Principal
from ..decimal_json import DecimalRoute
from ..deps import Auth, Ctx, Db, IdemKey, idempotency, respond
from ..openapi import refusals
from ..schemas import PosReturnIn, PosSaleIn, ReviewResolutionIn

router = APIRouter(prefix="/pos", tags=["pos"], route_class=DecimalRoute)
TILL: dict[int | str, dict[str, Any]] = {
    200: {"description": "the transaction was recorded before: its first result, replayed"},
    **refusals(403, 409),
}


async def _check_store(principal: Principal, db: Db, code: str) -> None:
    principal.require(Role.POS, Role.ADMIN)
    store = next((s for s in await db.fresh_stores() if s.code == code), None)
    principal.require_store(store.id if store else None, code)


def _status(result: dict[str, object]) -> int:
    return 200 if result.get("replayed") else 201


def _same(result: dict[str, Any]) -> dict[str, Any]:
    return result


async def _respond(call: Callable[[], Awaitable[Any]]) -> JSONResponse:
    result = await call()
    if isinstance(result, StoredResponse):
        return respond(result, result.status_code, _same)
    return JSONResponse(result, status_code=_status(result))


@router.post(
    "/sales",
    status_code=201,
    summary="A till sale: deducts at once, exactly once; a completed one is never refused",
    responses=TILL,
)
async def sale(body: PosSaleIn, principal: Auth, db: Db, ctx: Ctx, key: IdemKey) -> JSONResponse:
    await _check_store(principal, db, body.store)
    cmd = RecordPosSale(
        store_code=body.store,
        pos_id=body.pos_id,
        transaction_id=body.transaction_id,
        lines=tuple(line.line() for line in body.lines),
        business_time=body.time or ctx.clock(),
        completed=body.completed,
        shift=body.shift,
    )
    idem = idempotency(principal, key, 201, _same)
    return await _respond(lambda: use_cases.record_pos_sale(db.uow, cmd, ctx, idem))


@router.post(
    "/returns",
    status_code=201,
    summary="A till return, linked to its sale (or recorded unlinked, for review)",
    responses=TILL,
)
async def sale_return(
    body: PosReturnIn, principal: Auth, db: Db, ctx: Ctx, key: IdemKey
) -> JSONResponse:
    await _check_store(principal, db, body.store)
    cmd = RecordPosReturn(
        store_code=body.store,
        pos_id=body.pos_id,
        transaction_id=body.transaction_id,
        original_transaction_id=body.original_transaction_id,
        lines=tuple(line.line() for line in body.lines),
        business_time=body.time or ctx.clock(),  # the schema makes times UTC-aware
        completed=body.completed,
        shift=body.shift,
    )
    idem = idempotency(principal, key, 201, _same)
    return await _respond(lambda: use_cases.record_pos_return(db.uow, cmd, ctx, idem))


@router.get(
    "/review",
    summary="The till review queue: unmatched lines, unlinked returns, till documents not applied",
    description="Newest first; `before_id` pages. `open` (default true) lists the items not "
    "resolved yet. Kinds: `unmatched_line` (a till sold or returned a product the hub could "
    "not match: kept as the till sent it), `unlinked_return` (units back with no known sale), "
    "`unknown_till_product` (a product created on a till), `failed_document` (a till "
    "document the hub could not apply).",
)
async def review(
    principal: Auth,
    db: Db,
    kind: str | None = None,
    store: str | None = None,
    open_only: Annotated[bool, Query(alias="open")] = True,
    before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> JSONResponse:
    store_id = None
    stores = await db.fresh_stores()
    if store is not None:
        found = next((s for s in stores if s.code == store), None)
        if found is None:
            raise UnknownStore([store])
        store_id = found.id
    async with db.uow_read() as uow:
        items = await till_review.listing(
            uow.conn,
            open_only=open_only,
            kind=kind,
            store_id=store_id,
            before_id=before_id,
            limit=limit,
        )
    codes = {s.id: s.code for s in stores}
    return JSONResponse(
        {
            "items": [render.review_item(x, codes) for x in items],
            "next_before_id": items[-1].id if len(items) == limit else None,
        }
    )


@router.post(
    "/review/{item_id}/resolve",
    summary="Close an item of the till review queue",
    responses=refusals(403, 404),
)
async def resolve_review(
    item_id: Annotated[int, Path(ge=1, le=2**62)],
    body: ReviewResolutionIn,
    principal: Auth,
    db: Db,
    ctx: Ctx,
) -> JSONResponse:
    principal.require(Role.ADMIN, Role.OPERATOR)
    async with db.uow() as uow:
        item = await till_review.resolve(uow.conn, item_id, body.resolution, ctx.clock())
        if item is None:
            raise NotFound(f"no open review item {item_id}", item_id=item_id)
        await uow.commit()
    codes = {s.id: s.code for s in await db.fresh_stores()}
    return JSONResponse(render.review_item(item, codes))
