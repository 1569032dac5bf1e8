"""Many clients from every channel race for the last units of one product."""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import select

from ordersync.db import ledger
from ordersync.db.tables import holds, order_attention, order_lines, pos_transactions
from ordersync.db.unit_of_work import Database
from tests import support
from tests.integration import dbstate

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


def _orders(net: support.Network, rng: random.Random, n: int = 1) -> list[tuple[str, str, Any]]:
    """(path, token, body): 25 deliveries, 20 pickups at each shop, 10 operator orders."""
    out: list[tuple[str, str, Any]] = []
    online, operator = net.tokens["online"], net.tokens["operator"]
    for _ in range(25 * n):
        out.append(("/orders", online, {"fulfillment": "delivery", "lines": _lines(rng)}))
    for store in ("S01", "S02"):
        for _ in range(20 * n):
            out.append(
                ("/orders", online, {"fulfillment": "pickup", "store": store, "lines": _lines(rng)})
            )
    for _ in range(10 * n):
        out.append(("/orders", operator, {"fulfillment": "delivery", "lines": _lines(rng)}))
    return out


def _sales(net: support.Network, completed: bool, prefix: str) -> list[tuple[str, str, Any]]:
    """15 till sales at each shop."""
    return [
        (
            "/pos/sales",
            net.tokens["pos"],
            {
                "store": store,
                "pos_id": f"till-{store}",
                "transaction_id": f"{prefix}{i}",
                "lines": [{"sku": "TEA", "quantity": "1"}],
                "completed": completed,
            },
        )
        for store in ("S01", "S02")
        for i in range(15)
    ]


async def _send(
    client: httpx.AsyncClient, requests: list[tuple[str, str, Any]]
) -> list[tuple[int, str, dict[str, Any]]]:
    async def send(path: str, token: str, body: Any) -> tuple[int, str, dict[str, Any]]:
        response = await client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
        answer = response.json()
        return response.status_code, answer.get("error", ""), answer

    return list(await asyncio.gather(*(send(*r) for r in requests)))


async def test_concurrent_orders_and_till_sales_asking_first_take_exactly_the_units_there_are(
    db: Database, client: httpx.AsyncClient
) -> None:
    net = await support.seed_network(db, STOCK, pos_stores=("S01", "S02"))
    rng = random.Random(7)
    requests = _orders(net, rng) + _sales(net, completed=False, prefix="t")
    rng.shuffle(requests)

    results = await _send(client, requests)

    outcomes = Counter((status, error) for status, error, _ in results)
    assert set(outcomes) <= {(201, ""), (409, "insufficient_stock")}, outcomes
    assert outcomes[(201, "")] == UNITS
    async with db.uow_read() as uow:
        levels = await uow.read_stock([net.products["TEA"]])
        _, drifts = await ledger.drift(uow.conn)
    assert sum(r.reserved for r in levels) + (Decimal(23) - sum(r.on_hand for r in levels)) == UNITS
    assert all(r.on_hand - r.reserved == 0 for r in levels)
    assert drifts == []


async def test_completed_till_sales_racing_orders_and_cancels_are_all_recorded_and_oversell_none(
    db: Database, client: httpx.AsyncClient
) -> None:
    """Orders take the stock first; then completed till sales (more than there is), new
    orders and cancels race. Every sale is recorded; what the sales took from orders was
    moved to another store or is on the order as attention; nothing is held beyond what is
    on hand; the ledger's check is clean."""
    net = await support.seed_network(db, STOCK, pos_stores=("S01", "S02"))
    rng = random.Random(11)
    first = await _send(client, _orders(net, rng))
    placed = [answer["id"] for status, _, answer in first if status == 201]
    admin = net.tokens["admin"]
    cancels = [(f"/orders/{oid}/cancel", admin, None) for oid in rng.sample(placed, 12)]
    wave = _sales(net, completed=True, prefix="c") + _orders(net, rng) + cancels
    rng.shuffle(wave)

    results = await _send(client, wave)

    sales = [r for r, req in zip(results, wave, strict=True) if req[0] == "/pos/sales"]
    assert [status for status, _, _ in sales] == [201] * 30, sales
    others = Counter((s, e) for (s, e, _), req in zip(results, wave, strict=True)
                     if req[0] != "/pos/sales")  # fmt: skip
    assert set(others) <= {(201, ""), (200, ""), (409, "insufficient_stock")}, others
    assert await dbstate.count(db, pos_transactions) == 30
    await _assert_nothing_held_beyond_the_shelf(db, net)
    await _assert_every_displaced_hold_moved_or_on_an_order_with_attention(db)
    assert await dbstate.drift(db) == (6, [])


async def _assert_nothing_held_beyond_the_shelf(db: Database, net: support.Network) -> None:
    async with db.uow_read() as uow:
        levels = await uow.read_stock(list(net.products.values()))
    for level in levels:
        assert level.reserved <= max(level.on_hand, Decimal(0)), level
    # Only the 30 till sales took TEA off the shelves (nothing is shipped in the race).
    tea = [lv for lv in levels if lv.product_id == net.products["TEA"]]
    assert sum(lv.on_hand for lv in tea) == UNITS - 30


async def _assert_every_displaced_hold_moved_or_on_an_order_with_attention(db: Database) -> None:
    async with db.uow_read() as uow:
        rows = (await uow.conn.execute(select(holds))).all()
        lines = (await uow.conn.execute(select(order_lines))).all()
        items = (await uow.conn.execute(select(order_attention))).all()
    carried: dict[int, Decimal] = defaultdict(Decimal)
    for row in rows:
        if row.replaces is not None:
            carried[row.replaces] += row.quantity
    attention = {(a.order_id, a.detail["line"]) for a in items
                 if a.code == "stock_taken_by_till_sale"}  # fmt: skip
    displaced = [r for r in rows if r.state == "displaced"]
    assert displaced, "the race is meant to make till sales displace holds"
    for hold in displaced:
        assert carried[hold.id] <= hold.quantity
        if carried[hold.id] < hold.quantity:
            assert (hold.order_id, hold.line_no) in attention, hold
    # No line holds more than it ordered, wherever its holds moved.
    active: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
    for row in rows:
        if row.state == "active":
            active[(row.order_id, row.line_no)] += row.quantity
    for line in lines:
        assert active[(line.order_id, line.line_no)] <= line.quantity
