"""Unpaid orders give their stock back when their hold time is over; paid ones keep it."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from ordersync.db.unit_of_work import Database
from ordersync.domain import events
from ordersync.domain.commands import LineInput, PlaceOrder, ProductRef
from ordersync.domain.errors import InvalidTransition
from ordersync.domain.orders import Order
from ordersync.domain.types import Channel, Fulfillment
from ordersync.services.context import Context
from ordersync.services.orders import expire_unpaid_holds, pay_order, place_order
from tests import support
from tests.integration import dbstate

D = Decimal


def tea(qty: int) -> PlaceOrder:
    return PlaceOrder(
        Channel.ONLINE, Fulfillment.DELIVERY, (LineInput(ProductRef(sku="TEA"), D(qty)),)
    )


async def place(db: Database, ctx: Context, qty: int) -> Order:
    order = await place_order(db.placement_uow, tea(qty), ctx)
    assert isinstance(order, Order)
    return order


async def test_an_order_records_when_its_hold_runs_out(db: Database, clock: support.Clock) -> None:
    await support.seed_network(db, {"WH1": {"TEA": 10}})
    ctx = support.context(clock, minutes=30)
    placed_at = clock()

    order = await place(db, ctx, 1)

    row = await dbstate.order_row(db, order.id)
    assert row.hold_expires_at == placed_at + timedelta(minutes=30)
    assert [h.expires_at for h in await dbstate.holds_of(db, order.id)] == [row.hold_expires_at]


async def test_expiry_releases_unpaid_orders_past_their_time_only(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 10}})
    ctx = support.context(clock, minutes=30)
    unpaid = await place(db, ctx, 2)
    paid = await place(db, ctx, 3)
    await pay_order(db.uow, paid.id, ctx)
    clock.advance(minutes=10)
    young = await place(db, ctx, 4)
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(10), D(9))

    clock.advance(minutes=25)  # 35 minutes after the first two, 25 after the young one
    expired = await expire_unpaid_holds(db.uow, ctx)

    assert expired == 1
    row = await dbstate.order_row(db, unpaid.id)
    assert (row.status, row.payment_status) == ("expired", "unpaid")
    assert row.cancelled_at == clock() and row.hold_expires_at is None
    assert {h.state for h in await dbstate.holds_of(db, unpaid.id)} == {"expired"}
    for kept in (paid, young):
        assert (await dbstate.order_row(db, kept.id)).status == "placed"
        assert {h.state for h in await dbstate.holds_of(db, kept.id)} == {"active"}
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(10), D(7))
    changed = await dbstate.events(db, events.ORDER_STATUS_CHANGED)
    assert [(e.aggregate_id, e.payload["to"], e.payload["reason"]) for e in changed] == [
        (unpaid.id, "expired", "hold_expired")
    ]
    release = [
        e.payload
        for e in await dbstate.events(db, events.STOCK_CHANGED)
        if e.payload["reason"] == "expire"
    ]
    assert [(p["document_id"], p["reserved"]) for p in release] == [(unpaid.id, "7")]
    assert await dbstate.drift(db) == (1, [])


async def test_expiry_before_the_time_is_over_changes_nothing(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 10}})
    ctx = support.context(clock, minutes=30)
    await place(db, ctx, 2)
    before = await dbstate.snapshot(db)

    clock.advance(minutes=29, seconds=59)
    assert await expire_unpaid_holds(db.uow, ctx) == 0

    assert await dbstate.snapshot(db) == before
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(10), D(2))


async def test_an_order_expires_at_its_exact_expiry_time(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 10}})
    ctx = support.context(clock, minutes=30)
    order = await place(db, ctx, 2)

    clock.advance(minutes=30)
    assert await expire_unpaid_holds(db.uow, ctx) == 1

    assert (await dbstate.order_row(db, order.id)).status == "expired"
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(10), D(0))


async def test_a_paid_order_never_expires(db: Database, clock: support.Clock) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 10}})
    ctx = support.context(clock, minutes=30)
    order = await place(db, ctx, 2)
    await pay_order(db.uow, order.id, ctx)
    before = await dbstate.snapshot(db)

    clock.advance(days=30)
    assert await expire_unpaid_holds(db.uow, ctx) == 0

    assert await dbstate.snapshot(db) == before
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(10), D(2))


async def test_running_expiry_twice_expires_each_order_once(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 10}})
    ctx = support.context(clock, minutes=30)
    first = await place(db, ctx, 1)
    second = await place(db, ctx, 2)
    clock.advance(minutes=31)

    assert await expire_unpaid_holds(db.uow, ctx) == 2
    after_first = await dbstate.snapshot(db)
    assert await expire_unpaid_holds(db.uow, ctx) == 0

    assert await dbstate.snapshot(db) == after_first
    for order in (first, second):
        assert (await dbstate.order_row(db, order.id)).status == "expired"
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(10), D(0))
    assert len(await dbstate.events(db, events.ORDER_STATUS_CHANGED)) == 2


async def test_expiry_respects_its_batch_limit(db: Database, clock: support.Clock) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 10}})
    ctx = support.context(clock, minutes=30)
    for _ in range(3):
        await place(db, ctx, 1)
    clock.advance(minutes=31)

    assert await expire_unpaid_holds(db.uow, ctx, limit=2) == 2
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(10), D(1))
    assert await expire_unpaid_holds(db.uow, ctx, limit=2) == 1
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(10), D(0))


async def test_an_expired_order_cannot_be_paid_afterwards(
    db: Database, clock: support.Clock
) -> None:
    await support.seed_network(db, {"WH1": {"TEA": 10}})
    ctx = support.context(clock, minutes=30)
    order = await place(db, ctx, 2)
    clock.advance(minutes=45)
    await expire_unpaid_holds(db.uow, ctx)
    before = await dbstate.snapshot(db)

    with pytest.raises(InvalidTransition):
        await pay_order(db.uow, order.id, ctx)

    assert await dbstate.snapshot(db) == before
    assert (await dbstate.order_row(db, order.id)).payment_status == "unpaid"


async def test_expired_stock_is_free_for_the_next_order(db: Database, clock: support.Clock) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 2}})
    ctx = support.context(clock, minutes=30)
    await place(db, ctx, 2)
    clock.advance(minutes=31)
    await expire_unpaid_holds(db.uow, ctx)

    again = await place(db, ctx, 2)

    assert {h.state for h in await dbstate.holds_of(db, again.id)} == {"active"}
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(2), D(2))
