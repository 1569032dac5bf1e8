from __future__ import annotations

from ordersync.db.unit_of_work import Database
from ordersync.domain.commands import LineInput, PlaceOrder, ProductRef
from ordersync.domain.orders import Order
from ordersync.domain.types import Channel, Fulfillment
from ordersync.services.orders import place_order
from tests import support


async def test_a_delivery_order_holds_stock_in_priority_order(db: Database) -> None:
    await support.seed_network(db, {"WH1": {"TEA": 2}, "S01": {"TEA": 5}})
    cmd = PlaceOrder(Channel.ONLINE, Fulfillment.DELIVERY, (LineInput(ProductRef(sku="TEA"), 4),))
    order = await place_order(db.placement_uow, cmd, support.context())
    assert isinstance(order, Order)
    async with db.uow_read() as uow:
        levels = {r.store_id: r.reserved for r in await uow.read_stock([order.lines[0].product_id])}
    assert sorted(levels.values()) == [2, 2]
