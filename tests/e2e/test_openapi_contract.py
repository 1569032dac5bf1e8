"""The OpenAPI document is true to the server: schemathesis, with every check, sends each
operation generated requests (valid and invalid, NUL characters included, undeclared methods,
missing token) through the ASGI app, on SQLite and on PostgreSQL, and finds no server error,
no undocumented status, no body or content type that differs from the document.

Bounded for CI: a few derandomized examples per operation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.python import asgi as schemathesis_asgi
from starlette.types import Receive, Scope, Send

from ordersync.api.app import create_app
from ordersync.config import Settings
from ordersync.db.unit_of_work import Database
from tests import support

CONFIG = SchemathesisConfig.from_dict(
    {
        "generation": {"mode": "all", "deterministic": True, "allow-x00": True},
        "checks": {
            # 413: a body past max_body_bytes, whatever else is wrong with it.
            "negative_data_rejection": {
                "expected-statuses": ["400", "401", "403", "404", "405", "409", "413", "422"]
            },
            # Valid by the document yet refused by the rules: 422 for what a schema cannot say
            # (a product that does not exist, a fraction of a piece, a pickup order without its
            # store), 400 for a NUL character and 413 for a body past max_body_bytes, which the
            # document cannot exclude either.
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "413", "422"]
            },
        },
    }
)


def _document() -> dict[str, Any]:
    """The document as the app serves it; building the app connects to nothing."""
    settings = Settings(master="hub", database_url="sqlite+aiosqlite:///:memory:", seed_demo=False)
    return create_app(settings).openapi()


class _AppUnderTest:
    """The document is loaded once, at import; each test serves it with an app of its own
    (its backend's database), which this stands for."""

    app: FastAPI | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None
        await self.app(scope, receive, send)


APP = _AppUnderTest()
schema = schemathesis.openapi.from_dict(_document(), config=CONFIG)
schema.app, schema.location = APP, "/openapi.json"


async def _seed(url: str, backend: str) -> str:
    db = Database.from_url(url, pool_size=2, catalog_cache_seconds=0)
    try:
        if backend == "postgres":
            await support.truncate_all(db)
        net = await support.seed_network(db, {"WH1": {"TEA": 50}, "S01": {"TEA": 5}})
        return net.tokens["admin"]
    finally:
        await db.dispose()


@pytest.fixture
def served(settings: Settings, database_url: str, backend: str) -> Iterator[tuple[FastAPI, str]]:
    """The app with its own database pool (schemathesis runs it in a thread of its own),
    and an admin token, so that every operation is reached."""
    token = support.run_in_thread(_seed(database_url, backend))
    APP.app = create_app(settings, sweeper=False)
    yield APP.app, token
    schemathesis_asgi.shutdown_lifespans()  # closes this app's database pool
    APP.app = None


@schema.parametrize()
@settings(max_examples=6, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_the_openapi_document_says(
    case: Any, served: tuple[FastAPI, str]
) -> None:
    _, token = served
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"})


def test_the_document_declares_the_bearer_scheme_and_the_error_body_of_every_refusal() -> None:
    doc = _document()
    assert doc["components"]["securitySchemes"] == {
        "HTTPBearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "a token from `ordersync token create`",
        }
    }
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert doc["components"]["schemas"]["Error"]["required"] == ["error", "detail"]
    operations = [(p, m, op) for p, ops in doc["paths"].items() for m, op in ops.items()]
    assert not any(p.startswith("/bitrix") for p, _, _ in operations)  # 1C's own protocol
    for path, method, op in operations:
        statuses = set(op["responses"])
        assert {"400", "422"} <= statuses, (method, path)
        if path != "/healthz":
            assert op["security"] == [{"HTTPBearer": []}], (method, path)
            assert {"401", "503"} <= statuses, (method, path)
        if "requestBody" in op:
            assert "413" in statuses, (method, path)
        for status, response in op["responses"].items():
            if status.startswith("4"):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)
    responses = {f"{m.upper()} {p}": set(op["responses"]) for p, m, op in operations}
    assert {"403", "404", "409"} <= responses["POST /orders/{order_id}/cancel"]
    assert {"200", "201", "403", "409"} <= responses["POST /pos/sales"]
    assert "404" in responses["PATCH /stores/{code}"]
