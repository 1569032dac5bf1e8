"""Idempotency-Key over HTTP: a retried write answers the first response and writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest

from ordersync.db import tokens
from ordersync.db.unit_of_work import Database
from ordersync.domain.types import Role
from tests import support
from tests.e2e.helpers import (
    bearer,
    delivery,
    expect,
    level,
    line,
    movements,
    orders,
    place,
    placed,
    snapshot,
    stock_doc,
)

STOCK = {"WH1": {"TEA": 10, "COFFEE": 10}}


@pytest.fixture
async def net(db: Database) -> support.Network:
    return await support.seed_network(db, STOCK)


async def another_token(db: Database, role: Role) -> str:
    async with db.uow() as uow:
        _, token = await tokens.create_token(uow.conn, "second", role, [], datetime.now(UTC))
        await uow.commit()
    return token


async def test_the_same_key_and_body_replays_the_first_response_and_places_one_order(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    body = delivery(line("TEA", 3), customer={"name": "Olga"})
    first = await place(client, net.tokens["online"], body, **{"Idempotency-Key": "order-1"})
    assert first.status_code == 201
    assert first.headers.get("idempotent-replay") is None
    second = await place(client, net.tokens["online"], body, **{"Idempotency-Key": "order-1"})
    assert second.status_code == 201
    assert second.headers.get("idempotent-replay") == "true"
    assert second.json() == first.json()
    found = await orders(client, admin)
    assert [o["id"] for o in found] == [first.json()["id"]]
    assert await level(client, admin, "TEA", "WH1") == (Decimal(10), Decimal(3), Decimal(7))


async def test_the_same_key_with_another_body_is_422_idempotency_key_reused(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    key = {"Idempotency-Key": "order-1"}
    first = await place(client, net.tokens["online"], delivery(line("TEA", 3)), **key)
    assert first.status_code == 201
    before = await snapshot(client, admin)
    response = await place(client, net.tokens["online"], delivery(line("TEA", 4)), **key)
    expect(response, 422, "idempotency_key_reused")
    assert await snapshot(client, admin) == before


async def test_keys_belong_to_their_token(
    client: httpx.AsyncClient, net: support.Network, db: Database
) -> None:
    admin = net.tokens["admin"]
    other_online = await another_token(db, Role.ONLINE)
    body = delivery(line("TEA", 2))
    key = {"Idempotency-Key": "shared-key"}
    first = await place(client, net.tokens["online"], body, **key)
    second = await place(client, other_online, body, **key)
    third = await place(client, net.tokens["operator"], body, **key)
    for response in (first, second, third):
        assert response.status_code == 201, response.text
        assert response.headers.get("idempotent-replay") is None
    ids = {r.json()["id"] for r in (first, second, third)}
    assert len(ids) == 3
    assert len(await orders(client, admin)) == 3
    assert await level(client, admin, "TEA", "WH1") == (Decimal(10), Decimal(6), Decimal(4))
    # Another token's different body under the same key is not a reuse either.
    fourth = await place(client, net.tokens["admin"], delivery(line("COFFEE", 1)), **key)
    assert fourth.status_code == 201, fourth.text


async def test_a_refused_request_does_not_use_up_its_key(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    key = {"Idempotency-Key": "try-again"}
    body = delivery(line("TEA", 12))
    expect(await place(client, net.tokens["online"], body, **key), 409, "insufficient_stock")
    receipt = stock_doc("WH1", "R-2", line("TEA", 5))
    expect(await client.post("/stock/receipts", json=receipt, headers=bearer(admin)), 201)
    retried = await place(client, net.tokens["online"], body, **key)
    assert retried.status_code == 201, retried.text
    assert retried.headers.get("idempotent-replay") is None


async def test_a_replayed_payment_answers_the_first_response(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    online = net.tokens["online"]
    order = await placed(client, online, delivery(line("TEA", 1)))
    headers = bearer(online, **{"Idempotency-Key": "pay-1"})
    first = await client.post(f"/orders/{order['id']}/pay", headers=headers)
    second = await client.post(f"/orders/{order['id']}/pay", headers=headers)
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.headers.get("idempotent-replay") == "true"
    assert second.json() == first.json()
    # The same key on another path is another request body: refused.
    response = await client.post(f"/orders/{order['id']}/cancel", headers=headers)
    expect(response, 422, "idempotency_key_reused")
    fetched = expect(await client.get(f"/orders/{order['id']}", headers=bearer(online)), 200)
    assert fetched["status"] == "placed"


async def test_a_replayed_receipt_adds_the_stock_once(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    admin = net.tokens["admin"]
    headers = bearer(admin, **{"Idempotency-Key": "receipt-7"})
    body = stock_doc("WH1", "R-7", line("COFFEE", 4))
    first = await client.post("/stock/receipts", json=body, headers=headers)
    second = await client.post("/stock/receipts", json=body, headers=headers)
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.headers.get("idempotent-replay") == "true"
    assert second.json() == first.json()
    assert await level(client, admin, "COFFEE", "WH1") == (Decimal(14), Decimal(0), Decimal(14))
    receipts = [m for m in await movements(client, admin, "COFFEE") if m["document_id"] == "R-7"]
    assert len(receipts) == 1


async def test_an_empty_idempotency_key_is_422_invalid_request(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    before = await snapshot(client, net.tokens["admin"])
    response = await place(
        client, net.tokens["online"], delivery(line("TEA", 1)), **{"Idempotency-Key": "  "}
    )
    expect(response, 422, "invalid_request")
    assert await snapshot(client, net.tokens["admin"]) == before
