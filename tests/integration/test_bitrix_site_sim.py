"""The Bitrix site simulator (tests/bitrix_sim.py) on its own: orders read back through the
channel's readers, sale.order.list filters and paging, versions and dateUpdate, events for every
save (REST ones included) with a share dropped, late commits against the polling rule, deleted
orders, its reservations per store, and the reference lists."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from ordersync.channels.bitrix import (
    BitrixEvent,
    HubCatalog,
    MappingConfig,
    OrderListPage,
    OrderStamp,
    first_page,
    map_site_order,
    next_page,
    next_watermark,
    read_event,
    read_order,
    read_order_list,
)
from ordersync.domain.errors import Unauthorized
from ordersync.domain.types import Fulfillment
from ordersync.services.ids import uuid7
from ordersync.sinks.bitrix_rest import BitrixError, BitrixRest
from tests.bitrix_sim import BitrixSim, ProtocolError, SiteLine, SiteRefused
from tests.bitrix_sim_orders import SITE_TZ

T0 = datetime(2026, 3, 2, 12, 0, 0, tzinfo=SITE_TZ)
HOOK = "https://hub.example/bitrix/events"


def make_site(**options: Any) -> BitrixSim:
    sim = BitrixSim(clock=lambda: T0, **options)
    for n in (1, 2, 3):
        sim.add_product(500 + n, f"prod-{n}", price=100 * n)
    sim.add_store(71, "store-1", code="msk-1")
    sim.add_store(72, "store-2", code="msk-2")
    return sim


@pytest.fixture
async def clients() -> AsyncIterator[list[httpx.AsyncClient]]:
    made: list[httpx.AsyncClient] = []
    yield made
    for client in made:
        await client.aclose()


@pytest.fixture
def rest(clients: list[httpx.AsyncClient]) -> Callable[[BitrixSim], BitrixRest]:
    def connect(sim: BitrixSim) -> BitrixRest:
        client = httpx.AsyncClient(transport=sim.transport())
        clients.append(client)
        return BitrixRest(sim.webhook_url, client=client)

    return connect


async def raw(rest: BitrixRest, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """The whole answer (result, next, total), which BitrixRest.call trims to result."""
    response = await rest.client.post(f"{rest.base}{method}.json", json=params)
    body: dict[str, Any] = response.json()
    body["status"] = response.status_code
    return body


def receiver(token: str) -> tuple[FastAPI, list[BitrixEvent]]:
    """A stand-in for the hub's POST /bitrix/events: the channel's reader, 401 on a bad token."""
    app = FastAPI()
    received: list[BitrixEvent] = []

    @app.post("/bitrix/events")
    async def events(request: Request) -> Response:
        try:
            received.append(read_event(await request.body(), token))
        except Unauthorized:
            return Response(status_code=401)
        return Response(status_code=200)

    return app, received


def customer_order(sim: BitrixSim, **options: Any) -> int:
    return sim.place_order(
        [SiteLine(501, 2, "150.50", store_id=71), SiteLine(502, 1, 99)],
        delivery_id=options.pop("delivery_id", 3),
        pay_system_id=options.pop("pay_system_id", 3),
        properties={"FIO": "Ivan Petrov", "PHONE": "+7 900 000-00-01", "EMAIL": "i@p.ru"},
        **options,
    )


# --- orders as sale.order.get gives them --------------------------------------------------


async def test_a_site_order_reads_back_and_maps_to_a_pickup_at_its_reserved_store(
    rest: Callable[[BitrixSim], BitrixRest],
) -> None:
    sim = make_site()
    order_id = customer_order(sim)
    client = rest(sim)
    body = await raw(client, "sale.order.get", {"id": order_id})
    shown = body["result"]["order"]
    assert isinstance(shown["id"], int) and isinstance(shown["basketItems"][0]["id"], str)
    assert shown["basketItems"][0]["orderId"] == str(order_id)
    assert [s["system"] for s in shown["shipments"]] == ["N"]  # the system one is not shown
    assert shown["dateUpdate"] == "2026-03-02T12:00:00+03:00"
    order = read_order(body["result"])
    assert (order.id, order.version, order.price) == (str(order_id), 0, Decimal("400.00"))
    assert order.account_number != order.id
    assert [(i.product_xml_id, i.quantity, i.price) for i in order.basket] == [
        ("prod-1", Decimal(2), Decimal("150.5")),
        ("prod-2", Decimal(1), Decimal(99)),
    ]
    assert [(r.store_id, r.quantity) for r in order.basket[0].reservations] == [("71", Decimal(2))]
    stores = await client.call("catalog.store.list", {"select": ["id", "xmlId"]})
    hub = HubCatalog(
        products={"prod-1", "prod-2"},
        stores={"store-1": "S1", "store-2": "S2"},
        site_stores={str(s["id"]): s["xmlId"] for s in stores["stores"]},
    )
    command = map_site_order(
        order, MappingConfig.build(pickup_deliveries=[3], cod_pay_systems=[3]), hub
    )
    assert (command.fulfillment, command.store_code, command.complete) == (
        Fulfillment.PICKUP,
        "S1",
        True,
    )
    assert command.confirmed and not command.paid
    assert command.customer == {
        "name": "Ivan Petrov",
        "phone": "+7 900 000-00-01",
        "email": "i@p.ru",
    }


async def test_the_system_shipment_is_shown_first_only_when_the_site_is_built_so(
    rest: Callable[[BitrixSim], BitrixRest],
) -> None:
    sim = make_site(show_system_shipment=True)
    order_id = customer_order(sim, delivery_id=2)
    body = await raw(rest(sim), "sale.order.get", {"id": order_id})
    assert [s["system"] for s in body["result"]["order"]["shipments"]] == ["Y", "N"]
    order = read_order(body["result"])
    assert [s.delivery_id for s in order.delivery_shipments] == ["2"]


async def test_each_change_raises_the_version_and_date_update_and_an_empty_one_does_not(
    rest: Callable[[BitrixSim], BitrixRest],
) -> None:
    sim = make_site()
    order_id = customer_order(sim)
    client = rest(sim)
    sim.advance(5)
    updated = await client.call("sale.order.update", {"id": order_id, "fields": {"statusId": "P"}})
    assert (updated["order"]["version"], updated["order"]["dateUpdate"]) == (
        1,
        "2026-03-02T12:00:05+03:00",
    )
    sim.advance(5)
    again = await client.call("sale.order.update", {"id": order_id, "fields": {"statusId": "P"}})
    assert (again["order"]["version"], again["order"]["dateUpdate"]) == (
        1,
        "2026-03-02T12:00:05+03:00",
    )
    sim.set_status(order_id, "F")
    assert sim.orders[order_id]["version"] == 2
    saved = [e for e in sim.events.fired if e.name == "ONSALEORDERSAVED"]
    assert len(saved) == 4  # placing, two REST updates (one changing nothing), the admin


async def test_an_update_with_an_undocumented_field_or_a_bad_flag_fails_the_test(
    rest: Callable[[BitrixSim], BitrixRest],
) -> None:
    sim = make_site()
    order_id = customer_order(sim)
    client = rest(sim)
    with pytest.raises(ProtocolError):
        await client.call("sale.order.update", {"id": order_id, "fields": {"payed": "Y"}})
    with pytest.raises(ProtocolError):
        await client.call("sale.order.update", {"id": order_id, "fields": {"canceled": True}})


# --- sale.order.list ----------------------------------------------------------------------


async def test_list_filters_with_the_documented_prefixes(
    rest: Callable[[BitrixSim], BitrixRest],
) -> None:
    sim = make_site()
    ids = []
    for n in range(6):
        ids.append(customer_order(sim, status_id="N" if n % 2 else "P"))
        sim.advance(10)
    client = rest(sim)

    async def listed(flt: dict[str, Any], **more: Any) -> list[int]:
        result = await client.call("sale.order.list", {"filter": flt, **more})
        return [row["id"] for row in result["orders"]]

    assert await listed({">=dateUpdate": "2026-03-02T12:00:20+03:00"}) == ids[2:]
    assert await listed({">dateUpdate": "2026-03-02T09:00:20+00:00"}) == ids[3:]  # any offset
    assert await listed({"<=dateUpdate": "2026-03-02T12:00:10+03:00"}) == ids[:2]
    assert await listed({"<id": ids[1]}) == ids[:1]
    assert await listed({"@id": [ids[4], ids[0]]}) == [ids[0], ids[4]]
    assert await listed({"!@id": ids[1:]}) == ids[:1]
    assert await listed({"!statusId": "P"}) == ids[1::2]
    assert await listed({"statusId": "P", ">id": ids[0]}) == [ids[2], ids[4]]
    assert await listed({"%xmlId": f"{ids[3]:012x}"}) == [ids[3]]
    assert await listed({}, order={"id": "desc"}) == ids[::-1]
    rows = await client.call("sale.order.list", {"select": ["id", "version"], "filter": {}})
    assert set(rows["orders"][0]) == {"id", "version"}
    with pytest.raises(ProtocolError, match="dateUpdate>="):  # the prefix goes first
        await listed({"dateUpdate>=": "2026-03-02T12:00:20+03:00"})


async def test_list_pages_hold_50_rows_with_next_and_total_and_start_minus_one_skips_counting(
    rest: Callable[[BitrixSim], BitrixRest],
) -> None:
    sim = make_site()
    for _ in range(120):
        customer_order(sim)
    client = rest(sim)
    pages = [
        await raw(client, "sale.order.list", {"select": ["id"], "start": s}) for s in (0, 50, 100)
    ]
    assert [len(p["result"]["orders"]) for p in pages] == [50, 50, 20]
    assert [p.get("next") for p in pages] == [50, 100, None]
    assert {p["total"] for p in pages} == {120}
    fast = await raw(client, "sale.order.list", {"select": ["id"], "start": -1})
    assert (len(fast["result"]["orders"]), fast["total"], "next" in fast) == (50, 0, False)
    batch = await client.batch({"a": ("sale.order.list", {"select": ["id"], "start": 50})})
    assert len(batch["a"]["orders"]) == 50
    envelope = await raw(
        client, "batch", {"halt": 0, "cmd": {"a": "sale.order.list?select[0]=id&start=50"}}
    )
    assert envelope["result"]["result_next"] == {"a": 100}
    assert envelope["result"]["result_total"] == {"a": 120}


# --- events -------------------------------------------------------------------------------


async def test_every_save_made_through_rest_fires_an_event_the_hub_reader_accepts(
    rest: Callable[[BitrixSim], BitrixRest],
) -> None:
    sim = make_site()
    app, received = receiver(sim.application_token)
    hook = sim.outgoing_webhook(HOOK, app=app)
    client = rest(sim)
    hub_id = uuid7()
    added = await client.call(
        "sale.order.add",
        {"fields": {"lid": "s1", "personTypeId": 1, "currency": "RUB", "xmlId": hub_id}},
    )
    order_id = added["order"]["id"]
    assert added["order"]["xmlId"] == hub_id
    item = await client.call(
        "sale.basketitem.add",
        {"fields": {"orderId": order_id, "productId": 501, "currency": "RUB", "quantity": 2}},
    )
    assert isinstance(item["basketItem"]["id"], int) and item["basketItem"]["orderId"] == order_id
    await client.call(
        "sale.payment.add",
        {"fields": {"orderId": order_id, "paySystemId": 1, "paid": "Y", "sum": 200}},
    )
    assert await sim.deliver_events() == 3
    assert [(e.name, e.order_id, e.xml_id) for e in received] == [
        ("ONSALEORDERSAVED", str(order_id), hub_id)
    ] * 3
    assert received[0].domain == "shop.example"
    assert [d.status for d in hook.log] == [200] * 3
    order = read_order(await client.call("sale.order.get", {"id": order_id}))
    assert (order.version, order.payed, order.price) == (2, True, Decimal(200))
    await sim.aclose()


async def test_an_event_the_handler_refuses_is_lost_not_retried() -> None:
    sim = make_site()
    app, received = receiver("another token")
    hook = sim.outgoing_webhook(HOOK, app=app)
    customer_order(sim)
    assert await sim.deliver_events() == 0
    assert [d.status for d in hook.log] == [401]
    assert await sim.deliver_events() == 0 and len(hook.log) == 1
    assert received == []
    await sim.aclose()


async def test_a_share_of_events_is_dropped_and_the_rest_arrive_in_order() -> None:
    sim = make_site()
    app, received = receiver(sim.application_token)
    hook = sim.outgoing_webhook(HOOK, app=app, drop_share=0.3, seed=7)
    async with sim.event_pump():
        placed = [customer_order(sim) for _ in range(200)]
    assert len(hook.sent) + len(hook.dropped) == 200
    assert 40 <= len(hook.dropped) <= 80
    assert [e.order_id for e in received] == [e.fields["ID"] for e in hook.sent]
    dropped = {int(e.fields["ID"]) for e in hook.dropped}
    assert {int(e.order_id or 0) for e in received} == set(placed) - dropped
    await sim.aclose()


async def test_a_webhook_only_gets_the_events_it_was_made_for() -> None:
    sim = make_site()
    app, received = receiver(sim.application_token)
    sim.outgoing_webhook(HOOK, app=app, events=["OnSaleBeforeOrderDelete"])
    order_id = customer_order(sim)
    sim.delete_order(order_id)
    await sim.deliver_events()
    assert [(e.name, e.order_id) for e in received] == [("ONSALEBEFOREORDERDELETE", str(order_id))]
    await sim.aclose()


# --- late commits and polling -------------------------------------------------------------


async def poll(
    client: BitrixRest,
    watermark: datetime | None,
    overlap: timedelta = timedelta(seconds=60),
    between_pages: Callable[[], None] | None = None,
) -> tuple[list[OrderStamp], datetime | None]:
    """One catch-up poll by the channel's rule."""
    seen: list[OrderStamp] = []
    page: OrderListPage | None = first_page(watermark, overlap)
    while page is not None:
        rows = read_order_list(await client.call("sale.order.list", page.params()))
        seen.extend(rows)
        page = next_page(page, rows)
        if page is not None and between_pages is not None:
            between_pages()
    return seen, next_watermark(watermark, seen)


async def test_an_order_committed_late_shows_its_earlier_date_update_only_once_visible(
    rest: Callable[[BitrixSim], BitrixRest],
) -> None:
    sim = make_site()
    app, received = receiver(sim.application_token)
    sim.outgoing_webhook(HOOK, app=app)
    client = rest(sim)
    late = customer_order(sim, late=True)
    assert sim.pending_orders == [late]
    with pytest.raises(BitrixError) as error:
        await client.call("sale.order.get", {"id": late})
    assert error.value.code == 200540400001
    assert (await client.call("sale.order.list", {}))["orders"] == []
    await sim.deliver_events()
    assert received == []
    sim.advance(1)
    order = read_order(await client.call("sale.order.get", {"id": late}))
    assert order.date_update == T0  # set when the save began
    await sim.deliver_events()
    assert [e.order_id for e in received] == [str(late)]
    await sim.aclose()


async def test_the_poll_overlap_catches_an_order_that_commits_after_later_ones(
    rest: Callable[[BitrixSim], BitrixRest],
) -> None:
    sim = make_site(late_by=timedelta(seconds=3))
    client = rest(sim)
    late = customer_order(sim, late=True)  # dateUpdate 12:00:00, visible at 12:00:03
    sim.advance(1)
    early = customer_order(sim)  # dateUpdate 12:00:01, visible at once
    seen, watermark = await poll(client, None)
    assert [s.id for s in seen] == [str(early)]
    assert watermark == T0 + timedelta(seconds=1)
    sim.advance(3)
    without, _ = await poll(client, watermark, overlap=timedelta(0))
    assert str(late) not in {s.id for s in without}  # what a plain >= watermark would miss
    caught, after = await poll(client, watermark)
    assert str(late) in {s.id for s in caught}
    assert after == watermark


async def test_keyed_pages_miss_nothing_while_earlier_orders_change_and_offsets_would(
    rest: Callable[[BitrixSim], BitrixRest],
) -> None:
    sim = make_site()
    ids = []
    for _ in range(120):
        ids.append(customer_order(sim))
        sim.advance(1)
    client = rest(sim)
    changed = iter(ids[:2])

    def an_early_order_changes() -> None:
        sim.set_status(next(changed), "P")  # moves to the end of the dateUpdate order

    seen, _ = await poll(client, None, between_pages=an_early_order_changes)
    assert {int(s.id) for s in seen} == set(ids)

    by_offset: set[int] = set()
    sim.set_status(ids[2], "P")
    for start in (0, 50, 100):
        params = first_page(None).params()
        params["start"] = start
        rows = read_order_list(await client.call("sale.order.list", params))
        by_offset |= {int(s.id) for s in rows}
        sim.set_status(ids[3 + start // 50], "P")
    assert set(ids) - by_offset  # plain offsets skip rows that moved up


async def test_many_orders_in_one_second_are_all_read_by_stepping_within_it(
    rest: Callable[[BitrixSim], BitrixRest],
) -> None:
    sim = make_site()
    ids = {customer_order(sim) for _ in range(130)}
    seen, watermark = await poll(rest(sim), T0)
    assert {int(s.id) for s in seen} == ids
    assert watermark == T0


# --- deleted orders -----------------------------------------------------------------------


async def test_a_deleted_order_is_gone_from_get_and_list_and_its_events_carry_its_id(
    rest: Callable[[BitrixSim], BitrixRest],
) -> None:
    sim = make_site()
    app, received = receiver(sim.application_token)
    sim.outgoing_webhook(HOOK, app=app, events=["ONSALEBEFOREORDERDELETE", "ONORDERDELETED"])
    client = rest(sim)
    kept, by_admin, by_rest = (customer_order(sim, xml_id=f"x{n}") for n in range(3))
    sim.delete_order(by_admin)
    assert await client.call("sale.order.delete", {"id": by_rest}) is True
    answer = await raw(client, "sale.order.get", {"id": by_admin})
    assert (answer["status"], answer["error"]) == (400, 200540400001)
    assert answer["error_description"] == "order does not exist"
    listed = await client.call("sale.order.list", {"select": ["id"]})
    assert [row["id"] for row in listed["orders"]] == [kept]
    await sim.deliver_events()
    assert [(e.name, e.order_id, e.xml_id) for e in received] == [
        ("ONSALEBEFOREORDERDELETE", str(by_admin), "x1"),
        ("ONORDERDELETED", str(by_admin), None),
        ("ONSALEBEFOREORDERDELETE", str(by_rest), "x2"),
        ("ONORDERDELETED", str(by_rest), None),
    ]
    assert customer_order(sim) not in (by_admin, by_rest)  # ids are not reused
    await sim.aclose()


# --- the site's own stock -----------------------------------------------------------------


async def test_the_site_keeps_its_reservations_per_store(
    rest: Callable[[BitrixSim], BitrixRest],
) -> None:
    sim = make_site(enforce_stock=True)
    sim.set_amount(501, 71, 10)
    sim.set_amount(502, 71, 5)
    client = rest(sim)

    async def reserved() -> dict[int, tuple[int, int]]:
        rows = await client.call(
            "catalog.storeproduct.list", {"filter": {"storeId": 71, "@productId": [501, 502]}}
        )
        return {r["productId"]: (r["amount"], r["quantityReserved"]) for r in rows["storeProducts"]}

    first = sim.place_order([SiteLine(501, 3, store_id=71)])
    second = sim.place_order([SiteLine(501, 4, store_id=71)])
    assert await reserved() == {501: (10, 7), 502: (5, 0)}
    with pytest.raises(SiteRefused):
        sim.place_order([SiteLine(501, 4, store_id=71)])  # 3 free
    sim.cancel_order(first)
    assert await reserved() == {501: (10, 4), 502: (5, 0)}
    sim.edit_basket(second, [SiteLine(501, 1, store_id=71), SiteLine(502, 2, store_id=71)])
    assert await reserved() == {501: (10, 1), 502: (5, 2)}
    sim.ship_order(second)
    assert await reserved() == {501: (9, 0), 502: (3, 0)}


async def test_basket_items_are_added_through_rest_with_the_documented_errors(
    rest: Callable[[BitrixSim], BitrixRest],
) -> None:
    sim = make_site()
    order_id = customer_order(sim)
    client = rest(sim)

    async def add(**fields: Any) -> Any:
        base = {"orderId": order_id, "productId": 503, "currency": "RUB", "quantity": 1}
        return await client.call("sale.basketitem.add", {"fields": {**base, **fields}})

    added = await add(quantity="1.5")
    assert (added["basketItem"]["price"], added["basketItem"]["quantity"]) == (300, 1.5)
    assert sim.orders[order_id]["version"] == 1
    for fields, code in (
        ({"currency": "USD"}, 200140400011),
        ({"orderId": 99999}, 200140400009),
        ({"productId": 777}, 200140400007),
    ):
        with pytest.raises(BitrixError) as error:
            await add(**fields)
        assert error.value.code == code


async def test_the_reference_lists_have_their_documented_forms(
    rest: Callable[[BitrixSim], BitrixRest],
) -> None:
    sim = make_site()
    sim.add_status("AS")
    client = rest(sim)
    statuses = await client.call("sale.status.list", {"filter": {"type": "O"}})
    assert [s["id"] for s in statuses["statuses"]] == ["N", "S", "P", "D", "F", "AS"]
    deliveries = await client.call(
        "sale.delivery.getlist", {"SELECT": ["ID", "NAME"], "FILTER": {"@ID": [2, 3]}}
    )
    assert deliveries == [{"ID": 2, "NAME": "Courier Delivery"}, {"ID": 3, "NAME": "Pickup"}]
    with pytest.raises(ProtocolError):
        await client.call("sale.delivery.getlist", {"filter": {"ID": 2}})
    pay = await client.call("sale.paysystem.list", {"FILTER": {"IS_CASH": "Y"}})
    assert [p["ID"] for p in pay] == [1, 3]
    stores = await client.call("catalog.store.list", {"filter": {"@id": [72]}})
    [store] = stores["stores"]
    assert (store["code"], store["xmlId"], store["issuingCenter"]) == ("msk-2", "store-2", "Y")
