"""The demo's site orders come in as a real site's do: placed on the stand-in Bitrix site of
`serve --demo-traffic`, announced by its outgoing webhook at POST /bitrix/events, read back by
the hub's site worker with sale.order.get, and held."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ordersync.api.app import create_app
from ordersync.config import Settings
from ordersync.db.tables import bitrix_inbox, holds, orders
from ordersync.db.unit_of_work import Database
from ordersync.entrypoints.demo import seed_demo
from ordersync.entrypoints.demo_site import DemoSite
from ordersync.entrypoints.demo_traffic import SiteOrders, Traffic


def call(site: DemoSite, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{site.url}{method}.json", json.dumps(params).encode(), method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status), json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def test_the_demo_site_answers_as_the_documentation_shapes_it() -> None:
    site = DemoSite().start()
    placed = [
        site.place([{"xml_id": "X", "name": "Чай", "quantity": "2", "price": "99.50"}], {})
        for _ in range(60)
    ]
    status, got = call(site, "sale.order.get", {"id": placed[0]})
    assert status == 200
    order = got["result"]["order"]
    assert (order["basketItems"][0]["productXmlId"], order["price"]) == ("X", 199.0)
    status, page = call(site, "sale.order.list", {"filter": {">=dateUpdate": "2000-01-01"}})
    assert (len(page["result"]["orders"]), page["total"], page["next"]) == (50, 60, 50)
    status, rest = call(site, "sale.order.list", {"start": 50})
    assert len(rest["result"]["orders"]) == 10 and "next" not in rest
    assert call(site, "sale.order.get", {"id": 1})[0] == 400
    assert call(site, "catalog.document.add", {})[0] == 404
    status, batch = call(site, "batch", {"cmd": {"a": f"sale.order.get?id={placed[1]}"}})
    assert batch["result"]["result"]["a"]["order"]["id"] == placed[1]
    assert site.event(placed[0])["auth[application_token]"] == site.token


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_the_demo_traffic_s_site_orders_come_in_through_the_bitrix_intake(
    database_url: str, db: Database
) -> None:
    tokens = await seed_demo(db, None)
    site = DemoSite().start()
    settings = Settings(
        master="hub",
        database_url=database_url,
        catalog_cache_seconds=0,
        auth_cache_seconds=0,
        ui={"secret_key": "a-console-signing-key-for-the-tests-0123456789"},
        evotor={"publish": False},
        bitrix={
            "url": site.url,
            "application_token": site.token,
            "mirror_channels": [],
            "iblock_id": 1,
        },
        sinks={"bitrix": {"kind": "bitrix", "types": ["order.status_changed"]}},
    )
    app = create_app(settings, db=db, sweeper=True)
    async with app.router.lifespan_context(app):
        traffic = Traffic(
            "http://hub",
            tokens,
            rate=0,
            sources=[SiteOrders(site)],
            seed=3,
            transport=httpx.ASGITransport(app=app),
        )
        assert await asyncio.wait_for(traffic.run(asyncio.Event(), limit=6), timeout=60) == 6
        for _ in range(200):
            async with db.uow_read() as uow:
                states = (await uow.conn.execute(select(bitrix_inbox.c.state))).scalars().all()
            if len(states) == 6 and set(states) == {"done"}:
                break
            await asyncio.sleep(0.1)

    async with db.uow_read() as uow:
        rows = (
            await uow.conn.execute(
                select(orders.c.id, orders.c.channel, orders.c.external_id, orders.c.customer_name)
            )
        ).all()
        held = set((await uow.conn.execute(select(holds.c.order_id))).scalars())
    assert set(states) == {"done"}, states
    assert len(rows) == 6
    assert all(r.channel == "online" and r.external_id and r.customer_name for r in rows)
    assert held == {r.id for r in rows}  # every site order holds its stock
