"""Site orders in (services/site_orders.py through the site worker, against the Bitrix site
simulator): created once per (site order, version), changes applied, the basket re-planned,
short orders recorded with attention, deletes cancel, the hub's own orders left alone, a
failing site call retried, and the catch-up poll from its stored watermark."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import insert, select

from ordersync.db.tables import bitrix_inbox
from ordersync.db.unit_of_work import Database
from ordersync.domain import events
from ordersync.domain.commands import LineInput, PlaceOrder, ProductRef
from ordersync.domain.orders import Order
from ordersync.domain.types import Channel, Fulfillment, OrderStatus, PaymentStatus
from ordersync.services import site_inbox
from ordersync.services.orders import place_order
from tests import support
from tests.bitrix_sim import SiteLine
from tests.integration import dbstate
from tests.integration.site_support import (
    COD,
    COFFEE,
    MUG,
    PICKUP,
    TEA,
    applied_version,
    courier_order,
    held,
    hub_order,
    hub_orders,
    make_site,
    site_task,
)

D = Decimal


async def test_a_new_site_order_is_created_once_with_its_stock_held(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 10, "COFFEE": 5}})
    sim = make_site()
    site_id = courier_order(sim, (TEA, 2), (COFFEE, 1))
    async with site_task(db, sim, support.context(clock)) as task:
        first = await task.bring_in(str(site_id))
        again = await task.bring_in(str(site_id))

    assert (first.outcome, again.outcome) == ("created", "unchanged")
    order = await hub_order(db, site_id)
    assert order is not None
    assert (order.channel, order.fulfillment, order.status) == (
        Channel.ONLINE,
        Fulfillment.DELIVERY,
        OrderStatus.PLACED,
    )
    assert order.customer == {"name": "Ivan Petrov", "phone": "+7 900 000-00-01", "email": "i@p.ru"}
    assert held(order) == {"TEA": D(2), "COFFEE": D(1)}
    assert order.attention == []
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(10), D(2))
    assert len(await dbstate.events(db, events.ORDER_CREATED)) == 1
    assert await applied_version(db, site_id) == 0


async def test_payment_confirmation_and_completion_on_the_site_follow_in_the_hub(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 10}})
    sim = make_site()
    ctx = support.context(clock)
    paid_id = courier_order(sim, (TEA, 1))
    cod_id = courier_order(sim, (TEA, 1), pay_system_id=COD)
    confirmed_id = courier_order(sim, (TEA, 1))
    async with site_task(db, sim, ctx) as task:
        for site_id in (paid_id, cod_id, confirmed_id):
            await task.bring_in(str(site_id))
        sim.pay_order(paid_id)
        sim.set_status(confirmed_id, "S")  # the status map says: confirmed
        await task.bring_in(str(paid_id))
        await task.bring_in(str(confirmed_id))
        sim.set_status(paid_id, "F")
        await task.bring_in(str(paid_id))

    paid = await hub_order(db, paid_id)
    cod = await hub_order(db, cod_id)
    confirmed = await hub_order(db, confirmed_id)
    assert paid is not None and cod is not None and confirmed is not None
    assert (paid.payment_status, paid.status) == (PaymentStatus.PAID, OrderStatus.COMPLETED)
    for order in (cod, confirmed):
        assert order.confirmed_at is not None and order.payment_status is PaymentStatus.UNPAID
        assert order.hold_expires_at == clock() + timedelta(hours=72)
    assert len(await dbstate.events(db, events.ORDER_CONFIRMED)) == 2
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(9), D(2))


async def test_a_basket_edited_on_the_site_replans_the_holds_atomically(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 10, "COFFEE": 5, "MUG": 3}})
    sim = make_site()
    site_id = courier_order(sim, (TEA, 2), (COFFEE, 1))
    async with site_task(db, sim, support.context(clock)) as task:
        await task.bring_in(str(site_id))
        sim.edit_basket(site_id, [SiteLine(TEA, 5, 100), SiteLine(MUG, 1, 300)])
        assert (await task.bring_in(str(site_id))).outcome == "updated"

    order = await hub_order(db, site_id)
    assert order is not None
    assert held(order) == {"TEA": D(5), "COFFEE": D(0), "MUG": D(1)}
    assert [(x.line_no, x.sku, x.quantity) for x in order.lines] == [
        (1, "TEA", D(5)),
        (2, "COFFEE", D(0)),
        (3, "MUG", D(1)),
    ]
    assert order.total == D(800)
    assert await dbstate.stock(db, net) == {
        ("TEA", "WH1"): (D(10), D(5)),
        ("COFFEE", "WH1"): (D(5), D(0)),
        ("MUG", "WH1"): (D(3), D(1)),
    }
    _, drift = await dbstate.drift(db)
    assert drift == []


async def test_a_basket_edit_keeps_the_released_holds_and_drops_the_lines_it_lost(
    db: Database, clock: support.Clock
) -> None:
    await support.seed_network(db, {"WH1": {"TEA": 10, "COFFEE": 5, "MUG": 3}})
    sim = make_site()
    site_id = courier_order(sim, (TEA, 2), (COFFEE, 1), (MUG, 1))
    async with site_task(db, sim, support.context(clock)) as task:
        await task.bring_in(str(site_id))
        sim.edit_basket(site_id, [SiteLine(COFFEE, 1, 200), SiteLine(TEA, 3, 100)])
        assert (await task.bring_in(str(site_id))).outcome == "updated"
        sim.pay_order(site_id)  # a later version with the same basket replans nothing
        assert (await task.bring_in(str(site_id))).outcome == "updated"

    order = await hub_order(db, site_id)
    assert order is not None
    # Each product keeps its line, whatever its place in the edited basket.
    assert [(x.line_no, x.sku, x.quantity) for x in order.lines] == [
        (1, "TEA", D(3)),
        (2, "COFFEE", D(1)),
        (3, "MUG", D(0)),
    ]
    holds = await dbstate.holds_of(db, order.id)
    kept = sorted((h.line_no, h.quantity, h.state) for h in holds)
    assert kept == [
        (1, D(2), "released"),
        (1, D(3), "active"),
        (2, D(1), "active"),
        (2, D(1), "released"),
        (3, D(1), "released"),
    ]
    product_of = {x.line_no: x.product_id for x in order.lines}
    assert all(h.product_id == product_of[h.line_no] for h in holds)
    _, drift = await dbstate.drift(db)
    assert drift == []


async def test_a_site_order_that_cannot_be_held_in_full_is_recorded_short_with_attention(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 1}})
    sim = make_site()
    site_id = courier_order(sim, (TEA, 3), (MUG, 1))
    async with site_task(db, sim, support.context(clock)) as task:
        await task.bring_in(str(site_id))

    order = await hub_order(db, site_id)
    assert order is not None and order.status is OrderStatus.PLACED
    assert held(order) == {"TEA": D(1), "MUG": D(0)}
    [item] = order.attention
    assert item.code == "site_order_short"
    assert [(x["product"], x["requested"], x["held"]) for x in item.detail["lines"]] == [
        ("TEA", "3", "1"),
        ("MUG", "1", "0"),
    ]
    [raised] = await dbstate.events(db, events.ORDER_ATTENTION)
    assert raised.payload["code"] == "site_order_short"
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(1), D(1))


async def test_a_deleted_site_order_cancels_the_hub_order_by_the_id_the_event_carries(
    db: Database, clock: support.Clock
) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 10}})
    sim = make_site()
    ctx = support.context(clock)
    site_id = courier_order(sim, (TEA, 4))
    async with site_task(db, sim, ctx) as task:
        await task.bring_in(str(site_id))
        sim.delete_order(site_id)  # sale.order.get answers "order does not exist" from now on
        for name in ("ONSALEBEFOREORDERDELETE", "ONORDERDELETED"):
            await site_inbox.store_event(db.uow, name, str(site_id), None, "{}", ctx)
        assert await task.apply_due() == 2

    order = await hub_order(db, site_id)
    assert order is not None and order.status is OrderStatus.CANCELLED
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(10), D(0))


async def test_the_hubs_own_orders_on_the_site_are_never_imported(
    db: Database, clock: support.Clock
) -> None:
    await support.seed_network(db, {"WH1": {"TEA": 10}})
    ctx = support.context(clock)
    mine = await place_order(
        db.placement_uow,
        PlaceOrder(
            Channel.OPERATOR, Fulfillment.DELIVERY, (LineInput(ProductRef(sku="TEA"), D(1)),)
        ),
        ctx,
    )
    assert isinstance(mine, Order)
    sim = make_site()
    mirrored = courier_order(sim, (TEA, 1), xml_id=mine.id)  # as the bitrix sink writes it
    async with site_task(db, sim, ctx) as task:
        await site_inbox.store_event(db.uow, "ONSALEORDERSAVED", str(mirrored), mine.id, "{}", ctx)
        await task.apply_due()
        assert (await task.bring_in(str(mirrored))).outcome == "own"
        assert await task.poll() == 0

    assert await hub_orders(db) == []
    assert "sale.order.get" in sim.methods_called()  # only the direct call above read it


async def test_a_failing_site_call_leaves_the_event_for_a_retry_with_backoff(
    db: Database, clock: support.Clock
) -> None:
    await support.seed_network(db, {"WH1": {"TEA": 10}})
    sim = make_site()
    ctx = support.context(clock)
    site_id = courier_order(sim, (TEA, 1))
    sim.fail_next("sale.order.get", "INTERNAL_SERVER_ERROR", "down", status=500)
    async with site_task(db, sim, ctx) as task:
        await site_inbox.store_event(db.uow, "ONSALEORDERSAVED", str(site_id), None, "{}", ctx)
        await task.apply_due()
        assert await hub_orders(db) == []
        assert await task.apply_due() == 0  # waiting for its backoff
        clock.advance(seconds=3)
        assert await task.apply_due() == 1

    assert await hub_orders(db) == [str(site_id)]


async def test_the_poll_brings_in_orders_whose_events_were_lost_and_keeps_its_watermark(
    db: Database, clock: support.Clock
) -> None:
    await support.seed_network(db, {"WH1": {"TEA": 200}, "S01": {"TEA": 5}})
    sim = make_site()
    placed = [courier_order(sim, (TEA, 1)) for _ in range(120)]  # three pages of the list
    pickup = sim.place_order([SiteLine(TEA, 2, 100, store_id=71)], delivery_id=PICKUP)
    ctx = support.context(clock)
    async with site_task(db, sim, ctx) as task:
        assert await task.poll() == 121
    async with site_task(db, sim, ctx) as task:  # a restart: the watermark was kept
        gets = sim.methods_called().count("sale.order.get")
        assert await task.poll() == 0
        assert sim.methods_called().count("sale.order.get") == gets
        sim.pay_order(placed[0])
        assert await task.poll() == 1

    assert sorted(await hub_orders(db), key=int) == [str(x) for x in [*placed, pickup]]
    at_store = await hub_order(db, pickup)
    assert at_store is not None and at_store.fulfillment is Fulfillment.PICKUP
    assert held(at_store) == {"TEA": D(2)}
    first = await hub_order(db, placed[0])
    assert first is not None and first.payment_status is PaymentStatus.PAID


async def test_a_poll_the_site_refuses_midway_keeps_its_watermark_and_the_next_one_catches_up(
    db: Database, clock: support.Clock
) -> None:
    await support.seed_network(db, {"WH1": {"TEA": 200}})
    sim = make_site()
    placed = [courier_order(sim, (TEA, 1)) for _ in range(60)]
    ctx = support.context(clock)
    async with site_task(db, sim, ctx) as task:
        sim.fail_next("sale.order.list", "QUERY_LIMIT_EXCEEDED", "Too many requests", status=503)
        assert await task.poll() == 0
        assert await task.poll() == 60

    assert sorted(await hub_orders(db), key=int) == [str(x) for x in placed]


async def test_a_saved_event_of_an_order_deleted_since_is_done_not_failed(
    db: Database, clock: support.Clock
) -> None:
    await support.seed_network(db, {"WH1": {"TEA": 10}})
    sim = make_site()
    ctx = support.context(clock)
    site_id = courier_order(sim, (TEA, 1))
    sim.delete_order(site_id)
    async with site_task(db, sim, ctx) as task:
        inbox_id = await site_inbox.store_event(
            db.uow, "ONSALEORDERSAVED", str(site_id), None, "{}", ctx
        )
        assert await task.apply_due() == 1
        assert await task.apply_due() == 0

    [row] = await dbstate.rows(db, bitrix_inbox, bitrix_inbox.c.id == inbox_id)
    assert (row.state, row.error) == ("done", None)
    assert await hub_orders(db) == []


async def test_applied_site_events_are_pruned_after_a_week_and_failed_ones_kept(
    db: Database,
) -> None:
    ctx = support.context()
    now = ctx.clock()
    async with db.uow() as uow:
        for n, (state, age) in enumerate(
            [("done", 8), ("done", 1), ("failed", 30), ("pending", 9)]
        ):
            await uow.conn.execute(
                insert(bitrix_inbox).values(
                    event="ONSALEORDERSAVED", site_order_id=str(n), body="{}", state=state,
                    received_at=now - timedelta(days=age),
                    applied_at=now - timedelta(days=age) if state == "done" else None,
                )
            )  # fmt: skip
        await uow.commit()

    assert await site_inbox.prune(db.uow, ctx) == 1

    async with db.uow_read() as uow:
        left = (await uow.conn.execute(select(bitrix_inbox.c.site_order_id))).scalars().all()
    assert sorted(left) == ["1", "2", "3"]
