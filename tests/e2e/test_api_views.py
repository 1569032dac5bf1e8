"""What the API shows: a store's stock, where an order's stock is held, orders by store and
newest first, search that folds Cyrillic case on both databases, money with two places."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ordersync.db.unit_of_work import Database
from tests import support
from tests.e2e.helpers import bearer, delivery, expect, line, pickup, placed, stock_doc

STOCK = {"WH1": {"TEA": 3, "COFFEE": 5, "SUGAR": 10}, "S01": {"TEA": 10}, "S02": {"MUG": 2}}


@pytest.fixture
async def net(db: Database) -> support.Network:
    return await support.seed_network(db, STOCK)


async def get(client: httpx.AsyncClient, token: str, path: str, **params: Any) -> Any:
    return expect(await client.get(path, params=params, headers=bearer(token)), 200)


def holds(order: dict[str, Any]) -> list[list[tuple[str, str, str]]]:
    return [[(h["store"], h["quantity"], h["state"]) for h in x["holds"]] for x in order["lines"]]


async def test_a_stores_stock_is_listed_page_by_page_with_on_hand_reserved_available(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    await placed(client, net.tokens["online"], delivery(line("COFFEE", 2)))
    first = await get(client, admin, "/stock", store="WH1", limit=2)
    assert first["store"] == "WH1"
    assert [
        (x["product"]["sku"], x["on_hand"], x["reserved"], x["available"]) for x in first["levels"]
    ] == [("TEA", "3", "0", "3"), ("COFFEE", "5", "2", "3")]
    assert first["next_after_id"] == net.products["COFFEE"]
    rest = await get(client, admin, "/stock", store="WH1", limit=2, after_id=first["next_after_id"])
    assert [x["product"]["sku"] for x in rest["levels"]] == ["SUGAR"]
    assert rest["next_after_id"] is None
    found = await get(client, admin, "/stock", store="WH1", q="cof")
    assert [x["product"]["sku"] for x in found["levels"]] == ["COFFEE"]
    by_xml_id = await get(client, admin, "/stock", store="WH1", q="1c-sugar")
    assert [x["product"]["sku"] for x in by_xml_id["levels"]] == ["SUGAR"]
    # A product named as before still shows its levels at every store.
    tea = await get(client, admin, "/stock", sku="TEA")
    assert [x["store"] for x in tea["levels"]] == ["WH1", "S01"]


async def test_an_unknown_store_or_paging_a_products_levels_is_422(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = bearer(net.tokens["admin"])
    response = await client.get("/stock", params={"store": "NOPE"}, headers=admin)
    expect(response, 422, "unknown_store")
    response = await client.get("/stock", params={"sku": "TEA", "q": "x"}, headers=admin)
    expect(response, 422, "invalid_request")


async def test_every_order_view_shows_where_each_line_is_held(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    online, admin = net.tokens["online"], net.tokens["admin"]
    order = await placed(client, online, delivery(line("TEA", 5), line("SUGAR", "1.5")))
    split = [[("WH1", "3", "active"), ("S01", "2", "active")], [("WH1", "1.5", "active")]]
    assert holds(order) == split
    assert holds(await get(client, admin, f"/orders/{order['id']}")) == split
    listed = await get(client, admin, "/orders")
    assert [holds(o) for o in listed["orders"]] == [split]
    shipped = expect(await client.post(f"/orders/{order['id']}/ship", headers=bearer(admin)), 200)
    consumed = [[("WH1", "3", "consumed"), ("S01", "2", "consumed")], [("WH1", "1.5", "consumed")]]
    assert holds(shipped) == consumed
    assert holds(await get(client, admin, f"/orders/{order['id']}")) == consumed
    other = await placed(client, online, delivery(line("COFFEE", 1)))
    cancelled = expect(
        await client.post(f"/orders/{other['id']}/cancel", headers=bearer(online)), 200
    )
    assert holds(cancelled) == [[("WH1", "1", "released")]]


async def test_orders_by_store_include_delivery_orders_holding_stock_there(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    online, admin = net.tokens["online"], net.tokens["admin"]
    from_both = await placed(client, online, delivery(line("TEA", 4)))  # WH1 3, S01 1
    from_warehouse = await placed(client, online, delivery(line("COFFEE", 1)))
    at_shop = await placed(client, online, pickup("S01", line("TEA", 1)))
    by_store = {
        code: [o["id"] for o in (await get(client, admin, "/orders", store=code))["orders"]]
        for code in ("WH1", "S01", "S02")
    }
    assert by_store == {
        "WH1": [from_both["id"], from_warehouse["id"]],
        "S01": [from_both["id"], at_shop["id"]],
        "S02": [],
    }


async def test_orders_list_newest_first_and_the_cursor_pages_both_ways(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    online, admin = net.tokens["online"], net.tokens["admin"]
    ids = [(await placed(client, online, delivery(line("SUGAR", 1))))["id"] for _ in range(5)]

    async def walk(order: str | None) -> list[str]:
        seen: list[str] = []
        params: dict[str, Any] = {"limit": 2} if order is None else {"limit": 2, "order": order}
        while True:
            page = await get(client, admin, "/orders", **params)
            seen += [o["id"] for o in page["orders"]]
            if page["next_cursor"] is None:
                return seen
            params["cursor"] = page["next_cursor"]

    assert await walk(None) == ids
    assert await walk("oldest") == ids
    assert await walk("newest") == ids[::-1]


@pytest.mark.parametrize("text", ["улун", "УЛУН", "Улун", "молочный"])
async def test_product_search_ignores_the_case_of_cyrillic_names(
    client: httpx.AsyncClient, net: support.Network, text: str
) -> None:
    admin = net.tokens["admin"]
    body = {"sku": "ЧАЙ-7", "name": "Улун Молочный 100 г", "price": "349"}
    expect(await client.post("/products", json=body, headers=bearer(admin)), 201)
    expect(
        await client.post(
            "/stock/receipts", json=stock_doc("S02", "R-1", line("ЧАЙ-7", 2)), headers=bearer(admin)
        ),
        201,
    )
    found = await get(client, admin, "/products", q=text)
    assert [p["sku"] for p in found["products"]] == ["ЧАЙ-7"]
    in_store = await get(client, admin, "/stock", store="S02", q=text)
    assert [x["product"]["sku"] for x in in_store["levels"]] == ["ЧАЙ-7"]
    by_sku = await get(client, admin, "/products", q="чай-7")
    assert [p["sku"] for p in by_sku["products"]] == ["ЧАЙ-7"]


async def test_search_text_is_matched_literally(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    for text in ("%", "_", "T_A"):
        assert (await get(client, admin, "/products", q=text))["products"] == []


async def test_money_is_shown_with_two_places(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    body = {"sku": "GREEN", "name": "Green tea", "price": "349"}
    product = expect(await client.post("/products", json=body, headers=bearer(admin)), 201)
    assert product["price"] == "349.00"
    expect(
        await client.post(
            "/stock/receipts", json=stock_doc("WH1", "R-2", line("GREEN", 5)), headers=bearer(admin)
        ),
        201,
    )
    order = await placed(
        client, net.tokens["online"], delivery(line("GREEN", 1), line("SUGAR", "0.2", price="156"))
    )
    assert [(x["price"], x["amount"]) for x in order["lines"]] == [
        ("349.00", "349.00"),
        ("156.00", "31.20"),
    ]
    assert order["total"] == "380.20"
    listed = await get(client, admin, "/products", q="GREEN")
    assert listed["products"][0]["price"] == "349.00"


async def test_a_refusal_names_an_online_token_with_an(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    body = delivery(line("TEA", 1), channel="operator")
    response = await client.post("/orders", json=body, headers=bearer(net.tokens["online"]))
    assert expect(response, 403, "forbidden")["detail"]["message"].startswith("an online token")
    body = stock_doc("WH1", "R-3", line("TEA", 1))
    response = await client.post("/stock/receipts", json=body, headers=bearer(net.tokens["online"]))
    assert expect(response, 403, "forbidden")["detail"]["message"] == (
        "an online token cannot do this"
    )
