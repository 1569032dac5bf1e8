"""Attention items on orders: raised by the hub (here through the service, as a till sale or a
short site order will), shown on the order, listed, resolved by a person, closed on cancel."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ordersync.db.tables import outbox_events
from ordersync.db.unit_of_work import Database
from ordersync.services.attention import raise_attention
from ordersync.services.context import utcnow
from tests import support
from tests.e2e.helpers import bearer, delivery, expect, line, placed


@pytest.fixture
async def net(db: Database) -> support.Network:
    return await support.seed_network(db, {"WH1": {"TEA": 10}})


async def flag(db: Database, order_id: str, code: str, **detail: Any) -> int:
    async with db.uow() as uow:
        order = await uow.get_order(order_id, lock=True)
        assert order is not None
        item = await raise_attention(uow, order, code, detail, utcnow())
        await uow.commit()
    return item.id


async def attention_events(db: Database, order_id: str) -> list[dict[str, Any]]:
    e = outbox_events.c
    async with db.uow_read() as uow:
        rows = await uow.conn.execute(
            select(e.payload)
            .where(e.type == "order.attention", e.aggregate_id == order_id)
            .order_by(e.id)
        )
        return [r.payload for r in rows]


async def test_an_open_item_is_shown_listed_and_resolved_by_an_operator(
    client: httpx.AsyncClient, db: Database, net: support.Network
) -> None:
    admin = bearer(net.tokens["admin"])
    flagged = await placed(client, net.tokens["online"], delivery(line("TEA", 2)))
    calm = await placed(client, net.tokens["online"], delivery(line("TEA", 1)))
    item = await flag(db, flagged["id"], "stock_taken_by_till_sale", line=1, quantity="1")

    shown = expect(await client.get(f"/orders/{flagged['id']}", headers=admin), 200)
    assert [(a["id"], a["code"], a["detail"]) for a in shown["attention"]] == [
        (item, "stock_taken_by_till_sale", {"line": 1, "quantity": "1"})
    ]
    listed = expect(await client.get("/orders?attention=true", headers=admin), 200)
    assert [o["id"] for o in listed["orders"]] == [flagged["id"]]
    others = expect(await client.get("/orders?attention=false", headers=admin), 200)
    assert [o["id"] for o in others["orders"]] == [calm["id"]]

    refused = await client.post(
        f"/orders/{flagged['id']}/attention/{item}/resolve",
        json={"resolution": "moved"},
        headers=bearer(net.tokens["online"]),
    )
    expect(refused, 403, "forbidden")
    resolved = expect(
        await client.post(
            f"/orders/{flagged['id']}/attention/{item}/resolve",
            json={"resolution": "customer agreed to wait"},
            headers=bearer(net.tokens["operator"]),
        ),
        200,
    )
    assert resolved["attention"] == []
    again = await client.post(
        f"/orders/{flagged['id']}/attention/{item}/resolve",
        json={"resolution": "twice"},
        headers=bearer(net.tokens["operator"]),
    )
    expect(again, 404, "not_found")
    assert expect(await client.get("/orders?attention=true", headers=admin), 200)["orders"] == []
    assert [(e["state"], e["attention_id"]) for e in await attention_events(db, flagged["id"])] == [
        ("open", item),
        ("resolved", item),
    ]


async def test_cancelling_an_order_closes_its_open_items(
    client: httpx.AsyncClient, db: Database, net: support.Network
) -> None:
    order = await placed(client, net.tokens["online"], delivery(line("TEA", 2)))
    first = await flag(db, order["id"], "site_order_short", lines=[1])
    second = await flag(db, order["id"], "stock_taken_by_till_sale", line=1)

    cancelled = expect(
        await client.post(f"/orders/{order['id']}/cancel", headers=bearer(net.tokens["admin"])),
        200,
    )

    assert cancelled["attention"] == []
    events = await attention_events(db, order["id"])
    assert [(e["state"], e["attention_id"]) for e in events] == [
        ("open", first),
        ("open", second),
        ("resolved", first),
        ("resolved", second),
    ]
