"""Inputs that are legal but unusual, and inputs that must be refused without a trace."""

from __future__ import annotations

import json
from decimal import Decimal

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
    place,
    placed,
    sale,
    snapshot,
    stock_doc,
)

STOCK = {"WH1": {"TEA": 20, "SUGAR": 50}, "S01": {"TEA": 10, "SUGAR": 10}, "S02": {"TEA": 5}}
JSON_TYPE = {"Content-Type": "application/json"}


@pytest.fixture
async def net(db: Database) -> support.Network:
    return await support.seed_network(db, STOCK, pos_stores=("S01", "S02"))


async def test_a_weighed_line_is_charged_to_the_kopeck_rounding_half_up(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    order = await placed(
        client,
        net.tokens["online"],
        delivery(line("SUGAR", "0.347", price="199.99"), line("SUGAR", "0.5", price="79.99")),
    )
    assert [x["amount"] for x in order["lines"]] == ["69.40", "40.00"]
    assert order["total"] == "109.40"


async def test_a_weighed_till_sale_at_an_odd_price_becomes_a_paid_order(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    body = sale("S01", "w-1", line("SUGAR", "0.347", price="199.99"))
    result = expect(
        await client.post("/pos/sales", json=body, headers=bearer(net.tokens["pos"])), 201
    )
    assert result["order_id"] is not None
    assert await level(client, net.tokens["admin"], "SUGAR", "S01") == (
        Decimal("9.653"),
        Decimal(0),
        Decimal("9.653"),
    )


@pytest.mark.parametrize(
    "customer",
    [{"name": float("nan")}, {"name": "\ud800"}, {"name": "x" * 9000}, {"name": "a\x00b"}],
    ids=["nan", "lone-surrogate", "oversized", "nul"],
)
async def test_a_customer_that_is_not_plain_json_is_refused_before_anything_is_held(
    client: httpx.AsyncClient, net: support.Network, customer: dict[str, object]
) -> None:
    before = await snapshot(client, net.tokens["admin"])
    # json.dumps writes NaN and lone surrogates as they are, as a careless client would.
    raw = json.dumps(delivery(line("TEA", 1), customer=customer)).encode()
    response = await client.post(
        "/orders",
        content=raw,
        headers=bearer(net.tokens["online"], **{"Content-Type": "application/json"}),
    )
    expect(response, 422, "invalid_request")
    assert await snapshot(client, net.tokens["admin"]) == before


@pytest.mark.parametrize("field", ["comment", "external_id"])
async def test_a_nul_character_in_text_is_refused_on_every_database(
    client: httpx.AsyncClient, net: support.Network, field: str
) -> None:
    before = await snapshot(client, net.tokens["admin"])
    response = await place(
        client, net.tokens["online"], delivery(line("TEA", 1), **{field: "a\x00b"})
    )
    expect(response, 422, "invalid_request")
    assert await snapshot(client, net.tokens["admin"]) == before


async def test_quotes_and_backslashes_in_text_are_stored_as_sent(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    text = 'O\'Brien \\ "quoted" ; DROP TABLE orders; --'
    order = await placed(
        client, net.tokens["online"], delivery(line("TEA", 1), comment=text, external_id=text)
    )
    response = await client.get(f"/orders/{order['id']}", headers=bearer(net.tokens["online"]))
    assert expect(response, 200)["comment"] == text
    assert expect(response, 200)["external_id"] == text


async def test_an_online_token_cannot_hold_stock_with_an_in_store_order(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    body = {"fulfillment": "in_store", "store": "WH1", "lines": [line("TEA", 1)]}
    expect(await place(client, net.tokens["online"], body), 422, "invalid_request")
    assert await level(client, net.tokens["admin"], "TEA", "WH1") == (
        Decimal(20),
        Decimal(0),
        Decimal(20),
    )


async def test_two_stores_tills_may_share_an_id_and_a_transaction_number(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    token = net.tokens["pos"]
    for store in ("S01", "S02"):
        body = sale(store, "777", line("TEA", 1), pos_id="TILL-1")
        result = expect(await client.post("/pos/sales", json=body, headers=bearer(token)), 201)
        assert result["replayed"] is False
    assert (await level(client, net.tokens["admin"], "TEA", "S01"))[0] == Decimal(9)
    assert (await level(client, net.tokens["admin"], "TEA", "S02"))[0] == Decimal(4)


async def test_a_receipt_sent_again_is_applied_once(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    body = stock_doc("WH1", "R-1", line("TEA", 5))
    first = expect(await client.post("/stock/receipts", json=body, headers=bearer(admin)), 201)
    again = expect(await client.post("/stock/receipts", json=body, headers=bearer(admin)), 201)
    assert again["levels"] == first["levels"]
    assert again["replayed"] is True
    assert (await level(client, admin, "TEA", "WH1"))[0] == Decimal(25)


async def test_a_document_number_reused_with_other_lines_is_a_conflict(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    body = stock_doc("WH1", "W-1", line("TEA", 1))
    expect(await client.post("/stock/write-offs", json=body, headers=bearer(admin)), 201)
    other = stock_doc("WH1", "W-1", line("TEA", 2))
    expect(
        await client.post("/stock/write-offs", json=other, headers=bearer(admin)), 409, "conflict"
    )
    assert (await level(client, admin, "TEA", "WH1"))[0] == Decimal(19)


async def test_an_unreachable_time_is_refused_not_a_server_error(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    body = {**sale("S01", "t-old", line("TEA", 1)), "time": "0001-01-01T00:00:00+01:00"}
    response = await client.post("/pos/sales", json=body, headers=bearer(net.tokens["pos"]))
    expect(response, 422, "invalid_request")
    response = await client.get(
        "/orders",
        params={"created_from": "9999-12-31T23:59:59-01:00"},
        headers=bearer(net.tokens["online"]),
    )
    expect(response, 422, "invalid_request")


async def test_a_till_sale_with_an_idempotency_key_is_answered_once_per_key(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    headers = bearer(net.tokens["pos"], **{"Idempotency-Key": "sale-k1"})
    body = sale("S01", "k-1", line("TEA", 1))
    first = await client.post("/pos/sales", json=body, headers=headers)
    again = await client.post("/pos/sales", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers.get("idempotent-replay") == "true"
    assert again.json() == first.json()
    other = await client.post(
        "/pos/sales", json=sale("S01", "k-2", line("TEA", 1)), headers=headers
    )
    expect(other, 422, "idempotency_key_reused")
    assert (await level(client, net.tokens["admin"], "TEA", "S01"))[0] == Decimal(9)


async def test_creating_a_product_twice_under_one_key_creates_it_once(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    headers = bearer(net.tokens["admin"], **{"Idempotency-Key": "product-k1"})
    body = {"sku": "NEW-1", "name": "New", "unit": "pcs", "price": "10.00"}
    first = expect(await client.post("/products", json=body, headers=headers), 201)
    again = await client.post("/products", json=body, headers=headers)
    assert again.status_code == 201
    assert again.headers.get("idempotent-replay") == "true"
    assert again.json()["id"] == first["id"]
    response = await client.get("/products", params={"q": "NEW-1"}, headers=headers)
    assert [p["sku"] for p in expect(response, 200)["products"]] == ["NEW-1"]


async def test_only_an_admin_token_may_change_the_catalog(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    body = {"sku": "NEW-2", "name": "New", "unit": "pcs"}
    for role in ("online", "operator", "pos"):
        response = await client.post("/products", json=body, headers=bearer(net.tokens[role]))
        expect(response, 403, "forbidden")


async def test_a_json_number_is_read_exactly_so_one_a_float_would_round_is_refused(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    # A float reads 1.0000000000000001 as 1.0; the hub must see the 16 places and refuse.
    raw = json.dumps(delivery(line("TEA", 1))).replace(
        '"quantity": 1', '"quantity": 1.0000000000000001'
    )
    refused = await client.post(
        "/orders", content=raw, headers=bearer(net.tokens["online"], **JSON_TYPE)
    )
    expect(refused, 422, "invalid_request")

    exact = raw.replace("1.0000000000000001", "2.000")
    placed_ = expect(
        await client.post(
            "/orders", content=exact, headers=bearer(net.tokens["online"], **JSON_TYPE)
        ),
        201,
    )
    assert placed_["lines"][0]["quantity"] == "2"


async def test_a_customer_s_numbers_stay_json_numbers(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    raw = json.dumps({"fulfillment": "delivery", "lines": [{"sku": "TEA", "quantity": 1}]}).replace(
        "}]}", '}], "customer": {"name": "Ivan", "lat": 55.75, "floor": 3}}'
    )
    order = expect(
        await client.post(
            "/orders", content=raw, headers=bearer(net.tokens["online"], **JSON_TYPE)
        ),
        201,
    )
    assert order["customer"] == {"name": "Ivan", "lat": 55.75, "floor": 3}
