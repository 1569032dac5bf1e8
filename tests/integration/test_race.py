"""Many clients from every channel race for the last units of one product."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from decimal import Decimal
from typing import Any

import httpx

from ordersync.db import ledger
from ordersync.db.unit_of_work import Database
from tests import support

# TEA: 10 at WH1, 8 at S01 (safety 1: online may take 7, the till all 8), 5 at S02.
STOCK = {
    "WH1": {"TEA": 10, "COFFEE": 1000},
    "S01": {"TEA": 8, "COFFEE": 1000},
    "S02": {"TEA": 5, "COFFEE": 1000},
}
UNITS = 23


def _lines(rng: random.Random) -> list[dict[str, Any]]:
    tea = {"sku": "TEA", "quantity": "1"}
    if rng.random() < 0.5:
        return [tea]
    coffee = {"sku": "COFFEE", "quantity": "1"}
    return [coffee, tea] if rng.random() < 0.5 else [tea, coffee]


def _requests(net: support.Network, rng: random.Random) -> list[tuple[str, str, dict[str, Any]]]:
    """(path, token, body): 25 deliveries, 20 pickups at each shop, 10 operator orders,
    15 till sales at each shop; far more than the 23 units."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    online, operator, pos = net.tokens["online"], net.tokens["operator"], net.tokens["pos"]
    for _ in range(25):
        out.append(("/orders", online, {"fulfillment": "delivery", "lines": _lines(rng)}))
    for store in ("S01", "S02"):
        for _ in range(20):
            out.append(
                ("/orders", online, {"fulfillment": "pickup", "store": store, "lines": _lines(rng)})
            )
    for _ in range(10):
        out.append(("/orders", operator, {"fulfillment": "delivery", "lines": _lines(rng)}))
    for store in ("S01", "S02"):
        for i in range(15):
            out.append(
                (
                    "/pos/sales",
                    pos,
                    {
                        "store": store,
                        "pos_id": f"till-{store}",
                        "transaction_id": f"t{i}",
                        "lines": [{"sku": "TEA", "quantity": "1"}],
                    },
                )
            )
    rng.shuffle(out)
    return out


async def test_concurrent_orders_and_till_sales_take_exactly_the_units_there_are(
    db: Database, client: httpx.AsyncClient
) -> None:
    net = await support.seed_network(db, STOCK, pos_stores=("S01", "S02"))
    requests = _requests(net, random.Random(7))

    async def send(path: str, token: str, body: dict[str, Any]) -> tuple[int, str]:
        response = await client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
        return response.status_code, response.json().get("error", "")

    results = await asyncio.gather(*(send(*r) for r in requests))

    outcomes = Counter(results)
    assert set(outcomes) <= {(201, ""), (409, "insufficient_stock")}, outcomes
    assert outcomes[(201, "")] == UNITS
    async with db.uow_read() as uow:
        levels = await uow.read_stock([net.products["TEA"]])
        _, drifts = await ledger.drift(uow.conn)
    assert sum(r.reserved for r in levels) + (Decimal(23) - sum(r.on_hand for r in levels)) == UNITS
    assert all(r.on_hand - r.reserved == 0 for r in levels)
    assert drifts == []
