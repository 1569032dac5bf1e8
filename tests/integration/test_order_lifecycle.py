"""An order's life on a real database: where its stock is held, and what paying, cancelling,
shipping and completing do to the stock levels, the holds and the ledger."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from ordersync.db.tables import holds, order_lines, orders, outbox_events, products
from ordersync.db.unit_of_work import Database
from ordersync.domain import events
from ordersync.domain.commands import LineInput, PlaceOrder, ProductRef
from ordersync.domain.errors import (
    InsufficientStock,
    InvalidRequest,
    InvalidTransition,
    UnknownProduct,
)
from ordersync.domain.orders import Order
from ordersync.domain.types import Channel, Fulfillment, OrderStatus
from ordersync.services.orders import change_status, pay_order, place_order
from tests import support
from tests.integration import dbstate

D = Decimal


def lines(*items: tuple[str, int | str]) -> tuple[LineInput, ...]:
    return tuple(LineInput(ProductRef(sku=sku), D(q)) for sku, q in items)


def delivery(*items: tuple[str, int | str], channel: Channel = Channel.ONLINE, **kw: object):
    return PlaceOrder(channel, Fulfillment.DELIVERY, lines(*items), **kw)  # type: ignore[arg-type]


def pickup(store: str, *items: tuple[str, int | str], channel: Channel = Channel.ONLINE):
    return PlaceOrder(channel, Fulfillment.PICKUP, lines(*items), store_code=store)


async def place(db: Database, cmd: PlaceOrder) -> Order:
    order = await place_order(db.placement_uow, cmd, support.context())
    assert isinstance(order, Order)
    return order


async def held_by_store(db: Database, net: support.Network, order_id: str) -> dict[str, D]:
    codes = {v: k for k, v in net.stores.items()}
    result: dict[str, D] = {}
    for h in await dbstate.holds_of(db, order_id):
        result[codes[h.store_id]] = result.get(codes[h.store_id], D(0)) + h.quantity
    return result


# where the stock is held


async def test_a_pickup_order_holds_stock_only_at_the_pickup_store(db: Database) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 10}, "S01": {"TEA": 3}})
    order = await place(db, pickup("S01", ("TEA", 2)))

    assert await held_by_store(db, net, order.id) == {"S01": D(2)}
    assert await dbstate.level(db, net, "TEA", "S01") == (D(3), D(2))
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(10), D(0))
    assert (await dbstate.order_row(db, order.id)).store_id == net.stores["S01"]


async def test_a_pickup_order_does_not_borrow_from_other_stores(db: Database) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 10}, "S01": {"TEA": 3}})
    before = await dbstate.snapshot(db)

    # S01 has 3 but keeps 1 as safety stock; the warehouse's 10 do not count for a pickup.
    with pytest.raises(InsufficientStock):
        await place(db, pickup("S01", ("TEA", 3)))

    assert await dbstate.snapshot(db) == before
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(10), D(0))


async def test_a_pickup_at_a_store_that_is_not_a_pickup_point_is_refused(db: Database) -> None:
    await support.seed_network(db, {"WH1": {"TEA": 10}})
    before = await dbstate.snapshot(db)

    with pytest.raises(InvalidRequest):
        await place(db, pickup("WH1", ("TEA", 1)))

    assert await dbstate.snapshot(db) == before


async def test_a_delivery_order_splits_a_line_across_serving_stores_in_priority_order(
    db: Database,
) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 2}, "S01": {"TEA": 5}, "S02": {"TEA": 50}})
    order = await place(db, delivery(("TEA", 4)))

    # WH1 (priority 10) gives all it has, S01 (priority 20) the rest; S02 serves no online.
    assert await held_by_store(db, net, order.id) == {"WH1": D(2), "S01": D(2)}
    levels = await dbstate.stock(db, net)
    assert levels[("TEA", "WH1")] == (D(2), D(2))
    assert levels[("TEA", "S01")] == (D(5), D(2))
    assert levels[("TEA", "S02")] == (D(50), D(0))
    assert (await dbstate.order_row(db, order.id)).store_id is None


async def test_a_delivery_order_takes_everything_from_the_first_store_when_it_can(
    db: Database,
) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 10}, "S01": {"TEA": 10}})
    order = await place(db, delivery(("TEA", 7)))

    assert await held_by_store(db, net, order.id) == {"WH1": D(7)}
    assert await dbstate.level(db, net, "TEA", "S01") == (D(10), D(0))


async def test_delivery_orders_never_reach_a_store_that_does_not_serve_online(
    db: Database,
) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 1}, "S02": {"TEA": 50}})
    before = await dbstate.snapshot(db)

    with pytest.raises(InsufficientStock):
        await place(db, delivery(("TEA", 2)))

    assert await dbstate.snapshot(db) == before
    assert await dbstate.level(db, net, "TEA", "S02") == (D(50), D(0))


# safety stock


@pytest.mark.parametrize("channel", [Channel.ONLINE, Channel.OPERATOR])
async def test_safety_stock_keeps_the_last_units_from_remote_orders(
    db: Database, channel: Channel
) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 5}})

    before = await dbstate.snapshot(db)
    with pytest.raises(InsufficientStock):
        await place(db, pickup("S01", ("TEA", 5), channel=channel))
    with pytest.raises(InsufficientStock):
        await place(db, delivery(("TEA", 5), channel=channel))
    assert await dbstate.snapshot(db) == before

    order = await place(db, delivery(("TEA", 4), channel=channel))
    assert await held_by_store(db, net, order.id) == {"S01": D(4)}
    assert await dbstate.level(db, net, "TEA", "S01") == (D(5), D(4))


async def test_safety_stock_does_not_apply_to_pos_channel_orders(db: Database) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 5}})

    cmd = PlaceOrder(Channel.POS, Fulfillment.IN_STORE, lines(("TEA", 5)), store_code="S01")
    order = await place(db, cmd)

    assert await held_by_store(db, net, order.id) == {"S01": D(5)}
    assert await dbstate.level(db, net, "TEA", "S01") == (D(5), D(5))
    row = await dbstate.order_row(db, order.id)
    assert (row.channel, row.fulfillment) == ("pos", "in_store")


async def test_a_pos_channel_delivery_may_also_take_the_safety_stock(db: Database) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 1}, "S01": {"TEA": 2}})

    order = await place(db, delivery(("TEA", 3), channel=Channel.POS))

    assert await held_by_store(db, net, order.id) == {"WH1": D(1), "S01": D(2)}


# all or nothing


async def test_an_order_whose_one_line_cannot_be_covered_writes_nothing(db: Database) -> None:
    net = await support.seed_network(
        db, {"WH1": {"TEA": 10, "COFFEE": 1}, "S01": {"COFFEE": 2, "MUG": 3}}
    )
    before = await dbstate.snapshot(db)
    events_before = await dbstate.events(db)

    with pytest.raises(InsufficientStock) as caught:
        await place(db, delivery(("TEA", 2), ("COFFEE", 5), ("MUG", 1)))

    short = caught.value.details["lines"]
    assert [(x["line"], x["product"], x["requested"]) for x in short] == [(2, "COFFEE", "5")]
    # WH1 gives 1, S01 gives 2 - 1 (safety) = 1
    assert D(short[0]["available"]) == 2
    assert await dbstate.snapshot(db) == before
    assert await dbstate.count(db, orders) == 0
    assert await dbstate.count(db, order_lines) == 0
    assert await dbstate.count(db, holds) == 0
    assert await dbstate.events(db) == events_before
    assert all(reserved == 0 for _, reserved in (await dbstate.stock(db, net)).values())


async def test_two_lines_of_one_product_cannot_both_take_the_last_units(db: Database) -> None:
    await support.seed_network(db, {"WH1": {"TEA": 3}})
    before = await dbstate.snapshot(db)

    with pytest.raises(InsufficientStock) as caught:
        await place(db, delivery(("TEA", 2), ("TEA", 2)))

    assert [x["line"] for x in caught.value.details["lines"]] == [2]
    assert await dbstate.snapshot(db) == before


async def test_an_order_for_a_product_without_any_stock_row_writes_nothing(db: Database) -> None:
    await support.seed_network(db, {"WH1": {"TEA": 3}})
    before = await dbstate.snapshot(db)

    with pytest.raises(InsufficientStock) as caught:
        await place(db, delivery(("TEA", 1), ("MUG", 1)))

    assert [x["product"] for x in caught.value.details["lines"]] == ["MUG"]
    assert await dbstate.snapshot(db) == before


async def test_an_order_line_records_its_quantity_and_the_catalog_price(db: Database) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 5, "COFFEE": 5}})
    order = await place(
        db,
        PlaceOrder(
            Channel.ONLINE,
            Fulfillment.DELIVERY,
            (
                LineInput(ProductRef(sku="TEA"), D(2)),
                LineInput(ProductRef(sku="COFFEE"), D(1), price=D("199.99")),
            ),
            customer={"name": "Ivan"},
        ),
    )

    stored = await dbstate.rows(
        db, order_lines, order_lines.c.order_id == order.id, order_by=order_lines.c.line_no
    )
    assert [(x.line_no, x.product_id, x.quantity, x.price) for x in stored] == [
        (1, net.products["TEA"], D(2), D("100.00")),
        (2, net.products["COFFEE"], D(1), D("199.99")),
    ]
    row = await dbstate.order_row(db, order.id)
    assert row.total == D("399.99")
    assert (row.status, row.payment_status, row.source) == ("placed", "unpaid", "order")
    assert row.customer == {"name": "Ivan"}


# pay, cancel, ship, complete


async def test_paying_marks_the_order_paid_and_stops_its_holds_from_expiring(
    db: Database,
) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 5}})
    order = await place(db, delivery(("TEA", 3)))
    assert all(h.expires_at is not None for h in await dbstate.holds_of(db, order.id))

    await pay_order(db.uow, order.id, support.context())

    row = await dbstate.order_row(db, order.id)
    assert (row.status, row.payment_status) == ("placed", "paid")
    assert row.paid_at is not None and row.hold_expires_at is None
    stored = await dbstate.holds_of(db, order.id)
    assert [(h.state, h.expires_at) for h in stored] == [("active", None)]
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(5), D(3))


async def test_pay_then_cancel_releases_the_holds(db: Database) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 2}, "S01": {"TEA": 5}})
    order = await place(db, delivery(("TEA", 4)))
    await pay_order(db.uow, order.id, support.context())

    await change_status(db.uow, order.id, OrderStatus.CANCELLED, support.context())

    row = await dbstate.order_row(db, order.id)
    assert (row.status, row.payment_status) == ("cancelled", "paid")
    assert row.cancelled_at is not None
    stored = await dbstate.holds_of(db, order.id)
    assert len(stored) == 2
    assert {h.state for h in stored} == {"released"}
    assert all(h.closed_at is not None for h in stored)
    levels = await dbstate.stock(db, net)
    assert levels[("TEA", "WH1")] == (D(2), D(0))
    assert levels[("TEA", "S01")] == (D(5), D(0))
    # Releasing a hold moves no goods: only the receipts are in the ledger.
    assert {m.reason for m in await dbstate.movements(db, net)} == {"receipt"}
    assert await dbstate.drift(db) == (2, [])


async def test_cancelled_stock_can_be_ordered_again(db: Database) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 2}})
    first = await place(db, delivery(("TEA", 2)))
    with pytest.raises(InsufficientStock):
        await place(db, delivery(("TEA", 1)))

    await change_status(db.uow, first.id, OrderStatus.CANCELLED, support.context())
    second = await place(db, delivery(("TEA", 2)))

    assert await held_by_store(db, net, second.id) == {"WH1": D(2)}
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(2), D(2))


async def test_shipping_turns_holds_into_deductions(db: Database) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 2}, "S01": {"TEA": 5}})
    order = await place(db, delivery(("TEA", 4)))

    await change_status(db.uow, order.id, OrderStatus.SHIPPED, support.context())

    levels = await dbstate.stock(db, net)
    assert levels[("TEA", "WH1")] == (D(0), D(0))
    assert levels[("TEA", "S01")] == (D(3), D(0))
    shipped = await dbstate.movements(db, net, reason="shipment")
    assert sorted((m.store_id, m.quantity) for m in shipped) == sorted(
        [(net.stores["WH1"], D(-2)), (net.stores["S01"], D(-2))]
    )
    assert {(m.document_type, m.document_id) for m in shipped} == {("order", order.id)}
    assert {h.state for h in await dbstate.holds_of(db, order.id)} == {"consumed"}
    row = await dbstate.order_row(db, order.id)
    assert row.status == "shipped" and row.shipped_at is not None
    assert row.completed_at is None
    assert await dbstate.drift(db) == (2, [])


async def test_shipping_writes_one_shipment_movement_per_stock_row(db: Database) -> None:
    net = await support.seed_network(db, {"S01": {"TEA": 6}})
    order = await place(db, pickup("S01", ("TEA", 1), ("TEA", 2), ("TEA", 1)))
    assert len(await dbstate.holds_of(db, order.id)) == 3

    await change_status(db.uow, order.id, OrderStatus.SHIPPED, support.context())

    shipped = await dbstate.movements(db, net, reason="shipment")
    assert [(m.store_id, m.quantity) for m in shipped] == [(net.stores["S01"], D(-4))]
    assert await dbstate.level(db, net, "TEA", "S01") == (D(2), D(0))


async def test_completing_a_placed_order_ships_it_first(db: Database) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 3, "COFFEE": 2}})
    order = await place(db, delivery(("TEA", 3), ("COFFEE", 1)))

    await change_status(db.uow, order.id, OrderStatus.COMPLETED, support.context())

    row = await dbstate.order_row(db, order.id)
    assert row.status == "completed"
    assert row.shipped_at is not None and row.completed_at is not None
    levels = await dbstate.stock(db, net)
    assert levels[("TEA", "WH1")] == (D(0), D(0))
    assert levels[("COFFEE", "WH1")] == (D(1), D(0))
    shipped = await dbstate.movements(db, net, reason="shipment")
    assert sorted((m.product_id, m.quantity) for m in shipped) == sorted(
        [(net.products["TEA"], D(-3)), (net.products["COFFEE"], D(-1))]
    )
    assert {h.state for h in await dbstate.holds_of(db, order.id)} == {"consumed"}
    assert await dbstate.drift(db) == (2, [])


async def test_completing_a_shipped_order_moves_no_more_stock(db: Database) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 3}})
    order = await place(db, delivery(("TEA", 2)))
    await change_status(db.uow, order.id, OrderStatus.SHIPPED, support.context())
    shipped_at = (await dbstate.order_row(db, order.id)).shipped_at

    await change_status(db.uow, order.id, OrderStatus.COMPLETED, support.context())

    row = await dbstate.order_row(db, order.id)
    assert row.status == "completed" and row.shipped_at == shipped_at
    assert len(await dbstate.movements(db, net, reason="shipment")) == 1
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(1), D(0))


async def test_repeating_pay_cancel_or_ship_changes_nothing(db: Database) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 10}})
    to_ship = await place(db, delivery(("TEA", 3)))
    to_cancel = await place(db, delivery(("TEA", 2)))

    await pay_order(db.uow, to_ship.id, support.context())
    paid_at = (await dbstate.order_row(db, to_ship.id)).paid_at
    await change_status(db.uow, to_ship.id, OrderStatus.SHIPPED, support.context())
    await change_status(db.uow, to_cancel.id, OrderStatus.CANCELLED, support.context())
    after_first = await dbstate.snapshot(db)
    events_after_first = await dbstate.events(db)

    await pay_order(db.uow, to_ship.id, support.context())
    await change_status(db.uow, to_ship.id, OrderStatus.SHIPPED, support.context())
    await change_status(db.uow, to_cancel.id, OrderStatus.CANCELLED, support.context())
    await change_status(db.uow, to_cancel.id, OrderStatus.CANCELLED, support.context())

    assert await dbstate.snapshot(db) == after_first
    assert await dbstate.events(db) == events_after_first
    assert (await dbstate.order_row(db, to_ship.id)).paid_at == paid_at
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(7), D(0))
    assert len(await dbstate.movements(db, net, reason="shipment")) == 1


async def test_cancelling_a_shipped_order_raises_invalid_transition(db: Database) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 5}})
    order = await place(db, delivery(("TEA", 2)))
    await change_status(db.uow, order.id, OrderStatus.SHIPPED, support.context())
    before = await dbstate.snapshot(db)

    with pytest.raises(InvalidTransition) as caught:
        await change_status(db.uow, order.id, OrderStatus.CANCELLED, support.context())

    assert caught.value.details["status"] == "shipped"
    assert (await dbstate.order_row(db, order.id)).status == "shipped"
    assert await dbstate.snapshot(db) == before
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(3), D(0))


async def test_a_cancelled_order_can_be_neither_paid_nor_shipped(db: Database) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 5}})
    order = await place(db, delivery(("TEA", 2)))
    await change_status(db.uow, order.id, OrderStatus.CANCELLED, support.context())
    before = await dbstate.snapshot(db)

    with pytest.raises(InvalidTransition):
        await pay_order(db.uow, order.id, support.context())
    with pytest.raises(InvalidTransition):
        await change_status(db.uow, order.id, OrderStatus.SHIPPED, support.context())
    with pytest.raises(InvalidTransition):
        await change_status(db.uow, order.id, OrderStatus.COMPLETED, support.context())

    assert await dbstate.snapshot(db) == before
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(5), D(0))


async def test_status_changes_are_recorded_as_outbox_events(db: Database) -> None:
    await support.seed_network(db, {"WH1": {"TEA": 5}})
    order = await place(db, delivery(("TEA", 2)))
    await pay_order(db.uow, order.id, support.context())
    await change_status(db.uow, order.id, OrderStatus.SHIPPED, support.context())
    await change_status(db.uow, order.id, OrderStatus.COMPLETED, support.context())

    stored = await dbstate.rows(db, outbox_events, outbox_events.c.aggregate_type == "order")
    assert [(e.type, e.aggregate_id) for e in stored] == [
        (events.ORDER_CREATED, order.id),
        (events.ORDER_PAID, order.id),
        (events.ORDER_STATUS_CHANGED, order.id),
        (events.ORDER_STATUS_CHANGED, order.id),
    ]
    assert [(e.payload["from"], e.payload["to"]) for e in stored[2:]] == [
        ("placed", "shipped"),
        ("shipped", "completed"),
    ]


# external ids


async def test_an_external_id_makes_placement_idempotent(db: Database) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 10}})
    cmd = delivery(("TEA", 3), external_id="bitrix-1001")

    first = await place(db, cmd)
    again = await place(db, cmd)

    assert again.id == first.id
    assert await dbstate.count(db, orders, orders.c.external_id == "bitrix-1001") == 1
    assert await dbstate.count(db, orders) == 1
    assert await dbstate.count(db, holds) == 1
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(10), D(3))
    assert len(await dbstate.events(db, events.ORDER_CREATED)) == 1


async def test_the_same_external_id_in_another_channel_is_another_order(db: Database) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 10}})

    online = await place(db, delivery(("TEA", 1), external_id="X-1"))
    operator = await place(db, delivery(("TEA", 1), channel=Channel.OPERATOR, external_id="X-1"))

    assert online.id != operator.id
    assert await dbstate.count(db, orders, orders.c.external_id == "X-1") == 2
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(10), D(2))


async def test_concurrent_retries_of_one_external_id_all_get_the_one_order(
    db: Database,
) -> None:
    # Exactly enough stock for one order: a retry that loses the race for the stock row must
    # still answer with the order the first attempt made, not with "insufficient stock".
    net = await support.seed_network(db, {"WH1": {"TEA": 2}})
    cmd = delivery(("TEA", 2), external_id="bitrix-77")

    results = await asyncio.gather(
        *(place_order(db.placement_uow, cmd, support.context()) for _ in range(8)),
        return_exceptions=True,
    )

    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    assert len({r.id for r in results if isinstance(r, Order)}) == 1
    assert await dbstate.count(db, orders) == 1
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(2), D(2))
    assert await dbstate.drift(db) == (1, [])


# naming products


async def test_lines_may_name_products_by_id_sku_or_1c_id(db: Database) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 5, "COFFEE": 5, "MUG": 5}})
    cmd = PlaceOrder(
        Channel.ONLINE,
        Fulfillment.DELIVERY,
        (
            LineInput(ProductRef(product_id=net.products["TEA"]), D(1)),
            LineInput(ProductRef(sku="COFFEE"), D(2)),
            LineInput(ProductRef(xml_id="1c-mug"), D(3)),
            LineInput(ProductRef(xml_id="1c-tea"), D(1)),
        ),
    )

    order = await place(db, cmd)

    stored = await dbstate.rows(
        db, order_lines, order_lines.c.order_id == order.id, order_by=order_lines.c.line_no
    )
    assert [(x.product_id, x.quantity) for x in stored] == [
        (net.products["TEA"], D(1)),
        (net.products["COFFEE"], D(2)),
        (net.products["MUG"], D(3)),
        (net.products["TEA"], D(1)),
    ]
    levels = await dbstate.stock(db, net)
    assert {sku: levels[(sku, "WH1")][1] for sku in ("TEA", "COFFEE", "MUG")} == {
        "TEA": D(2),
        "COFFEE": D(2),
        "MUG": D(3),
    }


async def test_an_order_naming_unknown_or_inactive_products_writes_nothing(
    db: Database,
) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 5, "MUG": 5}})
    async with db.uow() as uow:
        await uow.conn.execute(
            products.update().where(products.c.sku == "MUG").values(active=False)
        )
        await uow.commit()
    before = await dbstate.snapshot(db)

    with pytest.raises(UnknownProduct) as caught:
        await place(
            db,
            PlaceOrder(
                Channel.ONLINE,
                Fulfillment.DELIVERY,
                (
                    LineInput(ProductRef(sku="TEA"), D(1)),
                    LineInput(ProductRef(sku="NOPE"), D(1)),
                    LineInput(ProductRef(sku="MUG"), D(1)),
                    LineInput(ProductRef(product_id=9999), D(1)),
                ),
            ),
        )

    assert caught.value.details["products"] == ["NOPE", "MUG", "#9999"]
    assert await dbstate.snapshot(db) == before
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(5), D(0))


async def test_a_product_without_a_catalog_price_needs_a_line_price(db: Database) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 5}})
    async with db.uow() as uow:
        await uow.conn.execute(products.update().where(products.c.sku == "TEA").values(price=None))
        await uow.commit()
    before = await dbstate.snapshot(db)

    with pytest.raises(InvalidRequest):
        await place(db, delivery(("TEA", 1)))
    assert await dbstate.snapshot(db) == before

    priced = PlaceOrder(
        Channel.ONLINE,
        Fulfillment.DELIVERY,
        (LineInput(ProductRef(sku="TEA"), D(2), price=D("12.34")),),
    )
    order = await place(db, priced)
    assert (await dbstate.order_row(db, order.id)).total == D("24.68")
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(5), D(2))


async def test_an_order_without_lines_is_refused(db: Database) -> None:
    await support.seed_network(db, {"WH1": {"TEA": 5}})
    before = await dbstate.snapshot(db)

    with pytest.raises(InvalidRequest):
        await place(db, PlaceOrder(Channel.ONLINE, Fulfillment.DELIVERY, ()))

    assert await dbstate.snapshot(db) == before


async def test_an_external_id_order_without_enough_stock_is_refused_cleanly(
    db: Database,
) -> None:
    await support.seed_network(db, {"WH1": {"TEA": 1}})
    before = await dbstate.snapshot(db)

    with pytest.raises(InsufficientStock):
        await place(db, delivery(("TEA", 2), external_id="bitrix-big"))

    assert await dbstate.snapshot(db) == before


# contention


async def test_concurrent_orders_for_the_last_units_never_oversell(db: Database) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 3}, "S01": {"TEA": 3}})

    results = await asyncio.gather(
        *(
            place_order(db.placement_uow, delivery(("TEA", 1)), support.context())
            for _ in range(12)
        ),
        return_exceptions=True,
    )

    placed = [r for r in results if isinstance(r, Order)]
    refused = [r for r in results if isinstance(r, InsufficientStock)]
    assert (len(placed), len(refused)) == (5, 7)  # WH1 gives 3, S01 gives 3 - 1 safety
    levels = await dbstate.stock(db, net)
    assert levels[("TEA", "WH1")] == (D(3), D(3))
    assert levels[("TEA", "S01")] == (D(3), D(2))
    assert await dbstate.count(db, orders) == 5
    assert await dbstate.count(db, holds) == 5
    assert await dbstate.drift(db) == (2, [])
