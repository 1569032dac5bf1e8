"""What every route gets: the principal, the database, the use-case context, idempotency."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.responses import JSONResponse

from ..db.unit_of_work import Database
from ..domain.errors import InvalidRequest
from ..services.context import Context
from ..services.idempotency import Idempotency
from ..services.ports import StoredResponse
from .auth import Principal, authenticate

R = TypeVar("R")

Auth = Annotated[Principal, Depends(authenticate)]


# Dependencies are coroutines: FastAPI runs plain functions in a worker thread per request.
async def database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def context(request: Request) -> Context:
    ctx: Context = request.app.state.context
    return ctx


Db = Annotated[Database, Depends(database)]
Ctx = Annotated[Context, Depends(context)]


async def idempotency_key(request: Request) -> tuple[str, str] | None:
    """(key, hash of method, path and body) when the request carries an Idempotency-Key."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > 255:
        raise InvalidRequest("Idempotency-Key must be 1 to 255 characters")
    body = await request.body()
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.url.path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return key, digest.hexdigest()


IdemKey = Annotated[tuple[str, str] | None, Depends(idempotency_key)]


def idempotency(
    principal: Principal,
    key: tuple[str, str] | None,
    status_code: int,
    render: Callable[[R], Any],
) -> Idempotency[R] | None:
    if key is None:
        return None
    return Idempotency(
        principal.key, key[0], key[1], lambda r: StoredResponse(status_code, render(r))
    )


def respond(
    result: R | StoredResponse, status_code: int, render: Callable[[R], Any]
) -> JSONResponse:
    if isinstance(result, StoredResponse):
        return JSONResponse(
            result.body, status_code=result.status_code, headers={"Idempotent-Replay": "true"}
        )
    return JSONResponse(render(result), status_code=status_code)


def as_utc(value: datetime | None) -> datetime | None:
    """Times without an offset are taken as UTC; a time that UTC cannot hold is refused."""
    if value is None:
        return None
    try:
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except OverflowError as exc:
        raise InvalidRequest("the time is out of range", time=value.isoformat()) from exc
