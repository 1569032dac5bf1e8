"""The orders document of `type=sale&mode=query`, shaped as Bitrix writes it for 1C."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from lxml import etree

from ..db.exchange_orders import ProductInfo
from ..domain.orders import Order, OrderLine
from ..domain.types import Channel, HoldState, OrderStatus, PaymentStatus, Source, Unit

SCHEMA_VERSION = "2.08"  # when 1C names none at init
# The versions the document is written in. The elements written are in the order of each
# version's schema (the same from 2.03 to 2.10 for what is written).
SERVED_VERSIONS = ("2.03", "2.04", "2.05", "2.06", "2.07", "2.08", "2.09", "2.10")
_FORMATS = {
    "ФорматДаты": "ДФ=yyyy-MM-dd; ДЛФ=DT",
    "ФорматВремени": "ДФ=ЧЧ:мм:сс; ДЛФ=T",
    "РазделительДатаВремя": "T",
    "ФорматСуммы": "ЧЦ=18; ЧДЦ=2; ЧРД=.",
    "ФорматКоличества": "ЧЦ=18; ЧДЦ=2; ЧРД=.",
}
ANONYMOUS = "Розничный покупатель"
SALE = "Заказ товара"
# Units customers brought back to a till that no known sale covers (services/till_shift.py):
# the schema's ХозОперация for goods coming back.
RETURN = "Возврат товара"
_STATUS_NAMES = {
    OrderStatus.PLACED: "Принят",
    OrderStatus.SHIPPED: "Отгружен",
    OrderStatus.COMPLETED: "Выполнен",
    OrderStatus.CANCELLED: "Отменен",
    OrderStatus.EXPIRED: "Отменен: резерв истек",
}
_UNITS = {  # OKEI code, short name, full name, international abbreviation
    Unit.PCS: ("796", "шт", "Штука", "PCE"),
    Unit.KG: ("166", "кг", "Килограмм", "KGM"),
    Unit.L: ("112", "л", "Литр", "LTR"),
    Unit.M: ("006", "м", "Метр", "MTR"),
}


@dataclass(frozen=True)
class Refs:
    products: dict[int, ProductInfo]
    stores: dict[int, tuple[str, str, str]]  # id -> (code, 1C Ид, name)
    zone: tzinfo


def served_version(asked: str | None) -> str:
    """The version 1C asked for at init, or the nearest one served (3.1 gets 2.10)."""
    try:
        wanted = Decimal((asked or "").strip())
    except InvalidOperation:
        return SCHEMA_VERSION
    if not wanted.is_finite():
        return SCHEMA_VERSION
    return min(SERVED_VERSIONS, key=lambda v: abs(Decimal(v) - wanted))


def orders_document(
    orders: Sequence[Order],
    refs: Refs,
    now: datetime,
    encoding: str,
    version: str = SCHEMA_VERSION,
    versioned: bool = False,
) -> bytes:
    """The `sale&mode=query` document in CommerceML `version`. `versioned`: 1C sent
    `version=` at init, so each Документ carries НомерВерсии, as Bitrix writes it then."""
    attrs = {
        "ВерсияСхемы": version,
        "ДатаФормирования": _local(now, refs.zone).strftime("%Y-%m-%dT%H:%M:%S"),
        **_FORMATS,
    }
    root = etree.Element("КоммерческаяИнформация", attrs)
    for order in orders:
        _document(etree.SubElement(root, "Документ"), order, refs, versioned)
    body = etree.tostring(root, encoding=encoding, xml_declaration=False, pretty_print=True)
    assert isinstance(body, bytes)
    return f'<?xml version="1.0" encoding="{encoding}"?>\n'.encode() + body


def _document(doc: etree._Element, order: Order, refs: Refs, versioned: bool) -> None:
    created = _local(order.created_at, refs.zone)
    # The order of the children is the 2.08 schema's (and Bitrix's); НомерВерсии where 1C
    # itself writes it, right after Ид.
    _add(doc, "Ид", order.id)
    if versioned:
        _add(doc, "НомерВерсии", str(order.version))
    _add(doc, "Номер", str(order.number))
    _add(doc, "Дата", created.strftime("%Y-%m-%d"))
    _add(doc, "ХозОперация", RETURN if order.source is Source.RETURN else SALE)
    _add(doc, "Роль", "Продавец")
    _add(doc, "Валюта", "руб" if order.currency == "RUB" else order.currency)
    _add(doc, "Курс", "1")
    _add(doc, "Сумма", _money(order.total))
    _customer(etree.SubElement(doc, "Контрагенты"), order)
    _add(doc, "Время", created.strftime("%H:%M:%S"))
    _add(doc, "Комментарий", order.comment or "")
    taken = {line.line_no: _taken(line) for line in order.lines}
    stores = list(dict.fromkeys(store for line in taken.values() for store in line))
    if not stores and order.store_id is not None:
        stores = [order.store_id]
    _stores(doc, stores, refs)
    goods = etree.SubElement(doc, "Товары")
    for line in order.lines:
        if line.quantity == 0:  # dropped by an operator: not in the document, as in Bitrix
            continue
        _line(etree.SubElement(goods, "Товар"), line, refs, list(taken[line.line_no].items()))
    _properties(etree.SubElement(doc, "ЗначенияРеквизитов"), order, refs)


def _taken(line: OrderLine) -> dict[int, Decimal]:
    """Per store, the units the line holds there or took from there (released holds gone)."""
    per_store: dict[int, Decimal] = {}
    for hold in line.holds:
        if hold.state in (HoldState.ACTIVE, HoldState.CONSUMED):
            per_store[hold.store_id] = per_store.get(hold.store_id, Decimal(0)) + hold.quantity
    return per_store


def _stores(
    parent: etree._Element, stores: Sequence[int], refs: Refs, quantities: Sequence[Decimal] = ()
) -> None:
    """Склады as Bitrix writes a warehouse (Ид = the store's 1C Ид, Наименование); on a line
    with the Количество taken from each (the 2.08 schema's Товар/Склады/Склад)."""
    amounts: Sequence[Decimal | None] = quantities or [None] * len(stores)
    known = [(s, q) for s, q in zip(stores, amounts, strict=True) if s in refs.stores]
    if not known:
        return
    box = etree.SubElement(parent, "Склады")
    for store_id, qty in known:
        _code, xml_id, name = refs.stores[store_id]
        store = etree.SubElement(box, "Склад")
        _add(store, "Ид", xml_id)
        _add(store, "Наименование", name)
        if qty is not None:
            _add(store, "Количество", _number(qty))


def customer_id_1c(customer: dict[str, Any]) -> str:
    """Контрагент/Ид as Bitrix writes it, `<user id>#<login>#<name>` (clients split it on
    `#`), stable for the same customer: the user id is the site's own when the order carries
    one (`customer.id`), else the phone's 11 digits (7XXXXXXXXXX), else a 12-digit number
    drawn from the e-mail, else 0 (an anonymous retail buyer); the login is the e-mail, else
    the phone, else `retail`."""
    name = _no_hash(str(customer.get("name") or "") or ANONYMOUS)
    phone = phone_digits(customer.get("phone"))
    email = str(customer.get("email") or "").strip().lower()
    site_id = str(customer.get("id") or "").strip()
    if site_id.isdigit():
        user_id = site_id
    elif phone:
        user_id = phone
    elif email:
        user_id = str(int(hashlib.sha256(email.encode()).hexdigest(), 16) % 10**12).zfill(12)
    else:
        user_id = "0"
    login = _no_hash(email or phone or "retail")
    return f"{user_id}#{login}#{name}"[:255]


def phone_digits(value: object) -> str:
    """A Russian phone number as its 11 digits starting with 7 (8XXXXXXXXXX and 10-digit
    forms too); other numbers as their digits; "" when there are none."""
    digits = "".join(c for c in str(value or "") if c.isdigit())
    if len(digits) == 11 and digits[0] == "8":
        return "7" + digits[1:]
    if len(digits) == 10 and digits[0] == "9":
        return "7" + digits
    return digits


def _no_hash(text: str) -> str:
    return text.replace("#", " ").strip()


def _customer(parent: etree._Element, order: Order) -> None:
    customer = order.customer or {}
    name = str(customer.get("name") or ANONYMOUS)
    agent = etree.SubElement(parent, "Контрагент")
    _add(agent, "Ид", customer_id_1c(customer))
    _add(agent, "Наименование", name)
    _add(agent, "ПолноеНаименование", name)
    _add(agent, "Роль", "Покупатель")
    contacts = [("Телефон рабочий", customer.get("phone")), ("Почта", customer.get("email"))]
    if any(value for _, value in contacts):
        box = etree.SubElement(agent, "Контакты")
        for kind, value in contacts:
            if value:
                contact = etree.SubElement(box, "Контакт")
                _add(contact, "Тип", kind)
                _add(contact, "Значение", str(value))


def _line(
    item: etree._Element, line: OrderLine, refs: Refs, taken: Sequence[tuple[int, Decimal]]
) -> None:
    product_id, quantity, price = line.product_id, line.quantity, line.price
    info = refs.products.get(product_id)
    code, short, full, intl = _UNITS[Unit(info.unit if info else "pcs")]
    _add(item, "Ид", info.xml_id if info else str(product_id))
    _add(item, "Наименование", info.name if info else str(product_id))
    unit = _add(item, "БазоваяЕдиница", short)
    unit.set("Код", code)
    unit.set("НаименованиеПолное", full)
    unit.set("МеждународноеСокращение", intl)
    _add(item, "ЦенаЗаЕдиницу", _money(price))
    # What the customer kept: a till return is a change of its sale's order.
    _add(item, "Количество", _number(line.kept))
    _add(item, "Сумма", _money(line.amount))
    props = etree.SubElement(item, "ЗначенияРеквизитов")
    _property(props, "ВидНоменклатуры", "Товар")
    _property(props, "ТипНоменклатуры", "Товар")
    if line.returned:
        _property(props, "Количество продано", _number(quantity))
        _property(props, "Количество возвращено", _number(line.returned))
    _stores(item, [s for s, _ in taken], refs, [q for _, q in taken])


def _properties(props: etree._Element, order: Order, refs: Refs) -> None:
    paid = order.payment_status is PaymentStatus.PAID
    cancelled = order.status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED)
    shipped = order.status in (OrderStatus.SHIPPED, OrderStatus.COMPLETED)
    store = refs.stores.get(order.store_id) if order.store_id is not None else None
    values = [
        ("Метод оплаты", ""),
        ("Заказ оплачен", _bool(paid)),
        ("Дата оплаты", _time(order.paid_at, refs)),
        ("Доставка разрешена", _bool(shipped)),
        ("Отгружен", _bool(shipped)),
        ("Дата отгрузки", _time(order.shipped_at, refs)),
        ("Отменен", _bool(cancelled)),
        ("Финальный статус", _bool(order.status is OrderStatus.COMPLETED)),
        ("Статус заказа", f"[{order.status.value}] {_STATUS_NAMES[order.status]}"),
        ("Статуса заказа ИД", order.status.value),
        ("Дата изменения статуса", _time(order.updated_at, refs)),
        ("Сайт", "ordersync"),
        ("Канал", order.channel.value),
        ("Источник", order.source.value),
        ("Способ получения", order.fulfillment.value),
        ("Склад", store[1] if store else ""),
        ("Склад (код)", store[0] if store else ""),
        # a till shift's order keeps its shift key there, which is no site's number
        ("Номер заказа на сайте", "" if order.channel is Channel.POS else order.external_id or ""),
        ("Касса", order.pos_id or ""),
        ("Номер чека ККМ", order.pos_transaction_id or ""),
    ]
    for name, value in values:
        _property(props, name, value)


def _property(parent: etree._Element, name: str, value: str) -> None:
    item = etree.SubElement(parent, "ЗначениеРеквизита")
    _add(item, "Наименование", name)
    _add(item, "Значение", value)


def _add(parent: etree._Element, tag: str, text: str) -> etree._Element:
    element = etree.SubElement(parent, tag)
    element.text = _XML_INVALID.sub("", text)
    return element


# Characters XML 1.0 cannot carry (control characters a till or a form may let through):
# one such comment must not stop every order from reaching 1C.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _local(moment: datetime, zone: tzinfo) -> datetime:
    return moment.astimezone(zone)


def _time(moment: datetime | None, refs: Refs) -> str:
    return "" if moment is None else _local(moment, refs.zone).strftime("%Y-%m-%dT%H:%M:%S")


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def _number(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text
