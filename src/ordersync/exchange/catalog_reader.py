"""The catalog side of CommerceML: import.xml (Товары), offers.xml (Склады, Предложения) and the
split prices*.xml and rests*.xml of 2.08 to 2.10, read in one streaming pass each."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from decimal import ROUND_DOWN, Decimal, InvalidOperation
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
    unread_stock: bool = False  # it carries stock in a shape the reader does not know


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
    _names: dict[object, str] = field(default_factory=dict)  # tag -> local name

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
        # The import's hot path: one pass over the item's children, each tag's local name
        # looked up once per file; the first child of each name counts (as findtext would),
        # and every Склад.
        first: dict[str, etree._Element] = {}
        stores: list[etree._Element] = []
        names = self._names
        for part in element:
            tag = part.tag
            name = names.get(tag)
            if name is None:
                name = names[tag] = local(tag) if isinstance(tag, str) else ""
            if name == "Склад":
                stores.append(part)
            elif name not in first:
                first[name] = part
        xml_id = _text(first.get("Ид")).strip()
        if not xml_id:
            what = "Предложение" if offer else "Товар"
            raise BadExchangeFile(f"{what} number {seq + 1} has no Ид")
        if len(xml_id) > 128:
            raise BadExchangeFile(f"Ид {xml_id[:40]}... is longer than 128 characters")
        item = Item(
            seq,
            xml_id,
            article=_clip_element(first.get("Артикул"), 128),
            name=_clip_element(first.get("Наименование"), 255),
            barcode=_clip_element(first.get("Штрихкод"), 64),
        )
        unit = first.get("БазоваяЕдиница")
        if unit is not None:
            item.unit = unit_of(unit)
        prices = first.get("Цены")
        if prices is not None:
            item.price = self._price(prices, xml_id)
        total = first.get("Количество")
        if total is not None:
            item.total = quantity(_text(total), xml_id)
        stock = item.stock
        for store in stores:
            store_id = store.get("ИдСклада")
            if store_id:
                raw = store.get("КоличествоНаСкладе")
                if raw is not None and raw.isdigit() and raw.isascii():  # the usual figure
                    stock.append((store_id, int(raw) * _QTY))
                else:
                    stock.append((store_id, quantity(raw, xml_id)))
            else:
                self._store_element(store, item)
        rests = first.get("Остатки")
        if rests is not None:
            self._rests(rests, item)
        deleted = first.get("ПометкаУдаления")
        if deleted is not None:
            item.active = _text(deleted).strip().lower() != "true"
        if element.get("Статус") == "Удален":
            item.active = False
        return item

    def _rests(self, rests: etree._Element, item: Item) -> None:
        """rests*.xml: Остатки/Остаток/Склад with child Ид and Количество; an Остаток without a
        Склад is a total, in a child Количество or as its own text."""
        found = False
        for rest in children(rests, "Остаток"):
            found = True
            store = child(rest, "Склад")
            if store is not None:
                self._store_element(store, item)
                continue
            total = text_of(rest, "Количество")
            if total is None and len(rest) == 0:
                total = (rest.text or "").strip() or None
                if total is not None and not _is_number(total):
                    total = None
            if total is None:
                item.unread_stock = True
            else:
                item.total = quantity(total, item.xml_id)
        if not found:
            item.unread_stock = True

    def _store_element(self, store: etree._Element, item: Item) -> None:
        """A Склад with child Ид and Количество; anything else is stock the reader cannot read."""
        store_id = text_of(store, "Ид")
        figure = text_of(store, "Количество")
        if store_id and figure is not None:
            item.stock.append((store_id, quantity(figure, item.xml_id)))
        else:
            item.unread_stock = True

    def _price(self, prices: etree._Element, xml_id: str) -> Decimal | None:
        wanted = self.price_type
        names = self._names
        for price in prices:
            kind_of = names.get(price.tag)
            if kind_of is None:
                kind_of = names[price.tag] = local(price.tag) if isinstance(price.tag, str) else ""
            if kind_of != "Цена":
                continue
            kind: str | None = None
            value: str | None = None
            for part in price:
                name = names.get(part.tag)
                if name is None:
                    name = names[part.tag] = local(part.tag) if isinstance(part.tag, str) else ""
                if name == "ИдТипаЦены" and kind is None:
                    kind = (part.text or "").strip()
                elif name == "ЦенаЗаЕдиницу" and value is None:
                    value = part.text or ""
            if wanted and kind != wanted and self.price_types.get(kind or "") != wanted:
                continue
            if value is not None and value.strip():
                return money(value.strip(), xml_id)
        return None


def _in(element: etree._Element, parent_name: str) -> bool:
    parent = element.getparent()
    return parent is not None and local(parent.tag) == parent_name


def _text(element: etree._Element | None) -> str:
    """An element's text, "" when it has none or is missing (as findtext gives "")."""
    return "" if element is None else element.text or ""


def _clip_element(element: etree._Element | None, size: int) -> str | None:
    if element is None:
        return None
    value = (element.text or "").strip()
    return value[:size] or None


def _clip(text: str | None, size: int) -> str | None:
    value = (text or "").strip()
    return value[:size] or None


def unit_of(element: etree._Element) -> str | None:
    for candidate in (
        (element.get("Код") or "").strip(),
        (element.get("МеждународноеСокращение") or "").strip(),
        (element.text or "").strip(),
        (element.get("НаименованиеПолное") or "").strip().lower(),
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


def _is_number(text: str) -> bool:
    try:
        return Decimal(text.replace(",", ".").replace("\xa0", "").replace(" ", "")).is_finite()
    except InvalidOperation:
        return False


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
