"""The Bitrix channel's pure parts on the documentation's own examples
(tests/unit/bitrix_doc_examples.py): reading sale.order.get and sale.order.list, outgoing-webhook
events and their token, mapping a site order to the hub's command, and the polling rule."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest

from ordersync.channels.bitrix import (
    BadSitePayload,
    HubCatalog,
    MappingConfig,
    OrderListPage,
    OrderStamp,
    StatusAction,
    by_site_product_id,
    first_page,
    form_fields,
    is_new,
    looks_like_hub_order_id,
    map_site_order,
    next_page,
    next_watermark,
    read_event,
    read_order,
    read_order_list,
    read_order_row,
    token_matches,
)
from ordersync.domain.commands import LineInput, ProductRef
from ordersync.domain.errors import Unauthorized
from ordersync.domain.types import Channel, Fulfillment
from ordersync.services.ids import uuid7
from tests.unit.bitrix_doc_examples import (
    DOC_TOKEN,
    ON_PAYMENT_ENTITY_SAVED,
    ON_SALE_BEFORE_ORDER_DELETE,
    ON_SALE_ORDER_SAVED,
    SALE_ORDER_GET,
    SALE_ORDER_LIST,
)

PLUS2 = timezone(timedelta(hours=2))
PLUS3 = timezone(timedelta(hours=3))


def doc_order() -> dict[str, Any]:
    """A fresh copy of the documented sale.order.get result, to vary."""
    result: dict[str, Any] = json.loads(SALE_ORDER_GET)["result"]
    return result


def order_body(result: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = result["order"]
    return body


# --- sale.order.get ---------------------------------------------------------------------


def test_the_documented_order_reads_with_every_field_typed() -> None:
    order = read_order(doc_order())
    assert order.id == "236"
    assert order.account_number == "392"
    assert order.xml_id == "bx_65df53063d56d"
    assert order.version == 1
    assert order.status_id == "N"
    assert (order.payed, order.canceled, order.deducted) == (False, False, False)
    assert order.date_insert == datetime(2024, 2, 28, 17, 36, 55, tzinfo=PLUS2)
    assert order.date_update == datetime(2024, 2, 28, 17, 37, 11, tzinfo=PLUS2)
    assert order.date_update.utcoffset() == timedelta(hours=2)
    assert (order.currency, order.price) == ("USD", Decimal(1480))
    assert (order.person_type_id, order.user_id) == ("3", "1")
    [item] = order.basket
    assert (item.id, item.product_id, item.product_xml_id) == ("255", "348", "1000000386")
    assert item.name == "Men's Fire T-Shirt"
    assert (item.quantity, item.price, item.currency) == (Decimal(1), Decimal(980), "USD")
    assert [(r.store_id, r.quantity) for r in item.reservations] == [("1", Decimal(1))]
    [pay] = order.payments
    assert (pay.id, pay.pay_system_id, pay.paid, pay.sum) == ("123", "48", False, Decimal(1480))
    [ship] = order.shipments
    assert (ship.id, ship.delivery_id, ship.system) == ("338", "1", False)
    assert (ship.allow_delivery, ship.deducted, ship.store_id) == (False, False, None)
    assert order.property_value("FIO") == "John Smith"
    assert order.property_value("CONTACT_ADDRESS") is None  # null in the example
    assert order.property_value("address") == "test"


def test_ids_read_the_same_as_numbers_or_strings() -> None:
    flipped = doc_order()
    body = order_body(flipped)
    body["id"] = "236"
    body["userId"] = "1"
    body["basketItems"][0]["id"] = 255
    body["basketItems"][0]["productId"] = "348"
    body["basketItems"][0]["reservations"][0]["storeId"] = "1"
    body["payments"][0]["paySystemId"] = "48"
    body["shipments"][0]["deliveryId"] = "1"
    assert read_order(flipped) == read_order(doc_order())


@pytest.mark.parametrize("bad", ["abc", "1.5", -3, True, None, "٣"])
def test_an_id_that_is_not_a_whole_number_is_refused(bad: Any) -> None:
    result = doc_order()
    order_body(result)["basketItems"][0]["productId"] = bad
    if bad is None:  # a product the site does not have: productId 0
        assert read_order(result).basket[0].product_id == "0"
        return
    with pytest.raises(BadSitePayload):
        read_order(result)


def test_flags_are_y_or_n_and_nothing_else() -> None:
    result = doc_order()
    order_body(result)["payed"] = "Y"
    order_body(result)["canceled"] = "y"
    order = read_order(result)
    assert order.payed and order.canceled
    order_body(result)["payed"] = "1"
    with pytest.raises(BadSitePayload, match="payed"):
        read_order(result)


def test_money_and_quantities_are_decimal_from_their_text() -> None:
    result = doc_order()
    item = order_body(result)["basketItems"][0]
    item["price"] = 0.1  # a JSON number parsed as float: read from its text, not its binary
    item["quantity"] = "2.125"
    read = read_order(result).basket[0]
    assert read.price == Decimal("0.1")
    assert read.quantity == Decimal("2.125")
    exact = json.loads(
        SALE_ORDER_GET.replace('"price": 980', '"price": 980.10'), parse_float=Decimal
    )
    assert read_order(exact["result"]).basket[0].price == Decimal("980.10")


@pytest.mark.parametrize("bad", ["many", float("nan"), "Infinity", True, None])
def test_a_quantity_that_is_not_a_number_is_refused(bad: Any) -> None:
    result = doc_order()
    order_body(result)["basketItems"][0]["quantity"] = bad
    with pytest.raises(BadSitePayload, match="quantity"):
        read_order(result)


def test_dates_keep_the_site_offset_and_a_date_without_one_needs_a_zone() -> None:
    result = doc_order()
    order_body(result)["dateUpdate"] = "2026-03-01T10:00:05+03:00"
    assert read_order(result).date_update == datetime(2026, 3, 1, 7, 0, 5, tzinfo=UTC)
    order_body(result)["dateUpdate"] = "2026-03-01T10:00:05"
    with pytest.raises(BadSitePayload, match="offset"):
        read_order(result)
    assert read_order(result, naive_tz=PLUS3).date_update == datetime(
        2026, 3, 1, 10, 0, 5, tzinfo=PLUS3
    )


def test_an_order_without_a_version_is_refused() -> None:
    result = doc_order()
    del order_body(result)["version"]
    with pytest.raises(BadSitePayload, match="version"):
        read_order(result)


def test_a_multiple_property_is_joined_and_a_file_property_is_not_kept() -> None:
    result = doc_order()
    props = order_body(result)["propertyValues"]
    props[2]["value"] = ["+7 900 000-00-01", "+7 900 000-00-02"]
    props[3]["value"] = {"id": "5", "fileName": "scan.pdf", "src": "/upload/scan.pdf"}
    order = read_order(result)
    assert order.property_value("PHONE") == "+7 900 000-00-01, +7 900 000-00-02"
    assert order.property_value("CONTACT_ADDRESS") is None


# --- sale.order.list --------------------------------------------------------------------


def test_the_documented_list_row_reads_as_a_header_and_a_stamp() -> None:
    body = json.loads(SALE_ORDER_LIST)
    [stamp] = read_order_list(body["result"])
    assert stamp == OrderStamp(
        "9", 0, datetime(2022, 10, 14, 17, 19, 11, tzinfo=PLUS2), "bx_63498bf7c8d31"
    )
    header = read_order_row(body["result"]["orders"][0])
    assert (header.id, header.account_number, header.price) == ("9", "165", Decimal(1176))
    assert header.stamp == stamp


# --- events -----------------------------------------------------------------------------


def test_the_documented_order_saved_event_reads_from_its_form() -> None:
    event = read_event(urlencode(ON_SALE_ORDER_SAVED).encode(), DOC_TOKEN)
    assert event.name == "ONSALEORDERSAVED"
    assert (event.order_id, event.entity_id, event.xml_id) == ("300", "300", None)
    assert event.action == "save"
    assert event.ts == datetime.fromtimestamp(1714649632, UTC)
    assert (event.domain, event.member_id) == (
        "some-domain.bitrix24.com",
        "a223c6b3710f85df22e9377d6c4f7553",
    )
    assert event.handler_id == "1"
    assert not event.deletes_order


def test_the_delete_event_names_the_order_to_cancel() -> None:
    fields = {**ON_SALE_BEFORE_ORDER_DELETE, "data[FIELDS][XML_ID]": "bx_65df53063d56d"}
    event = read_event(urlencode(fields), DOC_TOKEN)
    assert event.deletes_order
    assert (event.order_id, event.xml_id, event.action) == ("300", "bx_65df53063d56d", "delete")


def test_event_names_are_taken_upper_case_whatever_the_case_sent() -> None:
    event = read_event({**ON_SALE_ORDER_SAVED, "event": "OnSaleOrderSaved"}, DOC_TOKEN)
    assert event.name == "ONSALEORDERSAVED" and event.is_order_event


def test_a_payment_event_carries_no_order_id() -> None:
    event = read_event(ON_PAYMENT_ENTITY_SAVED, DOC_TOKEN)
    assert (event.entity_id, event.order_id) == ("300", None)


def test_a_wrong_or_missing_token_is_refused_before_the_body_is_read() -> None:
    with pytest.raises(Unauthorized):
        read_event(urlencode(ON_SALE_ORDER_SAVED), DOC_TOKEN[:-1] + "0")
    missing = {k: v for k, v in ON_SALE_ORDER_SAVED.items() if k != "auth[application_token]"}
    with pytest.raises(Unauthorized):
        read_event(urlencode(missing), DOC_TOKEN)
    with pytest.raises(Unauthorized):  # nonsense from someone without the token: 401, not 4xx
        read_event(b"event=&garbage", DOC_TOKEN)
    with pytest.raises(Unauthorized):  # no token configured: nothing is accepted
        read_event(urlencode(ON_SALE_ORDER_SAVED), "")


def test_token_comparison() -> None:
    assert token_matches(DOC_TOKEN, DOC_TOKEN)
    assert not token_matches(DOC_TOKEN, DOC_TOKEN.upper())
    assert not token_matches(DOC_TOKEN, None)
    assert not token_matches("", "")
    assert token_matches("токен", "токен")  # compared as UTF-8 bytes


def test_an_order_event_without_an_order_id_is_refused() -> None:
    fields = {k: v for k, v in ON_SALE_ORDER_SAVED.items() if k != "data[FIELDS][ID]"}
    with pytest.raises(BadSitePayload):
        read_event(urlencode(fields), DOC_TOKEN)
    with pytest.raises(BadSitePayload):
        read_event({**ON_SALE_ORDER_SAVED, "data[FIELDS][ID]": "3 00"}, DOC_TOKEN)


def test_form_fields_keep_php_keys_whole_and_refuse_floods() -> None:
    assert form_fields("data%5BFIELDS%5D%5BID%5D=7&event=X")["data[FIELDS][ID]"] == "7"
    with pytest.raises(BadSitePayload):
        form_fields("&".join(f"k{n}=v" for n in range(500)))


def test_fields_parsed_by_a_framework_are_accepted() -> None:
    parsed = {k: [v] for k, v in ON_SALE_ORDER_SAVED.items()}
    assert read_event(parsed, DOC_TOKEN).order_id == "300"


# --- mapping ----------------------------------------------------------------------------

CONFIG = MappingConfig.build(
    pickup_deliveries=[3, "4"],
    pickup_stores={4: "store-xml-2"},
    store_map={},
    status_map={"P": "confirmed", "D": "cancelled", "F": "completed"},
    cod_pay_systems=[7],
)


def catalog(**changes: Any) -> HubCatalog:
    base: dict[str, Any] = {
        "products": {"1000000386", "prod-2", "offer-9"},
        "stores": {"store-xml-1": "S1", "S1": "S1", "store-xml-2": "S2", "S2": "S2"},
        "site_stores": {"1": "store-xml-1", "2": "store-xml-2", "5": "nobody-knows"},
    }
    base.update(changes)
    return HubCatalog(**base)


def pickup_order(delivery_id: int = 3, store_id: int | None = 1) -> dict[str, Any]:
    result = doc_order()
    body = order_body(result)
    system = copy.deepcopy(body["shipments"][0])
    system.update({"id": 337, "system": "Y", "deliveryId": 1, "shipmentItems": []})
    body["shipments"][0]["deliveryId"] = delivery_id
    body["shipments"].insert(0, system)  # as the digest says some sites show it: first
    if store_id is None:
        body["basketItems"][0]["reservations"] = []
    else:
        body["basketItems"][0]["reservations"][0]["storeId"] = store_id
    return result


def test_the_documented_order_maps_to_a_delivery_with_its_customer() -> None:
    command = map_site_order(read_order(doc_order()), CONFIG, catalog())
    assert command.complete
    assert command.channel is Channel.ONLINE
    assert (command.external_id, command.account_number, command.version) == ("236", "392", 1)
    assert command.fulfillment is Fulfillment.DELIVERY and command.store_code is None
    assert command.lines == (LineInput(ProductRef(xml_id="1000000386"), Decimal(1), Decimal(980)),)
    assert command.customer == {
        "name": "John Smith",
        "phone": "14151234567",
        "email": "email@mail.com",
        "address": "test",
    }
    assert not command.paid and not command.cancelled and not command.confirmed
    assert (command.site_status, command.status_action) == ("N", None)
    placed = command.place_order()
    assert (placed.channel, placed.external_id, placed.currency) == (Channel.ONLINE, "236", "USD")
    assert placed.customer == command.customer


def test_the_system_shipment_is_not_the_delivery() -> None:
    command = map_site_order(read_order(pickup_order(delivery_id=3)), CONFIG, catalog())
    assert command.fulfillment is Fulfillment.PICKUP  # 3, not the system shipment's 1
    assert not [p for p in command.problems if p.code == "several_deliveries"]


def test_pickup_is_at_the_store_the_basket_is_reserved_at() -> None:
    command = map_site_order(read_order(pickup_order(store_id=2)), CONFIG, catalog())
    assert (command.fulfillment, command.store_code) == (Fulfillment.PICKUP, "S2")
    assert command.complete


def test_store_map_comes_before_the_site_store_xml_id() -> None:
    config = MappingConfig.build(pickup_deliveries=[3], store_map={"1": "S2"})
    command = map_site_order(read_order(pickup_order(store_id=1)), config, catalog())
    assert command.store_code == "S2"


def test_pickup_without_reservations_takes_the_delivery_services_store() -> None:
    command = map_site_order(read_order(pickup_order(4, store_id=None)), CONFIG, catalog())
    assert (command.fulfillment, command.store_code, command.complete) == (
        Fulfillment.PICKUP,
        "S2",
        True,
    )


def test_pickup_at_an_unknown_store_is_a_problem_not_an_error() -> None:
    command = map_site_order(read_order(pickup_order(store_id=5)), CONFIG, catalog())
    assert command.store_code is None
    assert [(p.code, dict(p.detail)) for p in command.problems] == [
        ("unknown_store", {"site_store": "5"})
    ]
    nowhere = map_site_order(read_order(pickup_order(3, store_id=None)), CONFIG, catalog())
    assert [p.code for p in nowhere.problems] == ["no_pickup_store"]


def test_unknown_products_are_reported_and_the_rest_is_mapped() -> None:
    result = doc_order()
    items = order_body(result)["basketItems"]
    stranger = copy.deepcopy(items[0])
    stranger.update({"id": "256", "productId": 777, "productXmlId": "not-in-hub", "name": "X"})
    items.append(stranger)
    command = map_site_order(read_order(result), CONFIG, catalog())
    assert [line.product.xml_id for line in command.lines] == ["1000000386"]
    [problem] = command.problems
    assert problem.code == "unknown_product"
    assert dict(problem.detail) == {
        "basket_item": "256",
        "product_id": "777",
        "name": "X",
        "product_xml_id": "not-in-hub",
    }
    assert not command.complete
    assert command.place_order().lines == command.lines


def test_an_offer_is_found_whole_or_by_its_own_id_and_never_by_its_product() -> None:
    result = doc_order()
    item = order_body(result)["basketItems"][0]
    item["productXmlId"] = "prod-2#offer-9"
    command = map_site_order(read_order(result), CONFIG, catalog())
    assert command.lines[0].product.xml_id == "offer-9"
    whole = map_site_order(
        read_order(result), CONFIG, catalog(products={"prod-2#offer-9", "prod-2"})
    )
    assert whole.lines[0].product.xml_id == "prod-2#offer-9"
    item["productXmlId"] = "prod-2#offer-10"  # the product part alone names another item
    parent_only = map_site_order(read_order(result), CONFIG, catalog())
    assert [p.code for p in parent_only.problems] == ["unknown_product"]


def test_the_fallback_maps_a_basket_item_by_its_site_product_id() -> None:
    result = doc_order()
    order_body(result)["basketItems"][0]["productXmlId"] = ""
    hub = catalog(product_fallback=by_site_product_id({"348": "prod-2"}))
    assert map_site_order(read_order(result), CONFIG, hub).lines[0].product.xml_id == "prod-2"


def test_paid_cancelled_and_confirmed() -> None:
    result = doc_order()
    body = order_body(result)
    body["payments"][0]["paid"] = "Y"
    body["payments"][0]["paySystemId"] = 7
    body["statusId"] = "D"
    command = map_site_order(read_order(result), CONFIG, catalog())
    assert command.paid and command.cancelled and command.confirmed
    assert command.status_action is StatusAction.CANCELLED
    body["payments"][0]["paid"] = "N"
    body["payments"][0]["paySystemId"] = 48
    body["statusId"] = "P"
    again = map_site_order(read_order(result), CONFIG, catalog())
    assert not again.paid and not again.cancelled
    assert again.confirmed and again.status_action is StatusAction.CONFIRMED


def test_an_empty_basket_and_a_zero_quantity_are_problems() -> None:
    result = doc_order()
    order_body(result)["basketItems"][0]["quantity"] = 0
    assert [p.code for p in map_site_order(read_order(result), CONFIG, catalog()).problems] == [
        "bad_quantity"
    ]
    order_body(result)["basketItems"] = []
    assert [p.code for p in map_site_order(read_order(result), CONFIG, catalog()).problems] == [
        "empty_basket"
    ]


def test_only_the_configured_customer_fields_are_taken() -> None:
    config = MappingConfig.build(property_codes={"name": ["CONTACT_PERSON", "FIO"], "address": "X"})
    command = map_site_order(read_order(doc_order()), config, catalog())
    assert command.customer == {
        "name": "John Smith",
        "phone": "14151234567",
        "email": "email@mail.com",
    }


def test_a_mapping_config_that_cannot_be_right_is_refused() -> None:
    with pytest.raises(ValueError, match="status_map"):
        MappingConfig.build(status_map={"P": "paid-ish"})
    with pytest.raises(ValueError, match="property_codes"):
        MappingConfig.build(property_codes={"birthday": "BDAY"})
    with pytest.raises(ValueError, match="pickup_deliveries"):
        MappingConfig.build(pickup_deliveries=["courier"])
    assert MappingConfig.build(pickup_deliveries=[3, "03"]).pickup_deliveries == {"3"}


def test_the_hubs_own_order_ids_are_recognisable() -> None:
    assert looks_like_hub_order_id(uuid7())
    assert not looks_like_hub_order_id("bx_65df53063d56d")
    assert not looks_like_hub_order_id("6f1f6c36-7c57-4a4b-9c1d-2d2d7a6e1a10")  # a 1C GUID (v4)
    assert not looks_like_hub_order_id(None)


# --- catch-up polling -------------------------------------------------------------------

T0 = datetime(2026, 3, 1, 10, 0, 0, tzinfo=PLUS3)


def stamps(count: int, at: datetime, first_id: int = 1) -> list[OrderStamp]:
    return [OrderStamp(str(first_id + n), 1, at, None) for n in range(count)]


def test_the_first_page_filters_from_the_watermark_less_the_overlap() -> None:
    page = first_page(T0, overlap=timedelta(seconds=30))
    assert page.params() == {
        "select": ["id", "version", "dateUpdate", "xmlId"],
        "filter": {">=dateUpdate": "2026-03-01T09:59:30+03:00"},
        "order": {"dateUpdate": "asc", "id": "asc"},
        "start": 0,
    }
    assert first_page(None).params()["filter"] == {}
    with pytest.raises(ValueError):
        first_page(datetime(2026, 3, 1, 10, 0))  # naive


def test_a_short_page_ends_the_poll() -> None:
    assert next_page(OrderListPage(T0), stamps(49, T0)) is None
    assert next_page(OrderListPage(T0), []) is None


def test_a_full_page_moves_on_from_its_last_date_update() -> None:
    rows = stamps(25, T0) + stamps(25, T0 + timedelta(seconds=2), first_id=100)
    assert next_page(OrderListPage(T0), rows) == OrderListPage(T0 + timedelta(seconds=2), 0)


def test_a_full_page_within_one_second_steps_by_offset() -> None:
    page = next_page(OrderListPage(T0, 50), stamps(50, T0))
    assert page == OrderListPage(T0, 100)
    assert page.params()["start"] == 100


def test_the_watermark_is_the_latest_date_update_seen_and_never_moves_back() -> None:
    later = T0 + timedelta(seconds=5)
    assert next_watermark(None, stamps(2, T0) + stamps(1, later, 9)) == later
    assert next_watermark(later, stamps(3, T0)) == later
    assert next_watermark(None, []) is None


def test_an_order_is_read_again_only_at_a_version_the_hub_has_not_applied() -> None:
    stamp = OrderStamp("5", 3, T0, None)
    assert is_new(stamp, None) and is_new(stamp, 2)
    assert not is_new(stamp, 3) and not is_new(stamp, 4)
