"""The OpenAPI document, true to the server: every refusal is the `Error` body, and every
operation lists each status it can answer.

Routes name the refusals of their own (`refusals(403, 404, 409)`); those every operation can
give are added here in one place: 400 (`invalid_text`), 422 (`invalid_request`, e.g. an
unknown query parameter), and for operations that need a token 401 and 503 (the database did
not answer); for those with a body also 400 `malformed_json` and 413.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string", "description": "a machine-readable code"},
        "detail": {
            "type": "object",
            "required": ["message"],
            "properties": {"message": {"type": "string"}},
            "description": "the message and the structured details of the refusal",
        },
    },
}

DESCRIPTIONS = {
    400: "invalid_text (a NUL or lone surrogate in the path, query or a header) or "
    "malformed_json (the body is not JSON)",
    401: "unauthorized: no token, or an unknown or revoked one",
    403: "forbidden: the token's role or stores do not allow it",
    404: "not_found",
    409: "insufficient_stock, invalid_transition, duplicate or conflict",
    413: "payload_too_large",
    422: "invalid_request (or unknown_product, unknown_store, idempotency_key_reused): the "
    "request breaks a rule",
    503: "database_unavailable: retry later",
}


def refusals(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a route for the refusals particular to it."""
    return {status: {"description": DESCRIPTIONS[status]} for status in statuses}


def _is_error(status: str) -> bool:
    return status[0] in "45"


def _complete(operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    statuses = [400, 422]
    if operation.get("security"):
        statuses += [401, 503]
    if "requestBody" in operation:
        statuses += [413]
    for code in statuses:
        responses.setdefault(str(code), {"description": DESCRIPTIONS[code]})
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for status, response in responses.items():
        default_422 = "HTTPValidationError" in str(response.get("content", ""))
        if _is_error(status) and ("content" not in response or default_422):
            response["content"] = error
            response["description"] = DESCRIPTIONS.get(int(status), response["description"])


def install_openapi(app: FastAPI) -> None:
    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            for path in doc.get("paths", {}).values():
                for operation in path.values():
                    _complete(operation)
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
            schemas["Error"] = ERROR_SCHEMA
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]
