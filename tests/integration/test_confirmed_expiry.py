"""A confirmed, unpaid order (cash on delivery) does not lose its stock after the short unpaid
limit; it still expires after the channel's longer confirmed limit."""

from __future__ import annotations

from decimal import Decimal

from ordersync.db.unit_of_work import Database
from ordersync.domain.commands import LineInput, PlaceOrder, ProductRef
from ordersync.domain.orders import Order
from ordersync.domain.types import Channel, Fulfillment, OrderStatus
from ordersync.services.context import Context, HoldPolicy
from ordersync.services.orders import confirm_order, expire_unpaid_holds, get_order, place_order
from tests import support
from tests.integration import dbstate

D = Decimal


async def test_a_confirmed_unpaid_order_outlives_the_short_limit_but_not_the_long_one(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 10}})
    ctx = Context(
        holds=HoldPolicy({c: 30 for c in Channel}, {c: 48 * 60 for c in Channel}), clock=clock
    )
    cmd = PlaceOrder(
        Channel.ONLINE, Fulfillment.DELIVERY, (LineInput(ProductRef(sku="TEA"), D(2)),)
    )
    confirmed = await place_order(db.placement_uow, cmd, ctx)
    plain = await place_order(db.placement_uow, cmd, ctx)
    assert isinstance(confirmed, Order) and isinstance(plain, Order)
    await confirm_order(db.uow, confirmed.id, ctx)

    clock.advance(minutes=31)
    assert await expire_unpaid_holds(db.uow, ctx) == 1
    assert (await get_order(db.uow, plain.id)).status is OrderStatus.EXPIRED
    assert (await get_order(db.uow, confirmed.id)).status is OrderStatus.PLACED
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(10), D(2))

    clock.advance(hours=47)
    assert await expire_unpaid_holds(db.uow, ctx) == 0
    clock.advance(hours=1, minutes=1)
    assert await expire_unpaid_holds(db.uow, ctx) == 1
    assert (await get_order(db.uow, confirmed.id)).status is OrderStatus.EXPIRED
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(10), D(0))
