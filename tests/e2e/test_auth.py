"""Who may do what: bearer tokens, roles and store scopes, over HTTP."""

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
    line,
    orders,
    pickup,
    place,
    placed,
    sale,
    snapshot,
    stock_doc,
)

STOCK = {"WH1": {"TEA": 10, "COFFEE": 10}, "S01": {"TEA": 10}, "S02": {"TEA": 10}}

GET_PATHS = [
    "/orders",
    "/orders/0190aaaa-0000-7000-8000-000000000000",
    "/stock?sku=TEA",
    "/stock/movements?sku=TEA",
    "/stores",
    "/products",
]


@pytest.fixture
async def net(db: Database) -> support.Network:
    return await support.seed_network(db, STOCK)


def refused(response: httpx.Response, status: int, error: str) -> None:
    expect(response, status, error)


async def test_a_request_without_a_token_is_refused_with_401_unauthorized(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    response = await client.post("/orders", json=delivery(line("TEA", 1)))
    refused(response, 401, "unauthorized")
    assert response.headers.get("www-authenticate") == "Bearer"
    assert await orders(client, net.tokens["admin"]) == []


@pytest.mark.parametrize(
    "header",
    ["Bearer os_no-such-token", "Bearer ", "Basic dXNlcjpwYXNz", "os_no-scheme-given"],
)
async def test_an_unknown_or_malformed_token_is_refused_with_401(
    client: httpx.AsyncClient, net: support.Network, header: str
) -> None:
    response = await client.post(
        "/orders", json=delivery(line("TEA", 1)), headers={"Authorization": header}
    )
    refused(response, 401, "unauthorized")
    assert await orders(client, net.tokens["admin"]) == []


@pytest.mark.parametrize("path", GET_PATHS)
async def test_every_get_endpoint_needs_a_token(
    client: httpx.AsyncClient, net: support.Network, path: str
) -> None:
    refused(await client.get(path), 401, "unauthorized")
    refused(await client.get(path, headers=bearer("os_wrong")), 401, "unauthorized")


async def test_healthz_answers_without_a_token(client: httpx.AsyncClient) -> None:
    body = expect(await client.get("/healthz"), 200)
    assert body["status"] == "ok"


@pytest.mark.parametrize("role", ["online", "pos", "operator", "admin"])
@pytest.mark.parametrize("path", ["/orders", "/stock?sku=TEA", "/stores", "/products"])
async def test_every_role_may_read(
    client: httpx.AsyncClient, net: support.Network, role: str, path: str
) -> None:
    expect(await client.get(path, headers=bearer(net.tokens[role])), 200)


async def test_a_pos_token_cannot_place_an_online_order(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    before = await snapshot(client, net.tokens["admin"])
    body = pickup("S01", line("TEA", 1), channel="online")
    refused(await place(client, net.tokens["pos"], body), 403, "forbidden")
    assert await snapshot(client, net.tokens["admin"]) == before


async def test_a_pos_token_cannot_place_a_delivery_order(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    before = await snapshot(client, net.tokens["admin"])
    body = delivery(line("TEA", 1), store="S01")
    refused(await place(client, net.tokens["pos"], body), 403, "forbidden")
    assert await snapshot(client, net.tokens["admin"]) == before


async def test_a_pos_token_may_place_a_pickup_order_at_its_own_store(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    order = await placed(client, net.tokens["pos"], pickup("S01", line("TEA", 1)))
    assert order["channel"] == "pos"
    assert order["store"] == "S01"


async def test_a_pos_token_cannot_sell_or_take_orders_at_another_store(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin, pos = net.tokens["admin"], net.tokens["pos"]
    before = await snapshot(client, admin)
    response = await client.post(
        "/pos/sales", json=sale("S02", "X-1", line("TEA", 1)), headers=bearer(pos)
    )
    refused(response, 403, "forbidden")
    refused(await place(client, pos, pickup("S02", line("TEA", 1))), 403, "forbidden")
    assert await snapshot(client, admin) == before


@pytest.mark.parametrize("role", ["pos", "operator", "online"])
@pytest.mark.parametrize("path", ["/stock/receipts", "/stock/write-offs", "/stock/counts"])
async def test_only_an_admin_token_may_post_stock_documents(
    client: httpx.AsyncClient, net: support.Network, role: str, path: str
) -> None:
    before = await snapshot(client, net.tokens["admin"])
    response = await client.post(
        path, json=stock_doc("S01", "DOC-1", line("TEA", 1)), headers=bearer(net.tokens[role])
    )
    refused(response, 403, "forbidden")
    assert await snapshot(client, net.tokens["admin"]) == before


@pytest.mark.parametrize("role", ["pos", "operator", "online"])
async def test_only_an_admin_token_may_post_transfers(
    client: httpx.AsyncClient, net: support.Network, role: str
) -> None:
    before = await snapshot(client, net.tokens["admin"])
    body = {
        "from_store": "WH1",
        "to_store": "S02",
        "document_id": "TR-1",
        "lines": [line("TEA", 1)],
    }
    response = await client.post("/stock/transfers", json=body, headers=bearer(net.tokens[role]))
    refused(response, 403, "forbidden")
    assert await snapshot(client, net.tokens["admin"]) == before


@pytest.mark.parametrize("role", ["operator", "online"])
async def test_only_pos_and_admin_tokens_may_record_till_sales(
    client: httpx.AsyncClient, net: support.Network, role: str
) -> None:
    before = await snapshot(client, net.tokens["admin"])
    response = await client.post(
        "/pos/sales", json=sale("S01", "X-1", line("TEA", 1)), headers=bearer(net.tokens[role])
    )
    refused(response, 403, "forbidden")
    assert await snapshot(client, net.tokens["admin"]) == before


async def test_an_operator_token_places_pays_and_cancels_orders(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    operator = bearer(net.tokens["operator"])
    first = await placed(client, net.tokens["operator"], delivery(line("TEA", 2)))
    assert first["channel"] == "operator"
    paid = expect(await client.post(f"/orders/{first['id']}/pay", headers=operator), 200)
    assert paid["payment_status"] == "paid"
    second = await placed(client, net.tokens["operator"], pickup("S01", line("TEA", 1)))
    cancelled = expect(await client.post(f"/orders/{second['id']}/cancel", headers=operator), 200)
    assert cancelled["status"] == "cancelled"
    assert await level(client, net.tokens["admin"], "TEA", "S01") == (
        Decimal(10),
        Decimal(0),
        Decimal(10),
    )


async def test_an_operator_token_cannot_claim_another_channel(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    body = delivery(line("TEA", 1), channel="online")
    refused(await place(client, net.tokens["operator"], body), 403, "forbidden")


async def test_an_online_token_cannot_ship_or_complete_its_orders(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    online = bearer(net.tokens["online"])
    order = await placed(client, net.tokens["online"], delivery(line("TEA", 1)))
    assert order["channel"] == "online"
    expect(await client.post(f"/orders/{order['id']}/pay", headers=online), 200)
    before = await snapshot(client, net.tokens["admin"])
    refused(await client.post(f"/orders/{order['id']}/ship", headers=online), 403, "forbidden")
    refused(await client.post(f"/orders/{order['id']}/complete", headers=online), 403, "forbidden")
    assert await snapshot(client, net.tokens["admin"]) == before


async def test_an_online_token_cannot_touch_an_operator_order(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    order = await placed(client, net.tokens["operator"], delivery(line("TEA", 1)))
    for action in ("pay", "cancel"):
        response = await client.post(
            f"/orders/{order['id']}/{action}", headers=bearer(net.tokens["online"])
        )
        refused(response, 403, "forbidden")
    fetched = expect(
        await client.get(f"/orders/{order['id']}", headers=bearer(net.tokens["admin"])), 200
    )
    assert (fetched["status"], fetched["payment_status"]) == ("placed", "unpaid")


async def test_a_pos_token_cannot_touch_an_order_outside_its_stores(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    order = await placed(client, net.tokens["operator"], pickup("S02", line("TEA", 1)))
    response = await client.post(f"/orders/{order['id']}/cancel", headers=bearer(net.tokens["pos"]))
    refused(response, 403, "forbidden")


async def test_an_admin_token_may_do_everything(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = bearer(net.tokens["admin"])
    token = net.tokens["admin"]
    for path in ("/stock/receipts", "/stock/write-offs", "/stock/counts"):
        expect(
            await client.post(path, json=stock_doc("S02", path, line("TEA", 1)), headers=admin), 201
        )
    transfer = {
        "from_store": "WH1",
        "to_store": "S02",
        "document_id": "TR-1",
        "lines": [line("TEA", 1)],
    }
    expect(await client.post("/stock/transfers", json=transfer, headers=admin), 201)
    online = await placed(client, token, delivery(line("TEA", 1), channel="online"))
    assert online["channel"] == "online"
    operator = await placed(client, token, delivery(line("TEA", 1)))
    assert operator["channel"] == "operator"
    expect(await client.post(f"/orders/{online['id']}/pay", headers=admin), 200)
    expect(await client.post(f"/orders/{online['id']}/ship", headers=admin), 200)
    done = expect(await client.post(f"/orders/{online['id']}/complete", headers=admin), 200)
    assert done["status"] == "completed"
    expect(await client.post(f"/orders/{operator['id']}/cancel", headers=admin), 200)
    for store in ("S01", "S02"):
        response = await client.post(
            "/pos/sales", json=sale(store, f"A-{store}", line("TEA", 1)), headers=admin
        )
        expect(response, 201)
    new_store = {"code": "S03", "name": "Shop 3", "kind": "shop"}
    expect(await client.post("/stores", json=new_store, headers=admin), 201)
    new_product = {"sku": "CUP", "name": "Cup", "price": "10"}
    expect(await client.post("/products", json=new_product, headers=admin), 201)
    for path in ("/orders", "/stock?sku=TEA", "/stock/movements?sku=TEA", "/stores"):
        expect(await client.get(path, headers=admin), 200)


@pytest.mark.parametrize("role", ["online", "pos", "operator"])
async def test_only_an_admin_token_may_change_the_catalog(
    client: httpx.AsyncClient, net: support.Network, role: str
) -> None:
    headers = bearer(net.tokens[role])
    store = {"code": "S09", "name": "Shop 9", "kind": "shop"}
    refused(await client.post("/stores", json=store, headers=headers), 403, "forbidden")
    product = {"sku": "CUP", "name": "Cup"}
    refused(await client.post("/products", json=product, headers=headers), 403, "forbidden")
    stores = expect(await client.get("/stores", headers=headers), 200)["stores"]
    assert sorted(s["code"] for s in stores) == ["S01", "S02", "WH1"]
