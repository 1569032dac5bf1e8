"""JSON request bodies read with exact decimals: `1.0000000000000001` stays what it says.

Starlette's `Request.json()` parses numbers with a fraction into binary floats, so a quantity
or a price sent as a JSON number would be rounded before any check could see it. Every router
of the API uses `DecimalRoute`, whose requests parse fractions as `Decimal`; the schemas then
refuse what does not fit (too many places), exactly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

# One decoder for every request: `json.loads(..., parse_float=Decimal)` builds a new one per
# call, about 1 % of a placement's CPU.
_EXACT = json.JSONDecoder(parse_float=Decimal)


def loads_exact(body: bytes) -> Any:
    """A JSON body (UTF-8, -16 or -32, as `json.loads` detects it) with fractions as `Decimal`.

    Raises `ValueError` (`json.JSONDecodeError`, `UnicodeDecodeError`) on a body that is not
    JSON, and `RecursionError` on one nested deeper than the interpreter recurses."""
    return _EXACT.decode(body.decode(json.detect_encoding(body), "surrogatepass"))


class DecimalRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_exact(await self.body())
        return self._json


class DecimalRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def exact(request: Request) -> Response:
            return await handle(DecimalRequest(request.scope, request.receive))

        return exact


def plain(value: Any) -> Any:
    """Free-form JSON (a customer's details) with its decimals back as JSON numbers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
