"""Every error leaves the API as {"error": code, "detail": ...} with a 4xx status."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from ..db.availability import DatabaseUnavailable, is_unavailable
from ..domain.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    OrdersyncError,
    Unauthorized,
)

log = logging.getLogger("ordersync.api")
RETRY_AFTER_SECONDS = 2  # told to clients while the database is unavailable

_STATUS: list[tuple[type[OrdersyncError], int]] = [
    (InvalidRequest, 422),
    (NotFound, 404),
    (Conflict, 409),
    (Unauthorized, 401),
    (Forbidden, 403),
]


def status_of(exc: OrdersyncError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def error_body(code: str, detail: Any) -> dict[str, Any]:
    return {"error": code, "detail": detail}


def error_response(
    status: int, code: str, detail: Any, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return JSONResponse(error_body(code, detail), status_code=status, headers=headers)


async def _ordersync_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OrdersyncError)
    return error_response(status_of(exc), exc.code, exc.to_detail())


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
        for e in exc.errors()
    ]
    if any(e["type"] == "json_invalid" for e in errors):
        return error_response(
            400, "malformed_json", {"message": "the body is not valid JSON", "errors": errors}
        )
    return error_response(422, "invalid_request", {"message": "invalid request", "errors": errors})


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
    headers = exc.headers
    if exc.status_code == 405:
        headers = {"Allow": ", ".join(_allowed_methods(request))}
    return error_response(
        exc.status_code,
        codes.get(exc.status_code, "http_error"),
        {"message": str(exc.detail)},
        headers,
    )


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route at this path takes (Starlette names only the first route's).
    Each method is tried through the routes' own `matches`, so routes of included routers,
    whatever class FastAPI wraps them in, count too; a mount takes any method and is left out."""
    routes = [r for r in request.app.routes if not isinstance(r, Mount)]
    return [
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] is Match.FULL for r in routes)
    ]


async def _database_error(_: Request, exc: Exception) -> JSONResponse:
    """Driver errors that escaped translation at the adapter edge: a unique key taken by a
    concurrent request is a conflict; a lost connection is a temporary unavailability."""
    if isinstance(exc, IntegrityError):
        return error_response(409, "conflict", {"message": "a concurrent change conflicted"})
    if isinstance(exc, DataError | asyncpg.DataError):
        return error_response(422, "invalid_request", {"message": "a value is out of range"})
    return await _database_unavailable(_, exc)


async def _database_unavailable(_: Request, exc: Exception) -> JSONResponse:
    """Every way the database says it is not there (restarting, refusing connections, a
    session killed, no pooled connection free in time) is a 503 the client may retry; any
    other driver error is a bug and stays a 500."""
    if not is_unavailable(exc):
        raise exc
    log.warning("database unavailable: %s: %s", type(exc).__name__, exc)
    response = error_response(
        503, "database_unavailable", {"message": "the database did not answer; retry later"}
    )
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(OrdersyncError, _ordersync_error)
    app.add_exception_handler(IntegrityError, _database_error)
    app.add_exception_handler(DataError, _database_error)
    app.add_exception_handler(asyncpg.DataError, _database_error)
    for unavailable in (
        DatabaseUnavailable,
        DBAPIError,
        SQLAlchemyError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        ConnectionError,
    ):
        app.add_exception_handler(unavailable, _database_unavailable)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
