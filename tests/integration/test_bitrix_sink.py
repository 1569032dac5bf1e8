"""The Bitrix site sink against the REST simulator: physical per-store amounts in both modes,
batches of at most 50 commands, rate limits, both kinds of error codes, order statuses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from ordersync.domain import events as ev
from ordersync.sinks.base import DeliveryFailed, OutboxEvent
from ordersync.sinks.bitrix import BitrixSink, HubRefs
from ordersync.sinks.bitrix_rest import (
    BitrixBatchError,
    BitrixError,
    BitrixRateLimited,
    BitrixRest,
    php_query,
)
from tests.bitrix_sim import BitrixSim, parse_php_query

NOW = datetime(2026, 1, 1, tzinfo=UTC)
STATUS_MAP = {"placed": "N", "paid": "P", "shipped": "DF", "completed": "F", "cancelled": "N"}
IBLOCK = 14
STORE_2_XML = "5f0c6a2e-1c#store 2&x=1+2%"  # query-string characters must survive the batch


def store_xml(store: int) -> str:
    return STORE_2_XML if store == 2 else f"store-{store}"


def stock(
    event_id: int, product: int, store: int, on_hand: str, reserved: str = "0"
) -> OutboxEvent:
    payload = ev.stock_changed(
        product, store, Decimal(on_hand), Decimal(reserved), "test", "doc", f"d{event_id}"
    )
    return OutboxEvent(event_id, ev.STOCK_CHANGED, "stock", f"{product}:{store}", payload, NOW)


def status_event(event_id: int, order_id: str, old: str, new: str) -> OutboxEvent:
    payload = ev.order_status_changed(order_id, old, new, "api")
    return OutboxEvent(event_id, ev.ORDER_STATUS_CHANGED, "order", order_id, payload, NOW)


async def hub_refs(products: Sequence[int], stores: Sequence[int]) -> HubRefs:
    """Hub product n has Ид "prod-n" (999 has none); hub stores have store_xml(n)."""
    return HubRefs(
        {p: f"prod-{p}" for p in products if p != 999},
        {s: store_xml(s) for s in stores},
    )


def site(direct_amounts: bool = False, products: int = 3) -> BitrixSim:
    """Bitrix ids differ from hub ids: hub product n is Bitrix 500+n, hub store n is 70+n."""
    sim = BitrixSim(iblock_id=IBLOCK, direct_amounts=direct_amounts)
    for n in range(1, products + 1):
        sim.add_product(500 + n, f"prod-{n}")
    for n in (1, 2):
        sim.add_store(70 + n, store_xml(n))
    return sim


@pytest.fixture
async def http() -> AsyncIterator[list[httpx.AsyncClient]]:
    clients: list[httpx.AsyncClient] = []
    yield clients
    for client in clients:
        await client.aclose()


def make_sink(
    sim: BitrixSim, clients: list[httpx.AsyncClient], mode: str = "documents", **kw: Any
) -> BitrixSink:
    client = httpx.AsyncClient(transport=sim.transport())
    clients.append(client)
    rest = BitrixRest(sim.webhook_url, client=client)
    return BitrixSink(
        "site",
        rest,
        hub_refs,
        mode=mode,  # type: ignore[arg-type]
        status_map=STATUS_MAP,
        iblock_id=IBLOCK,
        **kw,
    )


# --- documents mode ----------------------------------------------------------------------


async def test_documents_mode_sets_physical_amounts(http: list[httpx.AsyncClient]) -> None:
    sim = site()
    sim.set_amount(501, 71, 10)  # goes up to 12
    sim.set_amount(502, 71, 8)  # goes down to 3: a write-off
    sim.reserved[(502, 71)] = Decimal(2)  # Bitrix's own hold: must not be subtracted by us
    sink = make_sink(sim, http)
    await sink.deliver(
        [
            stock(1, 1, 1, "11"),
            stock(2, 1, 1, "12", reserved="5"),  # last of the pair wins; on_hand, not available
            stock(3, 2, 1, "3", reserved="1"),
            stock(4, 3, 2, "4.5"),  # no row yet at the site
        ]
    )
    assert sim.amount(501, 71) == Decimal(12)
    assert sim.amount(502, 71) == Decimal(3)
    assert sim.amount(503, 72) == Decimal("4.5")
    docs = sorted(sim.documents.values(), key=lambda d: d.doc_type)
    assert [(d.doc_type, d.status) for d in docs] == [("D", "Y"), ("S", "Y")]
    write_off = docs[0]
    assert [(e["elementId"], e["storeFrom"], e["amount"]) for e in write_off.elements] == [
        (502, 71, Decimal(5))
    ]
    assert sim.methods_called().count("catalog.document.conduct") == 2
    # every change went through batch, never a direct write
    assert all(c.in_batch for c in sim.calls)


async def test_a_1c_imports_levels_of_a_product_reach_the_site_store_by_store(
    http: list[httpx.AsyncClient],
) -> None:
    sim = site()
    sim.set_amount(501, 71, 10)
    levels = [(1, Decimal(7), Decimal(1)), (2, Decimal("2.5"), Decimal(0))]
    payload = ev.stock_levels_changed(1, levels, "exchange_1c", "exchange_1c", "s/offers.xml")
    imported = OutboxEvent(5, ev.STOCK_LEVELS_CHANGED, "stock", "1", payload, NOW)
    sink = make_sink(sim, http)
    assert sink.wants(imported)

    await sink.deliver([stock(4, 1, 1, "9"), imported])

    assert (sim.amount(501, 71), sim.amount(501, 72)) == (Decimal(7), Decimal("2.5"))


async def test_documents_mode_unchanged_amounts_create_no_document(
    http: list[httpx.AsyncClient],
) -> None:
    sim = site()
    sim.set_amount(501, 71, 7)
    sink = make_sink(sim, http)
    await sink.deliver([stock(1, 1, 1, "7")])
    assert sim.documents == {}
    # a redelivery after success is harmless: amounts are absolute and re-read
    sim.set_amount(502, 71, 1)
    await sink.deliver([stock(2, 2, 1, "4")])
    await sink.deliver([stock(2, 2, 1, "4")])
    assert sim.amount(502, 71) == Decimal(4)
    assert len(sim.documents) == 1


async def test_many_products_never_exceed_50_commands(http: list[httpx.AsyncClient]) -> None:
    sim = site(products=130)
    for n in range(1, 131):
        sim.set_amount(500 + n, 71, 5)
    sink = make_sink(sim, http)
    events = [stock(n, n, 1, str(5 + (n % 3) - 1)) for n in range(1, 131)]  # +1, -1 and 0
    await sink.deliver(events)
    assert sim.batch_sizes and max(sim.batch_sizes) <= 50
    assert len(sim.batch_sizes) > 3  # the work really was split
    for n in range(1, 131):
        assert sim.amount(500 + n, 71) == Decimal(5 + (n % 3) - 1), n
    # the documents that spanned several batches were conducted with their literal ids
    assert {d.status for d in sim.documents.values()} == {"Y"}
    assert sum(len(d.elements) for d in sim.documents.values()) == sum(
        1 for n in range(1, 131) if n % 3 != 1
    )


# --- storeproduct mode -------------------------------------------------------------------


async def test_storeproduct_mode_writes_amounts_directly(http: list[httpx.AsyncClient]) -> None:
    sim = site(direct_amounts=True)
    sim.set_amount(501, 71, 10)
    sink = make_sink(sim, http, mode="storeproduct")
    await sink.deliver([stock(1, 1, 1, "2", reserved="2"), stock(2, 2, 2, "6")])
    assert sim.amount(501, 71) == Decimal(2)
    assert sim.amount(502, 72) == Decimal(6)
    assert sim.documents == {}
    called = sim.methods_called()
    assert "catalog.storeproduct.update" in called and "catalog.storeproduct.add" in called


async def test_storeproduct_mode_on_a_site_without_the_methods_fails(
    http: list[httpx.AsyncClient],
) -> None:
    sim = site(direct_amounts=False)
    sink = make_sink(sim, http, mode="storeproduct")
    with pytest.raises(DeliveryFailed) as failed:
        await sink.deliver([stock(1, 1, 1, "2")])
    assert failed.value.retry_after is None
    assert "ERROR_METHOD_NOT_FOUND" in str(failed.value)


# --- rate limits and errors --------------------------------------------------------------


async def test_rate_limit_fails_with_retry_after_then_retry_succeeds(
    http: list[httpx.AsyncClient],
) -> None:
    sim = site()
    sim.set_amount(501, 71, 1)
    sink = make_sink(sim, http)
    batch = [stock(1, 1, 1, "9")]
    sim.rate_limit(1)
    with pytest.raises(DeliveryFailed) as failed:
        await sink.deliver(batch)
    assert failed.value.retry_after is not None and failed.value.retry_after > 0
    assert sim.amount(501, 71) == Decimal(1)
    await sink.deliver(batch)  # the relay's later retry
    assert sim.amount(501, 71) == Decimal(9)


async def test_rate_limit_in_the_middle_does_not_double_apply(
    http: list[httpx.AsyncClient],
) -> None:
    """Refs and amounts were read, the writing batch was refused: the retry re-reads."""
    sim = site()
    sim.set_amount(501, 71, 1)
    sink = make_sink(sim, http)
    batch = [stock(1, 1, 1, "9")]
    await sink.deliver([stock(0, 1, 1, "1")])  # warms the id cache: no lookups next time
    requests_before = sim.http_requests
    sim.rate_limit(0)
    sim.fail_next("catalog.document.conduct", "QUERY_LIMIT_EXCEEDED", "Too many requests", 503)
    with pytest.raises(DeliveryFailed) as failed:
        await sink.deliver(batch)
    assert failed.value.retry_after is not None
    assert sim.http_requests > requests_before
    await sink.deliver(batch)
    assert sim.amount(501, 71) == Decimal(9)


def _rest(sim: BitrixSim, clients: list[httpx.AsyncClient]) -> BitrixRest:
    client = httpx.AsyncClient(transport=sim.transport())
    clients.append(client)
    return BitrixRest(sim.webhook_url, client=client)


async def test_numeric_and_string_error_codes_are_parsed(http: list[httpx.AsyncClient]) -> None:
    sim = site()
    sim.add_order(17)
    rest = _rest(sim, http)
    sim.fail_next("sale.order.update", 200040300020, "Access denied", 400)
    with pytest.raises(BitrixError) as numeric:
        await rest.call("sale.order.update", {"id": 17, "fields": {"statusId": "P"}})
    assert numeric.value.code == 200040300020
    assert numeric.value.status == 400
    assert not numeric.value.retry_later

    sim.rate_limit(1)
    with pytest.raises(BitrixRateLimited) as limited:
        await rest.call("catalog.store.list", {})
    assert limited.value.code == "QUERY_LIMIT_EXCEEDED"
    assert limited.value.status == 503 and limited.value.retry_later
    assert limited.value.retry_after and limited.value.retry_after > 0

    with pytest.raises(BitrixError) as unknown:
        await rest.call("catalog.nosuch.method", {})
    assert unknown.value.code == "ERROR_METHOD_NOT_FOUND" and unknown.value.status == 404

    # inside a batch: HTTP 200, the error under result_error, the rest still returned
    sim.fail_next("catalog.store.list", 200040300010, "Access Denied")
    with pytest.raises(BitrixBatchError) as in_batch:
        await rest.batch(
            {
                "a": ("catalog.store.list", {"filter": {"xmlId": ["store-1"]}}),
                "b": ("catalog.store.list", {"filter": {"xmlId": [STORE_2_XML]}}),
            }
        )
    assert in_batch.value.errors["a"].code == 200040300010
    assert in_batch.value.results["b"]["stores"][0]["id"] == 72


async def test_sink_turns_a_numeric_error_into_delivery_failed(
    http: list[httpx.AsyncClient],
) -> None:
    sim = site()
    sink = make_sink(sim, http)
    sim.fail_next("catalog.document.add", 200040300020, "Access denied")
    with pytest.raises(DeliveryFailed) as failed:
        await sink.deliver([stock(1, 1, 1, "3")])
    assert failed.value.retry_after is None
    assert "200040300020" in str(failed.value)
    assert not failed.value.permanent  # access denied: the site is closed to us, not the data
    # the writing batch halts at the failure: no lines for a document that does not exist
    assert "catalog.document.element.add" not in sim.methods_called()


async def test_a_module_error_about_the_events_data_is_a_permanent_refusal(
    http: list[httpx.AsyncClient],
) -> None:
    """sale.order.update for an order the site does not have: the event carried the wrong
    order, and no retry will make the site have it."""
    sim = site()

    async def order_refs(order_ids: Sequence[str]) -> dict[str, int]:
        return {o: 404 for o in order_ids}  # the site has no order 404

    sink = make_sink(sim, http, order_refs=order_refs)
    event = status_event(9, "hub-1", "placed", "shipped")
    with pytest.raises(DeliveryFailed) as failed:
        await sink.deliver([event])
    assert failed.value.permanent
    assert "200540400001" in str(failed.value)  # the sale module's "order does not exist"


async def test_system_errors_say_the_site_is_unavailable_not_the_data_wrong(
    http: list[httpx.AsyncClient],
) -> None:
    sim = site(direct_amounts=False)
    sim.rate_limit(1)
    with pytest.raises(DeliveryFailed) as limited:
        await make_sink(sim, http).deliver([stock(1, 1, 1, "2")])
    with pytest.raises(DeliveryFailed) as missing:
        await make_sink(sim, http, mode="storeproduct").deliver([stock(1, 1, 1, "2")])
    assert not limited.value.permanent and not missing.value.permanent


async def test_batch_refuses_more_than_50_commands_locally(http: list[httpx.AsyncClient]) -> None:
    rest = _rest(site(), http)
    commands: dict[str, tuple[str, dict[str, Any]]] = {
        f"k{n}": ("catalog.store.list", {}) for n in range(51)
    }
    with pytest.raises(ValueError):
        await rest.batch(commands)


def test_php_query_encoding_round_trips() -> None:
    params = {
        "fields": {"docType": "S", "docId": "$result[doc_S][document][id]", "amount": "1.5"},
        "filter": {"@productId": [5, 6]},
        "select": ["id", "xmlId"],
    }
    text = php_query(params)
    assert "fields[docType]=S" in text
    assert "filter[%40productId][0]=5" in text or "filter[@productId][0]=5" in text
    assert parse_php_query(text) == {
        "fields": {"docType": "S", "docId": "$result[doc_S][document][id]", "amount": "1.5"},
        "filter": {"@productId": ["5", "6"]},
        "select": ["id", "xmlId"],
    }


# --- skipping ----------------------------------------------------------------------------


async def test_unknown_product_and_missing_xml_id_are_skipped(
    http: list[httpx.AsyncClient],
) -> None:
    sim = site()
    sim.set_amount(501, 71, 1)
    sink = make_sink(sim, http)
    await sink.deliver(
        [
            stock(1, 77, 1, "5"),  # prod-77 is not on the site
            stock(2, 999, 1, "5"),  # no 1C Ид in the hub
            stock(3, 1, 1, "2"),
        ]
    )
    assert sim.amount(501, 71) == Decimal(2)
    assert sink.skipped["unknown_product"] == 1
    assert sink.skipped["no_xml_id"] == 1
    assert len(sim.amounts) == 1


# --- orders ------------------------------------------------------------------------------


async def test_order_status_change_pushes_mapped_status(http: list[httpx.AsyncClient]) -> None:
    sim = site()
    sim.add_order(4242, "N")
    sim.add_order(4343, "N")

    async def order_refs(order_ids: Sequence[str]) -> dict[str, int]:
        known = {"hub-1": 4242, "hub-2": 4343}
        return {o: known[o] for o in order_ids if o in known}

    sink = make_sink(sim, http, order_refs=order_refs)
    await sink.deliver(
        [
            status_event(1, "hub-1", "placed", "shipped"),
            status_event(2, "hub-2", "placed", "cancelled"),
            status_event(3, "pos-9", "placed", "completed"),  # not a site order: skipped
        ]
    )
    assert sim.orders[4242]["statusId"] == "DF"
    assert sim.orders[4343]["canceled"] == "Y"
    updates = [c.params for c in sim.calls if c.method == "sale.order.update"]
    assert {str(u["id"]) for u in updates} == {"4242", "4343"}
    assert sink.skipped["order_not_from_site"] == 1


async def test_order_paid_uses_the_paid_status(http: list[httpx.AsyncClient]) -> None:
    sim = site()
    sim.add_order(4242, "N")
    sink = make_sink(sim, http)
    paid = OutboxEvent(
        1,
        ev.ORDER_PAID,
        "order",
        "hub-1",
        {"order_id": "hub-1", "paid_at": NOW.isoformat(), "bitrix_order_id": 4242},
        NOW,
    )
    await sink.deliver([paid])
    assert sim.orders[4242]["statusId"] == "P"
    assert sim.orders[4242]["canceled"] == "N"


async def test_wants_and_event_filter(http: list[httpx.AsyncClient]) -> None:
    sim = site()
    sink = make_sink(sim, http, event_filter=lambda e: e.payload.get("store_id") != 2)
    assert sink.wants(stock(1, 1, 1, "1"))
    assert not sink.wants(stock(2, 1, 2, "1"))
    created = OutboxEvent(3, ev.ORDER_CREATED, "order", "o", {}, NOW)
    assert not sink.wants(created)
    await sink.deliver([stock(2, 1, 2, "1")])
    assert sim.http_requests == 0
