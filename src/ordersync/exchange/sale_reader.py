"""Order changes 1C sends back (`type=sale&mode=file`): one Документ per order."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from .xml import iter_ends, properties, text_of

_TRUE = {"true", "истина", "да", "1"}


@dataclass(frozen=True)
class OrderChange:
    id: str | None  # Ид: the hub's order id as 1C received it, or 1C's own document id
    number: str | None  # Номер: the order's number as 1C received it (or the site's)
    number_1c: str | None
    version: str | None
    deleted: bool
    posted: bool | None
    cancelled: bool
    paid: bool  # Номер/Дата оплаты по 1С
    shipped: bool  # Номер/Дата отгрузки по 1С
    status_id: str | None
    status: str | None
    total: Decimal | None = None  # Сумма: tells apart two orders that share a number

    @property
    def label(self) -> str:
        return " / ".join(x for x in (self.id, self.number) if x) or "?"


def read_order_changes(path: Path) -> Iterator[OrderChange]:
    for doc in iter_ends(path, "Документ"):
        id_, number = text_of(doc, "Ид"), text_of(doc, "Номер")
        if not id_ and not number:
            continue
        props = properties(doc)
        posted = props.get("Проведен")
        yield OrderChange(
            id=id_ or None,
            number=number or None,
            total=_amount(text_of(doc, "Сумма")),
            number_1c=text_of(doc, "Номер1С") or props.get("Номер по 1С") or None,
            version=text_of(doc, "НомерВерсии"),
            deleted=_flag(text_of(doc, "ПометкаУдаления")) or _flag(props.get("ПометкаУдаления")),
            posted=None if posted is None else _flag(posted),
            cancelled=_flag(props.get("Отменен")),
            paid=bool(props.get("Дата оплаты по 1С") or props.get("Номер оплаты по 1С")),
            shipped=bool(props.get("Дата отгрузки по 1С") or props.get("Номер отгрузки по 1С")),
            status_id=props.get("Статуса заказа ИД") or props.get("Статус заказа ИД") or None,
            status=props.get("Статус заказа") or None,
        )


def _amount(value: str | None) -> Decimal | None:
    try:
        return None if value is None else Decimal(value.strip().replace(",", "."))
    except InvalidOperation:
        return None


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in _TRUE
