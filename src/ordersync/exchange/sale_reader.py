"""Order changes 1C sends back (`type=sale&mode=file`): one Документ per order."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .xml import iter_ends, properties, text_of

_TRUE = {"true", "истина", "да", "1"}


@dataclass(frozen=True)
class OrderChange:
    ref: str  # Ид: the hub's order id (or the site number 1C kept)
    number: str | None
    number_1c: str | None
    version: str | None
    deleted: bool
    posted: bool | None
    cancelled: bool
    paid: bool  # Номер/Дата оплаты по 1С
    shipped: bool  # Номер/Дата отгрузки по 1С
    status_id: str | None
    status: str | None


def read_order_changes(path: Path) -> Iterator[OrderChange]:
    for doc in iter_ends(path, "Документ"):
        ref = text_of(doc, "Ид") or text_of(doc, "Номер")
        if not ref:
            continue
        props = properties(doc)
        posted = props.get("Проведен")
        yield OrderChange(
            ref=ref,
            number=text_of(doc, "Номер"),
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


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in _TRUE
