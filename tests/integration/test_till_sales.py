"""Completed till sales: recorded whatever the stock says. Free units first, then holds at the
store are displaced (delivery holds move to another store, the rest is cut back with
attention on the order), then on hand goes below zero; the ledger's check holds throughout."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select

from ordersync.db.tables import holds, order_attention, pos_transactions
from ordersync.db.unit_of_work import Database, SqlUnitOfWork
from ordersync.domain import events
from ordersync.domain.commands import LineInput, PlaceOrder, ProductRef, RecordPosSale
from ordersync.domain.errors import InsufficientStock
from ordersync.domain.orders import Order
from ordersync.domain.types import Channel, Fulfillment, OrderStatus
from ordersync.services.orders import change_status, pay_order, place_order
from ordersync.services.ports import StoreHold
from ordersync.services.pos import record_pos_sale
from tests import support
from tests.integration import dbstate

D = Decimal


def lines(*items: tuple[str, int | str]) -> tuple[LineInput, ...]:
    return tuple(LineInput(ProductRef(sku=sku), D(q)) for sku, q in items)


async def place(
    db: Database, clock: support.Clock, fulfillment: Fulfillment, *items: Any, store: str = ""
) -> Order:
    cmd = PlaceOrder(Channel.ONLINE, fulfillment, lines(*items), store_code=store or None)
    order = await place_order(db.placement_uow, cmd, support.context(clock))
    assert isinstance(order, Order)
    clock.advance(minutes=1)
    return order


async def sell(
    db: Database, clock: support.Clock, store: str, transaction: str, *items: Any, **kw: Any
) -> dict[str, Any]:
    cmd = RecordPosSale(store, "till-1", transaction, lines(*items), clock(), **kw)
    result = await record_pos_sale(db.uow, cmd, support.context(clock))
    assert isinstance(result, dict)
    return result


async def holds_of(db: Database, net: support.Network, order_id: str) -> list[tuple[str, D, str]]:
    codes = {v: k for k, v in net.stores.items()}
    return [(codes[h.store_id], h.quantity, h.state) for h in await dbstate.holds_of(db, order_id)]


async def test_a_completed_sale_takes_free_units_first_and_leaves_the_holds_alone(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 5}})
    order = await place(db, clock, Fulfillment.PICKUP, ("TEA", 2), store="S01")

    result = await sell(db, clock, "S01", "T1", ("TEA", 3))

    assert (result["displaced"], result["negative"]) == ([], [])
    assert await dbstate.level(db, net, "TEA", "S01") == (D(2), D(2))
    assert await holds_of(db, net, order.id) == [("S01", D(2), "active")]
    assert await dbstate.drift(db) == (1, [])


async def test_a_delivery_hold_moves_to_another_store_that_serves_online_and_stays_whole(
    db: Database, clock: support.Clock
) -> None:
    # S01 ships first for this order (WH1 is empty); later WH1 receives stock.
    net = await support.seed_network(db, {"S01": {"TEA": 4}, "WH1": {"COFFEE": 1}})
    order = await place(db, clock, Fulfillment.DELIVERY, ("TEA", 2))
    assert await holds_of(db, net, order.id) == [("S01", D(2), "active")]
    await support.receive(db, "WH1", "R1", TEA=5)

    result = await sell(db, clock, "S01", "T1", ("TEA", 4))

    assert await dbstate.level(db, net, "TEA", "S01") == (D(0), D(0))
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(5), D(2))
    assert await holds_of(db, net, order.id) == [
        ("S01", D(2), "displaced"),
        ("WH1", D(2), "active"),
    ]
    assert [(d["order_id"], d["moved"], d["cut"]) for d in result["displaced"]] == [
        (order.id, [{"store": "WH1", "quantity": "2"}], "0")
    ]
    row = await dbstate.order_row(db, order.id)
    assert (row.status, row.version) == ("placed", 2)
    moved = await dbstate.events(db, events.ORDER_HOLDS_MOVED)
    assert [(e.aggregate_id, e.payload["sale"]["transaction_id"]) for e in moved] == [
        (order.id, "T1")
    ]
    assert await dbstate.count(db, order_attention) == 0
    assert await dbstate.drift(db) == (3, [])


async def test_a_pickup_hold_is_cut_back_and_its_order_gets_attention_with_the_sale(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 4}})
    order = await place(db, clock, Fulfillment.PICKUP, ("TEA", 3), store="S01")

    result = await sell(db, clock, "S01", "T1", ("TEA", 3))

    assert await dbstate.level(db, net, "TEA", "S01") == (D(1), D(1))
    assert await holds_of(db, net, order.id) == [
        ("S01", D(3), "displaced"),
        ("S01", D(1), "active"),
    ]
    assert result["displaced"][0]["cut"] == "2"
    (item,) = await dbstate.rows(db, order_attention)
    assert (item.order_id, item.code) == (order.id, "stock_taken_by_till_sale")
    assert item.detail == {
        "line": 1,
        "product": net.products["TEA"],
        "sku": "TEA",
        "store": "S01",
        "quantity": "2",
        "sale": {
            "store": "S01",
            "pos_id": "till-1",
            "transaction_id": "T1",
            "business_time": item.detail["sale"]["business_time"],
        },
    }
    raised = await dbstate.events(db, events.ORDER_ATTENTION)
    assert [(e.aggregate_id, e.payload["state"]) for e in raised] == [(order.id, "open")]
    row = await dbstate.order_row(db, order.id)
    assert row.status == "placed"  # the hub never cancels it
    assert await dbstate.drift(db) == (1, [])


async def test_unpaid_holds_are_cut_before_paid_ones_and_newer_before_older(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 6}})
    old_unpaid = await place(db, clock, Fulfillment.PICKUP, ("TEA", 1), store="S01")
    paid = await place(db, clock, Fulfillment.PICKUP, ("TEA", 1), store="S01")
    new_unpaid = await place(db, clock, Fulfillment.PICKUP, ("TEA", 1), store="S01")
    await pay_order(db.uow, paid.id, support.context(clock))

    await sell(db, clock, "S01", "T1", ("TEA", 5))  # 3 free, 2 taken from holds

    states = {o.id: [h[2] for h in await holds_of(db, net, o.id)] for o in (old_unpaid, paid)}
    assert states == {old_unpaid.id: ["displaced"], paid.id: ["active"]}
    assert [h[2] for h in await holds_of(db, net, new_unpaid.id)] == ["displaced"]
    assert {r.order_id for r in await dbstate.rows(db, order_attention)} == {
        old_unpaid.id,
        new_unpaid.id,
    }


async def test_a_delivery_hold_no_other_store_can_take_is_cut(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 3}})
    order = await place(db, clock, Fulfillment.DELIVERY, ("TEA", 2))

    await sell(db, clock, "S01", "T1", ("TEA", 3))

    assert await holds_of(db, net, order.id) == [("S01", D(2), "displaced")]
    assert await dbstate.count(db, order_attention) == 1
    assert await dbstate.level(db, net, "TEA", "S01") == (D(0), D(0))


async def test_a_sale_beyond_what_the_hub_knew_takes_on_hand_below_zero_until_a_receipt(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 1}})

    result = await sell(db, clock, "S01", "T1", ("TEA", 3), ("MUG", 1))

    assert result["negative"] == [
        {"product_id": net.products["TEA"], "on_hand": "-2"},
        {"product_id": net.products["MUG"], "on_hand": "-1"},
    ]
    assert await dbstate.level(db, net, "TEA", "S01") == (D(-2), D(0))
    assert await dbstate.level(db, net, "MUG", "S01") == (D(-1), D(0))
    negative = await dbstate.events(db, events.STOCK_NEGATIVE)
    assert [(e.payload["state"], e.payload["on_hand"]) for e in negative] == [
        ("negative", "-2"),
        ("negative", "-1"),
    ]
    assert await dbstate.drift(db) == (2, [])
    # No online order takes units from a level below zero.
    with pytest.raises(InsufficientStock):
        await place(db, clock, Fulfillment.PICKUP, ("TEA", 1), store="S01")
    await support.receive(db, "S01", "R1", TEA=5)
    assert await dbstate.level(db, net, "TEA", "S01") == (D(3), D(0))
    settled = (await dbstate.events(db, events.STOCK_NEGATIVE))[-1]
    assert (settled.payload["state"], settled.payload["on_hand"]) == ("settled", "3")
    assert await dbstate.drift(db) == (2, [])


async def test_a_cancelled_order_cannot_be_displaced_and_a_sale_after_it_takes_free_units(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 2}})
    order = await place(db, clock, Fulfillment.PICKUP, ("TEA", 1), store="S01")
    await change_status(db.uow, order.id, OrderStatus.CANCELLED, support.context(clock))

    result = await sell(db, clock, "S01", "T1", ("TEA", 2))

    assert result["displaced"] == []
    assert await holds_of(db, net, order.id) == [("S01", D(1), "released")]


async def test_a_replayed_sale_that_displaced_answers_what_it_did(
    db: Database, clock: support.Clock
) -> None:
    await support.seed_network(db, {"S01": {"TEA": 2}})
    await place(db, clock, Fulfillment.PICKUP, ("TEA", 1), store="S01")
    first = await sell(db, clock, "S01", "T1", ("TEA", 3))

    again = await sell(db, clock, "S01", "T1", ("TEA", 3))

    assert again == {**first, "replayed": True}
    assert len(first["displaced"]) == 1 and first["negative"][0]["on_hand"] == "-1"


async def test_a_completed_sale_never_waits_for_an_order_while_it_holds_a_stock_row(
    postgres_url: str, clock: support.Clock
) -> None:
    """A cancel holds its order and waits for the stock row: the sale must lock the orders it
    may displace first, so while it waits for that order the stock row stays free."""
    db = Database.from_url(postgres_url, pool_size=10, catalog_cache_seconds=0)
    try:
        await support.truncate_all(db)
        net = await support.seed_network(db, {"S01": {"TEA": 2}})
        order = await place(db, clock, Fulfillment.PICKUP, ("TEA", 1), store="S01")
        holder = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))
        try:
            tx = holder.transaction()
            await tx.start()
            await holder.execute("SELECT 1 FROM orders WHERE id = $1 FOR UPDATE", order.id)
            sale = asyncio.create_task(sell(db, clock, "S01", "T1", ("TEA", 2)))
            await asyncio.sleep(0.5)
            assert not sale.done()  # waiting for the order, before any stock row
            row = await holder.fetchrow(
                "SELECT on_hand FROM stock_levels WHERE product_id = $1 AND store_id = $2"
                " FOR UPDATE NOWAIT",
                net.products["TEA"],
                net.stores["S01"],
            )
            assert row is not None  # the stock row was free all along
            await tx.rollback()
            result = await asyncio.wait_for(sale, 10)
        finally:
            await holder.close()
        assert [d["order_id"] for d in result["displaced"]] == [order.id]
        assert await dbstate.drift(db) == (1, [])
    finally:
        await db.dispose()


class _StaleFirstRead:
    """A unit of work whose first read of the holds misses one order, as if that order was
    placed between the read and the stock lock."""

    def __init__(self, db: Database, missing: str) -> None:
        self.db, self.missing, self.reads = db, missing, 0

    def __call__(self) -> SqlUnitOfWork:
        outer = self
        uow = self.db.uow()
        real = uow.holds_at

        async def holds_at(store_id: int, product_ids: Any) -> list[StoreHold]:
            found = await real(store_id, product_ids)
            outer.reads += 1
            if outer.reads == 1:
                return [h for h in found if h.order_id != outer.missing]
            return found

        uow.holds_at = holds_at  # type: ignore[method-assign]
        return uow


async def test_an_order_that_appears_under_the_stock_lock_is_locked_or_the_line_starts_again(
    db: Database, backend: str, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 3}})
    known = await place(db, clock, Fulfillment.PICKUP, ("TEA", 1), store="S01")
    late = await place(db, clock, Fulfillment.PICKUP, ("TEA", 1), store="S01")
    stale = _StaleFirstRead(db, late.id)
    blocker: asyncpg.Connection | None = None
    if backend == "postgres":  # the late order is busy: NOWAIT fails, the sale starts again
        url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        blocker = await asyncpg.connect(url)
        await blocker.execute("BEGIN")
        await blocker.execute("SELECT 1 FROM orders WHERE id = $1 FOR UPDATE", late.id)
        asyncio.get_running_loop().call_later(0.3, lambda: asyncio.ensure_future(
            blocker.execute("ROLLBACK")))  # fmt: skip
    cmd = RecordPosSale("S01", "till-1", "T1", lines(("TEA", 3)), clock())
    try:
        result = await record_pos_sale(stale, cmd, support.context(clock))
    finally:
        if blocker is not None:
            await asyncio.sleep(0.4)
            await blocker.close()

    assert isinstance(result, dict)
    assert {d["order_id"] for d in result["displaced"]} == {known.id, late.id}
    assert await dbstate.level(db, net, "TEA", "S01") == (D(0), D(0))
    assert stale.reads >= 2
    assert await dbstate.drift(db) == (1, [])


async def test_every_sale_of_a_burst_on_one_shelf_is_recorded(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 3}})
    orders = [await place(db, clock, Fulfillment.PICKUP, ("TEA", 1), store="S01") for _ in "ab"]
    ctx = support.context(clock)
    cancels = [change_status(db.uow, o.id, OrderStatus.CANCELLED, ctx) for o in orders]

    results = await asyncio.gather(
        *(sell(db, clock, "S01", f"T{i}", ("TEA", 1)) for i in range(6)), *cancels
    )

    assert len(results) == 8
    assert await dbstate.count(db, pos_transactions) == 6
    assert await dbstate.level(db, net, "TEA", "S01") == (D(-3), D(0))
    async with db.uow_read() as uow:
        states = (await uow.conn.execute(select(holds.c.state))).scalars().all()
    assert "active" not in states
    assert await dbstate.drift(db) == (1, [])
