"""Completed till sales over HTTP: never refused for stock; what they took from orders shows
on the orders; a level below zero shows in /stock and /metrics; the till review queue lists
what needs a person and closes items."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from ordersync.db.unit_of_work import Database
from tests import support
from tests.e2e.helpers import bearer, expect, level, line, pickup, placed, sale

STOCK = {"S01": {"TEA": 3}}


@pytest.fixture
async def net(db: Database) -> support.Network:
    return await support.seed_network(db, STOCK)


async def test_a_completed_sale_is_recorded_and_the_order_it_took_from_asks_for_attention(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin, pos = net.tokens["admin"], net.tokens["pos"]
    order = await placed(client, net.tokens["online"], pickup("S01", line("TEA", 2)))

    result = expect(
        await client.post("/pos/sales", json=sale("S01", "1", line("TEA", 4)), headers=bearer(pos)),
        201,
    )

    assert result["negative"] == [{"product_id": net.products["TEA"], "on_hand": "-1"}]
    assert [(d["order_id"], d["cut"]) for d in result["displaced"]] == [(order["id"], "2")]
    listed = expect(
        await client.get("/orders", params={"attention": "true"}, headers=bearer(admin)), 200
    )["orders"]
    assert [(o["id"], [a["code"] for a in o["attention"]]) for o in listed] == [
        (order["id"], ["stock_taken_by_till_sale"])
    ]
    assert [h["state"] for h in listed[0]["lines"][0]["holds"]] == ["displaced"]
    stock = expect(await client.get("/stock", params={"sku": "TEA"}, headers=bearer(admin)), 200)[
        "levels"
    ]
    assert [(x["store"], x["on_hand"], x["negative"]) for x in stock] == [("S01", "-1", True)]
    shelf = expect(await client.get("/stock", params={"store": "S01"}, headers=bearer(admin)), 200)[
        "levels"
    ]
    assert [(x["on_hand"], x["negative"]) for x in shelf] == [("-1", True)]
    metrics = await client.get("/metrics", headers=bearer(admin))
    assert "ordersync_stock_negative_levels 1.0" in metrics.text


async def test_the_till_review_lists_unlinked_returns_and_a_person_closes_them(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin, pos = net.tokens["admin"], net.tokens["pos"]
    body = {**sale("S01", "R1", line("TEA", 1)), "original_transaction_id": "before-the-hub"}
    result = expect(await client.post("/pos/returns", json=body, headers=bearer(pos)), 201)
    assert result["linked"] is False

    items = expect(await client.get("/pos/review", headers=bearer(pos)), 200)["items"]
    assert [(x["kind"], x["store"], x["document_id"], x["quantity"]) for x in items] == [
        ("unlinked_return", "S01", "T1:R1", "1")
    ]
    expect(
        await client.post(
            f"/pos/review/{items[0]['id']}/resolve", json={"resolution": "x"}, headers=bearer(pos)
        ),
        403,
        "forbidden",
    )
    closed = expect(
        await client.post(
            f"/pos/review/{items[0]['id']}/resolve",
            json={"resolution": "sold in 2023, receipt found"},
            headers=bearer(admin),
        ),
        200,
    )
    assert closed["resolution"] == "sold in 2023, receipt found"
    assert expect(await client.get("/pos/review", headers=bearer(admin)), 200)["items"] == []
    everything = await client.get("/pos/review", params={"open": "false"}, headers=bearer(admin))
    assert len(expect(everything, 200)["items"]) == 1
    again = await client.post(
        f"/pos/review/{items[0]['id']}/resolve", json={"resolution": "y"}, headers=bearer(admin)
    )
    expect(again, 404, "not_found")


async def test_an_evotor_token_opens_nothing_of_the_hub_api(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    evotor = net.tokens["evotor"]
    for path in ("/orders", "/stock?sku=TEA", "/pos/review", "/stores"):
        expect(await client.get(path, headers=bearer(evotor)), 403, "forbidden")
    response = await client.post(
        "/pos/sales", json=sale("S01", "9", line("TEA", 1)), headers=bearer(evotor)
    )
    expect(response, 403, "forbidden")
    assert await level(client, net.tokens["admin"], "TEA", "S01") == (
        Decimal(3),
        Decimal(0),
        Decimal(3),
    )


async def test_a_completed_sale_keeps_a_line_of_an_unknown_product_and_records_the_rest(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin, pos = net.tokens["admin"], net.tokens["pos"]
    body = sale("S01", "U1", line("TEA", 1), line("NO-SUCH-TEA", 2))

    asked = await client.post("/pos/sales", json={**body, "completed": False}, headers=bearer(pos))
    expect(asked, 422, "unknown_product")  # a till asking first is told
    result = expect(await client.post("/pos/sales", json=body, headers=bearer(pos)), 201)

    assert [x["sku"] for x in result["lines"]] == ["TEA"]
    assert [(u["code"], u["quantity"]) for u in result["unmatched"]] == [("NO-SUCH-TEA", "2")]
    assert (await level(client, admin, "TEA", "S01"))[0] == Decimal(2)
    review = expect(await client.get("/pos/review", headers=bearer(admin)), 200)["items"]
    assert [(x["kind"], x["code"]) for x in review] == [("unmatched_line", "NO-SUCH-TEA")]
    again = expect(await client.post("/pos/sales", json=body, headers=bearer(pos)), 200)
    assert again["replayed"] is True
