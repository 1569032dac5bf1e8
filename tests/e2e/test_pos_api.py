"""Till sales and returns over HTTP: exactly once per (POS id, transaction id)."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from ordersync.db.unit_of_work import Database
from tests import support
from tests.e2e.helpers import (
    bearer,
    expect,
    level,
    line,
    movements,
    orders,
    pickup,
    placed,
    sale,
    snapshot,
)

STOCK = {"WH1": {"TEA": 10}, "S01": {"TEA": 5, "SUGAR": "3.5"}, "S02": {"TEA": 4, "MUG": 2}}
ZERO = Decimal(0)


@pytest.fixture
async def net(db: Database) -> support.Network:
    return await support.seed_network(db, STOCK)


def returned(
    store: str, transaction_id: str, original: str, *lines: dict[str, object], pos_id: str = "T1"
) -> dict[str, object]:
    return {
        **sale(store, transaction_id, *lines, pos_id=pos_id),
        "original_transaction_id": original,
    }


def asking(body: dict[str, object]) -> dict[str, object]:
    """The same sale or return from a till that asks before it prints the receipt."""
    return {**body, "completed": False}


async def post_sale(
    client: httpx.AsyncClient, token: str, body: dict[str, object]
) -> httpx.Response:
    return await client.post("/pos/sales", json=body, headers=bearer(token))


async def post_return(
    client: httpx.AsyncClient, token: str, body: dict[str, object]
) -> httpx.Response:
    return await client.post("/pos/returns", json=body, headers=bearer(token))


async def test_a_repeated_sale_is_200_replayed_and_deducts_once(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin, pos = net.tokens["admin"], net.tokens["pos"]
    body = sale("S01", "100", line("TEA", 2), line("SUGAR", "1.25"))
    first = expect(await post_sale(client, pos, body), 201)
    assert first["replayed"] is False
    assert first["store"] == "S01"
    assert [(x["sku"], x["quantity"]) for x in first["lines"]] == [("TEA", "2"), ("SUGAR", "1.25")]
    second = expect(await post_sale(client, pos, body), 200)
    assert second["replayed"] is True
    assert {k: v for k, v in second.items() if k != "replayed"} == {
        k: v for k, v in first.items() if k != "replayed"
    }
    assert await level(client, admin, "TEA", "S01") == (Decimal(3), ZERO, Decimal(3))
    assert await level(client, admin, "SUGAR", "S01") == (Decimal("2.25"), ZERO, Decimal("2.25"))
    sales = [m for m in await movements(client, admin, "TEA") if m["reason"] == "pos_sale"]
    assert [(m["store"], m["quantity"], m["document_id"]) for m in sales] == [
        ("S01", "-2", "T1:100")
    ]


async def test_a_sale_at_a_store_in_order_mode_becomes_one_completed_paid_order(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin, pos = net.tokens["admin"], net.tokens["pos"]
    body = sale("S01", "101", line("TEA", 1, price="90"))
    first = expect(await post_sale(client, pos, body), 201)
    expect(await post_sale(client, pos, body), 200)
    assert first["order_id"]
    found = await orders(client, admin, channel="pos")
    assert [o["id"] for o in found] == [first["order_id"]]
    order = found[0]
    assert (order["source"], order["fulfillment"]) == ("offline", "in_store")
    assert (order["status"], order["payment_status"]) == ("completed", "paid")
    assert (order["pos_id"], order["pos_transaction_id"]) == ("T1", "101")
    assert order["total"] == "90.00"


async def test_a_sale_at_a_stock_only_store_makes_no_order_of_its_own_but_joins_its_shift(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    body = {**sale("S02", "1", line("MUG", 2)), "shift": "7"}
    result = expect(await post_sale(client, admin, body), 201)
    assert result["order_id"] is None
    assert await level(client, admin, "MUG", "S02") == (ZERO, ZERO, ZERO)
    # master = "hub": 1C hears of it through the till shift's order
    (shift,) = await orders(client, admin)
    assert shift["id"] == result["shift_order_id"]
    assert shift["external_id"] == f"shift:{net.stores['S02']}:T1:7"
    assert [(x["sku"], x["quantity"]) for x in shift["lines"]] == [("MUG", "2")]


async def test_the_same_transaction_with_other_lines_is_a_409_conflict(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin, pos = net.tokens["admin"], net.tokens["pos"]
    expect(await post_sale(client, pos, sale("S01", "102", line("TEA", 1))), 201)
    before = await snapshot(client, admin)
    response = await post_sale(client, pos, sale("S01", "102", line("TEA", 2)))
    expect(response, 409, "conflict")
    assert await snapshot(client, admin) == before


async def test_the_same_transaction_id_from_another_till_is_another_sale(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin, pos = net.tokens["admin"], net.tokens["pos"]
    expect(await post_sale(client, pos, sale("S01", "7", line("TEA", 1), pos_id="T1")), 201)
    expect(await post_sale(client, pos, sale("S01", "7", line("TEA", 1), pos_id="T2")), 201)
    assert await level(client, admin, "TEA", "S01") == (Decimal(3), ZERO, Decimal(3))


async def test_a_till_sells_its_last_unit_below_the_safety_stock(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin, pos = net.tokens["admin"], net.tokens["pos"]
    expect(await post_sale(client, pos, sale("S01", "1", line("TEA", 5))), 201)
    assert await level(client, admin, "TEA", "S01") == (ZERO, ZERO, ZERO)


async def test_a_sale_asking_first_beyond_the_units_on_hand_is_409_and_can_be_retried_later(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin, pos = net.tokens["admin"], net.tokens["pos"]
    before = await snapshot(client, admin)
    body = asking(sale("S01", "200", line("SUGAR", 1), line("TEA", 6)))
    expect(await post_sale(client, pos, body), 409, "insufficient_stock")
    assert await snapshot(client, admin) == before
    receipt = {"store": "S01", "document_id": "R-1", "lines": [line("TEA", 1)]}
    expect(await client.post("/stock/receipts", json=receipt, headers=bearer(admin)), 201)
    result = expect(await post_sale(client, pos, body), 201)
    assert result["replayed"] is False
    assert await level(client, admin, "TEA", "S01") == (ZERO, ZERO, ZERO)


async def test_a_till_asking_first_cannot_sell_units_held_for_orders_and_is_told_whose(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin, pos = net.tokens["admin"], net.tokens["pos"]
    order = await placed(client, net.tokens["online"], pickup("S01", line("TEA", 4)))
    assert await level(client, admin, "TEA", "S01") == (Decimal(5), Decimal(4), Decimal(1))
    before = await snapshot(client, admin)
    refusal = expect(
        await post_sale(client, pos, asking(sale("S01", "300", line("TEA", 2)))),
        409,
        "insufficient_stock",
    )
    assert refusal["detail"]["lines"][0]["held_by"] == [
        {"order_id": order["id"], "number": order["number"], "quantity": "4"}
    ]
    assert await snapshot(client, admin) == before
    expect(await post_sale(client, pos, asking(sale("S01", "301", line("TEA", 1)))), 201)
    assert await level(client, admin, "TEA", "S01") == (Decimal(4), Decimal(4), ZERO)


async def test_a_return_puts_the_units_back_once(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin, pos = net.tokens["admin"], net.tokens["pos"]
    sold = expect(await post_sale(client, pos, sale("S01", "400", line("TEA", 3))), 201)
    body = returned("S01", "401", "400", line("TEA", 2))
    first = expect(await post_return(client, pos, body), 201)
    assert first["replayed"] is False
    assert first["original_transaction_id"] == "400"
    assert first["order_id"] == sold["order_id"]
    assert await level(client, admin, "TEA", "S01") == (Decimal(4), ZERO, Decimal(4))
    second = expect(await post_return(client, pos, body), 200)
    assert second["replayed"] is True
    assert await level(client, admin, "TEA", "S01") == (Decimal(4), ZERO, Decimal(4))
    latest = (await movements(client, admin, "TEA"))[0]
    assert (latest["reason"], latest["quantity"], latest["store"]) == ("pos_return", "2", "S01")


async def test_returns_asking_first_never_exceed_what_the_sale_sold(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin, pos = net.tokens["admin"], net.tokens["pos"]
    expect(await post_sale(client, pos, sale("S01", "500", line("TEA", 3))), 201)
    expect(await post_return(client, pos, returned("S01", "501", "500", line("TEA", 2))), 201)
    before = await snapshot(client, admin)
    response = await post_return(client, pos, asking(returned("S01", "502", "500", line("TEA", 2))))
    expect(response, 422, "invalid_request")
    assert await snapshot(client, admin) == before
    expect(await post_return(client, pos, returned("S01", "502", "500", line("TEA", 1))), 201)
    assert await level(client, admin, "TEA", "S01") == (Decimal(5), ZERO, Decimal(5))


@pytest.mark.parametrize(
    ("body", "store_of_sale"),
    [
        (returned("S01", "601", "no-such-sale", line("TEA", 1)), "S01"),
        (returned("S01", "602", "600", line("MUG", 1)), "S01"),
        (returned("S02", "603", "600", line("TEA", 1)), "S01"),
    ],
)
async def test_a_return_asking_first_without_a_matching_sale_is_422(
    client: httpx.AsyncClient, net: support.Network, body: dict[str, object], store_of_sale: str
) -> None:
    admin = net.tokens["admin"]
    expect(await post_sale(client, admin, sale(store_of_sale, "600", line("TEA", 1))), 201)
    before = await snapshot(client, admin)
    expect(await post_return(client, admin, asking(body)), 422)
    assert await snapshot(client, admin) == before


async def test_a_pos_token_cannot_return_at_another_store(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    expect(await post_sale(client, admin, sale("S02", "700", line("TEA", 1))), 201)
    before = await snapshot(client, admin)
    response = await post_return(
        client, net.tokens["pos"], returned("S02", "701", "700", line("TEA", 1))
    )
    expect(response, 403, "forbidden")
    assert await snapshot(client, admin) == before
