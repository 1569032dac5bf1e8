"""POST /orders/{id}/confirm: a confirmed, unpaid order keeps its stock for the channel's
longer confirmed limit; confirming twice changes nothing; an order that is no longer placed
cannot be confirmed (409)."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest

from ordersync.db.unit_of_work import Database
from tests import support
from tests.e2e.helpers import bearer, delivery, expect, line, place
from tests.integration import dbstate


@pytest.fixture
async def net(db: Database) -> support.Network:
    return await support.seed_network(db, {"WH1": {"TEA": 10}})


async def test_confirming_keeps_the_stock_longer_and_a_repeat_changes_nothing(
    client: httpx.AsyncClient, net: support.Network, db: Database
) -> None:
    token = net.tokens["operator"]
    order = expect(await place(client, token, delivery(line("TEA", 2))), 201)
    placed_expiry = datetime.fromisoformat(order["hold_expires_at"])

    confirmed = expect(
        await client.post(f"/orders/{order['id']}/confirm", headers=bearer(token)), 200
    )
    again = expect(await client.post(f"/orders/{order['id']}/confirm", headers=bearer(token)), 200)

    assert confirmed["confirmed_at"] is not None
    assert confirmed["payment_status"] == "unpaid"
    expiry = datetime.fromisoformat(confirmed["hold_expires_at"])
    assert expiry - placed_expiry > timedelta(hours=70)  # 72 h instead of 2 h
    assert again["confirmed_at"] == confirmed["confirmed_at"]
    assert again["hold_expires_at"] == confirmed["hold_expires_at"]
    assert len(await dbstate.events(db, "order.confirmed")) == 1
    assert {h.expires_at for h in await dbstate.holds_of(db, order["id"])} == {expiry}


async def test_an_order_that_is_no_longer_placed_cannot_be_confirmed(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    token = net.tokens["operator"]
    order = expect(await place(client, token, delivery(line("TEA", 1))), 201)
    expect(await client.post(f"/orders/{order['id']}/cancel", headers=bearer(token)), 200)

    refused = await client.post(f"/orders/{order['id']}/confirm", headers=bearer(token))

    assert refused.status_code == 409
    assert refused.json()["error"] == "invalid_transition"


async def test_confirming_an_unknown_order_is_404(
    client: httpx.AsyncClient, net: support.Network
) -> None:
    response = await client.post(
        "/orders/0190d9a8-0000-7000-8000-000000000000/confirm",
        headers=bearer(net.tokens["operator"]),
    )
    assert response.status_code == 404
