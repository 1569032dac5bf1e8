"""POST /orders through the lean route (api/lean_orders.py): taken only when the FastAPI
route would reach its handler with the same arguments, answered exactly as that route answers;
everything else is handed to the FastAPI route and refused there as before."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from ordersync.api import lean_orders
from ordersync.api.app import create_app
from ordersync.config import Settings
from ordersync.db.unit_of_work import Database
from tests import support
from tests.e2e.helpers import bearer, delivery, expect, line, pickup

STOCK = {"WH1": {"TEA": 10, "COFFEE": 5}, "S01": {"TEA": 4}}


@pytest.fixture
async def net(db: Database) -> support.Network:
    return await support.seed_network(db, STOCK)


@pytest.fixture
def lean_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The requests the lean route answered itself (by the external id or the SKU)."""
    calls: list[str] = []
    real = lean_orders.place_order

    async def spy(body: Any, *args: Any) -> Any:
        calls.append(body.external_id or body.lines[0].sku)
        return await real(body, *args)

    monkeypatch.setattr(lean_orders, "place_order", spy)
    return calls


@pytest.fixture
async def cached(
    settings: Settings, db: Database, net: support.Network
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with the token cache on, as served (the suite's apps check every token)."""
    app = create_app(settings.model_copy(update={"auth_cache_seconds": 60.0}), db, sweeper=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            yield http


async def post(
    http: httpx.AsyncClient, token: str, body: Any, path: str = "/orders", **headers: str
) -> httpx.Response:
    content = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
    headers.setdefault("Content-Type", "application/json")
    return await http.post(path, content=content, headers=bearer(token, **headers))


def comparable(order: dict[str, Any]) -> dict[str, Any]:
    times = ("hold_expires_at", "created_at", "updated_at")
    return {k: v for k, v in order.items() if k not in ("id", "number", "external_id", *times)}


async def test_a_cached_token_and_a_valid_body_take_the_lean_route_with_the_same_answer(
    cached: httpx.AsyncClient, net: support.Network, lean_calls: list[str]
) -> None:
    token = net.tokens["online"]
    body = delivery(line("TEA", 2), line("COFFEE", "1"), customer={"name": "Ivan"})
    first = await post(cached, token, {**body, "external_id": "first"})
    second = await post(cached, token, {**body, "external_id": "second"})
    assert lean_calls == ["second"]  # the first request looked the token up
    one, two = expect(first, 201), expect(second, 201)
    assert comparable(one) == comparable(two)
    assert two["lines"][0]["holds"] == [{"store": "WH1", "quantity": "2", "state": "active"}]
    assert two["number"] == one["number"] + 1
    assert second.headers["content-type"] == first.headers["content-type"]
    assert "idempotent-replay" not in second.headers


async def test_a_domain_refusal_on_the_lean_route_is_the_apps_error_body(
    cached: httpx.AsyncClient, net: support.Network, lean_calls: list[str]
) -> None:
    token = net.tokens["online"]
    expect(await post(cached, token, delivery(line("TEA", 1))), 201)
    short = await post(cached, token, delivery(line("COFFEE", 6)))
    body = expect(short, 409, "insufficient_stock")
    assert body["detail"]["lines"][0]["product"] == "COFFEE"
    expect(await post(cached, token, delivery(line("NOPE", 1))), 422, "unknown_product")
    expect(await post(cached, token, pickup("S99", line("TEA", 1))), 422, "unknown_store")
    expect(await post(cached, token, delivery(line("TEA", "0.5"))), 422, "invalid_request")
    assert lean_calls == ["COFFEE", "NOPE", "TEA", "TEA"]
    metrics = (await cached.get("/metrics", headers=bearer(net.tokens["admin"]))).text
    assert 'ordersync_insufficient_stock_refusals_total{route="/orders"} 1.0' in metrics
    assert 'method="POST",route="/orders",status="409"' in metrics


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "error"),
    [
        ("/orders?x=1", delivery(line("TEA", 1)), {}, 422, "invalid_request"),
        ("/orders", b"{not json", {}, 400, "malformed_json"),
        ("/orders", b"[" * 3000, {}, 400, None),  # deeper than json.loads recurses
        ("/orders", b"", {}, 422, "invalid_request"),
        ("/orders", {"fulfillment": "delivery", "lines": []}, {}, 422, "invalid_request"),
        ("/orders", delivery(line("TEA", 1), extra=1), {}, 422, "invalid_request"),
        ("/orders", delivery(line("TEA", 1)), {"Content-Type": "text/plain"}, 422, None),
        ("/orders", delivery(line("TEA", 1)), {"Idempotency-Key": " "}, 422, None),
        ("/orders", delivery(line("TEA", 1)), {"Idempotency-Key": "k1"}, 201, None),
        ("/orders/", delivery(line("TEA", 1)), {}, 307, None),
    ],
)
async def test_what_the_lean_route_cannot_vouch_for_is_answered_by_the_fastapi_route(
    cached: httpx.AsyncClient,
    net: support.Network,
    lean_calls: list[str],
    path: str,
    body: Any,
    headers: dict[str, str],
    status: int,
    error: str | None,
) -> None:
    token = net.tokens["online"]
    expect(await post(cached, token, delivery(line("TEA", 1))), 201)  # the token is cached
    response = await post(cached, token, body, path, **headers)
    assert response.status_code == status, response.text
    if error is not None:
        assert response.json()["error"] == error
    assert lean_calls == []


async def test_tokens_the_cache_cannot_vouch_for_are_checked_by_the_fastapi_route(
    cached: httpx.AsyncClient, net: support.Network, lean_calls: list[str]
) -> None:
    body = delivery(line("TEA", 1))
    expect(await post(cached, "os_unknown", body), 401, "unauthorized")
    expect(await post(cached, "", body), 401, "unauthorized")
    pos = net.tokens["pos"]
    expect(await post(cached, pos, body), 403, "forbidden")  # looked up: not lean
    expect(await post(cached, pos, body), 403, "forbidden")  # cached: lean, same refusal
    assert lean_calls == ["TEA"]


async def test_other_methods_and_paths_never_reach_the_lean_route(
    cached: httpx.AsyncClient, net: support.Network, lean_calls: list[str]
) -> None:
    token = net.tokens["online"]
    order = expect(await post(cached, token, delivery(line("TEA", 1))), 201)
    listed = expect(await cached.get("/orders", headers=bearer(token)), 200)
    assert [o["id"] for o in listed["orders"]] == [order["id"]]
    expect(await cached.put("/orders", headers=bearer(token)), 405, "method_not_allowed")
    paid = await cached.post(f"/orders/{order['id']}/pay", headers=bearer(token))
    expect(paid, 200)
    assert lean_calls == []
