"""The Bitrix site and the hub end to end: the simulator places orders and sends its outgoing
events to POST /bitrix/events (dropping a share, as Bitrix never retries), the hub's site worker
reads and applies them, the catch-up poll brings in what was lost, and a restart of the hub
loses nothing."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from decimal import Decimal
from typing import Any

import httpx
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from ordersync.api.app import context_from, create_app
from ordersync.config import Settings
from ordersync.db.unit_of_work import Database
from ordersync.domain.types import Channel, OrderStatus, PaymentStatus
from ordersync.entrypoints.site_task import run_site
from tests import support
from tests.bitrix_sim import BitrixSim, SiteLine
from tests.integration import dbstate
from tests.integration.site_support import (
    COD,
    COFFEE,
    COURIER,
    PICKUP,
    TEA,
    held,
    hub_order,
    hub_orders,
    make_site,
    site_settings,
)

D = Decimal
FIRST, WHILE_DOWN, AFTER = 100, 50, 50
HOOK = "http://hub/bitrix/events"


class Switch:
    """The hub's address: the running app, or 503 while the hub is down."""

    def __init__(self) -> None:
        self.app: FastAPI | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await self.app(scope, receive, send)


@asynccontextmanager
async def running_hub(
    settings: Settings, db: Database, sim: BitrixSim, switch: Switch
) -> AsyncIterator[None]:
    """The hub's app and its site worker (as `serve` on SQLite or `ordersync worker` run it)."""
    app = create_app(settings, db=db, sweeper=False)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        client = await stack.enter_async_context(httpx.AsyncClient(transport=sim.transport()))
        task = await stack.enter_async_context(
            run_site(settings.bitrix, db, context_from(settings), enabled=True, client=client)
        )
        app.state.site_task = task
        switch.app = app
        try:
            yield
        finally:
            switch.app = None


def place_some(sim: BitrixSim, rng: random.Random, count: int, plan: dict[int, str]) -> None:
    for _ in range(count):
        n = len(plan)
        lines = [SiteLine(TEA, rng.randint(1, 3), 100)]
        if n % 3 == 0:
            lines.append(SiteLine(COFFEE, 1, 250))
        if n % 5 == 0:  # pickup at site store 71 = hub S01, reserved there by the site
            lines = [SiteLine(x.product_id, x.quantity, x.price, store_id=71) for x in lines]
        site_id = sim.place_order(
            lines,
            delivery_id=PICKUP if n % 5 == 0 else COURIER,
            pay_system_id=COD if n % 7 == 0 else 2,
            properties={"FIO": f"Customer {n}", "PHONE": f"+7 900 {n:07d}"},
        )
        plan[site_id] = "placed"
        if n % 11 == 0:
            sim.pay_order(site_id)
            plan[site_id] = "paid"
        elif n % 13 == 0:
            sim.cancel_order(site_id)
            plan[site_id] = "cancelled"


async def caught_up(db: Database, sim: BitrixSim, plan: dict[int, str]) -> list[str]:
    """What still differs between the site and the hub (empty when they agree)."""
    wrong: list[str] = []
    for site_id, state in plan.items():
        order = await hub_order(db, site_id)
        if order is None:
            wrong.append(f"{site_id}: missing")
            continue
        wanted: dict[str, Decimal] = {}
        for item in sim.orders[site_id].basket:
            sku = {TEA: "TEA", COFFEE: "COFFEE"}[item.product_id]
            wanted[sku] = wanted.get(sku, D(0)) + item.quantity
        if state == "cancelled":
            if order.status is not OrderStatus.CANCELLED or any(held(order).values()):
                wrong.append(f"{site_id}: not cancelled")
        elif held(order) != wanted:
            wrong.append(f"{site_id}: holds {held(order)} != {wanted}")
        elif (state == "paid") != (order.payment_status is PaymentStatus.PAID):
            wrong.append(f"{site_id}: payment")
    return wrong


async def wait_until_caught_up(db: Database, sim: BitrixSim, plan: dict[int, str]) -> None:
    wrong: list[str] = []
    for _ in range(150):
        await sim.deliver_events()
        wrong = await caught_up(db, sim, plan)
        if not wrong:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{len(wrong)} site orders differ, first: {wrong[:5]}")


async def test_200_site_orders_with_30_percent_of_events_dropped_and_a_restart_arrive_once(
    settings: Settings, db: Database
) -> None:
    net = await support.seed_network(
        db, {"WH1": {"TEA": 2000, "COFFEE": 500}, "S01": {"TEA": 500, "COFFEE": 100}}
    )
    sim = make_site()
    switch = Switch()
    hook = sim.outgoing_webhook(HOOK, app=switch, drop_share=0.3, seed=7)
    configured = settings.model_copy(
        update={"bitrix": site_settings(sim, poll_seconds=1.0, overlap_seconds=5)}
    )
    rng = random.Random(3)
    plan: dict[int, str] = {}
    try:
        async with running_hub(configured, db, sim, switch), sim.event_pump():
            place_some(sim, rng, FIRST, plan)
        await sim.deliver_events()
        place_some(sim, rng, WHILE_DOWN, plan)  # the hub is down: these events fail
        await sim.deliver_events()
        async with running_hub(configured, db, sim, switch), sim.event_pump():
            place_some(sim, rng, AFTER, plan)
            await wait_until_caught_up(db, sim, plan)
    finally:
        await sim.aclose()

    assert len(plan) == FIRST + WHILE_DOWN + AFTER
    assert len(hook.dropped) > 0 and len(hook.of("failed")) > 0  # lost and refused events
    ids = await hub_orders(db)
    assert sorted(ids, key=int) == [str(x) for x in sorted(plan)]  # each exactly once
    _, drift = await dbstate.drift(db)
    assert drift == []
    reserved = sum(r for _, r in (await dbstate.stock(db, net)).values())
    wanted = sum(
        (i.quantity for sid, s in plan.items() if s != "cancelled" for i in sim.orders[sid].basket),
        D(0),
    )
    assert reserved == wanted
    cod = next(
        sid
        for sid, s in plan.items()
        if s == "placed" and sim.orders[sid].payments[0].pay_system_id == COD
    )
    order = await hub_order(db, cod)
    assert order is not None and order.confirmed_at is not None and order.channel is Channel.ONLINE


async def test_an_event_sent_twice_acts_once_and_a_delete_cancels(
    settings: Settings, db: Database
) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 10}})
    sim = make_site()
    switch = Switch()
    sim.outgoing_webhook(HOOK, app=switch)
    sim.outgoing_webhook(HOOK, app=switch)  # two handlers: every event arrives twice
    configured = settings.model_copy(update={"bitrix": site_settings(sim)})
    try:
        async with running_hub(configured, db, sim, switch), sim.event_pump():
            site_id = sim.place_order([SiteLine(TEA, 3, 100)], delivery_id=COURIER)
            await wait_for(lambda: hub_order(db, site_id))
            sim.delete_order(site_id)
            await wait_for(lambda: cancelled(db, site_id))
    finally:
        await sim.aclose()

    assert await hub_orders(db) == [str(site_id)]
    assert len(await dbstate.events(db, "order.created")) == 1
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(10), D(0))


async def cancelled(db: Database, site_id: int) -> bool:
    order = await hub_order(db, site_id)
    return order is not None and order.status is OrderStatus.CANCELLED


async def wait_for(check: Any) -> None:
    for _ in range(200):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the hub did not follow the site in 10 s")
