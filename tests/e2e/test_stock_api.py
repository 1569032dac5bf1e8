"""Stock documents over HTTP (admin): receipts, write-offs, counts, transfers; levels and
movements as GET /stock and GET /stock/movements show them."""

from __future__ import annotations

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
    levels,
    line,
    movements,
    pickup,
    placed,
    snapshot,
    stock_doc,
)

ZERO = Decimal(0)


@pytest.fixture
async def net(db: Database) -> support.Network:
    return await support.seed_network(db)


async def document(
    client: httpx.AsyncClient, net: support.Network, path: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.post(f"/stock/{path}", json=body, headers=bearer(net.tokens["admin"]))


def transfer(source: str, target: str, document_id: str, *lines: dict[str, Any]) -> dict[str, Any]:
    return {
        "from_store": source,
        "to_store": target,
        "document_id": document_id,
        "lines": list(lines),
    }


async def test_a_receipt_adds_on_hand_and_get_stock_shows_on_hand_reserved_available(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    body = stock_doc("WH1", "R-1", line("TEA", 10), line("SUGAR", "2.5"), line("TEA", 2))
    result = expect(await document(client, net, "receipts", body), 201)
    assert (result["document_type"], result["document_id"], result["store"]) == (
        "receipt",
        "R-1",
        "WH1",
    )
    assert sorted((x["product_id"], x["on_hand"]) for x in result["levels"]) == [
        (net.products["TEA"], "12"),
        (net.products["SUGAR"], "2.5"),
    ]
    response = await client.get("/stock", params={"sku": "TEA"}, headers=bearer(admin))
    shown = expect(response, 200)
    assert shown["product"]["sku"] == "TEA"
    assert shown["levels"] == [
        {
            "product_id": net.products["TEA"],
            "store": "WH1",
            "store_id": net.stores["WH1"],
            "on_hand": "12",
            "reserved": "0",
            "available": "12",
            "available_online": "12",
            "negative": False,
        }
    ]
    assert shown["total"] == {"on_hand": "12", "reserved": "0", "available": "12"}
    assert await level(client, admin, "SUGAR", "WH1") == (Decimal("2.5"), ZERO, Decimal("2.5"))


async def test_get_stock_shows_what_orders_hold_and_filters_by_store(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = bearer(net.tokens["admin"])
    expect(await document(client, net, "receipts", stock_doc("WH1", "R-1", line("TEA", 5))), 201)
    expect(await document(client, net, "receipts", stock_doc("S01", "R-2", line("TEA", 4))), 201)
    await placed(client, net.tokens["online"], delivery(line("TEA", 6)))
    shown = expect(await client.get("/stock", params={"sku": "TEA"}, headers=admin), 200)
    assert [
        (x["store"], x["on_hand"], x["reserved"], x["available"], x["available_online"])
        for x in shown["levels"]
    ] == [("WH1", "5", "5", "0", "0"), ("S01", "4", "1", "3", "2")]
    assert shown["total"] == {"on_hand": "9", "reserved": "6", "available": "3"}
    only = expect(
        await client.get("/stock", params={"sku": "TEA", "store": "S01"}, headers=admin), 200
    )
    assert [x["store"] for x in only["levels"]] == ["S01"]
    by_xml = expect(await client.get("/stock", params={"xml_id": "1c-tea"}, headers=admin), 200)
    assert by_xml["levels"] == shown["levels"]
    by_id = await client.get("/stock", params={"product_id": net.products["TEA"]}, headers=admin)
    assert expect(by_id, 200)["levels"] == shown["levels"]


async def test_a_write_off_takes_free_units(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    expect(await document(client, net, "receipts", stock_doc("S02", "R-1", line("MUG", 5))), 201)
    result = expect(
        await document(client, net, "write-offs", stock_doc("S02", "W-1", line("MUG", 2))), 201
    )
    assert result["document_type"] == "write_off"
    assert await level(client, admin, "MUG", "S02") == (Decimal(3), ZERO, Decimal(3))


async def test_a_write_off_of_more_than_is_on_hand_is_409_and_changes_nothing(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    expect(await document(client, net, "receipts", stock_doc("S02", "R-1", line("MUG", 5))), 201)
    before = await snapshot(client, admin)
    response = await document(client, net, "write-offs", stock_doc("S02", "W-1", line("MUG", 6)))
    expect(response, 409, "insufficient_stock")
    assert await snapshot(client, admin) == before


async def test_a_write_off_cannot_take_units_held_for_orders(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    expect(await document(client, net, "receipts", stock_doc("WH1", "R-1", line("TEA", 5))), 201)
    await placed(client, net.tokens["operator"], delivery(line("TEA", 4)))
    before = await snapshot(client, admin)
    response = await document(client, net, "write-offs", stock_doc("WH1", "W-1", line("TEA", 2)))
    expect(response, 409, "insufficient_stock")
    assert await snapshot(client, admin) == before
    expect(await document(client, net, "write-offs", stock_doc("WH1", "W-2", line("TEA", 1))), 201)
    assert await level(client, admin, "TEA", "WH1") == (Decimal(4), Decimal(4), ZERO)


async def test_a_count_sets_on_hand_and_reports_the_difference(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    expect(await document(client, net, "receipts", stock_doc("S01", "R-1", line("TEA", 7))), 201)
    body = stock_doc("S01", "C-1", line("TEA", 4), line("MUG", 2), line("SUGAR", 0))
    result = expect(await document(client, net, "counts", body), 201)
    assert result["document_type"] == "count"
    differences = {x["product_id"]: x["difference"] for x in result["levels"]}
    assert differences == {
        net.products["TEA"]: "-3",
        net.products["MUG"]: "2",
        net.products["SUGAR"]: "0",
    }
    assert await level(client, admin, "TEA", "S01") == (Decimal(4), ZERO, Decimal(4))
    assert await level(client, admin, "MUG", "S01") == (Decimal(2), ZERO, Decimal(2))
    counted = [m for m in await movements(client, admin, "TEA") if m["reason"] == "count"]
    assert [(m["quantity"], m["document_id"]) for m in counted] == [("-3", "C-1")]
    assert [m for m in await movements(client, admin, "SUGAR") if m["reason"] == "count"] == []


async def test_a_count_with_a_negative_figure_is_422(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    before = await snapshot(client, net.tokens["admin"])
    body = stock_doc("S01", "C-1", line("TEA", -1))
    expect(await document(client, net, "counts", body), 422, "invalid_request")
    assert await snapshot(client, net.tokens["admin"]) == before


async def test_a_transfer_moves_free_units_between_stores(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    expect(await document(client, net, "receipts", stock_doc("WH1", "R-1", line("TEA", 8))), 201)
    result = expect(
        await document(client, net, "transfers", transfer("WH1", "S02", "T-1", line("TEA", 3))),
        201,
    )
    assert (result["from_store"], result["to_store"], result["document_type"]) == (
        "WH1",
        "S02",
        "transfer",
    )
    assert await levels(client, admin, "TEA") == {
        "WH1": (Decimal(5), ZERO, Decimal(5)),
        "S02": (Decimal(3), ZERO, Decimal(3)),
    }
    moved = [
        (m["store"], m["reason"], m["quantity"])
        for m in await movements(client, admin, "TEA")
        if m["document_id"] == "T-1"
    ]
    assert sorted(moved) == [("S02", "transfer_in", "3"), ("WH1", "transfer_out", "-3")]


async def test_a_transfer_of_units_that_are_not_free_is_409_and_moves_nothing(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    expect(await document(client, net, "receipts", stock_doc("WH1", "R-1", line("TEA", 5))), 201)
    await placed(client, net.tokens["operator"], delivery(line("TEA", 3)))
    before = await snapshot(client, admin)
    response = await document(
        client, net, "transfers", transfer("WH1", "S02", "T-1", line("TEA", 3))
    )
    expect(response, 409, "insufficient_stock")
    assert await snapshot(client, admin) == before


async def test_a_transfer_of_more_than_is_on_hand_is_409_and_moves_nothing(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    expect(await document(client, net, "receipts", stock_doc("WH1", "R-1", line("TEA", 2))), 201)
    before = await snapshot(client, admin)
    response = await document(
        client, net, "transfers", transfer("WH1", "S02", "T-1", line("TEA", 5))
    )
    expect(response, 409, "insufficient_stock")
    assert await snapshot(client, admin) == before


async def test_a_transfer_to_the_same_store_is_422(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    expect(await document(client, net, "receipts", stock_doc("WH1", "R-1", line("TEA", 2))), 201)
    before = await snapshot(client, admin)
    response = await document(
        client, net, "transfers", transfer("WH1", "WH1", "T-1", line("TEA", 1))
    )
    expect(response, 422, "invalid_request")
    assert await snapshot(client, admin) == before


async def test_movements_are_listed_newest_first_with_store_filter_and_paging(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    steps = [
        ("receipts", stock_doc("WH1", "R-1", line("TEA", 10))),
        ("receipts", stock_doc("S01", "R-2", line("TEA", 4))),
        ("write-offs", stock_doc("WH1", "W-1", line("TEA", 1))),
        ("counts", stock_doc("S01", "C-1", line("TEA", 6))),
        ("transfers", transfer("WH1", "S02", "T-1", line("TEA", 2))),
    ]
    for path, body in steps:
        expect(await document(client, net, path, body), 201)
    await placed(client, net.tokens["operator"], pickup("S01", line("TEA", 1)))
    order = await placed(client, net.tokens["operator"], pickup("S01", line("TEA", 2)))
    response = await client.post(f"/orders/{order['id']}/ship", headers=bearer(admin))
    expect(response, 200)

    found = await movements(client, admin, "TEA")
    ids = [m["id"] for m in found]
    assert ids == sorted(ids, reverse=True)
    assert [(m["store"], m["reason"], m["quantity"], m["document_id"]) for m in found] == [
        ("S01", "shipment", "-2", order["id"]),
        ("S02", "transfer_in", "2", "T-1"),
        ("WH1", "transfer_out", "-2", "T-1"),
        ("S01", "count", "2", "C-1"),
        ("WH1", "write_off", "-1", "W-1"),
        ("S01", "receipt", "4", "R-2"),
        ("WH1", "receipt", "10", "R-1"),
    ]
    at_s01 = await movements(client, admin, "TEA", store="S01")
    assert [m["reason"] for m in at_s01] == ["shipment", "count", "receipt"]
    page = await movements(client, admin, "TEA", limit=2)
    assert [m["id"] for m in page] == ids[:2]
    rest = await movements(client, admin, "TEA", before_id=page[-1]["id"])
    assert [m["id"] for m in rest] == ids[2:]
    assert await movements(client, admin, "MUG") == []


async def test_the_ledger_adds_up_to_what_get_stock_shows(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    for path, body in [
        ("receipts", stock_doc("WH1", "R-1", line("SUGAR", "10.125"))),
        ("write-offs", stock_doc("WH1", "W-1", line("SUGAR", "0.125"))),
        ("transfers", transfer("WH1", "S01", "T-1", line("SUGAR", "2.5"))),
        ("counts", stock_doc("S01", "C-1", line("SUGAR", "2.4"))),
    ]:
        expect(await document(client, net, path, body), 201)
    shown = await levels(client, admin, "SUGAR")
    for store, (on_hand, _, _) in shown.items():
        moved = await movements(client, admin, "SUGAR", store=store)
        assert sum((Decimal(m["quantity"]) for m in moved), ZERO) == on_hand
    assert shown == {
        "WH1": (Decimal("7.5"), ZERO, Decimal("7.5")),
        "S01": (Decimal("2.4"), ZERO, Decimal("2.4")),
    }
