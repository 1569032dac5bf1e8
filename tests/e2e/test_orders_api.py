"""Orders over HTTP: placing, reading, listing, and moving them through their life."""

from __future__ import annotations

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
    levels,
    line,
    movements,
    orders,
    pickup,
    place,
    placed,
    snapshot,
)

STOCK = {
    "WH1": {"TEA": 10, "COFFEE": 5, "SUGAR": "12.5"},
    "S01": {"TEA": 4, "MUG": 3},
    "S02": {"TEA": 2},
}
ZERO = Decimal(0)


@pytest.fixture
async def net(db: Database) -> support.Network:
    return await support.seed_network(db, STOCK)


async def act(client: httpx.AsyncClient, token: str, order_id: str, action: str) -> httpx.Response:
    return await client.post(f"/orders/{order_id}/{action}", headers=bearer(token))


async def test_placing_an_order_answers_201_with_its_lines_and_total_as_decimal_strings(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    body = delivery(
        line("TEA", 2),
        line("COFFEE", "1"),
        line("SUGAR", "0.75"),
        customer={"name": "Ivan"},
        comment="ring twice",
    )
    response = await place(client, net.tokens["online"], body)
    order = expect(response, 201)
    assert order["status"] == "placed"
    assert order["payment_status"] == "unpaid"
    assert order["channel"] == "online"
    assert order["fulfillment"] == "delivery"
    assert order["store"] is None
    assert order["currency"] == "RUB"
    assert order["customer"] == {"name": "Ivan"}
    assert order["comment"] == "ring twice"
    assert order["hold_expires_at"] is not None
    assert [(x["line_no"], x["sku"]) for x in order["lines"]] == [
        (1, "TEA"),
        (2, "COFFEE"),
        (3, "SUGAR"),
    ]
    for x in order["lines"]:
        for key in ("quantity", "price", "amount"):
            assert isinstance(x[key], str), (key, x)
    assert [(x["quantity"], x["price"], x["amount"]) for x in order["lines"]] == [
        ("2", "100.00", "200.00"),
        ("1", "250.50", "250.50"),
        ("0.75", "80.00", "60.00"),
    ]
    assert order["total"] == "510.50"


async def test_a_placed_order_holds_its_stock_and_reads_back_the_same(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    order = await placed(client, net.tokens["online"], delivery(line("TEA", 3)))
    assert await level(client, admin, "TEA", "WH1") == (Decimal(10), Decimal(3), Decimal(7))
    fetched = expect(await client.get(f"/orders/{order['id']}", headers=bearer(admin)), 200)
    assert fetched == order


async def test_a_delivery_order_splits_across_online_stores_by_priority(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    await placed(client, net.tokens["online"], delivery(line("TEA", 12)))
    # WH1 gives its 10, S01 gives 2 (it keeps its safety stock of 1), S02 does not serve online.
    assert await levels(client, admin, "TEA") == {
        "WH1": (Decimal(10), Decimal(10), ZERO),
        "S01": (Decimal(4), Decimal(2), Decimal(2)),
        "S02": (Decimal(2), ZERO, Decimal(2)),
    }


async def test_an_unknown_order_is_404_not_found(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    response = await client.get(
        "/orders/0190aaaa-0000-7000-8000-000000000000", headers=bearer(net.tokens["admin"])
    )
    expect(response, 404, "not_found")
    response = await act(client, net.tokens["admin"], "no-such-order", "pay")
    expect(response, 404, "not_found")


async def test_orders_are_listed_oldest_first_and_filtered_by_channel_store_and_status(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    a = await placed(client, net.tokens["online"], delivery(line("TEA", 1)))
    b = await placed(client, net.tokens["operator"], pickup("S01", line("MUG", 1)))
    c = await placed(client, net.tokens["pos"], pickup("S01", line("TEA", 1)))
    d = await placed(client, net.tokens["operator"], pickup("S02", line("TEA", 1)))
    expect(await act(client, admin, d["id"], "cancel"), 200)

    def ids(found: list[dict[str, object]]) -> list[object]:
        return [o["id"] for o in found]

    assert ids(await orders(client, admin)) == [a["id"], b["id"], c["id"], d["id"]]
    assert ids(await orders(client, admin, channel="operator")) == [b["id"], d["id"]]
    assert ids(await orders(client, admin, channel="online")) == [a["id"]]
    assert ids(await orders(client, admin, channel="pos")) == [c["id"]]
    assert ids(await orders(client, admin, store="S01")) == [b["id"], c["id"]]
    assert ids(await orders(client, admin, store="S02")) == [d["id"]]
    assert ids(await orders(client, admin, status="cancelled")) == [d["id"]]
    assert ids(await orders(client, admin, status="placed")) == [a["id"], b["id"], c["id"]]
    assert ids(await orders(client, admin, channel="operator", status="placed")) == [b["id"]]
    # A delivery order belongs to no store, but it holds its stock at WH1: WH1's pick list.
    assert ids(await orders(client, admin, store="WH1")) == [a["id"]]


async def test_orders_are_filtered_by_creation_time(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    first = await placed(client, net.tokens["online"], delivery(line("TEA", 1)))
    second = await placed(client, net.tokens["online"], delivery(line("TEA", 1)))
    third = await placed(client, net.tokens["online"], delivery(line("TEA", 1)))
    assert first["created_at"] < second["created_at"] < third["created_at"]
    found = await orders(client, admin, created_from=second["created_at"])
    assert [o["id"] for o in found] == [second["id"], third["id"]]
    found = await orders(client, admin, created_to=second["created_at"])
    assert [o["id"] for o in found] == [first["id"]]
    found = await orders(
        client, admin, created_from=first["created_at"], created_to=third["created_at"]
    )
    assert [o["id"] for o in found] == [first["id"], second["id"]]
    assert await orders(client, admin, created_from="2999-01-01T00:00:00+00:00") == []


async def test_the_keyset_cursor_walks_every_order_once_across_pages(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = bearer(net.tokens["admin"])
    placed_ids = [
        (await placed(client, net.tokens["operator"], delivery(line("TEA", 1))))["id"]
        for _ in range(7)
    ]
    seen: list[str] = []
    pages = []
    cursor = None
    for _ in range(10):
        params: dict[str, object] = {"limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        page = expect(await client.get("/orders", params=params, headers=admin), 200)
        pages.append(len(page["orders"]))
        seen.extend(o["id"] for o in page["orders"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == placed_ids
    assert pages == [3, 3, 1]


async def test_the_cursor_keeps_the_filters(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = bearer(net.tokens["admin"])
    operator_ids = []
    for _ in range(3):
        await placed(client, net.tokens["online"], delivery(line("TEA", 1)))
        order = await placed(client, net.tokens["operator"], delivery(line("TEA", 1)))
        operator_ids.append(order["id"])
    params = {"limit": 2, "channel": "operator"}
    page = expect(await client.get("/orders", params=params, headers=admin), 200)
    assert [o["id"] for o in page["orders"]] == operator_ids[:2]
    assert page["next_cursor"]
    params["cursor"] = page["next_cursor"]
    page = expect(await client.get("/orders", params=params, headers=admin), 200)
    assert [o["id"] for o in page["orders"]] == operator_ids[2:]
    assert page["next_cursor"] is None


async def test_a_bad_cursor_is_refused_with_422(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    response = await client.get(
        "/orders", params={"cursor": "yesterday|x"}, headers=bearer(net.tokens["admin"])
    )
    expect(response, 422, "invalid_request")


async def test_pay_ship_complete_moves_the_order_and_the_stock(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    order = await placed(client, net.tokens["online"], delivery(line("TEA", 3)))
    paid = expect(await act(client, net.tokens["online"], order["id"], "pay"), 200)
    assert (paid["status"], paid["payment_status"]) == ("placed", "paid")
    assert paid["paid_at"] is not None
    assert paid["hold_expires_at"] is None
    assert await level(client, admin, "TEA", "WH1") == (Decimal(10), Decimal(3), Decimal(7))

    shipped = expect(await act(client, net.tokens["operator"], order["id"], "ship"), 200)
    assert shipped["status"] == "shipped"
    assert shipped["shipped_at"] is not None
    assert await level(client, admin, "TEA", "WH1") == (Decimal(7), ZERO, Decimal(7))
    latest = (await movements(client, admin, "TEA"))[0]
    assert (latest["reason"], latest["quantity"]) == ("shipment", "-3")

    completed = expect(await act(client, net.tokens["operator"], order["id"], "complete"), 200)
    assert completed["status"] == "completed"
    assert completed["completed_at"] is not None
    assert completed["payment_status"] == "paid"
    assert await level(client, admin, "TEA", "WH1") == (Decimal(7), ZERO, Decimal(7))
    fetched = expect(await client.get(f"/orders/{order['id']}", headers=bearer(admin)), 200)
    assert fetched["status"] == "completed"


async def test_completing_a_placed_order_ships_it_first(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    order = await placed(client, net.tokens["operator"], pickup("S01", line("MUG", 2)))
    done = expect(await act(client, admin, order["id"], "complete"), 200)
    assert done["status"] == "completed"
    assert done["shipped_at"] is not None
    assert await level(client, admin, "MUG", "S01") == (Decimal(1), ZERO, Decimal(1))


async def test_cancelling_releases_the_holds_and_a_repeat_changes_nothing(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    order = await placed(client, net.tokens["online"], delivery(line("TEA", 4)))
    cancelled = expect(await act(client, net.tokens["online"], order["id"], "cancel"), 200)
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancelled_at"] is not None
    assert await level(client, admin, "TEA", "WH1") == (Decimal(10), ZERO, Decimal(10))
    again = expect(await act(client, net.tokens["online"], order["id"], "cancel"), 200)
    assert again["status"] == "cancelled"
    assert again["cancelled_at"] == cancelled["cancelled_at"]
    assert await level(client, admin, "TEA", "WH1") == (Decimal(10), ZERO, Decimal(10))


@pytest.mark.parametrize("action", ["ship", "complete", "pay"])
async def test_a_cancelled_order_cannot_be_shipped_completed_or_paid(
    client: httpx.AsyncClient, net: support.Network, action: str
) -> None:
    admin = net.tokens["admin"]
    order = await placed(client, net.tokens["operator"], delivery(line("TEA", 2)))
    expect(await act(client, admin, order["id"], "cancel"), 200)
    before = await snapshot(client, admin)
    body = expect(await act(client, admin, order["id"], action), 409, "invalid_transition")
    assert body["detail"]["status"] == "cancelled"
    assert await snapshot(client, admin) == before


async def test_a_shipped_order_cannot_be_cancelled(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    order = await placed(client, net.tokens["operator"], delivery(line("TEA", 2)))
    expect(await act(client, admin, order["id"], "ship"), 200)
    before = await snapshot(client, admin)
    expect(await act(client, admin, order["id"], "cancel"), 409, "invalid_transition")
    assert await snapshot(client, admin) == before


async def test_insufficient_stock_is_409_naming_the_lines_and_holds_nothing(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    before = await snapshot(client, admin)
    # Delivery can take 10 from WH1 and 3 from S01 (4 minus safety 1): 14 is one too many.
    body = delivery(line("COFFEE", 1), line("TEA", 14))
    refusal = expect(await place(client, net.tokens["online"], body), 409, "insufficient_stock")
    short = refusal["detail"]["lines"]
    assert isinstance(short, list)
    assert [(x["line"], x["product"], x["requested"]) for x in short] == [(2, "TEA", "14")]
    assert Decimal(short[0]["available"]) == Decimal(13)
    assert await snapshot(client, admin) == before
    assert await level(client, admin, "COFFEE", "WH1") == (Decimal(5), ZERO, Decimal(5))
    # The last coverable unit still goes through.
    await placed(client, net.tokens["online"], delivery(line("TEA", 13)))


async def test_a_pickup_order_takes_only_from_its_store_and_keeps_the_safety_stock(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    before = await snapshot(client, admin)
    body = pickup("S01", line("TEA", 4))
    expect(await place(client, net.tokens["online"], body), 409, "insufficient_stock")
    assert await snapshot(client, admin) == before
    await placed(client, net.tokens["online"], pickup("S01", line("TEA", 3)))
    assert await level(client, admin, "TEA", "S01") == (Decimal(4), Decimal(3), Decimal(1))


async def test_an_order_for_the_same_external_id_is_placed_once(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    body = delivery(line("TEA", 2), external_id="bitrix-1001")
    first = await place(client, net.tokens["online"], body)
    second = await place(client, net.tokens["online"], body)
    assert first.status_code == 201
    assert second.status_code in (200, 201)
    assert second.json()["id"] == first.json()["id"]
    assert len(await orders(client, admin)) == 1
    assert await level(client, admin, "TEA", "WH1") == (Decimal(10), Decimal(2), Decimal(8))


async def test_orders_get_short_sequential_numbers_that_find_them(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    first = await placed(client, net.tokens["online"], delivery(line("TEA", 1)))
    refused = await place(client, net.tokens["online"], delivery(line("COFFEE", 99)))
    second = await placed(client, net.tokens["operator"], pickup("S01", line("MUG", 1)))
    sold = expect(
        await client.post(
            "/pos/sales",
            json={
                "store": "S01",
                "pos_id": "T1",
                "transaction_id": "R-1",
                "lines": [{"sku": "TEA", "quantity": "1"}],
            },
            headers=bearer(net.tokens["pos"]),
        ),
        201,
    )

    expect(refused, 409, "insufficient_stock")
    assert isinstance(first["number"], int) and first["number"] >= 1
    assert first["number"] < second["number"] < sold["order_number"]
    assert len(str(second["number"])) <= 2
    found = expect(
        await client.get(f"/orders?number={second['number']}", headers=bearer(net.tokens["admin"])),
        200,
    )
    assert [o["id"] for o in found["orders"]] == [second["id"]]
    offline = expect(
        await client.get(f"/orders/{sold['order_id']}", headers=bearer(net.tokens["admin"])), 200
    )
    assert offline["number"] == sold["order_number"]


async def test_an_order_s_version_goes_up_with_every_change(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    order = await placed(client, net.tokens["online"], delivery(line("TEA", 1)))
    paid = expect(await act(client, net.tokens["operator"], order["id"], "pay"), 200)
    again = expect(await act(client, net.tokens["operator"], order["id"], "pay"), 200)
    shipped = expect(await act(client, net.tokens["operator"], order["id"], "ship"), 200)
    read = expect(
        await client.get(f"/orders/{order['id']}", headers=bearer(net.tokens["admin"])), 200
    )

    assert [order["version"], paid["version"], again["version"], shipped["version"]] == [1, 2, 2, 3]
    assert read["version"] == 3
