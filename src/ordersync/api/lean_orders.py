"""POST /orders without FastAPI's per-request work, for the requests that need none of it.

Placing orders is the hub's hottest request, and FastAPI's dependency solving, request
wrapping and body field machinery cost more CPU than the placement's own Python code. This
route sits in front of the documented FastAPI route (which stays what the OpenAPI document
and every other request use) and takes a request only when it can say beforehand that the
FastAPI route would reach the handler with the same arguments:

- no query string (the route declares no query parameter: any is refused there),
- `Content-Type: application/json`, no `Idempotency-Key` header,
- a bearer token verified within `auth_cache_seconds` (api/auth.py's cache) whose role
  `authenticate` lets through,
- a body that is JSON (decimals exact, as api/decimal_json.py reads it) and valid `OrderIn`.

Anything else is handed to the FastAPI route unchanged, body included, and answered there:
every refusal (401, 403, 400, 422...) comes from the one place it always did. What follows
the checks is the route's own handler (`routes.orders.place_order`), inside Starlette's
exception handling, so its errors are answered by the app's handlers as before.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.routing import Match, Route, request_response
from starlette.types import Receive, Scope, Send

from .auth import Principal, TokenCache, cached_principal
from .decimal_json import loads_exact
from .request_body import read_body, replaying
from .routes.orders import place_order
from .schemas import OrderIn

PATH = "/orders"
_DECLINED = "ordersync.lean_declined"  # set on a request handed to the FastAPI route
_PREPARED = "ordersync.lean_order"  # (body, principal) for the handler


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _is_json(content_type: str | None) -> bool:
    return content_type is not None and content_type.strip().lower() == "application/json"


def prepare(scope: Scope, body: bytes, cache: TokenCache) -> tuple[OrderIn, Principal] | None:
    """The validated body and the principal, or None when the FastAPI route must decide."""
    if scope.get("query_string") or _header(scope, b"idempotency-key") is not None:
        return None
    if not _is_json(_header(scope, b"content-type")):
        return None
    principal = cached_principal(cache, _header(scope, b"authorization") or "")
    if principal is None:
        return None
    try:
        data = loads_exact(body)
        return OrderIn.model_validate(data), principal
    # JSONDecodeError and UnicodeDecodeError are ValueErrors; nesting deeper than the
    # interpreter's recursion limit is a RecursionError. The FastAPI route refuses them all.
    except (ValueError, ValidationError, RecursionError):
        return None


async def _place(request: Request) -> JSONResponse:
    body, principal = request.scope[_PREPARED]
    state = request.app.state
    return await place_order(body, principal, state.db, state.context, None)


class LeanOrderRoute(Route):
    """POST /orders when `prepare` says the request needs nothing from FastAPI; it declines
    every other method and path, so the router goes on to the FastAPI routes."""

    def __init__(self, app: FastAPI) -> None:
        super().__init__(PATH, _place, methods=["POST"], include_in_schema=False)
        self.fastapi = app
        self.lean = request_response(_place)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["method"] != "POST" or _DECLINED in scope:
            return Match.NONE, {}
        match, child = super().matches(scope)
        if match is not Match.FULL:
            return Match.NONE, {}
        child["route"] = self  # the metrics' route template: "/orders", as the FastAPI route
        return match, child

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        body, other = await read_body(receive)
        replay = replaying(body, receive, other)
        cache: TokenCache = self.fastapi.state.token_cache
        prepared: Any = None if other is not None else prepare(scope, body, cache)
        if prepared is None:
            scope[_DECLINED] = True
            await self.fastapi.router.handle(scope, replay, send)
            return
        scope[_PREPARED] = prepared
        await self.lean(scope, replay, send)


def install_lean_orders(app: FastAPI) -> None:
    """Puts the lean route before every other route (after the routers are included)."""
    app.router.routes.insert(0, LeanOrderRoute(app))
