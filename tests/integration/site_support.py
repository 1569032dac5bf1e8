"""A Bitrix site (tests/bitrix_sim.py) wired to the hub's site worker, for the tests of the
site's orders coming in: the network of tests/support.py, its products on the site by their
1C Ид, site stores 71 and 72 mapped to S01 and S02."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import select

from ordersync.config import BitrixSettings
from ordersync.db.tables import bitrix_orders, orders
from ordersync.db.unit_of_work import Database
from ordersync.domain.orders import Order
from ordersync.domain.types import Channel
from ordersync.entrypoints.site_task import SiteTask
from ordersync.services.context import Context
from tests.bitrix_sim import BitrixSim, SiteLine

TEA, COFFEE, MUG = 501, 502, 504
COURIER, PICKUP = 2, 3
CARD, COD = 2, 3


def make_site(**options: Any) -> BitrixSim:
    sim = BitrixSim(**options)
    sim.add_product(TEA, "1c-tea", 100)
    sim.add_product(COFFEE, "1c-coffee", 250)
    sim.add_product(MUG, "1c-mug", 300)
    sim.add_store(71, "site-store-71", code="s01")
    sim.add_store(72, "site-store-72", code="s02")
    return sim


def site_settings(sim: BitrixSim, **changes: Any) -> BitrixSettings:
    values: dict[str, Any] = {
        "url": sim.webhook_url,
        "application_token": sim.application_token,
        "pickup_deliveries": [PICKUP],
        "store_map": {"71": "S01", "72": "S02"},
        "status_map": {"S": "confirmed", "F": "completed", "C": "cancelled"},
        "cod_pay_systems": [COD],
        "poll_seconds": 3600,
        "overlap_seconds": 5,
    }
    values.update(changes)
    return BitrixSettings(**values)


@asynccontextmanager
async def site_task(
    db: Database, sim: BitrixSim, ctx: Context, **changes: Any
) -> AsyncIterator[SiteTask]:
    client = httpx.AsyncClient(transport=sim.transport())
    task = SiteTask(db, site_settings(sim, **changes), ctx, client=client)
    try:
        yield task
    finally:
        await task.close()
        await client.aclose()


def courier_order(sim: BitrixSim, *lines: tuple[int, int], **options: Any) -> int:
    return sim.place_order(
        [SiteLine(product, qty, sim.prices[product]) for product, qty in lines],
        delivery_id=options.pop("delivery_id", COURIER),
        pay_system_id=options.pop("pay_system_id", CARD),
        properties={"FIO": "Ivan Petrov", "PHONE": "+7 900 000-00-01", "EMAIL": "i@p.ru"},
        **options,
    )


async def hub_order(db: Database, site_order_id: int) -> Order | None:
    async with db.uow_read() as uow:
        return await uow.find_order_by_external_id(Channel.ONLINE, str(site_order_id))


async def hub_orders(db: Database) -> list[str]:
    """The external ids of the hub's online orders."""
    async with db.uow_read() as uow:
        rows = await uow.conn.execute(
            select(orders.c.external_id).where(orders.c.channel == Channel.ONLINE.value)
        )
        return [r.external_id for r in rows]


async def applied_version(db: Database, site_order_id: int) -> int | None:
    async with db.uow_read() as uow:
        row = (
            await uow.conn.execute(
                select(bitrix_orders.c.site_version).where(
                    bitrix_orders.c.site_order_id == str(site_order_id)
                )
            )
        ).first()
    return None if row is None else int(row.site_version)


def held(order: Order) -> dict[str, Decimal]:
    """Active held units per line's SKU."""
    found: dict[str, Decimal] = {}
    for line in order.lines:
        units = sum((h.quantity for h in line.holds if h.state.value == "active"), Decimal(0))
        found[line.sku] = found.get(line.sku, Decimal(0)) + units
    return found
