"""Checks every request gets before any route reads it.

- Text that PostgreSQL cannot store (NUL, lone surrogates) in the path, the query string or a
  header is refused with 400 `invalid_text`, before it can reach a query: one check for every
  path parameter, query value, cursor and header, on every database.
- A query parameter that the operation does not declare is refused with 422, naming it, so a
  misspelt filter (`?search=tea` for `?q=tea`) never silently returns everything.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from ..domain.errors import InvalidRequest

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _unstorable(scope: Scope) -> tuple[str, str] | None:
    """(where, name) of the first value PostgreSQL could not store, or None."""
    if UNSTORABLE.search(scope.get("path", "")):
        return "path", scope.get("path", "")
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        if UNSTORABLE.search(name) or UNSTORABLE.search(value):
            return "query", name
    for name, value in scope.get("headers", ()):
        if b"\x00" in value:
            return "header", name.decode("latin-1")
    return None


class TextGuardMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = _unstorable(scope) if scope["type"] == "http" else None
        if found is None:
            await self.app(scope, receive, send)
            return
        where, name = found
        body = json.dumps(
            {
                "error": "invalid_text",
                "detail": {
                    "message": f"the {where} holds a NUL character or a lone surrogate",
                    "in": where,
                    "name": name.replace("\x00", "\\u0000").encode("utf-8", "replace").decode(),
                },
            }
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 400, "headers": headers})
        await send({"type": "http.response.body", "body": body})


_DECLARED: dict[int, frozenset[str]] = {}


def _query_names(dependant: Dependant) -> set[str]:
    names = {f.alias for f in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _declared_query(route: APIRoute) -> frozenset[str]:
    names = _DECLARED.get(id(route))
    if names is None:
        names = _DECLARED[id(route)] = frozenset(_query_names(route.dependant))
    return names


async def known_query_only(request: Request) -> None:
    """A router dependency: 422 for any query parameter the operation does not declare."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    unknown = sorted(set(request.query_params) - _declared_query(route))
    if unknown:
        raise InvalidRequest(
            f"unknown query parameter(s): {', '.join(unknown)}",
            errors=[
                {
                    "loc": ["query", name],
                    "msg": "unknown query parameter",
                    "type": "extra_forbidden",
                }
                for name in unknown
            ],
        )
