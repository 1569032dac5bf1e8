"""The console's read models on both databases: customer keys written by every way an order
is written, the orders page (newest first, keyset, filters, store scope), an order's
timeline and its pruning, a store's pick list and lowest-first stock, and the live stream's
broadcaster (one read per round, only what each screen may see, ids that commit late)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ordersync.db import (
    console_orders,
    console_stock,
    console_system,
    order_timeline,
    outbox_reader,
    pick_list,
)
from ordersync.db.tables import bitrix_inbox, bitrix_watermarks, orders, outbox_events
from ordersync.db.tables import order_timeline as timeline_table
from ordersync.db.unit_of_work import Database
from ordersync.domain.commands import LineInput, PlaceOrder, ProductRef, RecordPosSale
from ordersync.domain.orders import Order
from ordersync.domain.types import Channel, Fulfillment, OrderStatus
from ordersync.services.context import utcnow
from ordersync.services.orders import change_status, pay_order, place_order
from ordersync.services.pos import record_pos_sale
from ordersync.ui import live
from ordersync.ui.live import Broadcaster, Watch
from tests import support

STOCK = {"WH1": {"TEA": 100, "MUG": 5}, "S01": {"TEA": 20, "MUG": 1}, "S02": {"TEA": 10}}


def cmd(
    fulfillment: Fulfillment = Fulfillment.DELIVERY,
    store: str | None = None,
    customer: dict[str, str] | None = None,
    channel: Channel = Channel.OPERATOR,
    sku: str = "TEA",
    qty: int = 1,
) -> PlaceOrder:
    return PlaceOrder(
        channel, fulfillment, (LineInput(ProductRef(sku=sku), Decimal(qty)),), store,
        customer or {},
    )  # fmt: skip


async def place(db: Database, command: PlaceOrder) -> Order:
    result = await place_order(db.placement_uow, command, support.context())
    assert isinstance(result, Order)
    return result


async def page(db: Database, **query: object) -> list[console_orders.OrderRow]:
    async with db.connect(autocommit=True) as conn:
        return await console_orders.order_page(conn, console_orders.OrderQuery(**query))  # type: ignore[arg-type]


async def test_the_customer_keys_are_written_by_placement_and_by_till_sales(db: Database) -> None:
    await support.seed_network(db, STOCK)
    order = await place(db, cmd(customer={"name": "  Пётр ИВАНОВ", "phone": "8 (916) 000-11-22"}))
    sale = RecordPosSale("S01", "till-1", "T-1", (LineInput(ProductRef(sku="TEA"), Decimal(1)),),
                         utcnow())  # fmt: skip
    await record_pos_sale(db.uow, sale, support.context())
    async with db.connect(autocommit=True) as conn:
        rows = {
            r.id: (r.customer_phone, r.customer_name) for r in await conn.execute(select(orders))
        }
    assert rows.pop(order.id) == ("79160001122", "петр иванов")
    assert list(rows.values()) == [(None, None)]  # the till sale: no customer


async def test_the_orders_page_is_newest_first_with_a_keyset_and_filters(db: Database) -> None:
    net = await support.seed_network(db, STOCK)
    placed = [await place(db, cmd()) for _ in range(5)]
    pickup = await place(db, cmd(Fulfillment.PICKUP, "S02", channel=Channel.ONLINE))
    await change_status(db.uow, placed[0].id, OrderStatus.CANCELLED, support.context())

    first = await page(db, limit=4)
    assert [r.number for r in first] == [6, 5, 4, 3]
    after = first[-1]
    rest = await page(db, limit=4, before=(after.created_at, after.id))
    assert [r.number for r in rest] == [2, 1]
    assert [r.number for r in await page(db, channel=Channel.ONLINE)] == [pickup.number]
    assert [r.number for r in await page(db, status=OrderStatus.CANCELLED)] == [1]
    s02 = net.stores["S02"]
    assert [r.number for r in await page(db, store_id=s02)] == [pickup.number]
    assert [r.number for r in await page(db, visible_stores=frozenset({s02}))] == [pickup.number]
    (row,) = await page(db, search=str(pickup.number))
    assert row.stores == {s02} and row.fulfillment is Fulfillment.PICKUP


async def test_the_timeline_keeps_an_orders_events_and_is_pruned_by_age(db: Database) -> None:
    await support.seed_network(db, STOCK)
    order = await place(db, cmd(Fulfillment.PICKUP, "S01"))
    await pay_order(db.uow, order.id, support.context())
    await change_status(db.uow, order.id, OrderStatus.COMPLETED, support.context())
    async with db.connect(autocommit=True) as conn:
        entries = await order_timeline.timeline_of(conn, order.id)
    assert [e.type for e in entries] == ["order.created", "order.paid", "order.status_changed"]
    assert entries[0].payload["number"] == order.number
    assert entries[2].payload["to"] == "completed"

    async with db.uow() as uow:
        assert await order_timeline.prune(uow.conn, utcnow() - timedelta(days=1)) == 0
        assert await order_timeline.prune(uow.conn, utcnow() + timedelta(seconds=1)) == 3
        await uow.commit()
    async with db.connect(autocommit=True) as conn:
        assert (await conn.execute(select(timeline_table))).all() == []


async def test_a_pick_list_holds_the_orders_with_stock_held_at_the_store(db: Database) -> None:
    net = await support.seed_network(db, STOCK)
    mine = await place(db, cmd(Fulfillment.PICKUP, "S01", {"name": "A"}, qty=2))
    other = await place(db, cmd(Fulfillment.PICKUP, "S02"))
    done = await place(db, cmd(Fulfillment.PICKUP, "S01"))
    await change_status(db.uow, done.id, OrderStatus.COMPLETED, support.context())
    delivery = await place(db, cmd(qty=100))  # all of WH1's TEA
    async with db.connect(autocommit=True) as conn:
        s01 = await pick_list.pick_list(conn, net.stores["S01"])
        wh1 = await pick_list.pick_list(conn, net.stores["WH1"])
    assert [(o.number, [(x.sku, x.quantity) for x in o.lines]) for o in s01] == [
        (mine.number, [("TEA", Decimal(2))])]  # fmt: skip
    assert [o.number for o in wh1] == [delivery.number]
    assert other.number not in [o.number for o in s01]


async def test_a_stores_stock_is_listed_lowest_available_first(db: Database) -> None:
    net = await support.seed_network(db, STOCK)
    async with db.connect(autocommit=True) as conn:
        rows = await console_stock.store_levels(conn, net.stores["WH1"], None, None, 1)
        more = await console_stock.store_levels(
            conn, net.stores["WH1"], None, (rows[0].available, rows[0].product.id), 10
        )
        short = await console_stock.short_levels(conn, None)
    assert [(r.product.sku, r.available) for r in rows + more] == [("MUG", 5), ("TEA", 100)]
    assert short == []


async def next_message(watch: Watch, seconds: float = 2.0) -> tuple[str, str]:
    event, data, _ = await asyncio.wait_for(watch.queue.get(), seconds)
    return event, data


async def test_the_broadcaster_tells_each_screen_what_it_may_see_within_a_second(
    db: Database,
) -> None:
    net = await support.seed_network(db, STOCK)
    rendered: list[int] = []

    def render(rows: list[console_orders.OrderRow], locale: str) -> dict[str, str]:
        rendered.append(len(rows))
        return {r.id: f"<tr>{r.number} {locale}</tr>" for r in rows}

    broadcaster = Broadcaster(db, render, poll_seconds=0.2, interval_seconds=0.05)
    office = Watch("ru", None)
    shop = Watch("en", frozenset({net.stores["S02"]}))
    page_of_order = Watch("ru", None, order_id="")
    try:
        for watch in (office, shop):
            await broadcaster.subscribe(watch)
        order = await place(db, cmd(Fulfillment.PICKUP, "S01"))
        event, data = await next_message(office, 1.0)
        assert event == "orders" and f"<tr>{order.number} ru</tr>" in data
        assert shop.queue.empty()  # S01's order is not S02's to see

        page_of_order.order_id = order.id
        await broadcaster.subscribe(page_of_order)
        theirs = await place(db, cmd(Fulfillment.PICKUP, "S02"))
        event, data = await next_message(shop, 1.0)
        assert f"<tr>{theirs.number} en</tr>" in data
        await change_status(db.uow, order.id, OrderStatus.CANCELLED, support.context())
        event, data = await next_message(page_of_order, 1.0)
        assert event == "order" and order.id in data
    finally:
        await broadcaster.close()
    assert broadcaster.rounds >= 2


async def test_an_order_placed_as_soon_as_a_screen_subscribed_reaches_it(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stream's starting point is fixed before `subscribe` returns: an order committed
    while the broadcaster was still reading where "now" is would otherwise be skipped."""
    await support.seed_network(db, STOCK)
    slow_last_id = outbox_reader.last_id

    read: list[int] = []

    async def last_id_after_a_pause(conn: AsyncConnection) -> int:
        await asyncio.sleep(0.3)  # a busy database
        read.append(await slow_last_id(conn))
        return read[-1]

    monkeypatch.setattr(outbox_reader, "last_id", last_id_after_a_pause)
    broadcaster = Broadcaster(db, lambda rows, _: {r.id: str(r.number) for r in rows},
                              poll_seconds=0.1, interval_seconds=0.05)  # fmt: skip
    watch = Watch("ru", None)
    try:
        await broadcaster.subscribe(watch)
        assert read, "subscribe returned before the stream knew where it starts"
        order = await place(db, cmd())
        _, data = await next_message(watch, 2.0)
        assert f'"html": "{order.number}"' in data
    finally:
        await broadcaster.close()


async def newest_event(db: Database) -> int:
    async with db.connect(autocommit=True) as conn:
        return await outbox_reader.last_id(conn)


async def test_a_screen_behind_the_stream_is_first_told_what_changed_since_its_page(
    db: Database,
) -> None:
    """A page read at event N, whose stream opens later (or reconnects with Last-Event-ID
    N), hears of the orders changed after N that it may see, then of the rest, in order."""
    net = await support.seed_network(db, STOCK)
    broadcaster = Broadcaster(db, lambda rows, loc: {r.id: f"{r.number}" for r in rows},
                              poll_seconds=0.1, interval_seconds=0.02)  # fmt: skip
    already = Watch("ru", None)  # keeps the stream running while the others' pages are read
    try:
        await broadcaster.subscribe(already)
        before = await place(db, cmd(Fulfillment.PICKUP, "S01"))
        await next_message(already)
        page_read_at = await newest_event(db)
        mine = await place(db, cmd(Fulfillment.PICKUP, "S02"))
        not_mine = await place(db, cmd(Fulfillment.PICKUP, "S01"))
        await change_status(db.uow, before.id, OrderStatus.CANCELLED, support.context())
        read_up_to, told_up_to = await newest_event(db), 0
        while told_up_to < read_up_to:  # the stream has read them all
            _, _, told_up_to = await asyncio.wait_for(already.queue.get(), 2)

        office = Watch("ru", None, since=page_read_at)
        shop = Watch("en", frozenset({net.stores["S02"]}), since=page_read_at)
        order_page = Watch("ru", None, order_id=mine.id, since=page_read_at)
        up_to_date = Watch("ru", None, since=read_up_to)
        for watch in (office, shop, order_page, up_to_date):
            await broadcaster.subscribe(watch)
        event, data, told_up_to = await asyncio.wait_for(office.queue.get(), 2)
        shown = [row["html"] for row in json.loads(data)["rows"]]
        assert event == "orders" and told_up_to == read_up_to
        assert shown == [str(o.number) for o in (mine, not_mine, before)]  # oldest change first
        _, data = await next_message(shop)
        assert [row["html"] for row in json.loads(data)["rows"]] == [str(mine.number)]
        event, data = await next_message(order_page)
        assert event == "order" and json.loads(data)["id"] == mine.id
        assert order_page.queue.empty()  # the other orders' changes are not its order's

        later = await place(db, cmd(Fulfillment.PICKUP, "S02"))
        for watch in (office, shop, up_to_date):  # nothing before: up_to_date was caught up
            _, data, told_up_to = await asyncio.wait_for(watch.queue.get(), 2)
            assert str(later.number) in data and told_up_to > read_up_to
        assert all(w.queue.empty() for w in (office, shop, order_page, up_to_date))
    finally:
        await broadcaster.close()


async def test_a_screen_too_far_behind_is_told_to_reload_and_does_not_hold_back_the_others(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Screens behind the stream share one read, newest first: one far behind (a hostile
    since=0, a tab back after hours) is told to reload; one a little behind, caught up in
    the same round, still gets exactly what it missed."""
    await support.seed_network(db, STOCK)
    broadcaster = Broadcaster(db, lambda rows, loc: {r.id: f"{r.number}" for r in rows},
                              poll_seconds=0.1, interval_seconds=0.02)  # fmt: skip
    for _ in range(2):
        await place(db, cmd())
    two_placed = await newest_event(db)
    third = await place(db, cmd())
    per_order = await newest_event(db) - two_placed
    monkeypatch.setattr(live, "READ_LIMIT", per_order + 1)  # the third order's events and one
    far = Watch("ru", None, since=0)
    far_order = Watch("ru", None, order_id="no-such-order", since=0)
    near = Watch("ru", None, since=two_placed)
    try:
        for watch in (far, far_order, near):  # nothing awaited: one round takes all three
            await broadcaster.subscribe(watch)
        event, data = await next_message(far)
        assert event == "orders" and json.loads(data)["more"] is True
        event, data = await next_message(far_order)
        assert event == "order" and json.loads(data)["version"] is None  # offers to reload
        event, data = await next_message(near)
        told = json.loads(data)
        assert [r["html"] for r in told["rows"]] == [str(third.number)] and not told["more"]
        assert broadcaster.rounds == 1
    finally:
        await broadcaster.close()


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_page_read_while_an_earlier_id_is_uncommitted_is_marked_before_it(
    db: Database,
) -> None:
    """On PostgreSQL an event id can commit after a higher one: a page's `since` stays below
    an id still open, so the screen is told of it once it commits."""
    await support.seed_network(db, STOCK)
    async with db.uow() as slow:  # takes an event id and keeps its transaction open
        await slow.conn.execute(
            insert(outbox_events).values(type="order.created", aggregate_type="order",
                                         aggregate_id="x", payload={}, created_at=utcnow())
        )  # fmt: skip
        open_id = int((await slow.conn.execute(select(func.max(outbox_events.c.id)))).scalar_one())
        order = await place(db, cmd())  # a higher id, committed first
        async with db.connect(autocommit=True) as conn:
            assert await outbox_reader.last_id(conn) > open_id
            mark = await live.page_mark(db, conn)
        assert mark < open_id  # the transaction then rolls back: nothing committed at open_id
    del order


async def test_the_broadcaster_asks_again_for_ids_skipped_when_it_read(db: Database) -> None:
    """An id read past before its transaction committed is asked for again (PostgreSQL)."""
    await support.seed_network(db, STOCK)
    broadcaster = Broadcaster(db, lambda rows, _: {r.id: str(r.number) for r in rows})
    watch = Watch("ru", None)
    broadcaster.watches.add(watch)
    first = await place(db, cmd())
    second = await place(db, cmd())
    async with db.connect(autocommit=True) as conn:
        ids = [r.event_id for r in await conn.execute(select(timeline_table.c.event_id))]
    # As if the first order's event was not committed when the stream read past it:
    broadcaster._last_id = min(ids) - 1
    broadcaster._remember_gaps([max(ids)], 0.0)
    broadcaster._last_id = max(ids)
    assert min(ids) in broadcaster._gaps
    broadcaster._gaps = {i: float("inf") for i in broadcaster._gaps}
    # A screen that came back with an id past one still awaited would never hear of it:
    assert broadcaster._settled(broadcaster._last_id) == min(ids) - 1
    await broadcaster.round()
    _, data, told_up_to = watch.queue.get_nowait()
    assert f'"html": "{first.number}"' in data and min(ids) not in broadcaster._gaps
    assert told_up_to == broadcaster._last_id  # nothing awaited any more
    del second


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_nothing_is_read_while_no_screen_watches(db: Database) -> None:
    await support.seed_network(db, STOCK)
    broadcaster = Broadcaster(db, lambda rows, _: {}, poll_seconds=0.05, interval_seconds=0.01)
    watch = Watch("ru", None)
    await broadcaster.subscribe(watch)
    await asyncio.sleep(0.2)
    broadcaster.unsubscribe(watch)
    await asyncio.sleep(0.2)
    rounds = broadcaster.rounds
    await place(db, cmd())
    await asyncio.sleep(0.3)
    assert broadcaster.rounds == rounds
    assert broadcaster._wake not in db.commit_watchers


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_screens_that_connect_at_once_start_one_reading_loop(db: Database) -> None:
    await support.seed_network(db, STOCK)
    broadcaster = Broadcaster(db, lambda rows, _: {}, poll_seconds=0.05, interval_seconds=0.01)
    watches = [Watch("ru", None) for _ in range(20)]
    await asyncio.gather(*(broadcaster.subscribe(w) for w in watches))

    def loops() -> int:
        return sum(
            1 for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "Broadcaster._run"
        )  # type: ignore[union-attr]

    assert loops() == 1
    for w in watches:
        broadcaster.unsubscribe(w)
    await broadcaster.subscribe(watches[0])  # again before the loop noticed: still one
    await asyncio.sleep(0.2)
    assert loops() == 1
    broadcaster.unsubscribe(watches[0])
    await asyncio.sleep(0.2)
    assert loops() == 0
    await broadcaster.close()


async def test_the_bitrix_sites_last_contact_is_its_newest_event_or_answered_poll(
    db: Database,
) -> None:
    now = utcnow()
    async with db.uow_read() as uow:
        assert (await console_system.last_contacts(uow.conn))["bitrix"] is None
    async with db.uow() as uow:
        await uow.conn.execute(
            insert(bitrix_watermarks).values(name="orders", polled_at=now - timedelta(hours=1))
        )
        await uow.commit()
    async with db.uow_read() as uow:
        assert (await console_system.last_contacts(uow.conn))["bitrix"] == now - timedelta(hours=1)
    async with db.uow() as uow:
        await uow.conn.execute(
            insert(bitrix_inbox).values(
                event="ONSALEORDERSAVED",
                site_order_id="7",
                body="{}",
                state="done",
                received_at=now,
            )
        )
        await uow.commit()
    async with db.uow_read() as uow:
        assert (await console_system.last_contacts(uow.conn))["bitrix"] == now
