"""The CommerceML readers and writers, without a database: catalog files (import, offers,
prices, rests) in every header 1C writes, the refusals, safe file names and zip unpacking,
exchange credentials, order changes from 1C and the orders document for 1C.

Every document is built here and written to tmp_path; the public samples are read by
tests/integration/test_commerceml_samples.py."""

from __future__ import annotations

import base64
import codecs
import io
import sys
import tracemalloc
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from lxml import etree

from ordersync.db.exchange_orders import ProductInfo
from ordersync.domain.errors import BadExchangeFile
from ordersync.domain.orders import Order, OrderLine
from ordersync.domain.types import (
    Channel,
    Fulfillment,
    OrderStatus,
    PaymentStatus,
    Source,
    Unit,
)
from ordersync.exchange import auth
from ordersync.exchange.catalog_reader import CatalogFile, Item
from ordersync.exchange.sale_document import Refs, customer_id_1c, orders_document
from ordersync.exchange.sale_reader import OrderChange, read_order_changes
from ordersync.exchange.work_dir import WorkDir, safe_name
from ordersync.exchange.xml import iter_ends

D = Decimal
MSK = ZoneInfo("Europe/Moscow")
NS_2 = "urn:1C.ru:commerceml_2"
NS_210 = "urn:1C.ru:commerceml_210"


# --- building documents -------------------------------------------------------------------


def cml(
    body: str, version: str = "2.08", xmlns: str | None = None, formed: str | None = None
) -> str:
    """A КоммерческаяИнформация root around `body`, as 1C of that schema writes it."""
    ns = f' xmlns="{xmlns}" xmlns:xs="http://www.w3.org/2001/XMLSchema"' if xmlns else ""
    when = f' ДатаФормирования="{formed}"' if formed else ""
    return (
        f'<КоммерческаяИнформация{ns} ВерсияСхемы="{version}"{when}>{body}</КоммерческаяИнформация>'
    )


def write(
    tmp_path: Path,
    text: str,
    name: str = "file.xml",
    encoding: str = "utf-8",
    bom: bool = False,
    declaration: bool = True,
) -> Path:
    label = "UTF-8" if encoding == "utf-8" else encoding
    head = f'<?xml version="1.0" encoding="{label}"?>\n' if declaration else ""
    data = (head + text).encode(encoding)
    path = tmp_path / name
    path.write_bytes((codecs.BOM_UTF8 if bom else b"") + data)
    return path


def read(path: Path, price_type: str | None = None, zone: ZoneInfo = MSK) -> list[Item]:
    return list(CatalogFile(path, zone, price_type).items())


IMPORT_BODY = """
<Классификатор>
  <Ид>cls-1</Ид><Наименование>Классификатор (Каталог товаров)</Наименование>
  <Группы><Группа><Ид>g-1</Ид><Наименование>Чай</Наименование></Группа></Группы>
</Классификатор>
<Каталог СодержитТолькоИзменения="false">
  <Ид>cat-1</Ид><ИдКлассификатора>cls-1</ИдКлассификатора><Наименование>Каталог</Наименование>
  <Товары>
    <Товар>
      <Ид>p-1</Ид>
      <Штрихкод>4600000000017</Штрихкод>
      <Артикул>A-1</Артикул>
      <Наименование>Чай зелёный «Весна»</Наименование>
      <БазоваяЕдиница Код="796 " НаименованиеПолное="Штука"
        МеждународноеСокращение="PCE">шт</БазоваяЕдиница>
      <Группы><Ид>g-1</Ид></Группы>
      <ЗначенияРеквизитов>
        <ЗначениеРеквизита><Наименование>ВидНоменклатуры</Наименование><Значение>Товар</Значение></ЗначениеРеквизита>
      </ЗначенияРеквизитов>
    </Товар>
    <Товар>
      <Ид>p-2</Ид>
      <Артикул>A-2</Артикул>
      <Наименование>Сахар</Наименование>
      <БазоваяЕдиница Код="166" НаименованиеПолное="Килограмм"
        МеждународноеСокращение="KGM">кг</БазоваяЕдиница>
    </Товар>
    <Товар>
      <Ид>p-3#c-1</Ид>
      <Наименование>Стол обеденный (дуб)</Наименование>
      <БазоваяЕдиница Код="112"/>
    </Товар>
  </Товары>
</Каталог>
"""

OFFERS_BODY = """
<ПакетПредложений СодержитТолькоИзменения="false">
  <Ид>pkg-1</Ид><Наименование>Пакет предложений</Наименование><ИдКаталога>cat-1</ИдКаталога>
  <ТипыЦен>
    <ТипЦены><Ид>pt-opt</Ид><Наименование>Оптовая</Наименование><Валюта>RUB</Валюта></ТипЦены>
    <ТипЦены><Ид>pt-ret</Ид><Наименование>Розничная</Наименование><Валюта>RUB</Валюта></ТипЦены>
  </ТипыЦен>
  <Склады>
    <Склад><Ид>st-1</Ид><Наименование>Москва</Наименование></Склад>
    <Склад><Ид>st-2</Ид><Наименование>Тверь</Наименование></Склад>
  </Склады>
  <Предложения>
    <Предложение>
      <Ид>p-1</Ид>
      <Артикул>A-1</Артикул>
      <Наименование>Чай зелёный «Весна»</Наименование>
      <БазоваяЕдиница Код="796 " НаименованиеПолное="Штука" МеждународноеСокращение="PCE"/>
      <Цены>
        <Цена><ИдТипаЦены>pt-opt</ИдТипаЦены><ЦенаЗаЕдиницу>80</ЦенаЗаЕдиницу></Цена>
        <Цена><ИдТипаЦены>pt-ret</ИдТипаЦены><ЦенаЗаЕдиницу>100,5</ЦенаЗаЕдиницу></Цена>
      </Цены>
      <Количество>12,5</Количество>
      <Склад ИдСклада="st-1" КоличествоНаСкладе="10"/>
      <Склад ИдСклада="st-2" КоличествоНаСкладе="2,5"/>
    </Предложение>
    <Предложение>
      <Ид>p-2</Ид>
      <Наименование>Сахар</Наименование>
      <БазоваяЕдиница Код="166"/>
      <Цены>
        <Цена><ИдТипаЦены>pt-ret</ИдТипаЦены><ЦенаЗаЕдиницу>95.90</ЦенаЗаЕдиницу></Цена>
      </Цены>
      <Количество>-3</Количество>
      <Склад ИдСклада="st-1" КоличествоНаСкладе="-3"/>
      <Склад ИдСклада="st-9" КоличествоНаСкладе="1.2345"/>
    </Предложение>
  </Предложения>
</ПакетПредложений>
"""

HEADERS = [
    pytest.param("2.03", None, id="2.03-no-namespace"),
    pytest.param("2.04", None, id="2.04-no-namespace"),
    pytest.param("2.07", NS_2, id="2.07-commerceml_2"),
    pytest.param("2.08", NS_2, id="2.08-commerceml_2"),
    pytest.param("2.09", NS_2, id="2.09-commerceml_2"),
    pytest.param("2.08", NS_210, id="2.08-commerceml_210"),
]
ENCODINGS = [
    pytest.param("utf-8", False, id="utf-8"),
    pytest.param("utf-8", True, id="utf-8-bom"),
    pytest.param("windows-1251", False, id="windows-1251"),
]


# --- catalog files: import.xml ------------------------------------------------------------


@pytest.mark.parametrize(("version", "xmlns"), HEADERS)
@pytest.mark.parametrize(("encoding", "bom"), ENCODINGS)
def test_import_is_read_in_every_header_and_encoding(
    tmp_path: Path, version: str, xmlns: str | None, encoding: str, bom: bool
) -> None:
    path = write(
        tmp_path,
        cml(IMPORT_BODY, version, xmlns, "2024-03-01T10:00:00"),
        "import.xml",
        encoding,
        bom,
    )
    reader = CatalogFile(path, MSK)
    items = list(reader.items())

    assert [i.xml_id for i in items] == ["p-1", "p-2", "p-3#c-1"]
    assert [i.seq for i in items] == [0, 1, 2]
    first = items[0]
    assert first.article == "A-1"
    assert first.barcode == "4600000000017"
    assert first.name == "Чай зелёный «Весна»"
    assert first.unit == Unit.PCS.value
    assert items[1].unit == Unit.KG.value
    assert items[2].unit == Unit.L.value
    assert items[2].article is None
    assert all(i.stock == [] and i.total is None and i.price is None for i in items)
    assert reader.schema_version == version
    assert reader.has_products and not reader.has_offers
    assert reader.formed_at == datetime(2024, 3, 1, 10, 0, tzinfo=MSK)


def test_a_товар_outside_товары_is_not_an_item(tmp_path: Path) -> None:
    body = IMPORT_BODY.replace(
        "<Группы><Ид>g-1</Ид></Группы>",
        "<Группы><Ид>g-1</Ид></Группы><Комплект><Товар><Ид>inner</Ид></Товар></Комплект>",
    )
    items = read(write(tmp_path, cml(body)))
    assert [i.xml_id for i in items] == ["p-1", "p-2", "p-3#c-1"]


@pytest.mark.parametrize(
    ("attrs", "text", "unit"),
    [
        ('Код="796 "', "", "pcs"),
        ('Код=" 796"', "", "pcs"),
        ('Код="166"', "", "kg"),
        ('Код="112"', "", "l"),
        ('Код="006"', "", "m"),
        ('МеждународноеСокращение="KGM"', "", "kg"),
        ('Код="999" НаименованиеПолное="Килограмм"', "", "kg"),
        ("", "шт", "pcs"),
        ('Код="999"', "упак", None),
    ],
)
def test_units_from_the_base_unit(tmp_path: Path, attrs: str, text: str, unit: str | None) -> None:
    body = (
        "<Каталог><Товары><Товар><Ид>p</Ид><Наименование>n</Наименование>"
        f"<БазоваяЕдиница {attrs}>{text}</БазоваяЕдиница></Товар></Товары></Каталог>"
    )
    [item] = read(write(tmp_path, cml(body)))
    assert item.unit == unit


# --- catalog files: offers.xml ------------------------------------------------------------


@pytest.mark.parametrize(("version", "xmlns"), HEADERS)
@pytest.mark.parametrize(("encoding", "bom"), ENCODINGS)
def test_offers_are_read_in_every_header_and_encoding(
    tmp_path: Path, version: str, xmlns: str | None, encoding: str, bom: bool
) -> None:
    path = write(tmp_path, cml(OFFERS_BODY, version, xmlns), "offers.xml", encoding, bom)
    reader = CatalogFile(path, MSK)
    items = list(reader.items())

    assert [i.xml_id for i in items] == ["p-1", "p-2"]
    assert reader.stores == {"st-1": "Москва", "st-2": "Тверь"}
    assert reader.price_types == {"pt-opt": "Оптовая", "pt-ret": "Розничная"}
    assert reader.has_offers and not reader.has_products
    assert reader.schema_version == version
    one, two = items
    # Quantities in thousandths; a decimal comma is a decimal point.
    assert one.stock == [("st-1", 10_000), ("st-2", 2_500)]
    assert one.total == 12_500
    assert one.unit == "pcs"
    assert one.article == "A-1"
    # Without a configured price type, the first price of the offer.
    assert one.price == D("80.00")
    assert two.price == D("95.90")
    # Negative figures are kept negative (the import decides); beyond 3 decimals, cut.
    assert two.stock == [("st-1", -3_000), ("st-9", 1_234)]
    assert two.total == -3_000


@pytest.mark.parametrize("wanted", ["pt-ret", "Розничная"])
def test_the_price_type_is_chosen_by_id_or_by_name(tmp_path: Path, wanted: str) -> None:
    items = read(write(tmp_path, cml(OFFERS_BODY, "2.08", NS_2)), price_type=wanted)
    assert [i.price for i in items] == [D("100.50"), D("95.90")]


def test_an_offer_without_the_chosen_price_type_has_no_price(tmp_path: Path) -> None:
    items = read(write(tmp_path, cml(OFFERS_BODY)), price_type="Оптовая")
    assert [i.price for i in items] == [D("80.00"), None]
    items = read(write(tmp_path, cml(OFFERS_BODY)), price_type="Закупочная")
    assert [i.price for i in items] == [None, None]


@pytest.mark.parametrize(
    ("figure", "thousandths"),
    [
        ("7", 7_000),
        ("7.000", 7_000),
        ("7,25", 7_250),
        ("0,001", 1),
        ("1 234,5", 1_234_500),
        ("1\xa0234", 1_234_000),
        ("-2,5", -2_500),
        ("-1.2345", -1_234),
        ("0.0009", 0),
    ],
)
def test_store_quantities_in_the_forms_1c_writes(
    tmp_path: Path, figure: str, thousandths: int
) -> None:
    body = (
        "<ПакетПредложений><Предложения><Предложение><Ид>p</Ид>"
        f'<Склад ИдСклада="s" КоличествоНаСкладе="{figure}"/>'
        "</Предложение></Предложения></ПакетПредложений>"
    )
    [item] = read(write(tmp_path, cml(body)))
    assert item.stock == [("s", thousandths)]


def test_prices_file_carries_prices_only(tmp_path: Path) -> None:
    body = """
    <ПакетПредложений СодержитТолькоИзменения="true">
      <Ид>pkg</Ид><ИдКаталога>cat</ИдКаталога>
      <ТипыЦен><ТипЦены><Ид>pt-ret</Ид><Наименование>Розничная</Наименование></ТипЦены></ТипыЦен>
      <Предложения>
        <Предложение><Ид>p-1</Ид><Цены><Цена><ИдТипаЦены>pt-ret</ИдТипаЦены>
          <ЦенаЗаЕдиницу>1 299,90</ЦенаЗаЕдиницу></Цена></Цены></Предложение>
        <Предложение><Ид>p-2#c</Ид><Цены><Цена><ИдТипаЦены>pt-ret</ИдТипаЦены>
          <ЦенаЗаЕдиницу>10</ЦенаЗаЕдиницу></Цена></Цены></Предложение>
      </Предложения>
    </ПакетПредложений>"""
    reader = CatalogFile(write(tmp_path, cml(body, "2.10", NS_210)), MSK, "Розничная")
    items = list(reader.items())
    assert [(i.xml_id, i.price) for i in items] == [("p-1", D("1299.90")), ("p-2#c", D("10.00"))]
    assert all(i.name is None and i.stock == [] and i.total is None for i in items)
    assert reader.stores == {}


def test_rests_file_nests_store_quantities(tmp_path: Path) -> None:
    body = """
    <ПакетПредложений СодержитТолькоИзменения="true">
      <Ид>pkg</Ид>
      <Предложения>
        <Предложение><Ид>p-1</Ид><Остатки>
          <Остаток><Склад><Ид>st-1</Ид><Количество>4</Количество></Склад></Остаток>
          <Остаток><Склад><Ид>st-new</Ид><Количество>0,75</Количество></Склад></Остаток>
        </Остатки></Предложение>
        <Предложение><Ид>p-2</Ид><Остатки>
          <Остаток><Склад><Ид>st-1</Ид><Количество>-1</Количество></Склад></Остаток>
        </Остатки></Предложение>
        <Предложение><Ид>p-3</Ид><Остатки>
          <Остаток><Количество>9</Количество></Остаток>
        </Остатки></Предложение>
      </Предложения>
    </ПакетПредложений>"""
    reader = CatalogFile(write(tmp_path, cml(body, "2.10", NS_210)), MSK)
    items = list(reader.items())
    assert [i.stock for i in items] == [
        [("st-1", 4_000), ("st-new", 750)],
        [("st-1", -1_000)],
        [],
    ]
    assert items[2].total == 9_000
    # Split files may name stores that no Склады of this exchange lists.
    assert reader.stores == {}


def test_a_bare_остаток_is_a_total_and_stock_in_an_unknown_shape_is_flagged(
    tmp_path: Path,
) -> None:
    shapes = {
        "bare": "<Остатки><Остаток>37</Остаток></Остатки>",
        "comma": "<Остатки><Остаток> 2,5 </Остаток></Остатки>",
        "words": "<Остатки><Остаток>много</Остаток></Остатки>",
        "nameless": "<Остатки><Остаток><Склад><Количество>3</Количество></Склад>"
        "</Остаток></Остатки>",
        "unknown": "<Остатки><Остаток><Остаток2>3</Остаток2></Остаток></Остатки>",
        "empty": "<Остатки/>",
        "store-children": "<Склад><Ид>st-1</Ид><Количество>6</Количество></Склад>",
        "store-bare": "<Склад/>",
        "usual": '<Склад ИдСклада="st-1" КоличествоНаСкладе="1"/>',
    }  # fmt: skip
    offers = "".join(
        f"<Предложение><Ид>{name}</Ид>{inner}</Предложение>" for name, inner in shapes.items()
    )
    body = f"<ПакетПредложений><Предложения>{offers}</Предложения></ПакетПредложений>"

    items = {i.xml_id: i for i in read(write(tmp_path, cml(body, "2.10", NS_210)))}

    assert {k: (i.total, i.stock, i.unread_stock) for k, i in items.items()} == {
        "bare": (37_000, [], False),
        "comma": (2_500, [], False),
        "words": (None, [], True),
        "nameless": (None, [], True),
        "unknown": (None, [], True),
        "empty": (None, [], True),
        "store-children": (None, [("st-1", 6_000)], False),
        "store-bare": (None, [], True),
        "usual": (None, [("st-1", 1_000)], False),
    }


def test_skip_resumes_the_numbering(tmp_path: Path) -> None:
    offers = "".join(
        f"<Предложение><Ид>o-{n}</Ид><Количество>{n}</Количество></Предложение>" for n in range(7)
    )
    body = (
        "<ПакетПредложений><Склады><Склад><Ид>s</Ид><Наименование>S</Наименование></Склад>"
        f"</Склады><Предложения>{offers}</Предложения></ПакетПредложений>"
    )
    path = write(tmp_path, cml(body, formed="2024-01-01T00:00:00"))
    whole = list(CatalogFile(path, MSK).items())
    reader = CatalogFile(path, MSK)
    rest = list(reader.items(skip=4))
    assert [i.seq for i in whole] == list(range(7))
    assert [(i.seq, i.xml_id, i.total) for i in rest] == [
        (4, "o-4", 4_000),
        (5, "o-5", 5_000),
        (6, "o-6", 6_000),
    ]
    # What precedes the resumed items is still learnt.
    assert reader.stores == {"s": "S"}
    assert reader.formed_at == datetime(2024, 1, 1, tzinfo=MSK)
    assert list(CatalogFile(path, MSK).items(skip=7)) == []


@pytest.mark.parametrize(
    ("zone", "formed", "utc"),
    [
        ("Europe/Moscow", "2020-04-07T13:16:06", datetime(2020, 4, 7, 10, 16, 6, tzinfo=UTC)),
        ("Asia/Vladivostok", "2020-04-07T13:16:06", datetime(2020, 4, 7, 3, 16, 6, tzinfo=UTC)),
        ("Europe/Moscow", "2020-04-07 13:16:06", datetime(2020, 4, 7, 10, 16, 6, tzinfo=UTC)),
        ("Europe/Moscow", "2020-04-07T13:16:06+00:00", datetime(2020, 4, 7, 13, 16, 6, tzinfo=UTC)),
    ],
)
def test_the_formation_date_is_read_in_the_given_zone(
    tmp_path: Path, zone: str, formed: str, utc: datetime
) -> None:
    path = write(tmp_path, cml(IMPORT_BODY, "2.07", NS_2, formed))
    reader = CatalogFile(path, ZoneInfo(zone))
    list(reader.items())
    assert reader.formed_at is not None
    assert reader.formed_at.tzinfo is not None
    assert reader.formed_at == utc


# --- catalog files: refusals --------------------------------------------------------------

GOOD_IMPORT = cml(IMPORT_BODY)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"   \r\n", id="blank"),
        pytest.param(b"PK\x03\x04\x14\x00\x00\x00garbage\xff\x00", id="a-zip"),
        pytest.param("просто текст, не XML".encode(), id="text"),
        pytest.param(b"\xef\xbb\xbf", id="bom-only"),
        pytest.param(
            ('<?xml version="1.0" encoding="x-no-such"?>' + GOOD_IMPORT).encode(),
            id="unknown-encoding",
        ),
        pytest.param(GOOD_IMPORT.encode() + b"<more/>", id="two-roots"),
    ],
)
def test_what_is_not_xml_is_a_bad_exchange_file(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "import.xml"
    path.write_bytes(data)
    with pytest.raises(BadExchangeFile):
        read(path)


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.95])
def test_a_truncated_file_is_a_bad_exchange_file(tmp_path: Path, cut: float) -> None:
    data = ('<?xml version="1.0" encoding="UTF-8"?>' + cml(OFFERS_BODY, "2.08", NS_2)).encode()
    path = tmp_path / "offers.xml"
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(BadExchangeFile):
        read(path)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("<html><body>502 Bad Gateway</body></html>", id="html"),
        pytest.param(
            "<Документ><Товары><Товар><Ид>p</Ид></Товар></Товары></Документ>",
            id="items-under-another-root",
        ),
        pytest.param("<КоммерческаяИнформацияX/>", id="near-miss"),
    ],
)
def test_a_wrong_root_is_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(BadExchangeFile, match="root"):
        read(write(tmp_path, text))


ENTITY_BOMB = """<!DOCTYPE КоммерческаяИнформация [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
 <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
 <!ENTITY x "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
]>"""
XXE = """<!DOCTYPE КоммерческаяИнформация [
 <!ENTITY x SYSTEM "file:///etc/passwd">
]>"""
WITH_ENTITY = cml(
    "<Каталог><Товары><Товар><Ид>p-1</Ид><Наименование>&x;</Наименование></Товар>"
    "</Товары></Каталог>"
)


@pytest.mark.parametrize("dtd", [ENTITY_BOMB, XXE], ids=["entity-bomb", "xxe"])
def test_a_dtd_is_refused_before_parsing(tmp_path: Path, dtd: str) -> None:
    with pytest.raises(BadExchangeFile, match="DTD"):
        read(write(tmp_path, dtd + WITH_ENTITY))


@pytest.mark.parametrize("dtd", [ENTITY_BOMB, XXE], ids=["entity-bomb", "xxe"])
def test_a_dtd_hidden_past_the_prolog_check_expands_nothing(tmp_path: Path, dtd: str) -> None:
    # The prolog check reads only the first 64 KiB; behind a long comment the DTD reaches the
    # parser, which must still neither expand entities nor read the external file.
    text = "<!--" + "x" * 70_000 + "-->\n" + dtd + WITH_ENTITY
    try:
        items = read(write(tmp_path, text))
    except BadExchangeFile:
        return
    for item in items:
        assert "root:" not in (item.name or "")
        assert len(item.name or "") < 1000


def test_a_quantity_that_is_not_a_number_is_refused(tmp_path: Path) -> None:
    body = OFFERS_BODY.replace('КоличествоНаСкладе="2,5"', 'КоличествоНаСкладе="abc"')
    with pytest.raises(BadExchangeFile, match="abc"):
        read(write(tmp_path, cml(body)))


@pytest.mark.parametrize("figure", ["abc", "1e400", "NaN", "12..5", "1/2"])
def test_a_total_or_rest_that_is_not_a_number_is_refused(tmp_path: Path, figure: str) -> None:
    body = (
        "<ПакетПредложений><Предложения><Предложение><Ид>p</Ид>"
        f"<Количество>{figure}</Количество></Предложение></Предложения></ПакетПредложений>"
    )
    with pytest.raises(BadExchangeFile):
        read(write(tmp_path, cml(body)))


def test_a_price_that_is_not_a_number_is_refused(tmp_path: Path) -> None:
    body = OFFERS_BODY.replace(
        "<ЦенаЗаЕдиницу>80</ЦенаЗаЕдиницу>", "<ЦенаЗаЕдиницу>n/a</ЦенаЗаЕдиницу>"
    )
    with pytest.raises(BadExchangeFile):
        read(write(tmp_path, cml(body)))


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (IMPORT_BODY.replace("<Ид>p-2</Ид>", ""), "Товар number 2"),
        (IMPORT_BODY.replace("<Ид>p-2</Ид>", "<Ид>   </Ид>"), "Товар number 2"),
        (OFFERS_BODY.replace("<Ид>p-1</Ид>", ""), "Предложение number 1"),
    ],
)
def test_an_item_without_id_is_refused(tmp_path: Path, body: str, what: str) -> None:
    with pytest.raises(BadExchangeFile, match=what):
        read(write(tmp_path, cml(body)))


# --- catalog files: memory ----------------------------------------------------------------

BIG_OFFERS = 20_000


def _big_offers_file(path: Path) -> None:
    with path.open("w", encoding="utf-8") as f:
        f.write('<?xml version="1.0" encoding="UTF-8"?>\n')
        f.write(f'<КоммерческаяИнформация xmlns="{NS_2}" ВерсияСхемы="2.08">')
        f.write("<ПакетПредложений><Склады>")
        for s in range(3):
            f.write(f"<Склад><Ид>st-{s}</Ид><Наименование>Склад {s}</Наименование></Склад>")
        f.write("</Склады><Предложения>\n")
        for n in range(BIG_OFFERS):
            f.write(
                f"<Предложение><Ид>00000000-0000-0000-0000-{n:012d}</Ид>"
                f"<Артикул>ART-{n}</Артикул><Наименование>Товар номер {n}</Наименование>"
                '<БазоваяЕдиница Код="796 "/><Цены><Цена><ИдТипаЦены>t</ИдТипаЦены>'
                f"<ЦенаЗаЕдиницу>{n % 1000}.50</ЦенаЗаЕдиницу></Цена></Цены>"
                f"<Количество>{3 * (n % 7)}</Количество>"
                f'<Склад ИдСклада="st-0" КоличествоНаСкладе="{n % 7}"/>'
                f'<Склад ИдСклада="st-1" КоличествоНаСкладе="{n % 7}"/>'
                f'<Склад ИдСклада="st-2" КоличествоНаСкладе="{n % 7}"/>'
                "</Предложение>\n"
            )
        f.write("</Предложения></ПакетПредложений></КоммерческаяИнформация>")


@pytest.fixture(scope="module")
def big_offers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "offers.xml"
    _big_offers_file(path)
    return path


def test_a_big_offers_file_is_read_with_flat_memory(big_offers: Path) -> None:
    path = big_offers
    assert path.stat().st_size > 5_000_000

    # Python's allocated blocks are counted over the whole pass (cheap); tracemalloc, which
    # slows the parse fourfold, watches the last 5,000 offers for a peak.
    count = 0
    total = 0
    blocks_at_1000 = 0
    try:
        for item in CatalogFile(path, MSK).items():
            count += 1
            total += sum(q for _, q in item.stock)
            if count == 1_000:
                blocks_at_1000 = sys.getallocatedblocks()
            elif count == BIG_OFFERS - 5_000:
                tracemalloc.start()
        _, peak = tracemalloc.get_traced_memory()
        grown = sys.getallocatedblocks() - blocks_at_1000
    finally:
        tracemalloc.stop()
    assert count == BIG_OFFERS
    assert total == 3 * sum(n % 7 for n in range(BIG_OFFERS)) * 1000
    assert grown < 20_000, f"{grown} more blocks after 19,000 more offers"
    assert peak < 3 * 1024 * 1024, f"peak {peak} bytes"


def test_the_parse_tree_is_pruned_as_the_offers_go_by(big_offers: Path) -> None:
    # tracemalloc does not see libxml2's own memory: check the tree itself stays small. The
    # parser reads ahead a buffer's worth of siblings, so the parent may hold a few dozen
    # offers at a time, but never those already handed out beyond the last one.
    path = big_offers
    widest = 0
    behind = 0
    seen = 0
    for element in iter_ends(path, "Предложение"):
        parent = element.getparent()
        assert parent is not None
        widest = max(widest, len(parent))
        behind = max(behind, parent.index(element))
        seen += 1
    assert seen == BIG_OFFERS
    assert behind <= 1
    assert widest < 500, widest


# --- work_dir.safe_name -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("import.xml", "import.xml"),
        ("/tmp/import.xml", "import.xml"),
        ("upload/1c/webdata/offers.xml", "offers.xml"),
        ("/upload/1c/webdata/offers.xml", "offers.xml"),
        ("import_files\\ab\\x.jpg", "import_files/ab/x.jpg"),
        ("\\tmp\\import.xml", "import.xml"),
        ("import_files/ab/x.jpg", "import_files/ab/x.jpg"),
        ("goods/1/import___0b7e.xml", "goods/1/import___0b7e.xml"),
        ("  rests___1.xml ", "rests___1.xml"),
        ("Товары.xml", "Товары.xml"),
    ],
)
def test_safe_name_keeps_what_1c_sends(raw: str, name: str) -> None:
    assert safe_name(raw) == name


@pytest.mark.parametrize(
    "raw",
    [
        "../x",
        "..\\x",
        "a/../../x",
        "import_files/../../etc/passwd",
        "/tmp/../x",
        "upload/1c/webdata/../../x",
        "..",
        "",
        "   ",
        "/tmp/",
        "/",
        "import\x00.xml",
        "C:\\Windows\\evil.xml",
        "/tmp/C:/evil.xml",
        "x" * 300,
    ],
)
def test_safe_name_refuses_names_that_escape_or_make_no_sense(raw: str) -> None:
    with pytest.raises(BadExchangeFile):
        safe_name(raw)


@pytest.mark.parametrize(
    "raw",
    ["/etc/passwd", "/tmp//etc/passwd", "upload/1c/webdata//etc/passwd", "//server/share/x.xml"],
)
def test_a_name_left_absolute_after_stripping_stays_inside_the_work_dir(
    tmp_path: Path, raw: str
) -> None:
    # Bitrix trims leading slashes instead of refusing, and so does safe_name: either way the
    # file must land inside the session's directory, never at the absolute path.
    try:
        name = safe_name(raw)
    except BadExchangeFile:
        return
    assert not name.startswith("/")
    assert ".." not in Path(name).parts
    work = WorkDir(tmp_path, "session")
    assert work.file(raw).is_relative_to(work.path)


# --- work_dir.WorkDir.unpack --------------------------------------------------------------


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _work_with(tmp_path: Path, data: bytes, name: str = "pack.zip") -> WorkDir:
    work = WorkDir(tmp_path / "exchange", "s-1")
    work.path.mkdir(parents=True)
    (work.path / name).write_bytes(data)
    return work


def test_unpack_extracts_members_into_subfolders(tmp_path: Path) -> None:
    work = _work_with(
        tmp_path,
        _zip({"import.xml": b"<a/>", "import_files/ab/x.jpg": b"\xff\xd8", "dir/": b""}),
    )
    names = work.unpack("pack.zip", max_bytes=10_000)
    assert sorted(names) == ["import.xml", "import_files/ab/x.jpg"]
    assert (work.path / "import_files" / "ab" / "x.jpg").read_bytes() == b"\xff\xd8"


@pytest.mark.parametrize("evil", ["../evil.xml", "a/../../evil.xml", "..\\evil.xml"])
def test_unpack_refuses_a_member_that_climbs_out(tmp_path: Path, evil: str) -> None:
    work = _work_with(tmp_path, _zip({evil: b"<a/>"}))
    with pytest.raises(BadExchangeFile):
        work.unpack("pack.zip", max_bytes=10_000)
    assert not (tmp_path / "exchange" / "evil.xml").exists()
    assert not (tmp_path / "evil.xml").exists()


def test_unpack_refuses_a_zip_bomb_over_the_limit(tmp_path: Path) -> None:
    data = _zip({"offers.xml": b"\0" * 2_000_000})
    assert len(data) < 10_000  # small on the wire, big unpacked
    work = _work_with(tmp_path, data)
    with pytest.raises(BadExchangeFile, match="limit"):
        work.unpack("pack.zip", max_bytes=100_000)
    assert not (work.path / "offers.xml").exists()


def test_unpack_refuses_what_is_not_a_zip(tmp_path: Path) -> None:
    work = _work_with(tmp_path, b"PK\x03\x04 not really a zip")
    with pytest.raises(BadExchangeFile):
        work.unpack("pack.zip", max_bytes=10_000)


def test_unpack_decodes_cp866_member_names(tmp_path: Path) -> None:
    # 1C writes member names in cp866 without the UTF-8 flag. zipfile would write the flag for
    # a non-ASCII name, so the archive is made with an ASCII name of the same length and the
    # name's bytes are then swapped for their cp866 form (names are not under the CRC).
    real = "Выгрузка/остатки.xml"
    encoded = real.encode("cp866")
    placeholder = "W" * (len(encoded) - 4) + ".xml"
    assert len(placeholder.encode()) == len(encoded)
    data = _zip({placeholder: b"<a/>"})
    assert data.count(placeholder.encode()) == 2  # the local header and the directory
    data = data.replace(placeholder.encode(), encoded)
    work = _work_with(tmp_path, data)
    names = work.unpack("pack.zip", max_bytes=10_000)
    assert names == [real]
    assert (work.path / "Выгрузка" / "остатки.xml").read_bytes() == b"<a/>"


def test_unpack_keeps_utf8_flagged_names(tmp_path: Path) -> None:
    work = _work_with(tmp_path, _zip({"Каталог/товары.xml": b"<a/>"}))
    assert work.unpack("pack.zip", max_bytes=10_000) == ["Каталог/товары.xml"]


# --- auth ---------------------------------------------------------------------------------


def test_a_password_hash_verifies_its_password() -> None:
    stored = auth.hash_password("Пароль-1c", iterations=1000)
    assert stored.startswith("pbkdf2_sha256$1000$")
    assert auth.verify_password("Пароль-1c", stored)
    assert stored != auth.hash_password("Пароль-1c", iterations=1000)  # salted


def test_a_wrong_password_does_not_verify() -> None:
    stored = auth.hash_password("secret", iterations=1000)
    assert not auth.verify_password("Secret", stored)
    assert not auth.verify_password("", stored)
    assert not auth.verify_password("secret ", stored)


@pytest.mark.parametrize(
    "stored",
    [
        None,
        "",
        "secret",
        "pbkdf2_sha256$1000$c2FsdA==",
        "pbkdf2_sha256$1000$c2FsdA==$ZGlnZXN0$extra",
        "md5$1000$c2FsdA==$ZGlnZXN0",
        "pbkdf2_sha256$many$c2FsdA==$ZGlnZXN0",
        "pbkdf2_sha256$0$c2FsdA==$ZGlnZXN0",
        "pbkdf2_sha256$-5$c2FsdA==$ZGlnZXN0",
        "pbkdf2_sha256$1000$c2FsdA=$ZGlnZXN0",
        "pbkdf2_sha256$1000$c2FsdA==$@@@",
        "pbkdf2_sha256$99999999999999999999$c2FsdA==$ZGlnZXN0",
    ],
)
def test_a_malformed_stored_hash_verifies_nothing(stored: str | None) -> None:
    assert auth.verify_password("secret", stored) is False


def _basic(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode()


@pytest.mark.parametrize("encoding", ["utf-8", "cp1251"])
def test_parse_basic_reads_utf8_and_cp1251(encoding: str) -> None:
    header = _basic("Обмен:пароль:с:двоеточиями".encode(encoding))
    assert auth.parse_basic(header) == ("Обмен", "пароль:с:двоеточиями")


def test_parse_basic_reads_ascii_in_any_case() -> None:
    assert auth.parse_basic(_basic(b"1c:pw")) == ("1c", "pw")
    assert auth.parse_basic("basic " + base64.b64encode(b"1c:").decode()) == ("1c", "")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer abc",
        "Basic",
        "Basic !!!not-base64!!!",
        _basic(b"no-colon"),
        # Neither UTF-8 nor windows-1251 (0x98 is unassigned in cp1251).
        _basic(b"\x98\x98:\x98"),
    ],
)
def test_parse_basic_refuses_malformed_headers(header: str | None) -> None:
    assert auth.parse_basic(header) is None


# --- sale_reader --------------------------------------------------------------------------


def _props(**values: str) -> str:
    items = "".join(
        f"<ЗначениеРеквизита><Наименование>{k.replace('_', ' ')}</Наименование>"
        f"<Значение>{v}</Значение></ЗначениеРеквизита>"
        for k, v in values.items()
    )
    return f"<ЗначенияРеквизитов>{items}</ЗначенияРеквизитов>"


def _sale_body() -> str:
    goods = (
        "<Товары><Товар><Ид>p-1</Ид><Наименование>Чай</Наименование>"
        # A line's own properties are not the document's.
        + _props(Отменен="true", Проведен="false", ВидНоменклатуры="Товар")
        + "<Единица><Ид>796</Ид><Код>796</Код></Единица><Коэффициент>1</Коэффициент>"
        "<Количество>2</Количество><Цена>100</Цена><Сумма>200</Сумма></Товар></Товары>"
    )
    paid_shipped = {
        "Проведен": "true",
        "Номер_оплаты_по_1С": "ТДЦУ-000001",
        "Дата_оплаты_по_1С": "2024-05-01T10:00:00",
        "Номер_отгрузки_по_1С": "ТДЦУ-000003",
        "Дата_отгрузки_по_1С": "2024-05-02T11:00:00",
        "Статуса_заказа_ИД": "F",
        "Статус_заказа": "[F] Выполнен",
    }
    return (
        # 1: posted, paid, shipped, the new 1C number and version.
        "<Документ><Контрагенты><Контрагент><Ид>buyer-1</Ид></Контрагент></Контрагенты>"
        "<Ид>ord-1</Ид><НомерВерсии>AAAAEAAAAAA=</НомерВерсии>"
        "<ПометкаУдаления>false</ПометкаУдаления><Номер>1001</Номер>"
        "<Номер1С>ТДЦУ-000001</Номер1С><Дата>2024-05-01</Дата>"
        "<ХозОперация>Заказ товара</ХозОперация>" + _props(**paid_shipped) + goods + "</Документ>"
        # 2: marked deleted, cancelled, not posted; dates left empty are not payments.
        "<Документ><Ид>ord-2</Ид><ПометкаУдаления>true</ПометкаУдаления>"
        + _props(
            Проведен="false",
            Отменен="true",
            Дата_оплаты_по_1С="",
            Дата_отгрузки_по_1С="",
            Статус_заказа_ИД="C",
        )
        + "</Документ>"
        # 3: old 1C: no Ид, the number and its 1C number as properties, Истина/Да flags.
        "<Документ><Номер>77</Номер>"
        + _props(Номер_по_1С="MM92", ПометкаУдаления="Истина", Отменен="Да")
        + "</Документ>"
        # 4: paid only by a payment number; nothing else.
        "<Документ><Ид>ord-4</Ид>" + _props(Номер_оплаты_по_1С="ТДЦУ-000002") + "</Документ>"
        # 5: neither Ид nor Номер: skipped.
        "<Документ><Дата>2024-05-01</Дата></Документ>"
    )


EXPECTED_CHANGES = [
    OrderChange(
        id="ord-1",
        number="1001",
        number_1c="ТДЦУ-000001",
        version="AAAAEAAAAAA=",
        deleted=False,
        posted=True,
        cancelled=False,
        paid=True,
        shipped=True,
        status_id="F",
        status="[F] Выполнен",
    ),
    OrderChange(
        id="ord-2",
        number=None,
        number_1c=None,
        version=None,
        deleted=True,
        posted=False,
        cancelled=True,
        paid=False,
        shipped=False,
        status_id="C",
        status=None,
    ),
    OrderChange(
        id=None,
        number="77",
        number_1c="MM92",
        version=None,
        deleted=True,
        posted=None,
        cancelled=True,
        paid=False,
        shipped=False,
        status_id=None,
        status=None,
    ),
    OrderChange(
        id="ord-4",
        number=None,
        number_1c=None,
        version=None,
        deleted=False,
        posted=None,
        cancelled=False,
        paid=True,
        shipped=False,
        status_id=None,
        status=None,
    ),
]


@pytest.mark.parametrize(("version", "xmlns"), HEADERS)
@pytest.mark.parametrize(("encoding", "bom"), ENCODINGS)
def test_order_changes_are_read_from_1c_documents(
    tmp_path: Path, version: str, xmlns: str | None, encoding: str, bom: bool
) -> None:
    path = write(
        tmp_path, cml(_sale_body(), version, xmlns, "2024-05-03T09:00:00"), "v8.xml", encoding, bom
    )
    assert list(read_order_changes(path)) == EXPECTED_CHANGES


def test_order_changes_refuse_a_file_that_is_not_commerceml(tmp_path: Path) -> None:
    with pytest.raises(BadExchangeFile):
        list(read_order_changes(write(tmp_path, "<Документы><Документ><Ид>1</Ид></Документ>")))
    with pytest.raises(BadExchangeFile):
        list(read_order_changes(write(tmp_path, XXE + cml("<Документ><Ид>&x;</Ид></Документ>"))))


# --- sale_document.orders_document --------------------------------------------------------

REFS = Refs(
    products={
        1: ProductInfo("guid-tea", "Чай зелёный", "pcs"),
        2: ProductInfo("guid-sugar", "Сахар", "kg"),
    },
    stores={7: ("S01", "guid-store-7", "Магазин на Тверской")},
    zone=MSK,
)
NOW = datetime(2024, 1, 2, 12, 0, 5, tzinfo=UTC)


def _order(**changes: object) -> Order:
    values: dict[str, object] = dict(
        id="0190c0de-0000-7000-8000-000000000001",
        channel=Channel.ONLINE,
        source=Source.ORDER,
        fulfillment=Fulfillment.PICKUP,
        status=OrderStatus.PLACED,
        payment_status=PaymentStatus.UNPAID,
        store_id=7,
        lines=[
            OrderLine(1, 1, D("2"), D("100")),
            OrderLine(2, 2, D("0.347"), D("199.99")),
        ],
        created_at=datetime(2024, 1, 2, 7, 30, 0, tzinfo=UTC),
        customer={"name": "Иван Петров 😀", "phone": "+79001234567", "email": "ivan@example.com"},
        comment="Позвонить за час; «домофон» не работает",
        updated_at=datetime(2024, 1, 2, 8, 0, 0, tzinfo=UTC),
        number=41,
    )
    values.update(changes)
    return Order(**values)  # type: ignore[arg-type]


def _parse(body: bytes) -> etree._Element:
    return etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname


def _props_of(element: etree._Element) -> dict[str, str]:
    box = element.find("ЗначенияРеквизитов")
    assert box is not None
    return {p.findtext("Наименование") or "": p.findtext("Значение") or "" for p in box}


@pytest.fixture(params=["windows-1251", "utf-8"])
def encoding(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_the_declaration_names_the_encoding_in_double_quotes(encoding: str) -> None:
    body = orders_document([_order()], REFS, NOW, encoding)
    first_line, _, rest = body.partition(b"\n")
    assert first_line == f'<?xml version="1.0" encoding="{encoding}"?>'.encode()
    assert not body.startswith(codecs.BOM_UTF8)
    assert b"<?xml" not in rest  # one declaration only
    text = body.decode(encoding)  # the whole body really is in that encoding
    assert "Чай зелёный" in text


def test_the_root_carries_the_formats_bitrix_writes(encoding: str) -> None:
    root = _parse(orders_document([_order()], REFS, NOW, encoding))
    assert root.tag == "КоммерческаяИнформация"  # no namespace, as Bitrix
    assert dict(root.attrib) == {
        "ВерсияСхемы": "2.08",
        "ДатаФормирования": "2024-01-02T15:00:05",  # NOW in Moscow
        "ФорматДаты": "ДФ=yyyy-MM-dd; ДЛФ=DT",
        "ФорматВремени": "ДФ=ЧЧ:мм:сс; ДЛФ=T",
        "РазделительДатаВремя": "T",
        "ФорматСуммы": "ЧЦ=18; ЧДЦ=2; ЧРД=.",
        "ФорматКоличества": "ЧЦ=18; ЧДЦ=2; ЧРД=.",
    }


def test_an_empty_document_is_the_root_alone(encoding: str) -> None:
    root = _parse(orders_document([], REFS, NOW, encoding))
    assert _local(root) == "КоммерческаяИнформация"
    assert len(root) == 0


def test_each_order_is_a_документ_with_its_fields(encoding: str) -> None:
    orders = [
        _order(),
        _order(id="0190c0de-0000-7000-8000-000000000002", external_id="B-77", number=42),
    ]
    root = _parse(orders_document(orders, REFS, NOW, encoding))
    docs = root.findall("Документ")
    assert len(docs) == 2
    doc = docs[0]
    assert {_local(c) for c in doc} == {
        "Ид", "Номер", "Дата", "Время", "ХозОперация", "Роль", "Валюта", "Курс", "Сумма",
        "Комментарий", "Контрагенты", "Склады", "Товары", "ЗначенияРеквизитов",
    }  # fmt: skip
    assert doc.findtext("Ид") == orders[0].id
    assert doc.findtext("Номер") == "41"  # the hub's short number, whatever the channel
    assert docs[1].findtext("Номер") == "42"
    assert _props_of(docs[1])["Номер заказа на сайте"] == "B-77"
    assert doc.findtext("Дата") == "2024-01-02"  # 07:30 UTC is 10:30 in Moscow
    assert doc.findtext("Время") == "10:30:00"
    assert doc.findtext("ХозОперация") == "Заказ товара"
    assert doc.findtext("Роль") == "Продавец"
    assert doc.findtext("Валюта") == "руб"
    assert doc.findtext("Курс") == "1"
    assert doc.findtext("Комментарий") == "Позвонить за час; «домофон» не работает"

    agent = doc.find("Контрагенты/Контрагент")
    assert agent is not None
    assert agent.findtext("Наименование") == "Иван Петров 😀"  # survives windows-1251
    assert agent.findtext("Роль") == "Покупатель"
    contacts = {c.findtext("Тип"): c.findtext("Значение") for c in agent.iter("Контакт")}
    assert contacts == {"Телефон рабочий": "+79001234567", "Почта": "ivan@example.com"}

    tea, sugar = doc.findall("Товары/Товар")
    assert tea.findtext("Ид") == "guid-tea"
    assert tea.findtext("Наименование") == "Чай зелёный"
    unit = tea.find("БазоваяЕдиница")
    assert unit is not None
    assert unit.text == "шт"
    assert unit.get("Код") == "796"
    assert unit.get("МеждународноеСокращение") == "PCE"
    assert sugar.find("БазоваяЕдиница").get("Код") == "166"  # type: ignore[union-attr]
    assert tea.findtext("ЦенаЗаЕдиницу") == "100.00"
    assert tea.findtext("Количество") == "2"
    assert tea.findtext("Сумма") == "200.00"
    assert sugar.findtext("Количество") == "0.347"
    assert sugar.findtext("Сумма") == "69.40"  # 69.39653
    assert _props_of(tea) == {"ВидНоменклатуры": "Товар", "ТипНоменклатуры": "Товар"}
    assert doc.findtext("Сумма") == "269.40"


def test_amounts_have_two_decimals(encoding: str) -> None:
    order = _order(lines=[OrderLine(1, 1, D("3"), D("10")), OrderLine(2, 2, D("1.5"), D("7.1"))])
    doc = _parse(orders_document([order], REFS, NOW, encoding)).find("Документ")
    assert doc is not None
    amounts = [doc.findtext("Сумма")]
    for item in doc.iterfind("Товары/Товар"):
        amounts += [item.findtext("ЦенаЗаЕдиницу"), item.findtext("Сумма")]
    assert amounts == ["40.65", "10.00", "30.00", "7.10", "10.65"]


def test_line_sums_add_up_to_the_document_sum(encoding: str) -> None:
    # 0.5 kg at 12.45 is 6.225: the order's own rule (OrderLine.amount, half up) makes 6.23,
    # and the document must state the same figure on the line as in its total.
    lines = [OrderLine(1, 1, D("1"), D("100")), OrderLine(2, 2, D("0.5"), D("12.45"))]
    order = _order(lines=lines)
    doc = _parse(orders_document([order], REFS, NOW, encoding)).find("Документ")
    assert doc is not None
    line_sums = [D(item.findtext("Сумма") or "") for item in doc.iterfind("Товары/Товар")]
    assert line_sums == [line.amount for line in lines]
    assert sum(line_sums) == D(doc.findtext("Сумма") or "") == order.total


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {},
            {"Заказ оплачен": "false", "Отгружен": "false", "Отменен": "false",
             "Финальный статус": "false", "Доставка разрешена": "false",
             "Статуса заказа ИД": "placed", "Дата оплаты": ""},
        ),
        (
            {"payment_status": PaymentStatus.PAID,
             "paid_at": datetime(2024, 1, 2, 9, 0, tzinfo=UTC)},
            {"Заказ оплачен": "true", "Дата оплаты": "2024-01-02T12:00:00", "Отменен": "false"},
        ),
        (
            {"status": OrderStatus.SHIPPED, "payment_status": PaymentStatus.PAID,
             "shipped_at": datetime(2024, 1, 3, 21, 30, tzinfo=UTC)},
            {"Отгружен": "true", "Доставка разрешена": "true",
             "Дата отгрузки": "2024-01-04T00:30:00", "Финальный статус": "false",
             "Статуса заказа ИД": "shipped"},
        ),
        (
            {"status": OrderStatus.COMPLETED},
            {"Финальный статус": "true", "Отгружен": "true", "Статуса заказа ИД": "completed"},
        ),
        (
            {"status": OrderStatus.CANCELLED},
            {"Отменен": "true", "Статуса заказа ИД": "cancelled"},
        ),
        (
            {"status": OrderStatus.EXPIRED},
            {"Отменен": "true", "Статуса заказа ИД": "expired"},
        ),
    ],
)  # fmt: skip
def test_order_properties_with_lowercase_booleans(
    encoding: str, changes: dict[str, object], expected: dict[str, str]
) -> None:
    doc = _parse(orders_document([_order(**changes)], REFS, NOW, encoding)).find("Документ")
    assert doc is not None
    props = _props_of(doc)
    for name, value in expected.items():
        assert props[name] == value, name
    for name in ("Заказ оплачен", "Доставка разрешена", "Отгружен", "Отменен", "Финальный статус"):
        assert props[name] in ("true", "false")
    assert props["Склад"] == "guid-store-7"
    assert props["Склад (код)"] == "S01"
    assert props["Дата изменения статуса"] == "2024-01-02T11:00:00"
    assert props["Сайт"] == "ordersync"


def test_an_order_without_store_or_customer(encoding: str) -> None:
    order = _order(store_id=None, customer={}, comment=None, fulfillment=Fulfillment.DELIVERY)
    doc = _parse(orders_document([order], REFS, NOW, encoding)).find("Документ")
    assert doc is not None
    agent = doc.find("Контрагенты/Контрагент")
    assert agent is not None
    assert agent.findtext("Наименование") == "Розничный покупатель"
    assert agent.find("Контакты") is None
    assert doc.findtext("Комментарий") is None or doc.findtext("Комментарий") == ""
    props = _props_of(doc)
    assert props["Склад"] == "" and props["Способ получения"] == "delivery"


def _all_text(root: etree._Element) -> Iterator[str]:
    for element in root.iter():
        yield element.text or ""


def test_the_document_reads_the_same_in_both_encodings() -> None:
    orders = [_order(), _order(id="x-2", status=OrderStatus.COMPLETED)]
    cp = _parse(orders_document(orders, REFS, NOW, "windows-1251"))
    utf = _parse(orders_document(orders, REFS, NOW, "utf-8"))
    assert list(_all_text(cp)) == list(_all_text(utf))
    assert [e.tag for e in cp.iter()] == [e.tag for e in utf.iter()]


@pytest.mark.parametrize(
    ("customer", "expected"),
    [
        ({"name": "Иван", "phone": "8 (900) 123-45-67"}, "79001234567#79001234567#Иван"),
        (
            {"name": "Иван", "phone": "+7 900 123 45 67", "email": "I@x.ru"},
            "79001234567#i@x.ru#Иван",
        ),
        (
            {"name": "Site #1 user", "id": "15", "phone": "9001234567"},
            "15#79001234567#Site  1 user",
        ),
        ({}, "0#retail#Розничный покупатель"),
    ],
)
def test_the_buyer_s_1c_id_is_user_login_name_and_stable(
    customer: dict[str, str], expected: str
) -> None:
    assert customer_id_1c(customer) == expected
    assert customer_id_1c(dict(customer)) == expected


def test_a_buyer_known_only_by_e_mail_gets_a_stable_12_digit_id() -> None:
    first = customer_id_1c({"email": "Olga@Example.ru", "name": "Ольга"})
    user_id, login, name = first.split("#")
    assert len(user_id) == 12 and user_id.isdigit()
    assert (login, name) == ("olga@example.ru", "Ольга")
    assert customer_id_1c({"email": "olga@example.ru", "name": "Ольга"}) == first


def test_a_line_an_operator_dropped_is_not_in_the_document() -> None:
    kept, dropped = OrderLine(1, 1, D("2"), D("100")), OrderLine(2, 2, D("0"), D("199.99"))
    root = _parse(orders_document([_order(lines=[kept, dropped])], REFS, NOW, "utf-8"))
    items = root.findall("Документ/Товары/Товар")
    assert [x.findtext("Ид") for x in items] == ["guid-tea"]
    assert root.findtext("Документ/Сумма") == "200.00"
