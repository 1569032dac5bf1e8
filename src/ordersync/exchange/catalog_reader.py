"""The catalog side of CommerceML: import.xml (Товары), offers.xml (Склады, Предложения) and the
split prices*.xml and rests*.xml of 2.08 to 2.10, read in one streaming pass each."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path

from lxml import etree

from ..domain.errors import BadExchangeFile
from ..domain.quantities import MONEY_SCALE, QUANTITY_SCALE
from ..domain.types import Unit
from .xml import attributes, child, children, iter_ends, local, text_of

_QTY: int = 10**QUANTITY_SCALE

# OKEI codes, short names and international abbreviations that map to the hub's units.
_UNITS: dict[str, Unit] = {
    "796": Unit.PCS, "шт": Unit.PCS, "PCE": Unit.PCS, "штука": Unit.PCS,
    "166": Unit.KG, "кг": Unit.KG, "KGM": Unit.KG, "килограмм": Unit.KG,
    "112": Unit.L, "л": Unit.L, "LTR": Unit.L, "литр": Unit.L,
    "006": Unit.M, "м": Unit.M, "MTR": Unit.M, "метр": Unit.M,
}  # fmt: skip


@dataclass(slots=True)
class Item:
    """A product (import.xml Товар) or an offer (Предложение) as the file states it."""

    seq: int
    xml_id: str
    article: str | None = None
    name: str | None = None
    unit: str | None = None
    barcode: str | None = None
    price: Decimal | None = None
    active: bool | None = None  # False when 1C marks the product deleted
    stock: list[tuple[str, int]] = field(default_factory=list)  # (store Ид, quantity*1000)
    total: int | None = None  # Количество without stores, *1000


@dataclass(slots=True)
class CatalogFile:
    """What the pass has learnt so far; `items` is consumed once."""

    path: Path
    zone: tzinfo
    price_type: str | None = None
    formed_at: datetime | None = None
    schema_version: str | None = None
    stores: dict[str, str] = field(default_factory=dict)  # Ид -> Наименование
    price_types: dict[str, str] = field(default_factory=dict)  # Ид -> Наименование
    has_products: bool = False
    has_offers: bool = False

    def items(self, skip: int = 0) -> Iterator[Item]:
        """Items in file order, numbered from 0; the first `skip` are read but not built."""
        seq = 0
        first = True
        for element in iter_ends(self.path, "Товар", "Предложение", "Склады", "ТипыЦен"):
            if first:
                self._read_root(element.getroottree().getroot())
                first = False
            name = local(element.tag)
            if name == "Склады":
                for store in children(element, "Склад"):
                    store_id = text_of(store, "Ид")
                    if store_id:
                        self.stores[store_id] = text_of(store, "Наименование") or store_id
                continue
            if name == "ТипыЦен":
                for kind in children(element, "ТипЦены"):
                    kind_id = text_of(kind, "Ид")
                    if kind_id:
                        self.price_types[kind_id] = text_of(kind, "Наименование") or ""
                continue
            if name == "Товар" and not _in(element, "Товары"):
                continue  # a Товар inside some other structure (never in catalog files)
            if name == "Предложение":
                self.has_offers = True
            else:
                self.has_products = True
            if seq >= skip:
                yield self._item(seq, element, offer=name == "Предложение")
            seq += 1

    def _read_root(self, root: etree._Element) -> None:
        attrs = attributes(root)
        self.schema_version = attrs.get("ВерсияСхемы")
        formed = attrs.get("ДатаФормирования")
        if formed:
            self.formed_at = parse_time(formed, self.zone)

    def _item(self, seq: int, element: etree._Element, offer: bool) -> Item:
        tag = str(element.tag)
        names = _tags(tag[: tag.index("}") + 1] if tag.startswith("{") else "")
        item = Item(seq, "")
        # One pass over the children, matched by full tag: this loop is the import's hot path.
        for part in element:
            kind = names.get(part.tag)
            if kind is None:
                continue
            if kind == "Склад":
                store = part.get("ИдСклада")
                if store:
                    item.stock.append(
                        (store, quantity(part.get("КоличествоНаСкладе"), item.xml_id))
                    )
            elif kind == "Ид":
                item.xml_id = (part.text or "").strip()
            elif kind == "Наименование":
                item.name = _clip(part.text, 255)
            elif kind == "Артикул":
                item.article = _clip(part.text, 128)
            elif kind == "Штрихкод":
                item.barcode = _clip(part.text, 64)
            elif kind == "БазоваяЕдиница":
                item.unit = unit_of(part)
            elif kind == "Цены":
                item.price = self._price(part, item.xml_id)
            elif kind == "Количество":
                item.total = quantity(part.text, item.xml_id)
            elif kind == "Остатки":
                self._rests(part, item)
            elif kind == "ПометкаУдаления":
                item.active = (part.text or "").strip().lower() != "true"
        if element.get("Статус") == "Удален":
            item.active = False
        if not item.xml_id:
            what = "Предложение" if offer else "Товар"
            raise BadExchangeFile(f"{what} number {seq + 1} has no Ид")
        if len(item.xml_id) > 128:
            raise BadExchangeFile(f"Ид {item.xml_id[:40]}... is longer than 128 characters")
        return item

    def _rests(self, rests: etree._Element, item: Item) -> None:
        """rests*.xml: Остатки/Остаток/Склад with child Ид and Количество."""
        for rest in children(rests, "Остаток"):
            store = child(rest, "Склад")
            if store is None:
                total = text_of(rest, "Количество")
                if total is not None:
                    item.total = quantity(total, item.xml_id)
                continue
            store_id = text_of(store, "Ид")
            if store_id:
                figure = text_of(store, "Количество")
                item.stock.append((store_id, quantity(figure, item.xml_id)))

    def _price(self, prices: etree._Element, xml_id: str) -> Decimal | None:
        chosen: Decimal | None = None
        for price in children(prices, "Цена"):
            kind = text_of(price, "ИдТипаЦены")
            wanted = self.price_type
            if wanted and kind != wanted and self.price_types.get(kind or "") != wanted:
                continue
            value = text_of(price, "ЦенаЗаЕдиницу")
            if value is None:
                continue
            chosen = money(value, xml_id)
            break
        return chosen


_ITEM_PARTS = (
    "Склад", "Ид", "Наименование", "Артикул", "Штрихкод", "БазоваяЕдиница", "Цены",
    "Количество", "Остатки", "ПометкаУдаления",
)  # fmt: skip


@lru_cache(maxsize=8)
def _tags(namespace: str) -> dict[str, str]:
    """Full tag (with this file's namespace) -> local name, for the parts of an item."""
    return {f"{namespace}{name}": name for name in _ITEM_PARTS}


def _in(element: etree._Element, parent_name: str) -> bool:
    parent = element.getparent()
    return parent is not None and local(parent.tag) == parent_name


def _clip(text: str | None, size: int) -> str | None:
    value = (text or "").strip()
    return value[:size] or None


def unit_of(element: etree._Element) -> str | None:
    attrs = attributes(element)
    for candidate in (
        attrs.get("Код", "").strip(),
        attrs.get("МеждународноеСокращение", "").strip(),
        (element.text or "").strip(),
        attrs.get("НаименованиеПолное", "").strip().lower(),
    ):
        if candidate in _UNITS:
            return _UNITS[candidate].value
    return None


def quantity(text: str | None, xml_id: str) -> int:
    """A quantity as thousandths; 1C writes `12`, `12.000` or `12,5`. Beyond three decimals
    it is cut, never rounded up. Negative figures are kept here; the caller decides."""
    raw = (text or "").strip()
    if raw.isascii() and raw.isdigit():
        return int(raw) * _QTY
    try:
        value = Decimal(raw.replace(",", ".").replace("\xa0", "").replace(" ", ""))
    except InvalidOperation:
        raise BadExchangeFile(f"the quantity {raw!r} of {xml_id} is not a number") from None
    if not value.is_finite() or abs(value) > Decimal(10) ** 12:
        raise BadExchangeFile(f"the quantity {raw!r} of {xml_id} is out of range")
    return int(value.scaleb(QUANTITY_SCALE).to_integral_value(rounding=ROUND_DOWN))


def money(text: str, xml_id: str) -> Decimal:
    try:
        value = Decimal(text.replace(",", ".").replace("\xa0", "").replace(" ", ""))
    except InvalidOperation:
        raise BadExchangeFile(f"the price {text!r} of {xml_id} is not a number") from None
    if not value.is_finite() or value < 0 or value > Decimal(10) ** 13:
        raise BadExchangeFile(f"the price {text!r} of {xml_id} is out of range")
    return value.quantize(Decimal(1).scaleb(-MONEY_SCALE))


def parse_time(text: str, zone: tzinfo) -> datetime:
    """1C's local date-time (`2020-04-07T13:16:06`, sometimes with a space or a zone)."""
    try:
        value = datetime.fromisoformat(text.strip().replace(" ", "T"))
    except ValueError:
        raise BadExchangeFile(f"the date {text!r} is not a date") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)
