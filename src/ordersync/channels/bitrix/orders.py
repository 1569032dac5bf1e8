"""A site order as the hub reads it: `sale.order.get` (result.order with basketItems, payments,
shipments, propertyValues) and the rows of `sale.order.list` (result.orders), shaped by
bitrix24/b24restdocs api-reference/sale/order/sale-order-get.md, sale-order-list.md and
api-reference/sale/data-types.md (sale_order, sale_basket_item, sale_basket_item_reservation,
sale_order_payment, sale_order_shipment, sale_order_property_value).

Everything is read into frozen dataclasses with the site's names in snake case; ids are kept as
their decimal text (the site sends some as numbers and some as strings), money and quantities as
Decimal, flags as bool, dates as aware datetimes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any

from .values import (
    BadSitePayload,
    flag,
    moment,
    number,
    optional_id,
    optional_text,
    site_id,
    text,
)


@dataclass(frozen=True, slots=True)
class Reservation:
    """basketItems[].reservations[]: a quantity the site holds at one of its stores."""

    store_id: str
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class BasketItem:
    id: str
    product_id: str  # "0" for a product the site's catalog does not have
    product_xml_id: str | None  # the 1C Ид; for an offer `<product Ид>#<offer Ид>`
    name: str
    quantity: Decimal
    price: Decimal
    currency: str
    reservations: tuple[Reservation, ...]

    @property
    def offer_xml_id(self) -> str | None:
        """The offer's own Ид when productXmlId is `<product>#<offer>`."""
        if self.product_xml_id and "#" in self.product_xml_id:
            return self.product_xml_id.split("#", 1)[1] or None
        return None


@dataclass(frozen=True, slots=True)
class Payment:
    id: str
    pay_system_id: str
    paid: bool
    sum: Decimal


@dataclass(frozen=True, slots=True)
class Shipment:
    id: str
    system: bool  # Bitrix's own shipment of the not yet distributed items: not a delivery
    delivery_id: str
    allow_delivery: bool
    deducted: bool
    store_id: str | None  # not a documented field; read when a site sends it


@dataclass(frozen=True, slots=True)
class PropertyValue:
    code: str
    value: str | None


@dataclass(frozen=True, slots=True)
class OrderStamp:
    """What catch-up polling needs of a `sale.order.list` row."""

    id: str
    version: int
    date_update: datetime
    xml_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteOrderHeader:
    """The order's own fields: a `sale.order.list` row, or the head of `sale.order.get`."""

    id: str
    account_number: str
    xml_id: str | None
    version: int
    lid: str
    status_id: str
    payed: bool
    canceled: bool
    deducted: bool
    date_insert: datetime
    date_update: datetime
    currency: str
    price: Decimal
    person_type_id: str | None
    user_id: str | None
    comments: str
    user_description: str

    @property
    def stamp(self) -> OrderStamp:
        return OrderStamp(self.id, self.version, self.date_update, self.xml_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteOrder(SiteOrderHeader):
    """`sale.order.get`: the order with its basket, payments, shipments and properties."""

    basket: tuple[BasketItem, ...]
    payments: tuple[Payment, ...]
    shipments: tuple[Shipment, ...]
    properties: tuple[PropertyValue, ...]

    @property
    def delivery_shipments(self) -> tuple[Shipment, ...]:
        """The shipments that say how the order is delivered (not the system one)."""
        return tuple(s for s in self.shipments if not s.system)

    def property_value(self, code: str) -> str | None:
        """The first non-empty value of the property with this code (codes compare case-blind)."""
        wanted = code.upper()
        for prop in self.properties:
            if prop.code.upper() == wanted and prop.value:
                return prop.value
        return None


# --- readers ------------------------------------------------------------------------------


def read_order(result: Mapping[str, Any], naive_tz: tzinfo | None = None) -> SiteOrder:
    """The order of a `sale.order.get` result (`{"order": {...}}`, or the order object)."""
    raw = _object(result.get("order", result), "order")
    where = f"order {raw.get('id')!r}"
    return SiteOrder(
        **_header_fields(raw, naive_tz),
        basket=tuple(_basket_item(x, where) for x in _list(raw, "basketItems", where)),
        payments=tuple(_payment(x, where) for x in _list(raw, "payments", where)),
        shipments=tuple(_shipment(x, where) for x in _list(raw, "shipments", where)),
        properties=tuple(_property(x, where) for x in _list(raw, "propertyValues", where)),
    )


def read_order_row(row: Mapping[str, Any], naive_tz: tzinfo | None = None) -> SiteOrderHeader:
    """One row of `sale.order.list` selected with every header field (or no `select`)."""
    return SiteOrderHeader(**_header_fields(_object(row, "order row"), naive_tz))


def read_order_stamp(row: Mapping[str, Any], naive_tz: tzinfo | None = None) -> OrderStamp:
    """id, version, dateUpdate and xmlId of a `sale.order.list` row (select at least those)."""
    raw = _object(row, "order row")
    order_id = site_id(raw.get("id"), "order id")
    where = f"order {order_id}"
    return OrderStamp(
        order_id,
        _version(raw, where),
        moment(raw.get("dateUpdate"), f"{where} dateUpdate", naive_tz),
        optional_text(raw.get("xmlId")),
    )


def read_order_list(
    result: Mapping[str, Any], naive_tz: tzinfo | None = None
) -> tuple[OrderStamp, ...]:
    """The stamps of a `sale.order.list` result (`{"orders": [...]}`)."""
    rows = _object(result, "sale.order.list result").get("orders")
    if rows is None:
        return ()
    if not isinstance(rows, list):
        raise BadSitePayload("sale.order.list: orders is not a list")
    return tuple(read_order_stamp(row, naive_tz) for row in rows)


def _header_fields(raw: Mapping[str, Any], naive_tz: tzinfo | None) -> dict[str, Any]:
    order_id = site_id(raw.get("id"), "order id")
    where = f"order {order_id}"
    return {
        "id": order_id,
        "account_number": text(raw.get("accountNumber")) or order_id,
        "xml_id": optional_text(raw.get("xmlId")),
        "version": _version(raw, where),
        "lid": text(raw.get("lid")),
        "status_id": _required_text(raw, "statusId", where),
        "payed": flag(raw.get("payed"), f"{where} payed"),
        "canceled": flag(raw.get("canceled"), f"{where} canceled"),
        "deducted": flag(raw.get("deducted", "N"), f"{where} deducted"),
        "date_insert": moment(raw.get("dateInsert"), f"{where} dateInsert", naive_tz),
        "date_update": moment(raw.get("dateUpdate"), f"{where} dateUpdate", naive_tz),
        "currency": _required_text(raw, "currency", where),
        "price": number(raw.get("price", 0), f"{where} price"),
        "person_type_id": optional_id(raw.get("personTypeId"), f"{where} personTypeId"),
        "user_id": optional_id(raw.get("userId"), f"{where} userId"),
        "comments": text(raw.get("comments")),
        "user_description": text(raw.get("userDescription")),
    }


def _basket_item(value: Any, where: str) -> BasketItem:
    raw = _object(value, f"{where} basket item")
    item_id = site_id(raw.get("id"), f"{where} basket item id")
    here = f"{where} basket item {item_id}"
    reservations = tuple(
        _reservation(x, here) for x in _list(raw, "reservations", here, required=False)
    )
    return BasketItem(
        id=item_id,
        product_id=site_id(raw.get("productId", 0) or 0, f"{here} productId"),
        product_xml_id=optional_text(raw.get("productXmlId")),
        name=text(raw.get("name")),
        quantity=number(raw.get("quantity"), f"{here} quantity"),
        price=number(raw.get("price"), f"{here} price"),
        currency=text(raw.get("currency")),
        reservations=reservations,
    )


def _reservation(value: Any, where: str) -> Reservation:
    raw = _object(value, f"{where} reservation")
    return Reservation(
        site_id(raw.get("storeId"), f"{where} reservation storeId"),
        number(raw.get("quantity"), f"{where} reservation quantity"),
    )


def _payment(value: Any, where: str) -> Payment:
    raw = _object(value, f"{where} payment")
    payment_id = site_id(raw.get("id"), f"{where} payment id")
    here = f"{where} payment {payment_id}"
    return Payment(
        id=payment_id,
        pay_system_id=site_id(raw.get("paySystemId"), f"{here} paySystemId"),
        paid=flag(raw.get("paid"), f"{here} paid"),
        sum=number(raw.get("sum", 0), f"{here} sum"),
    )


def _shipment(value: Any, where: str) -> Shipment:
    raw = _object(value, f"{where} shipment")
    shipment_id = site_id(raw.get("id"), f"{where} shipment id")
    here = f"{where} shipment {shipment_id}"
    return Shipment(
        id=shipment_id,
        system=flag(raw.get("system", "N"), f"{here} system"),
        delivery_id=site_id(raw.get("deliveryId"), f"{here} deliveryId"),
        allow_delivery=flag(raw.get("allowDelivery", "N"), f"{here} allowDelivery"),
        deducted=flag(raw.get("deducted", "N"), f"{here} deducted"),
        store_id=optional_id(raw.get("storeId"), f"{here} storeId"),
    )


def _property(value: Any, where: str) -> PropertyValue:
    raw = _object(value, f"{where} property value")
    code = text(raw.get("code")).strip()
    return PropertyValue(code, _property_text(raw.get("value")))


def _property_text(value: Any) -> str | None:
    """Scalars as text, a multiple property's values joined; files and other objects are not
    customer data the hub keeps."""
    if isinstance(value, list):
        parts = [_property_text(v) for v in value]
        joined = ", ".join(p for p in parts if p)
        return joined or None
    if value is None or isinstance(value, Mapping):
        return None
    return optional_text(value)


def _version(raw: Mapping[str, Any], where: str) -> int:
    value = raw.get("version")
    if value is None or value == "":
        raise BadSitePayload(f"{where} has no version", field="version")
    return int(site_id(value, f"{where} version"))


def _required_text(raw: Mapping[str, Any], name: str, where: str) -> str:
    value = text(raw.get(name)).strip()
    if not value:
        raise BadSitePayload(f"{where} has no {name}", field=name)
    return value


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise BadSitePayload(f"{what} is not an object: {type(value).__name__}")
    return value


def _list(raw: Mapping[str, Any], name: str, where: str, required: bool = False) -> Sequence[Any]:
    value = raw.get(name)
    if value is None:
        if required:
            raise BadSitePayload(f"{where} has no {name}", field=name)
        return ()
    if isinstance(value, Mapping):  # PHP writes a keyed array as an object
        return list(value.values())
    if not isinstance(value, list):
        raise BadSitePayload(f"{where} {name} is not a list", field=name)
    return value
