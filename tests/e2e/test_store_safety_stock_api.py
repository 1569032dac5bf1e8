"""PATCH /stores/<code> with a new safety stock moves what the online store may sell at every
product of the store: one `stock.changed` per stock level (reason "safety_stock"), in the
same transaction; any other change of the store writes none."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from ordersync.db.tables import outbox_events
from ordersync.db.unit_of_work import Database
from tests import support
from tests.e2e.helpers import bearer


async def safety_events(db: Database) -> list[tuple[str, str]]:
    e = outbox_events.c
    async with db.uow_read() as uow:
        rows = await uow.conn.execute(
            select(e.aggregate_id, e.payload).where(e.type == "stock.changed").order_by(e.id)
        )
        return [(r.aggregate_id, r.payload["on_hand"]) for r in rows
                if r.payload["reason"] == "safety_stock"]  # fmt: skip


async def test_a_new_safety_stock_announces_every_level_of_the_store(
    client: httpx.AsyncClient, db: Database
) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 5, "COFFEE": 3}, "WH1": {"TEA": 9}})
    admin = bearer(net.tokens["admin"])
    s01 = net.stores["S01"]

    same = await client.patch("/stores/S01", json={"safety_stock": "1"}, headers=admin)
    other = await client.patch("/stores/S01", json={"online_priority": 30}, headers=admin)
    assert (same.status_code, other.status_code) == (200, 200)
    assert await safety_events(db) == []

    changed = await client.patch("/stores/S01", json={"safety_stock": "2"}, headers=admin)

    assert changed.status_code == 200, changed.text
    tea, coffee = net.products["TEA"], net.products["COFFEE"]
    assert sorted(await safety_events(db)) == sorted(
        [(f"{tea}:{s01}", "5"), (f"{coffee}:{s01}", "3")]
    )
