"""The demo's traffic against the demo network: phone orders through the API, and till sales
as the Evotor cloud sends them (PUT /evotor/.../documents with an evotor token)."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest
from sqlalchemy import select

from ordersync.api.app import create_app
from ordersync.config import Settings
from ordersync.db.tables import evotor_inbox, orders
from ordersync.db.unit_of_work import Database
from ordersync.entrypoints.demo import seed_demo
from ordersync.entrypoints.demo_traffic import PhoneOrders, TillSales, Traffic


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_the_demo_traffic_places_phone_orders_and_evotor_till_sales(
    database_url: str, db: Database
) -> None:
    tokens = await seed_demo(db, None)
    settings = Settings(
        master="hub",
        database_url=database_url,
        catalog_cache_seconds=0,
        auth_cache_seconds=0,
        ui={"secret_key": "a-console-signing-key-for-the-tests-0123456789"},
        evotor={"publish": False},
    )
    app = create_app(settings, db=db, sweeper=False)
    async with app.router.lifespan_context(app):
        traffic = Traffic(
            "http://hub",
            tokens,
            rate=0,
            sources=[PhoneOrders(weight=1), TillSales(weight=1)],
            seed=7,
            transport=httpx.ASGITransport(app=app),
        )
        sent = await asyncio.wait_for(traffic.run(asyncio.Event(), limit=12), timeout=60)

    async with db.uow_read() as uow:
        channels = Counter((await uow.conn.execute(select(orders.c.channel))).scalars())
        inbox = Counter((await uow.conn.execute(select(evotor_inbox.c.state))).scalars())
    assert sent == 12
    assert channels["operator"] > 0
    assert channels["pos"] > 0  # S01 makes orders of its sales; S02 only moves stock
    assert set(inbox) == {"done"}, inbox  # every document applied
