"""A line left short (a till sale took its units) is put right by an operator: the whole line
held at a store that has it, or the line dropped; the shortage attention closes with it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ordersync.db.tables import outbox_events
from ordersync.db.unit_of_work import Database
from tests import support
from tests.e2e.helpers import bearer, delivery, expect, level, line, pickup, placed, sale, snapshot


@pytest.fixture
async def net(db: Database) -> support.Network:
    return await support.seed_network(db, {"S01": {"TEA": 3, "COFFEE": 2}})


async def cut_short(client: httpx.AsyncClient, net: support.Network, body: dict[str, Any]) -> str:
    """Places the order, then a till sale at S01 takes its TEA."""
    order = await placed(client, net.tokens["online"], body)
    sold = sale("S01", f"cut-{order['number']}", line("TEA", 3))
    expect(await client.post("/pos/sales", json=sold, headers=bearer(net.tokens["pos"])), 201)
    shown = expect(await client.get(f"/orders/{order['id']}", headers=admin(net)), 200)
    assert [a["code"] for a in shown["attention"]] == ["stock_taken_by_till_sale"]
    return str(order["id"])


def admin(net: support.Network) -> dict[str, str]:
    return bearer(net.tokens["admin"])


async def events_of(db: Database, order_id: str, kind: str) -> list[dict[str, Any]]:
    e = outbox_events.c
    async with db.uow_read() as uow:
        rows = await uow.conn.execute(
            select(e.payload).where(e.type == kind, e.aggregate_id == order_id).order_by(e.id)
        )
        return [r.payload for r in rows]


async def test_a_cut_delivery_line_is_held_whole_at_a_store_that_has_the_units(
    client: httpx.AsyncClient, db: Database, net: support.Network
) -> None:
    order_id = await cut_short(client, net, delivery(line("TEA", 2)))
    operator = bearer(net.tokens["operator"])
    move = f"/orders/{order_id}/lines/1/hold"

    before = await snapshot(client, net.tokens["admin"])
    refused = await client.post(move, json={"store": "WH1"}, headers=operator)
    expect(refused, 409, "insufficient_stock")
    assert await snapshot(client, net.tokens["admin"]) == before
    expect(
        await client.post(move, json={"store": "WH1"}, headers=bearer(net.tokens["online"])), 403
    )
    expect(await client.post(move, json={"store": "NOPE"}, headers=operator), 422, "unknown_store")

    await support.receive(db, "WH1", "R-WH1", TEA=5)
    moved = expect(await client.post(move, json={"store": "WH1"}, headers=operator), 200)

    assert moved["attention"] == []
    assert moved["lines"][0]["holds"] == [{"store": "WH1", "quantity": "2", "state": "active"}]
    assert await level(client, net.tokens["admin"], "TEA", "WH1") == (
        Decimal(5),
        Decimal(2),
        Decimal(3),
    )
    assert await level(client, net.tokens["admin"], "TEA", "S01") == (
        Decimal(0),
        Decimal(0),
        Decimal(0),
    )
    [event] = await events_of(db, order_id, "order.holds_moved")
    assert (event["store"], event["held"], event["by"]) == ("WH1", "2", "operator")
    states = [e["state"] for e in await events_of(db, order_id, "order.attention")]
    assert states == ["open", "resolved"]
    again = expect(await client.post(move, json={"store": "WH1"}, headers=operator), 200)
    assert again["lines"][0]["holds"] == moved["lines"][0]["holds"]
    assert await level(client, net.tokens["admin"], "TEA", "WH1") == (
        Decimal(5),
        Decimal(2),
        Decimal(3),
    )


async def test_a_pickup_line_is_held_again_only_at_its_pickup_store(
    client: httpx.AsyncClient, db: Database, net: support.Network
) -> None:
    order_id = await cut_short(client, net, pickup("S01", line("TEA", 2)))
    operator = bearer(net.tokens["operator"])
    move = f"/orders/{order_id}/lines/1/hold"
    await support.receive(db, "WH1", "R-WH1", TEA=5)

    expect(await client.post(move, json={"store": "WH1"}, headers=operator), 409, "conflict")

    await support.receive(db, "S01", "R-S01", TEA=4)  # the sale left none; safety stock 1
    held = expect(await client.post(move, json={"store": "S01"}, headers=operator), 200)
    assert held["attention"] == []
    assert held["lines"][0]["holds"] == [{"store": "S01", "quantity": "2", "state": "active"}]
    assert await level(client, net.tokens["admin"], "TEA", "S01") == (
        Decimal(4),
        Decimal(2),
        Decimal(2),
    )


async def test_a_line_is_dropped_with_its_holds_and_the_total_follows(
    client: httpx.AsyncClient, db: Database, net: support.Network
) -> None:
    order_id = await cut_short(client, net, delivery(line("TEA", 2), line("COFFEE", 1)))
    operator = bearer(net.tokens["operator"])

    dropped = expect(await client.post(f"/orders/{order_id}/lines/1/cancel", headers=operator), 200)

    assert dropped["total"] == "250.50"
    assert [(x["line_no"], x["quantity"]) for x in dropped["lines"]] == [(1, "0"), (2, "1")]
    assert dropped["attention"] == []
    [event] = await events_of(db, order_id, "order.line_cancelled")
    assert (event["line"], event["quantity"], event["total"]) == (1, "2", "250.5")
    last = await client.post(f"/orders/{order_id}/lines/2/cancel", headers=operator)
    expect(last, 409, "conflict")
    expect(await client.post(f"/orders/{order_id}/lines/1/cancel", headers=operator), 409)
    expect(await client.post(f"/orders/{order_id}/lines/9/cancel", headers=operator), 404)
    assert await level(client, net.tokens["admin"], "COFFEE", "S01") == (
        Decimal(2),
        Decimal(1),
        Decimal(1),
    )

    expect(await client.post(f"/orders/{order_id}/cancel", headers=operator), 200)
    assert await level(client, net.tokens["admin"], "COFFEE", "S01") == (
        Decimal(2),
        Decimal(0),
        Decimal(2),
    )
    closed = await client.post(f"/orders/{order_id}/lines/2/cancel", headers=operator)
    expect(closed, 409, "conflict")
