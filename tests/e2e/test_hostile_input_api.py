"""Hostile input gets a 4xx and writes nothing, on every database: text PostgreSQL cannot
store in a path, query or header (400), query parameters no operation declares (422, named),
and numbers, flags and times that are not written plainly (422)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from ordersync.db.unit_of_work import Database
from tests import support
from tests.e2e.helpers import bearer, delivery, expect, line, placed, snapshot, stock_doc

STOCK = {"WH1": {"TEA": 20}, "S01": {"TEA": 5}}


@pytest.fixture
async def net(db: Database) -> support.Network:
    return await support.seed_network(db, STOCK)


NUL_REQUESTS = [
    ("GET", "/orders/%00", None),
    ("GET", "/orders/ab%00cd", None),
    ("POST", "/orders/%00/cancel", None),
    ("POST", "/orders/%00/pay", None),
    ("PATCH", "/stores/%00", {"safety_stock": "1"}),
    ("GET", "/products?q=%00", None),
    ("GET", "/products?q=tea%00", None),
    ("GET", "/orders?cursor=2025-01-01T00:00:00%7C%00", None),
    ("GET", "/orders?store=%00", None),
    ("GET", "/stock?sku=%00", None),
    ("GET", "/stock?sku=TEA&store=S0%001", None),
    ("GET", "/stock/movements?xml_id=%00", None),
    ("GET", "/orders?%00=1", None),
]


@pytest.mark.parametrize(("method", "path", "body"), NUL_REQUESTS)
async def test_a_nul_in_the_path_or_query_is_400_invalid_text(
    client: httpx.AsyncClient,
    net: support.Network,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    before = await snapshot(client, net.tokens["admin"])
    response = await client.request(method, path, json=body, headers=bearer(net.tokens["admin"]))
    expect(response, 400, "invalid_text")
    assert await snapshot(client, net.tokens["admin"]) == before


async def test_a_nul_in_an_idempotency_key_is_400_invalid_text(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    before = await snapshot(client, net.tokens["admin"])
    request = client.build_request(
        "POST",
        "/stock/receipts",
        json=stock_doc("WH1", "R-1", line("TEA", 1)),
        headers=bearer(net.tokens["admin"]),
    )
    request.headers["Idempotency-Key"] = "k\x00ey"
    expect(await client.send(request), 400, "invalid_text")
    assert await snapshot(client, net.tokens["admin"]) == before


@pytest.mark.parametrize(
    "text", ["a\x00b", "\ud800", "x\udfffy"], ids=["nul", "lone-high-surrogate", "lone-low"]
)
async def test_text_postgresql_cannot_store_in_a_body_is_422(
    client: httpx.AsyncClient, net: support.Network, text: str
) -> None:
    raw = json.dumps({"code": "S09", "name": text, "kind": "shop"}).encode()
    response = await client.post(
        "/stores",
        content=raw,
        headers=bearer(net.tokens["admin"], **{"Content-Type": "application/json"}),
    )
    expect(response, 422, "invalid_request")
    stores = expect(await client.get("/stores", headers=bearer(net.tokens["admin"])), 200)
    assert "S09" not in [s["code"] for s in stores["stores"]]


@pytest.mark.parametrize(
    ("path", "unknown"),
    [
        ("/products?search=tea", ["search"]),
        ("/orders?limit=5&sort=newest&x=1", ["sort", "x"]),
        ("/stock?sku=TEA&shop=S01", ["shop"]),
        ("/stock/movements?sku=TEA&before=3", ["before"]),
        ("/stores?code=S01", ["code"]),
        ("/healthz?verbose=1", ["verbose"]),
    ],
)
async def test_an_unknown_query_parameter_is_422_naming_it(
    client: httpx.AsyncClient, net: support.Network, path: str, unknown: list[str]
) -> None:
    body = expect(await client.get(path, headers=bearer(net.tokens["admin"])), 422)
    assert body["error"] == "invalid_request"
    assert [e["loc"] for e in body["detail"]["errors"]] == [["query", name] for name in unknown]
    for name in unknown:
        assert name in body["detail"]["message"]


async def test_an_unknown_query_parameter_on_a_write_is_422_and_writes_nothing(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    before = await snapshot(client, net.tokens["admin"])
    response = await client.post(
        "/orders?dry_run=1",
        json=delivery(line("TEA", 1)),
        headers=bearer(net.tokens["online"]),
    )
    expect(response, 422, "invalid_request")
    assert await snapshot(client, net.tokens["admin"]) == before


@pytest.mark.parametrize(
    "quantity", [" 1 ", "1_000", "1e3", "+1", ".5", "1.", "٣", "0x10", "1,5", "", "Infinity"]
)
async def test_a_quantity_that_is_not_a_plain_decimal_string_is_refused(
    client: httpx.AsyncClient, net: support.Network, quantity: str
) -> None:
    before = await snapshot(client, net.tokens["admin"])
    response = await client.post(
        "/stock/receipts",
        json=stock_doc("WH1", "R-1", line("TEA", quantity)),
        headers=bearer(net.tokens["admin"]),
    )
    expect(response, 422, "invalid_request")
    assert await snapshot(client, net.tokens["admin"]) == before


@pytest.mark.parametrize("price", [" 10 ", "1_000.00", "1e2"])
async def test_money_that_is_not_a_plain_decimal_string_is_refused(
    client: httpx.AsyncClient, net: support.Network, price: str
) -> None:
    body = {"sku": "NEW", "name": "New", "price": price}
    response = await client.post("/products", json=body, headers=bearer(net.tokens["admin"]))
    expect(response, 422, "invalid_request")


async def test_plain_decimal_strings_and_json_numbers_are_accepted(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    order = await placed(
        client,
        net.tokens["online"],
        delivery(line("TEA", "2", price="10.50"), line("TEA", 1, price=3), line("TEA", 1.0)),
    )
    assert [x["quantity"] for x in order["lines"]] == ["2", "1", "1"]


@pytest.mark.parametrize(
    "body",
    [
        {"active": 0},
        {"active": "yes"},
        {"serves_online": 1},
        {"online_priority": "10"},
        {"online_priority": 10.5},
    ],
)
async def test_flags_and_whole_numbers_must_be_json_booleans_and_integers(
    client: httpx.AsyncClient, net: support.Network, body: dict[str, Any]
) -> None:
    response = await client.patch("/stores/S02", json=body, headers=bearer(net.tokens["admin"]))
    expect(response, 422, "invalid_request")


async def test_a_time_must_be_an_iso_8601_string_not_a_number(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = bearer(net.tokens["admin"])
    expect(await client.get("/orders", params={"created_to": "0.5"}, headers=admin), 422)
    doc = {**stock_doc("WH1", "R-5", line("TEA", 1)), "time": 1700000000}
    expect(await client.post("/stock/receipts", json=doc, headers=admin), 422)
    at = "2025-03-01T12:00:00+03:00"
    expect(await client.get("/orders", params={"created_to": at}, headers=admin), 200)
