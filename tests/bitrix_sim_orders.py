"""The orders of the simulated Bitrix site (see tests/bitrix_sim.py): the model, how each REST
method renders it, and the `filter`/`order`/`select` rules of `sale.order.list`.

Shapes follow bitrix24/b24restdocs:
- sale.order.get: api-reference/sale/order/sale-order-get.md (the example's types exactly: the
  order's id and userId numbers, basketItems[].id and .orderId strings, productId a number,
  reservations[], payments[], shipments[] with shipmentItems[], propertyValues[]).
- sale.order.list rows: sale-order-list.md; sale.order.add / update: sale-order-add.md,
  sale-order-update.md; object fields: api-reference/sale/data-types.md.
- The system shipment: data-types.md says "System shipments are not visible through REST", so it
  is kept here but shown only when the site is built with show_system_shipment=True.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

SITE_TZ = timezone(timedelta(hours=3))
PAGE = 50


class ProtocolError(AssertionError):
    """The client sent something a Bitrix site would not understand."""


class SimError(Exception):
    def __init__(self, code: int | str, description: str, status: int = 400) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.status = status

    def envelope(self) -> dict[str, Any]:
        return {"error": self.code, "error_description": self.description}


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds")


def num(value: Decimal) -> int | float:
    """A Decimal as the JSON number Bitrix writes."""
    return int(value) if value == value.to_integral_value() else float(value)


def yn(value: bool) -> str:
    return "Y" if value else "N"


@dataclass
class SimReservation:
    id: int
    store_id: int
    quantity: Decimal
    date_reserve: datetime


@dataclass
class SimBasketItem:
    id: int
    product_id: int
    product_xml_id: str
    name: str
    quantity: Decimal
    price: Decimal
    currency: str
    xml_id: str
    date_insert: datetime
    reservations: list[SimReservation] = field(default_factory=list)


@dataclass
class SimPayment:
    id: int
    pay_system_id: int
    paid: bool
    sum: Decimal
    currency: str
    xml_id: str
    account_number: str
    date_bill: datetime


@dataclass
class SimShipment:
    id: int
    delivery_id: int
    system: bool
    allow_delivery: bool
    deducted: bool
    status_id: str
    currency: str
    account_number: str
    date_insert: datetime
    xml_id: str
    price_delivery: Decimal = Decimal(0)


@dataclass
class SimProperty:
    id: int
    props_id: int
    code: str
    name: str
    value: str | None


@dataclass
class SimOrder:
    id: int
    account_number: str
    person_type_id: int
    status_id: str
    currency: str
    user_id: int
    date_insert: datetime
    date_update: datetime
    date_status: datetime
    lid: str = "s1"
    payed: bool = False
    canceled: bool = False
    deducted: bool = False
    price: Decimal = Decimal(0)
    xml_id: str = ""
    comments: str = ""
    user_description: str = ""
    additional_info: str = ""
    reason_canceled: str = ""
    external_order: bool = False
    date_canceled: datetime | None = None
    version: int = 1
    basket: list[SimBasketItem] = field(default_factory=list)
    payments: list[SimPayment] = field(default_factory=list)
    shipments: list[SimShipment] = field(default_factory=list)
    properties: list[SimProperty] = field(default_factory=list)

    def __getitem__(self, name: str) -> Any:
        """The REST field of that name (`order["statusId"]`), as sale.order.get shows it."""
        return header(self)[name]

    def recount(self) -> None:
        self.price = sum((i.price * i.quantity for i in self.basket), Decimal(0)) + sum(
            (s.price_delivery for s in self.shipments if not s.system), Decimal(0)
        )
        paid = sum((p.sum for p in self.payments if p.paid), Decimal(0))
        self.payed = bool(self.payments) and paid >= self.price

    def reserved(self) -> dict[tuple[int, int], Decimal]:
        """(product, store) -> quantity this order holds at the site."""
        held: dict[tuple[int, int], Decimal] = {}
        if self.canceled or self.deducted:
            return held
        for item in self.basket:
            for r in item.reservations:
                key = (item.product_id, r.store_id)
                held[key] = held.get(key, Decimal(0)) + r.quantity
        return held


# --- rendering ----------------------------------------------------------------------------


def header(order: SimOrder) -> dict[str, Any]:
    """The order's own fields, in sale.order.get / sale.order.list / sale.order.update."""
    return {
        "accountNumber": order.account_number,
        "additionalInfo": order.additional_info,
        "affiliateId": None,
        "canceled": yn(order.canceled),
        "comments": order.comments,
        "companyId": 0,
        "currency": order.currency,
        "dateCanceled": iso(order.date_canceled),
        "dateInsert": iso(order.date_insert),
        "dateLock": None,
        "dateMarked": None,
        "dateStatus": iso(order.date_status),
        "dateUpdate": iso(order.date_update),
        "deducted": yn(order.deducted),
        "discountValue": 0,
        "empCanceledId": 1 if order.canceled else None,
        "empMarkedId": None,
        "empStatusId": 1,
        "externalOrder": yn(order.external_order),
        "id": order.id,
        "id1c": "",
        "lid": order.lid,
        "lockedBy": "",
        "marked": "N",
        "orderTopic": "",
        "payed": yn(order.payed),
        "personTypeId": order.person_type_id,
        "personTypeXmlId": "",
        "price": num(order.price),
        "reasonCanceled": order.reason_canceled,
        "reasonMarked": "",
        "recountFlag": "Y",
        "recurringId": "",
        "responsibleId": 1,
        "statusId": order.status_id,
        "statusXmlId": "",
        "taxValue": 0,
        "updated1c": "N",
        "userDescription": order.user_description,
        "userId": order.user_id,
        "version": order.version,
        "version1c": "",
        "xmlId": order.xml_id,
    }


_EPOCH = datetime(2000, 1, 1, tzinfo=SITE_TZ)
HEADER_FIELDS = frozenset(
    header(
        SimOrder(
            id=0,
            account_number="",
            person_type_id=1,
            status_id="N",
            currency="RUB",
            user_id=0,
            date_insert=_EPOCH,
            date_update=_EPOCH,
            date_status=_EPOCH,
        )
    )
)


@dataclass(frozen=True)
class Names:
    """What rendering looks up elsewhere on the site."""

    delivery: Callable[[int], str]
    pay_system: Callable[[int], tuple[str, bool]]  # name, is cash


def full_order(order: SimOrder, names: Names, show_system_shipment: bool) -> dict[str, Any]:
    body = header(order)
    body["basketItems"] = [basket_item(order, item, as_get=True) for item in order.basket]
    body["clients"] = []
    body["payments"] = [payment(order, p, names) for p in order.payments]
    body["propertyValues"] = [
        {
            "code": p.code,
            "id": p.id,
            "name": p.name,
            "orderPropsId": p.props_id,
            "orderPropsXmlId": None,
            "value": p.value,
        }
        for p in order.properties
    ]
    body["requisiteLink"] = {
        "bankDetailId": 0,
        "mcBankDetailId": 0,
        "mcRequisiteId": 0,
        "requisiteId": 0,
    }
    body["shipments"] = [
        shipment(order, s, names) for s in order.shipments if show_system_shipment or not s.system
    ]
    body["tradeBindings"] = []
    return body


def basket_item(order: SimOrder, item: SimBasketItem, as_get: bool) -> dict[str, Any]:
    """sale.order.get writes the item's id and orderId as strings; sale.basketitem.* as
    numbers (sale-basket-item-add.md)."""
    return {
        "barcodeMulti": "N",
        "basePrice": num(item.price),
        "canBuy": "Y",
        "catalogXmlId": "catalog-1c",
        "currency": item.currency,
        "customPrice": "N",
        "dateInsert": iso(item.date_insert),
        "dateRefresh": None,
        "dateUpdate": iso(order.date_update),
        "detailPageUrl": "",
        "dimensions": 'a:3:{s:5:"WIDTH";N;s:6:"HEIGHT";N;s:6:"LENGTH";N;}',
        "discountCoupon": "",
        "discountName": "",
        "discountPrice": 0,
        "discountValue": "",
        "fuserId": order.user_id,
        "id": str(item.id) if as_get else item.id,
        "lid": order.lid,
        "measureCode": "796",
        "measureName": "pcs",
        "module": "catalog",
        "name": item.name,
        "notes": "BASE",
        "orderId": str(order.id) if as_get else order.id,
        "price": num(item.price),
        "priceTypeId": 1,
        "productId": item.product_id,
        "productPriceId": item.product_id,
        "productProviderClass": "\\Bitrix\\Catalog\\Product\\CatalogProvider",
        "productXmlId": item.product_xml_id,
        "properties": [
            {
                "basketId": item.id,
                "code": "PRODUCT.XML_ID",
                "id": item.id * 10,
                "name": "Product XML_ID",
                "sort": 100,
                "value": item.product_xml_id,
                "xmlId": f"bx_p{item.id}",
            }
        ],
        "quantity": num(item.quantity),
        "recommendation": "",
        "reservations": [
            {
                "basketId": item.id,
                "dateReserve": iso(r.date_reserve),
                "dateReserveEnd": iso(r.date_reserve + timedelta(days=3)),
                "id": r.id,
                "quantity": num(r.quantity),
                "reservedBy": None,
                "storeId": r.store_id,
            }
            for r in item.reservations
        ],
        "setParentId": "",
        "sort": 100,
        "subscribe": "N",
        "type": "",
        "vatIncluded": "Y",
        "vatRate": 0.2,
        "weight": 0,
        "xmlId": item.xml_id,
    }


def payment(order: SimOrder, p: SimPayment, names: Names) -> dict[str, Any]:
    name, is_cash = names.pay_system(p.pay_system_id)
    return {
        "accountNumber": p.account_number,
        "comments": "",
        "companyId": 0,
        "currency": p.currency,
        "dateBill": iso(p.date_bill),
        "dateMarked": None,
        "datePaid": iso(order.date_update) if p.paid else None,
        "datePayBefore": None,
        "dateResponsibleId": None,
        "empMarkedId": None,
        "empPaidId": 1 if p.paid else None,
        "empResponsibleId": None,
        "empReturnId": None,
        "externalPayment": "N",
        "id": p.id,
        "id1c": "",
        "isReturn": "N",
        "marked": "N",
        "orderId": order.id,
        "paid": yn(p.paid),
        "payReturnComment": "",
        "payReturnDate": None,
        "payReturnNum": "",
        "paySystemId": p.pay_system_id,
        "paySystemIsCash": yn(is_cash),
        "paySystemName": name,
        "paySystemXmlId": f"bx_ps{p.pay_system_id}",
        "payVoucherDate": None,
        "payVoucherNum": "",
        "priceCod": "0",
        "psCurrency": "",
        "psInvoiceId": None,
        "psResponseDate": None,
        "psStatus": "",
        "psStatusCode": "",
        "psStatusDescription": "",
        "psStatusMessage": "",
        "psSum": None,
        "reasonMarked": "",
        "responsibleId": None,
        "sum": num(p.sum),
        "updated1c": "N",
        "version1c": "",
        "xmlId": p.xml_id,
    }


def shipment(order: SimOrder, s: SimShipment, names: Names) -> dict[str, Any]:
    items = [] if s.system else order.basket
    return {
        "accountNumber": s.account_number,
        "allowDelivery": yn(s.allow_delivery),
        "basePriceDelivery": num(s.price_delivery),
        "canceled": "N",
        "comments": "",
        "companyId": 0,
        "currency": s.currency,
        "customPriceDelivery": "N",
        "dateAllowDelivery": None,
        "dateCanceled": None,
        "dateDeducted": iso(order.date_update) if s.deducted else None,
        "dateInsert": iso(s.date_insert),
        "dateMarked": None,
        "dateResponsibleId": None,
        "deducted": yn(s.deducted),
        "deliveryDocDate": None,
        "deliveryDocNum": "",
        "deliveryId": s.delivery_id,
        "deliveryName": names.delivery(s.delivery_id),
        "deliveryXmlId": "",
        "discountPrice": 0,
        "empAllowDeliveryId": None,
        "empCanceledId": None,
        "empDeductedId": None,
        "empMarkedId": None,
        "empResponsibleId": None,
        "externalDelivery": "N",
        "id": s.id,
        "id1c": "",
        "marked": "N",
        "orderId": order.id,
        "priceDelivery": num(s.price_delivery),
        "reasonMarked": "",
        "reasonUndoDeducted": "",
        "responsibleId": None,
        "shipmentItems": [
            {
                "basketId": item.id,
                "dateInsert": iso(item.date_insert),
                "id": item.id + 100_000,
                "orderDeliveryId": s.id,
                "quantity": num(item.quantity),
                "reservedQuantity": num(sum((r.quantity for r in item.reservations), Decimal(0))),
                "xmlId": f"bx_si{item.id}",
            }
            for item in items
        ],
        "statusId": s.status_id,
        "statusXmlId": "",
        "system": yn(s.system),
        "trackingDescription": "",
        "trackingLastCheck": "",
        "trackingNumber": "",
        "trackingStatus": "",
        "updated1c": "N",
        "version1c": "",
        "xmlId": s.xml_id,
    }


# --- list methods: filter, order, select, start -------------------------------------------

# sale-order-list.md: the prefixes a filter key may carry, longest first
PREFIXES = ("!=%", "!%=", ">=", "<=", "!@", "!=", "!%", "=%", "%=", ">", "<", "@", "!", "%", "=")


@dataclass(frozen=True)
class Schema:
    """The fields of a listed object and the type of those that are not strings."""

    fields: frozenset[str]
    ints: frozenset[str] = frozenset()
    numbers: frozenset[str] = frozenset()
    dates: frozenset[str] = frozenset()

    def split(self, key: str) -> tuple[str, str]:
        for prefix in PREFIXES:
            if key.startswith(prefix):
                name = key[len(prefix) :]
                break
        else:
            prefix, name = "=", key
        if name not in self.fields:
            raise ProtocolError(f"filter key {key!r}: no field {name!r} (prefixes go before it)")
        return prefix, name

    def typed(self, name: str, value: Any) -> Any:
        """A filter value as the field's type (values in a batch query arrive as strings)."""
        if value is None:
            return None
        try:
            if name in self.ints:
                return int(str(value))
            if name in self.numbers:
                return Decimal(str(value))
            if name in self.dates:
                moment = datetime.fromisoformat(str(value))
                return moment if moment.tzinfo else moment.replace(tzinfo=SITE_TZ)
        except (ValueError, InvalidOperation) as exc:
            raise SimError(0, f"Invalid value of {name}: {value!r}") from exc
        return str(value)

    def value(self, row: Mapping[str, Any], name: str) -> Any:
        value = row.get(name)
        if value is None:
            return None
        if name in self.dates:
            return datetime.fromisoformat(value)
        if name in self.numbers:
            return Decimal(str(value))
        if name in self.ints:
            return int(value)
        return value

    def matches(self, row: Mapping[str, Any], flt: Mapping[str, Any]) -> bool:
        for key, wanted in flt.items():
            prefix, name = self.split(key)
            if not self._holds(prefix, name, self.value(row, name), wanted):
                return False
        return True

    def _holds(self, prefix: str, name: str, have: Any, wanted: Any) -> bool:
        if prefix in ("@", "!@"):
            if not isinstance(wanted, list):
                raise ProtocolError(f"{prefix}{name} takes an array")
            inside = have in {self.typed(name, w) for w in wanted}
            return inside if prefix == "@" else not inside
        if isinstance(wanted, list):  # an array for "=" (or "!") filters IN (NOT IN)
            inside = have in {self.typed(name, w) for w in wanted}
            return not inside if prefix in ("!", "!=") else inside
        value = self.typed(name, wanted)
        if prefix == "=":
            return bool(have == value)
        if prefix in ("!", "!="):
            return bool(have != value)
        if prefix in ("%", "=%", "%="):
            return _like(prefix, have, str(wanted))
        if prefix in ("!%", "!=%", "!%="):
            return not _like(prefix.replace("!", ""), have, str(wanted))
        if have is None:
            return False
        if prefix == ">=":
            return bool(have >= value)
        if prefix == ">":
            return bool(have > value)
        if prefix == "<=":
            return bool(have <= value)
        return bool(have < value)


ORDER_SCHEMA = Schema(
    HEADER_FIELDS,
    ints=frozenset(
        {"id", "version", "personTypeId", "userId", "responsibleId", "empStatusId", "companyId"}
    ),
    numbers=frozenset({"price", "discountValue", "taxValue"}),
    dates=frozenset({"dateInsert", "dateUpdate", "dateStatus", "dateCanceled"}),
)


def _like(prefix: str, have: Any, pattern: str) -> bool:
    if have is None:
        return False
    if prefix == "%":
        return pattern.lower() in str(have).lower()
    regex = "^" + ".*".join(re.escape(part) for part in pattern.split("%")) + "$"
    return re.match(regex, str(have), re.I | re.S) is not None


def sort_rows(rows: list[dict[str, Any]], order: Any, schema: Schema) -> list[dict[str, Any]]:
    if order in (None, "", []):
        return rows
    if not isinstance(order, dict):
        raise ProtocolError(f"order is an object {{field: asc|desc}}, not {order!r}")
    keys = list(order.items())
    for name, direction in keys:
        if name not in schema.fields:
            raise ProtocolError(f"order by unknown field {name!r}")
        if str(direction).lower() not in ("asc", "desc"):
            raise ProtocolError(f"order direction {direction!r} is not asc/desc")
    for name, direction in reversed(keys):  # stable sorts, last key first

        def key(row: dict[str, Any], name: str = name) -> tuple[bool, Any]:
            return _sort_key(schema.value(row, name))

        rows = sorted(rows, key=key, reverse=str(direction).lower() == "desc")
    return rows


def _sort_key(value: Any) -> tuple[bool, Any]:
    return (value is None, value)


def select_fields(rows: list[dict[str, Any]], select: Any, schema: Schema) -> list[Any]:
    if select in (None, "", []):
        return rows
    names = select if isinstance(select, list) else [select]
    for name in names:
        if name not in schema.fields:
            raise ProtocolError(f"select of unknown field {name!r}")
    return [{n: r[n] for n in names} for r in rows]


def page(rows: list[Any], start: Any) -> tuple[list[Any], int | None, int | None]:
    """A page of 50 at `start`, with `total` and `next`; start -1 skips the count (no next,
    total 0: settings/performance/huge-data.md)."""
    try:
        offset = int(str(start if start not in (None, "") else 0))
    except ValueError as exc:
        raise SimError(0, f"start must be an integer, got {start!r}") from exc
    if offset == -1:
        return rows[:PAGE], 0, None
    if offset < 0:
        raise SimError(0, f"start must be -1 or more, got {offset}")
    chunk = rows[offset : offset + PAGE]
    following = offset + PAGE if offset + PAGE < len(rows) else None
    return chunk, len(rows), following
