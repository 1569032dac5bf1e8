"""/pos: till sales and returns, exactly once per (POS id, transaction id)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ...domain.commands import RecordPosReturn, RecordPosSale
from ...domain.types import Role
from ...services import pos as use_cases
from ...services.ports import StoredResponse
from ..auth import Principal
from ..decimal_json import DecimalRoute
from ..deps import Auth, Ctx, Db, IdemKey, idempotency, respond
from ..openapi import refusals
from ..schemas import PosReturnIn, PosSaleIn

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
    summary="A till sale: deducts at once, exactly once",
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
    )
    idem = idempotency(principal, key, 201, _same)
    return await _respond(lambda: use_cases.record_pos_sale(db.uow, cmd, ctx, idem))


@router.post(
    "/returns",
    status_code=201,
    summary="A till return, linked to its sale",
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
    )
    idem = idempotency(principal, key, 201, _same)
    return await _respond(lambda: use_cases.record_pos_return(db.uow, cmd, ctx, idem))
