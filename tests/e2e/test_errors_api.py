"""Refusals over HTTP: each has its status and JSON error code, none is a 500, and none writes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from ordersync.db.unit_of_work import Database
from tests import support
from tests.e2e.helpers import (
    bearer,
    delivery,
    expect,
    level,
    line,
    pickup,
    place,
    placed,
    snapshot,
    stock_doc,
)

STOCK = {"WH1": {"TEA": 10, "SUGAR": 20}, "S01": {"TEA": 5}, "S02": {"MUG": 2}}
LIMIT = 65536  # the `settings` fixture's max_body_bytes


@pytest.fixture
async def net(db: Database) -> support.Network:
    return await support.seed_network(db, STOCK)


async def refused_without_writes(
    client: httpx.AsyncClient,
    net: support.Network,
    request: httpx.Request,
    status: int,
    error: str,
) -> dict[str, Any]:
    """Sends the request; checks the refusal and that the state did not change."""
    before = await snapshot(client, net.tokens["admin"])
    response = await client.send(request)
    assert response.status_code < 500, response.text
    body = expect(response, status, error)
    assert await snapshot(client, net.tokens["admin"]) == before
    return body


def post(client: httpx.AsyncClient, path: str, token: str, body: Any) -> httpx.Request:
    return client.build_request("POST", path, json=body, headers=bearer(token))


async def test_malformed_json_is_400_malformed_json(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    request = client.build_request(
        "POST",
        "/orders",
        content=b'{"fulfillment": "delivery", "lines": [',
        headers=bearer(net.tokens["online"], **{"Content-Type": "application/json"}),
    )
    await refused_without_writes(client, net, request, 400, "malformed_json")


async def test_malformed_json_in_a_stock_document_is_400_malformed_json(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    request = client.build_request(
        "POST",
        "/stock/receipts",
        content=b"{not json}",
        headers=bearer(net.tokens["admin"], **{"Content-Type": "application/json"}),
    )
    await refused_without_writes(client, net, request, 400, "malformed_json")


async def test_an_unknown_product_is_422_unknown_product(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    body = delivery(line("TEA", 1), line("NOPE", 1))
    request = post(client, "/orders", net.tokens["online"], body)
    refusal = await refused_without_writes(client, net, request, 422, "unknown_product")
    assert refusal["detail"]["products"] == ["NOPE"]


async def test_an_unknown_product_in_a_receipt_is_422_unknown_product(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    body = stock_doc("WH1", "R-1", line("TEA", 5), {"product_id": 999, "quantity": 1})
    request = post(client, "/stock/receipts", net.tokens["admin"], body)
    await refused_without_writes(client, net, request, 422, "unknown_product")


async def test_a_product_id_beyond_the_databases_integers_is_refused_not_a_500(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    body = delivery({"product_id": 2**40, "quantity": 1})
    request = post(client, "/orders", net.tokens["online"], body)
    await refused_without_writes(client, net, request, 422, "invalid_request")


async def test_an_unknown_product_in_a_stock_query_is_422_unknown_product(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    headers = bearer(net.tokens["admin"])
    for path in ("/stock", "/stock/movements"):
        response = await client.get(path, params={"sku": "NOPE"}, headers=headers)
        expect(response, 422, "unknown_product")


@pytest.mark.parametrize("path", ["/stock", "/stock/movements"])
async def test_a_stock_query_that_names_no_product_is_422_not_a_500(
    client: httpx.AsyncClient, net: support.Network, path: str
) -> None:
    response = await client.get(path, headers=bearer(net.tokens["admin"]))
    expect(response, 422, "invalid_request")


async def test_an_unknown_pickup_store_is_422_unknown_store(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    request = post(client, "/orders", net.tokens["operator"], pickup("S99", line("TEA", 1)))
    refusal = await refused_without_writes(client, net, request, 422, "unknown_store")
    assert refusal["detail"]["stores"] == ["S99"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/stock/receipts", stock_doc("S99", "R-1", line("TEA", 1))),
        ("/stock/counts", stock_doc("S99", "C-1", line("TEA", 1))),
        (
            "/stock/transfers",
            {
                "from_store": "WH1",
                "to_store": "S99",
                "document_id": "T-1",
                "lines": [line("TEA", 1)],
            },
        ),
        (
            "/pos/sales",
            {"store": "S99", "pos_id": "T1", "transaction_id": "1", "lines": [line("TEA", 1)]},
        ),
    ],
)
async def test_an_unknown_store_in_a_document_is_422_unknown_store(
    client: httpx.AsyncClient, net: support.Network, path: str, body: dict[str, Any]
) -> None:
    request = post(client, path, net.tokens["admin"], body)
    await refused_without_writes(client, net, request, 422, "unknown_store")


async def test_an_unknown_store_in_a_stock_query_is_422_unknown_store(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    response = await client.get(
        "/stock", params={"sku": "TEA", "store": "S99"}, headers=bearer(net.tokens["admin"])
    )
    expect(response, 422, "unknown_store")


@pytest.mark.parametrize("quantity", [1.5, "1.5", "0.001", "2.5"])
async def test_a_fractional_number_of_pieces_is_422_invalid_request(
    client: httpx.AsyncClient, net: support.Network, quantity: Any
) -> None:
    request = post(client, "/orders", net.tokens["online"], delivery(line("TEA", quantity)))
    refusal = await refused_without_writes(client, net, request, 422, "invalid_request")
    assert refusal["detail"]["field"] == "lines[0].quantity"


@pytest.mark.parametrize("quantity", [0, -1, "-2", "0.000", -0.5])
@pytest.mark.parametrize("sku", ["TEA", "SUGAR"])
async def test_a_zero_or_negative_quantity_is_422(
    client: httpx.AsyncClient, net: support.Network, quantity: Any, sku: str
) -> None:
    request = post(client, "/orders", net.tokens["online"], delivery(line(sku, quantity)))
    await refused_without_writes(client, net, request, 422, "invalid_request")


@pytest.mark.parametrize("path", ["/stock/receipts", "/stock/write-offs"])
@pytest.mark.parametrize("quantity", [0, -3])
async def test_a_stock_document_with_a_zero_or_negative_quantity_is_422(
    client: httpx.AsyncClient, net: support.Network, path: str, quantity: int
) -> None:
    request = post(
        client, path, net.tokens["admin"], stock_doc("WH1", "D-1", line("TEA", quantity))
    )
    await refused_without_writes(client, net, request, 422, "invalid_request")


async def test_a_pos_sale_with_a_negative_quantity_is_422(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    body = {"store": "S01", "pos_id": "T1", "transaction_id": "1", "lines": [line("TEA", -1)]}
    request = post(client, "/pos/sales", net.tokens["pos"], body)
    await refused_without_writes(client, net, request, 422, "invalid_request")


@pytest.mark.parametrize(("quantity", "held"), [(1.5, "1.5"), ("2.25", "2.25"), (0.001, "0.001")])
async def test_a_decimal_quantity_of_kilograms_is_accepted_whether_number_or_string(
    client: httpx.AsyncClient, net: support.Network, quantity: Any, held: str
) -> None:
    order = await placed(client, net.tokens["online"], delivery(line("SUGAR", quantity)))
    assert order["lines"][0]["quantity"] == held
    assert Decimal(order["total"]) == Decimal(held) * 80
    on_hand, reserved, _ = await level(client, net.tokens["admin"], "SUGAR", "WH1")
    assert (on_hand, reserved) == (Decimal(20), Decimal(held))


@pytest.mark.parametrize(
    "quantity", ["abc", "", None, [], {"value": 1}, "NaN", "Infinity", "1,5", True]
)
async def test_a_quantity_that_is_not_a_number_is_422_invalid_request(
    client: httpx.AsyncClient, net: support.Network, quantity: Any
) -> None:
    request = post(client, "/orders", net.tokens["online"], delivery(line("SUGAR", quantity)))
    await refused_without_writes(client, net, request, 422, "invalid_request")


@pytest.mark.parametrize("quantity", ["1.0001", "1e-4", "2000000000"])
async def test_a_quantity_beyond_the_scale_or_range_is_422_invalid_request(
    client: httpx.AsyncClient, net: support.Network, quantity: str
) -> None:
    request = post(client, "/orders", net.tokens["online"], delivery(line("SUGAR", quantity)))
    await refused_without_writes(client, net, request, 422, "invalid_request")


@pytest.mark.parametrize("price", ["-1", "1.001", "abc"])
async def test_a_bad_price_is_422_invalid_request(
    client: httpx.AsyncClient, net: support.Network, price: str
) -> None:
    body = delivery(line("TEA", 1, price=price))
    request = post(client, "/orders", net.tokens["operator"], body)
    await refused_without_writes(client, net, request, 422, "invalid_request")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"fulfillment": "delivery", "lines": []},
        {"fulfillment": "teleport", "lines": [line("TEA", 1)]},
        {"fulfillment": "delivery", "lines": [{"quantity": 1}]},
        {"fulfillment": "delivery", "lines": [{"sku": "TEA", "xml_id": "1c-tea", "quantity": 1}]},
        {"fulfillment": "delivery", "lines": [line("TEA", 1)], "surprise": True},
        {"fulfillment": "delivery", "lines": [line("TEA", 1)], "currency": "rub"},
        {"fulfillment": "pickup", "lines": [line("TEA", 1)]},
        [1, 2, 3],
        "delivery",
    ],
)
async def test_a_body_that_breaks_the_schema_is_422_invalid_request(
    client: httpx.AsyncClient, net: support.Network, body: Any
) -> None:
    request = post(client, "/orders", net.tokens["operator"], body)
    await refused_without_writes(client, net, request, 422, "invalid_request")


async def test_a_body_over_the_limit_is_413_payload_too_large(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    body = delivery(line("TEA", 1), customer={"note": "x" * LIMIT})
    request = post(client, "/orders", net.tokens["online"], body)
    assert len(request.content) > LIMIT
    await refused_without_writes(client, net, request, 413, "payload_too_large")


async def test_a_streamed_body_over_the_limit_is_413_payload_too_large(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    payload = json.dumps(delivery(line("TEA", 1), customer={"note": "x" * LIMIT})).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 8192):
            yield payload[start : start + 8192]

    request = client.build_request(
        "POST",
        "/orders",
        content=chunks(),
        headers=bearer(net.tokens["online"], **{"Content-Type": "application/json"}),
    )
    assert "content-length" not in request.headers
    await refused_without_writes(client, net, request, 413, "payload_too_large")


async def test_a_body_of_exactly_the_limit_is_accepted(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    # JSON may carry any amount of white space: pad with it up to the limit.
    body = json.dumps(delivery(line("TEA", 1))).encode()
    content = body + b" " * (LIMIT - len(body))
    assert len(content) == LIMIT
    response = await client.post(
        "/orders",
        content=content,
        headers=bearer(net.tokens["online"], **{"Content-Type": "application/json"}),
    )
    expect(response, 201)


async def test_an_oversized_body_is_refused_before_the_token_is_looked_at(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    request = client.build_request("POST", "/stock/receipts", content=b"x" * (LIMIT + 1))
    await refused_without_writes(client, net, request, 413, "payload_too_large")


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nowhere"), ("POST", "/orders/x/refund"), ("DELETE", "/stock/levels"), ("GET", "/")],
)
async def test_an_unknown_route_is_404_with_a_json_error(
    client: httpx.AsyncClient, net: support.Network, method: str, path: str
) -> None:
    request = client.build_request(method, path, headers=bearer(net.tokens["admin"]))
    body = await refused_without_writes(client, net, request, 404, "not_found")
    assert "detail" in body


async def test_a_wrong_method_is_405_with_a_json_error(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    request = client.build_request("DELETE", "/orders", headers=bearer(net.tokens["admin"]))
    await refused_without_writes(client, net, request, 405, "method_not_allowed")
    answer = await client.send(request)
    assert {m.strip() for m in answer.headers["allow"].split(",")} >= {"GET", "POST"}


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 501},
        {"limit": "many"},
        {"status": "lost"},
        {"channel": "fax"},
        {"created_from": "last tuesday"},
    ],
)
async def test_bad_list_parameters_are_422_invalid_request(
    client: httpx.AsyncClient, net: support.Network, params: dict[str, Any]
) -> None:
    response = await client.get("/orders", params=params, headers=bearer(net.tokens["admin"]))
    expect(response, 422, "invalid_request")


async def test_a_creation_time_without_a_zone_is_answered_not_a_500(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    await placed(client, net.tokens["online"], delivery(line("TEA", 1)))
    response = await client.get(
        "/orders",
        params={"created_from": "2000-01-01T00:00:00"},
        headers=bearer(net.tokens["admin"]),
    )
    assert response.status_code < 500, response.text
    assert response.status_code in (200, 422), response.text


async def test_an_idempotency_key_too_long_is_422_invalid_request(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    request = client.build_request(
        "POST",
        "/orders",
        json=delivery(line("TEA", 1)),
        headers=bearer(net.tokens["online"], **{"Idempotency-Key": "k" * 256}),
    )
    await refused_without_writes(client, net, request, 422, "invalid_request")


async def test_a_write_off_of_units_that_are_not_free_is_409_and_writes_nothing(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    await placed(client, net.tokens["online"], delivery(line("TEA", 8)))
    body = stock_doc("WH1", "W-1", line("SUGAR", 1), line("TEA", 3))
    request = post(client, "/stock/write-offs", net.tokens["admin"], body)
    await refused_without_writes(client, net, request, 409, "insufficient_stock")
    assert await level(client, net.tokens["admin"], "SUGAR", "WH1") == (
        Decimal(20),
        Decimal(0),
        Decimal(20),
    )


async def test_a_refused_order_leaves_the_other_lines_untouched(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    body = delivery(line("SUGAR", 5), line("TEA", 1), line("MUG", 1))
    request = post(client, "/orders", net.tokens["online"], body)
    refusal = await refused_without_writes(client, net, request, 409, "insufficient_stock")
    assert [x["product"] for x in refusal["detail"]["lines"]] == ["MUG"]
    response = await place(client, net.tokens["online"], delivery(line("SUGAR", 5)))
    expect(response, 201)
