"""Hub -> site through the relay and the configured Bitrix sink, against the site simulator on
both databases: the sellable figure follows a phone order's hold and its release (the site's own
orders' holds stay in it), "physical" keeps on_hand, a till sale in `order` mode and an
operator order are recorded on the site once however often the delivery is retried, their
statuses follow, and a short site order is moved to the configured status."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ordersync.config import Settings
from ordersync.db import catalog, site_out
from ordersync.db.tables import outbox_events
from ordersync.db.unit_of_work import Database
from ordersync.domain import events as ev
from ordersync.domain.commands import RecordPosSale
from ordersync.domain.types import Channel, OrderStatus
from ordersync.entrypoints.cli import _apply_store_settings
from ordersync.relay.configured import build_sinks
from ordersync.relay.worker import Relay
from ordersync.services.attention import raise_attention
from ordersync.services.lookup import locked_order
from ordersync.services.orders import change_status, pay_order
from ordersync.services.pos import record_pos_sale
from ordersync.sinks.base import OutboxEvent, Sink
from tests import support
from tests.bitrix_sim import BitrixSim
from tests.bitrix_sim_orders import SimOrder
from tests.integration.test_order_lifecycle import delivery, lines, pickup, place
from tests.integration.test_relay import FAST, drain

IBLOCK = 14
SOLD_AT = datetime(2026, 11, 28, 9, 15, 30, tzinfo=UTC)
TEA, COFFEE = 501, 502  # the site's product ids
WH1, S01, S02 = 71, 72, 73  # the site's store ids


def site() -> BitrixSim:
    sim = BitrixSim(iblock_id=IBLOCK)
    sim.add_product(TEA, "1c-tea")
    sim.add_product(COFFEE, "1c-coffee")
    for site_id, code in ((WH1, "WH1"), (S01, "S01"), (S02, "S02")):
        sim.add_store(site_id, code)  # the seeded stores' Ид is their code
    sim.add_status("W")  # "awaiting stock"
    return sim


@pytest.fixture
async def http() -> AsyncIterator[list[httpx.AsyncClient]]:
    clients: list[httpx.AsyncClient] = []
    yield clients
    for client in clients:
        await client.aclose()


async def relay_to(
    db: Database, sim: BitrixSim, clients: list[httpx.AsyncClient], **site_conf: Any
) -> tuple[Relay, Sink]:
    """The relay as `serve` and `worker` build it from the settings: [bitrix] with a url and
    no Bitrix sink configured gives the sink "bitrix"."""
    site_conf = {
        "url": sim.webhook_url,
        "iblock_id": IBLOCK,
        "push_statuses": {"shipped": "D", "cancelled": "N"},
        "short_status": "W",
        **site_conf,
    }
    conf = Settings(master="hub", bitrix=site_conf)  # type: ignore[arg-type]
    client = httpx.AsyncClient(transport=sim.transport())
    clients.append(client)
    sinks = await build_sinks(db, conf.sinks, bitrix=conf.bitrix, bitrix_client=client)
    assert set(sinks) == {"bitrix"}
    return Relay(db, sinks, FAST), sinks["bitrix"]


def mirrored(sim: BitrixSim, hub_id: str) -> list[SimOrder]:
    return [o for o in sim.orders.values() if o.xml_id == hub_id]


async def till_sale(db: Database, transaction: str, *items: tuple[str, int]) -> str:
    cmd = RecordPosSale("S01", "till-1", transaction, lines(*items), SOLD_AT)
    result = await record_pos_sale(db.uow, cmd, support.context())
    assert isinstance(result, dict) and result["order_id"]
    return str(result["order_id"])


# --- the stock figure ----------------------------------------------------------------------


async def test_the_site_is_sent_what_it_may_sell_and_follows_a_phone_orders_hold(
    db: Database, http: list[httpx.AsyncClient]
) -> None:
    await support.seed_network(db, {"WH1": {"TEA": 10}, "S01": {"TEA": 5}})
    sim = site()
    relay, _ = await relay_to(db, sim, http, mirror_channels=[])
    await drain(relay)
    assert sim.amount(TEA, WH1) == D(10)
    assert sim.amount(TEA, S01) == D(4)  # S01 keeps a safety stock of 1

    phone = await place(db, delivery(("TEA", 3), channel=Channel.OPERATOR))
    await drain(relay)
    assert sim.amount(TEA, WH1) == D(7)  # the phone order's hold is taken off

    site_order = await place(db, delivery(("TEA", 2), external_id="1042"))
    await drain(relay)
    assert sim.amount(TEA, WH1) == D(7)  # the site's own order: the site reserves it itself

    await change_status(db.uow, phone.id, OrderStatus.CANCELLED, support.context())
    await drain(relay)
    assert sim.amount(TEA, WH1) == D(10)  # released: the site may sell it again
    assert site_order.id


async def test_physical_mode_sends_on_hand_whatever_is_held(
    db: Database, http: list[httpx.AsyncClient]
) -> None:
    await support.seed_network(db, {"WH1": {"TEA": 10}, "S01": {"TEA": 5}})
    sim = site()
    relay, _ = await relay_to(db, sim, http, mirror_channels=[], stock_figure="physical")
    await place(db, delivery(("TEA", 3), channel=Channel.OPERATOR))
    await drain(relay)
    assert sim.amount(TEA, WH1) == D(10)
    assert sim.amount(TEA, S01) == D(5)


async def test_the_figure_is_read_when_delivered_not_taken_from_an_old_event(
    db: Database, http: list[httpx.AsyncClient]
) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 10}})
    sim = site()
    _relay, sink = await relay_to(db, sim, http, mirror_channels=[])
    await place(db, delivery(("TEA", 4), channel=Channel.OPERATOR))
    tea, wh1 = net.products["TEA"], net.stores["WH1"]
    stale = ev.stock_changed(tea, wh1, D(100), D(0), "receipt", "doc", "OLD-1")
    event = OutboxEvent(1, ev.STOCK_CHANGED, "stock", f"{tea}:{wh1}", stale, datetime.now(UTC))

    await sink.deliver([event])  # a retry of an event written long ago

    assert sim.amount(TEA, WH1) == D(6)


# --- mirrored orders -----------------------------------------------------------------------


async def test_a_till_sale_appears_on_the_site_once_however_often_the_sink_retries(
    db: Database, http: list[httpx.AsyncClient]
) -> None:
    await support.seed_network(db, {"S01": {"TEA": 5, "COFFEE": 5}})
    sim = site()
    relay, _ = await relay_to(db, sim, http)
    sim.lose_answer("sale.order.add", times=2)  # the site adds it, the hub never hears back

    order_id = await till_sale(db, "T-77", ("TEA", 2), ("COFFEE", 1), ("MUG", 1))
    await drain(relay)
    await drain(relay)

    [order] = mirrored(sim, order_id)
    assert order.status_id == "F" and not order.canceled
    assert sorted((i.product_id, i.quantity) for i in order.basket) == [
        (0, 1),  # the site has no mug: a line by name (productId 0)
        (TEA, 2),
        (COFFEE, 1),
    ]
    assert [i.name for i in order.basket if i.product_id == 0] == ["Mug"]
    assert [(p.paid, p.sum) for p in order.payments] == [(True, order.price)]
    assert json.loads(order.additional_info) == {
        "source": "offline",
        "store": "S01",
        "pos_transaction_id": "T-77",
    }
    assert sim.methods_called().count("sale.order.add") == 1
    assert order.external_order
    assert order.date_insert.astimezone(UTC) == SOLD_AT


async def test_an_order_added_half_way_is_completed_by_the_retry(
    db: Database, http: list[httpx.AsyncClient]
) -> None:
    await support.seed_network(db, {"S01": {"TEA": 5, "COFFEE": 5}})
    sim = site()
    relay, _ = await relay_to(db, sim, http)
    sim.fail_next("sale.payment.add", "INTERNAL_SERVER_ERROR", "try later", 500)

    order_id = await till_sale(db, "T-78", ("TEA", 1), ("COFFEE", 2))
    await drain(relay)

    [order] = mirrored(sim, order_id)
    assert len(order.basket) == 2
    assert [p.paid for p in order.payments] == [True]
    assert sim.methods_called().count("sale.order.add") == 1


async def test_an_operator_order_is_mirrored_and_its_status_follows(
    db: Database, http: list[httpx.AsyncClient]
) -> None:
    await support.seed_network(db, {"S01": {"TEA": 5}})
    sim = site()
    relay, _ = await relay_to(db, sim, http)
    kept = await place(db, pickup("S01", ("TEA", 1), channel=Channel.OPERATOR))
    dropped = await place(db, pickup("S01", ("TEA", 1), channel=Channel.OPERATOR))
    await drain(relay)
    [site_kept] = mirrored(sim, kept.id)
    assert site_kept.status_id == "N" and [p.paid for p in site_kept.payments] == [False]
    assert json.loads(site_kept.additional_info)["source"] == "operator"

    await pay_order(db.uow, kept.id, support.context())
    await change_status(db.uow, kept.id, OrderStatus.SHIPPED, support.context())
    await drain(relay)
    assert mirrored(sim, kept.id)[0].status_id == "D"
    assert [p.paid for p in mirrored(sim, kept.id)[0].payments] == [True]
    assert mirrored(sim, kept.id)[0].payed
    await change_status(db.uow, kept.id, OrderStatus.COMPLETED, support.context())
    await change_status(db.uow, dropped.id, OrderStatus.CANCELLED, support.context())
    await drain(relay)

    assert mirrored(sim, kept.id)[0].status_id == "F"
    assert mirrored(sim, dropped.id)[0].canceled
    assert len(sim.orders) == 2


async def test_channels_left_out_of_mirror_channels_are_not_sent(
    db: Database, http: list[httpx.AsyncClient]
) -> None:
    await support.seed_network(db, {"S01": {"TEA": 5}})
    sim = site()
    relay, _ = await relay_to(db, sim, http, mirror_channels=["pos"])
    await place(db, pickup("S01", ("TEA", 1), channel=Channel.OPERATOR))
    await place(db, pickup("S01", ("TEA", 1)))  # an online order not from the site
    await till_sale(db, "T-79", ("TEA", 1))
    await drain(relay)
    assert [json.loads(o.additional_info)["source"] for o in sim.orders.values()] == ["offline"]


# --- statuses of the site's own orders ------------------------------------------------------


async def test_a_short_site_order_moves_to_the_short_status_and_then_follows(
    db: Database, http: list[httpx.AsyncClient]
) -> None:
    await support.seed_network(db, {"WH1": {"TEA": 5}})
    sim = site()
    sim.add_order(1042)
    relay, _ = await relay_to(db, sim, http)
    order = await place(db, delivery(("TEA", 1), external_id="1042"))
    async with db.uow() as uow:
        locked = await locked_order(uow, order.id)
        await raise_attention(uow, locked, "site_order_short", {"lines": []}, datetime.now(UTC))
        await uow.commit()
    await drain(relay)
    assert sim.orders[1042].status_id == "W"

    await change_status(db.uow, order.id, OrderStatus.SHIPPED, support.context())
    await drain(relay)
    assert sim.orders[1042].status_id == "D"
    assert len(sim.orders) == 1  # a site order is never mirrored back


async def test_a_new_safety_stock_reaches_the_site_for_every_product_of_the_store(
    db: Database, http: list[httpx.AsyncClient]
) -> None:
    await support.seed_network(db, {"S01": {"TEA": 5, "COFFEE": 3}, "WH1": {"TEA": 9}})
    sim = site()
    relay, _ = await relay_to(db, sim, http, mirror_channels=[])
    await drain(relay)
    assert (sim.amount(TEA, S01), sim.amount(COFFEE, S01)) == (D(4), D(2))  # safety 1

    async with db.uow() as uow:
        s01 = await catalog.store_by_code(uow.conn, "S01")
        assert s01 is not None
        await catalog.update_store(uow.conn, s01.id, {"safety_stock": D(2)}, datetime.now(UTC))
        written = await site_out.announce_store_levels(uow.conn, s01.id, "S01", datetime.now(UTC))
        await uow.commit()
    await drain(relay)

    assert written == 2
    assert (sim.amount(TEA, S01), sim.amount(COFFEE, S01)) == (D(3), D(1))
    assert sim.amount(TEA, WH1) == D(9)


async def test_a_safety_stock_from_the_config_file_reaches_the_site_at_startup(
    db: Database, http: list[httpx.AsyncClient], database_url: str
) -> None:
    await support.seed_network(db, {"S01": {"TEA": 5}})
    sim = site()
    relay, _ = await relay_to(db, sim, http, mirror_channels=[])
    conf = Settings(master="hub", database_url=database_url, stores={"S01": {"safety_stock": 3}})  # type: ignore[arg-type]

    await _apply_store_settings(conf, db)
    await _apply_store_settings(conf, db)  # the next start: nothing changed, nothing written
    await drain(relay)

    assert sim.amount(TEA, S01) == D(2)
    async with db.uow_read() as uow:
        rows = await uow.conn.execute(select(outbox_events.c.payload))
        reasons = [r.payload.get("reason") for r in rows]
    assert reasons.count("safety_stock") == 1


async def test_many_till_sales_are_recorded_in_a_few_calls(
    db: Database, http: list[httpx.AsyncClient]
) -> None:
    await support.seed_network(db, {"S01": {"TEA": 100}})
    sim = site()
    _, sink = await relay_to(db, sim, http)
    ids = [await till_sale(db, f"T-{n}", ("TEA", 1)) for n in range(20)]
    created = [
        OutboxEvent(n, ev.ORDER_CREATED, "order", order_id,
                    {"order_id": order_id, "channel": "pos", "source": "offline",
                     "pos_transaction_id": f"T-{n}", "store_id": None},
                    datetime.now(UTC))
        for n, order_id in enumerate(ids)
    ]  # fmt: skip

    await sink.deliver(created)
    calls = sim.http_requests
    await sink.deliver(created)  # delivered again: found, nothing added

    assert sorted(o.xml_id for o in sim.orders.values()) == sorted(ids)
    assert calls <= 4  # the lookup, the product names, 60 commands in two batches
    assert sim.http_requests - calls <= 3  # the lookup and one read of every order
    assert all(len(o.basket) == 1 and len(o.payments) == 1 for o in sim.orders.values())
