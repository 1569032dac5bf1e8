"""A 1C simulator: plays 1C's side of "Обмен с сайтом" (CommerceML 2) against the hub over HTTP,
and builds the documents 1C sends (import.xml, offers.xml, rests___*.xml, order changes).

The simulator speaks the protocol as 1C does and as the digest in shared/spec describes it:
HTTP Basic on `checkauth`, then the cookie (and `sessid=`) on every call; files split into
POSTs of at most `file_limit` bytes; `import` repeated while the reply says `progress`. It
checks nothing about the hub's state: the tests do that.

Third-party clients keep the session otherwise, and the simulator plays them too (`keeps=`):
"jar", a client with a cookie jar (curl -c/-b, requests.Session) that takes the session from
`Set-Cookie` only and never parses the reply's cookie lines; "basic", one that sends HTTP Basic
on every call and never a cookie.
"""

from __future__ import annotations

import base64
import io
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal
from xml.sax.saxutils import escape, quoteattr
from zoneinfo import ZoneInfo

import httpx
from lxml import etree

PATH = "/bitrix/admin/1c_exchange.php"
NAMESPACE = "urn:1C.ru:commerceml_2"
ZONE = ZoneInfo("Europe/Moscow")  # the hub's default exchange.timezone: 1C's local time
BOM = b"\xef\xbb\xbf"
STATUS_WORDS = ("success", "progress", "failure")
MAX_IMPORT_CALLS = 2000

Number = int | str | Decimal


class ProtocolError(AssertionError):
    """The hub answered something 1C would stop the exchange on."""


# --- the dialogue ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One plain-text reply: the raw bytes and its lines, decoded as 1C decodes them."""

    raw: bytes
    text: str
    status_code: int
    content_type: str

    @property
    def lines(self) -> list[str]:
        return self.text.split("\n")

    @property
    def status(self) -> str:
        return self.lines[0].strip()

    @property
    def reason(self) -> str:
        return "\n".join(self.lines[1:])

    def __str__(self) -> str:
        return f"HTTP {self.status_code} {self.content_type!r}: {self.text!r}"


class OneC:
    """One 1C exchange node. `checkauth` opens a session (a new cookie); everything after it
    is sent with that cookie and, as newer 1C does, `&sessid=` in the URL. With keeps="jar" or
    "basic" it is one of the third-party clients described above instead."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        login: str = "1c",
        password: str = "secret",
        encoding: str = "windows-1251",
        path: str = PATH,
        send_sessid: bool = True,
        keeps: Literal["body", "jar", "basic"] = "body",
    ) -> None:
        self.http = http
        self.login = login
        self.password = password
        self.encoding = encoding
        self.path = path
        self.keeps = keeps
        self.send_sessid = send_sessid and keeps == "body"
        self.jar = httpx.Cookies()  # keeps="jar": what Set-Cookie gave
        self.cookie: tuple[str, str] | None = None
        self.sessid: str | None = None
        self.timestamp: int | None = None
        self.zip = False
        self.file_limit: int | None = None
        self.version: str | None = None
        self.requests = 0
        self.last_response: httpx.Response | None = None

    # the transport

    async def send(
        self,
        type_: str,
        mode: str,
        *,
        content: bytes | None = None,
        with_cookie: bool = True,
        headers: Mapping[str, str] | None = None,
        **params: str,
    ) -> httpx.Response:
        query: dict[str, str] = {"type": type_, "mode": mode, **params}
        if self.send_sessid and self.sessid and mode != "checkauth" and "sessid" not in params:
            query["sessid"] = self.sessid
        sent = dict(headers or {})
        if self.keeps == "basic":
            sent.setdefault("Authorization", self.basic())
        elif with_cookie and self.cookie is not None and mode != "checkauth":
            sent["Cookie"] = f"{self.cookie[0]}={self.cookie[1]}"
        if content is not None:
            sent.setdefault("Content-Type", "application/octet-stream")
        method = "GET" if content is None else "POST"
        request = self.http.build_request(
            method, self.path, params=query, content=content, headers=sent
        )
        if self.keeps == "jar" and with_cookie:
            self.jar.set_cookie_header(request)
        response = await self.http.send(request)
        if self.keeps == "jar":
            self.jar.extract_cookies(response)
        self.requests += 1
        self.last_response = response
        return response

    def decode(self, response: httpx.Response) -> Reply:
        """As 1C reads a reply: the bytes in the configured encoding (Bitrix: windows-1251)."""
        raw = response.content
        return Reply(
            raw=raw,
            text=raw.decode(self.encoding, errors="replace"),
            status_code=response.status_code,
            content_type=response.headers.get("content-type", ""),
        )

    async def call(self, type_: str, mode: str, **kwargs: Any) -> Reply:
        return self.decode(await self.send(type_, mode, **kwargs))

    # the calls

    async def checkauth(
        self,
        type_: str,
        *,
        login: str | None = None,
        password: str | None = None,
        credentials: bool = True,
        authorization: str | None = None,
        credentials_encoding: str = "utf-8",
    ) -> Reply:
        """HTTP Basic; on success the reply's cookie name and value (lines 2 and 3), sessid= and
        timestamp= are kept for the later calls."""
        headers: dict[str, str] = {}
        if authorization is not None:
            headers["Authorization"] = authorization
        elif credentials:
            headers["Authorization"] = self.basic(login, password, credentials_encoding)
        reply = await self.call(type_, "checkauth", headers=headers, with_cookie=False)
        if reply.status == "success" and self.keeps == "body":
            lines = reply.lines
            if len(lines) < 3 or not lines[1] or not lines[2]:
                raise ProtocolError(f"checkauth gave no cookie: {reply}")
            self.cookie = (lines[1], lines[2])
            self.sessid = None
            self.timestamp = None
            for extra in lines[3:]:
                key, _, value = extra.partition("=")
                if key == "sessid":
                    self.sessid = value
                elif key == "timestamp":
                    self.timestamp = int(value)
        return reply

    def basic(
        self, login: str | None = None, password: str | None = None, encoding: str = "utf-8"
    ) -> str:
        pair = f"{self.login if login is None else login}:"
        pair += self.password if password is None else password
        return "Basic " + base64.b64encode(pair.encode(encoding)).decode()

    async def init(self, type_: str, version: str | None = None) -> Reply:
        """zip=yes|no and file_limit=<bytes>; for sale with `version`, the stepwise flow."""
        params = {} if version is None else {"version": version}
        reply = await self.call(type_, "init", **params)
        if reply.status == "failure":
            return reply
        values = dict(line.partition("=")[::2] for line in reply.lines if "=" in line)
        if "zip" not in values or "file_limit" not in values:
            raise ProtocolError(f"init did not answer zip= and file_limit=: {reply}")
        self.zip = values["zip"] == "yes"
        self.file_limit = int(values["file_limit"])
        if values.get("sessid") and self.keeps == "body":
            self.sessid = values["sessid"]
        self.version = values.get("version") if type_ == "sale" else None
        return reply

    def chunks(self, data: bytes) -> list[bytes]:
        limit = self.file_limit
        if not limit:
            raise ProtocolError("init was not called: no file_limit")
        return [data[i : i + limit] for i in range(0, len(data), limit)] or [b""]

    async def post_chunk(self, type_: str, filename: str, chunk: bytes) -> Reply:
        return await self.call(type_, "file", content=chunk, filename=filename)

    async def upload(
        self, type_: str, filename: str, data: bytes, *, check: bool = True
    ) -> list[Reply]:
        """The file in POSTs of at most file_limit bytes, one raw body each, as 1C sends it.
        1C stops at the first reply that is not `success`."""
        replies: list[Reply] = []
        for chunk in self.chunks(data):
            reply = await self.post_chunk(type_, filename, chunk)
            replies.append(reply)
            if reply.status != "success":
                if check:
                    raise ProtocolError(f"upload of {filename} refused: {reply}")
                break
        return replies

    async def import_file(self, type_: str, filename: str) -> tuple[str, list[str], int]:
        """`mode=import` repeated while the reply starts with `progress`: (the last status,
        the last reply's lines, the number of calls)."""
        calls = 0
        while True:
            reply = await self.call(type_, "import", filename=filename)
            calls += 1
            if reply.status != "progress":
                return reply.status, reply.lines, calls
            if calls >= MAX_IMPORT_CALLS:
                raise ProtocolError(f"import of {filename}: still progress after {calls} calls")

    async def import_steps(self, type_: str, filename: str) -> list[Reply]:
        """Like import_file, but every reply."""
        replies: list[Reply] = []
        while True:
            reply = await self.call(type_, "import", filename=filename)
            replies.append(reply)
            if reply.status != "progress" or len(replies) >= MAX_IMPORT_CALLS:
                return replies

    async def query(self) -> bytes:
        """`sale&mode=query`: the raw bytes of the orders document."""
        response = await self.send("sale", "query")
        if response.status_code != 200:
            raise ProtocolError(f"query: HTTP {response.status_code}: {response.text!r}")
        return response.content

    async def success(self) -> Reply:
        return await self.call("sale", "success")

    async def send_orders(self, filename: str, xml: bytes) -> tuple[str, list[str], int]:
        """Order changes to the site: in the old flow (init without version) the file is
        parsed on `mode=file`; in the new one `mode=import` follows. Returns as import_file;
        in the old flow the lines are those of the last POST and the count is of POSTs."""
        replies = await self.upload("sale", filename, xml, check=False)
        last = replies[-1]
        if self.version is None or last.status != "success":
            return last.status, last.lines, len(replies)
        return await self.import_file("sale", filename)

    # whole dialogues

    async def open(self, type_: str, version: str | None = None) -> None:
        """checkauth + init, both required to succeed."""
        reply = await self.checkauth(type_)
        if reply.status != "success":
            raise ProtocolError(f"checkauth failed: {reply}")
        reply = await self.init(type_, version)
        if reply.status == "failure":
            raise ProtocolError(f"init failed: {reply}")

    async def catalog_exchange(
        self, files: Sequence[tuple[str, bytes]], archive: str = "import.zip"
    ) -> dict[str, tuple[str, list[str], int]]:
        """A whole catalog exchange: checkauth, init, the files (zipped when the hub asked
        for zip), then `import` of each file in order. Results by file name."""
        await self.open("catalog")
        if self.zip:
            await self.upload("catalog", archive, make_zip(dict(files)))
        else:
            for name, data in files:
                await self.upload("catalog", name, data)
        results: dict[str, tuple[str, list[str], int]] = {}
        for name, _ in files:
            results[name] = await self.import_file("catalog", name)
            if results[name][0] != "success":
                break
        return results


# --- the documents 1C writes -----------------------------------------------------------------


def cml_time(moment: datetime) -> str:
    """A moment as 1C writes it: local time in the exchange's zone, without an offset."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(ZONE).strftime("%Y-%m-%dT%H:%M:%S")


def document(
    body: str,
    *,
    encoding: str = "utf-8",
    formed: datetime | None = None,
    schema: str | None = None,
    namespace: str | bool | None = True,
    bom: bool | None = None,
    root: str = "КоммерческаяИнформация",
) -> bytes:
    """A CommerceML document around `body`. utf-8: with a BOM and the 2.07+ namespace, as 1C
    8.3 writes; windows-1251: no namespace, no BOM, as 2.03 to 2.05 (and old 1C 7.7)."""
    utf8 = encoding.lower().replace("_", "-") in ("utf-8", "utf8")
    if namespace is True:
        namespace = NAMESPACE if utf8 else None
    elif namespace is False:
        namespace = None
    if bom is None:
        bom = utf8
    attrs = {
        "ВерсияСхемы": schema or ("2.08" if utf8 else "2.04"),
        "ДатаФормирования": cml_time(formed or datetime.now(UTC)),
    }
    head = "".join(f" {k}={quoteattr(v)}" for k, v in attrs.items())
    xmlns = f' xmlns="{namespace}" xmlns:xs="http://www.w3.org/2001/XMLSchema"' if namespace else ""
    declared = "UTF-8" if utf8 else encoding
    text = f'<?xml version="1.0" encoding="{declared}"?>\n<{root}{xmlns}{head}>\n{body}</{root}>\n'
    data = text.encode("utf-8" if utf8 else encoding)
    return (BOM if bom else b"") + data


def _el(tag: str, value: object | None, indent: int = 0) -> str:
    if value is None:
        return ""
    return f"{' ' * indent}<{tag}>{escape(str(value))}</{tag}>\n"


@dataclass(frozen=True)
class Product:
    """A Товар of import.xml."""

    xml_id: str
    name: str
    article: str | None = None
    barcode: str | None = None
    unit_code: str = "796 "  # 1C writes the OKEI code with a trailing space
    unit_name: str = "Штука"
    unit_abbr: str = "PCE"
    unit_short: str = "шт"
    deleted: bool = False  # ПометкаУдаления


@dataclass(frozen=True)
class Offer:
    """A Предложение of offers.xml: price, total and per-store quantities."""

    xml_id: str
    name: str | None = None
    price: Number | None = None
    total: Number | None = None
    stores: Mapping[str, Number] = field(default_factory=dict)
    article: str | None = None


PRICE_TYPE = ("7d5b1b1a-0000-4000-8000-000000000001", "Розничная")


def import_xml(
    products: Iterable[Product],
    *,
    catalog_id: str = "catalog-0001",
    only_changes: bool = False,
    **doc: Any,
) -> bytes:
    """import.xml: Классификатор, then Каталог with Товары."""
    parts = [
        "  <Классификатор>\n",
        _el("Ид", catalog_id, 4),
        _el("Наименование", "Классификатор (Основной каталог товаров)", 4),
        "    <Владелец>\n",
        _el("Ид", "owner-0001", 6),
        _el("Наименование", "ООО «Ромашка»", 6),
        "    </Владелец>\n",
        "  </Классификатор>\n",
        f'  <Каталог СодержитТолькоИзменения="{str(only_changes).lower()}">\n',
        _el("Ид", catalog_id, 4),
        _el("ИдКлассификатора", catalog_id, 4),
        _el("Наименование", "Основной каталог товаров", 4),
        "    <Товары>\n",
    ]
    for p in products:
        parts.append("      <Товар>\n")
        parts.append(_el("Ид", p.xml_id, 8))
        parts.append(_el("Штрихкод", p.barcode, 8))
        parts.append(_el("Артикул", p.article, 8))
        parts.append(_el("Наименование", p.name, 8))
        if p.deleted:
            parts.append(_el("ПометкаУдаления", "true", 8))
        parts.append(
            f"        <БазоваяЕдиница Код={quoteattr(p.unit_code)}"
            f" НаименованиеПолное={quoteattr(p.unit_name)}"
            f" МеждународноеСокращение={quoteattr(p.unit_abbr)}>"
            f"{escape(p.unit_short)}</БазоваяЕдиница>\n"
        )
        parts.append(
            "        <ЗначенияРеквизитов>\n"
            "          <ЗначениеРеквизита><Наименование>ВидНоменклатуры</Наименование>"
            "<Значение>Товар</Значение></ЗначениеРеквизита>\n"
            "        </ЗначенияРеквизитов>\n"
        )
        parts.append("      </Товар>\n")
    parts += ["    </Товары>\n", "  </Каталог>\n"]
    return document("".join(parts), **doc)


def offers_xml(
    offers: Iterable[Offer],
    stores: Mapping[str, str] | None = None,
    *,
    catalog_id: str = "catalog-0001",
    **doc: Any,
) -> bytes:
    """offers.xml: ПакетПредложений with ТипыЦен, Склады (Ид -> Наименование) and
    Предложения, each with Цены, Количество and `<Склад ИдСклада КоличествоНаСкладе/>`."""
    parts = [
        '  <ПакетПредложений СодержитТолькоИзменения="false">\n',
        _el("Ид", f"{catalog_id}#", 4),
        _el("Наименование", "Пакет предложений (Основной каталог товаров)", 4),
        _el("ИдКаталога", catalog_id, 4),
        _el("ИдКлассификатора", catalog_id, 4),
        "    <ТипыЦен>\n      <ТипЦены>\n",
        _el("Ид", PRICE_TYPE[0], 8),
        _el("Наименование", PRICE_TYPE[1], 8),
        _el("Валюта", "RUB", 8),
        "      </ТипЦены>\n    </ТипыЦен>\n",
    ]
    if stores:
        parts.append("    <Склады>\n")
        for store_id, name in stores.items():
            parts.append("      <Склад>\n")
            parts.append(_el("Ид", store_id, 8))
            parts.append(_el("Наименование", name, 8))
            parts.append("      </Склад>\n")
        parts.append("    </Склады>\n")
    parts.append("    <Предложения>\n")
    for o in offers:
        parts.append("      <Предложение>\n")
        parts.append(_el("Ид", o.xml_id, 8))
        parts.append(_el("Артикул", o.article, 8))
        parts.append(_el("Наименование", o.name, 8))
        parts.append(
            '        <БазоваяЕдиница Код="796 " НаименованиеПолное="Штука"'
            ' МеждународноеСокращение="PCE">шт</БазоваяЕдиница>\n'
        )
        if o.price is not None:
            parts.append("        <Цены>\n          <Цена>\n")
            parts.append(_el("Представление", f"{o.price} RUB за шт", 12))
            parts.append(_el("ИдТипаЦены", PRICE_TYPE[0], 12))
            parts.append(_el("ЦенаЗаЕдиницу", o.price, 12))
            parts.append(_el("Валюта", "RUB", 12))
            parts.append(_el("Единица", "шт", 12))
            parts.append(_el("Коэффициент", 1, 12))
            parts.append("          </Цена>\n        </Цены>\n")
        parts.append(_el("Количество", o.total, 8))
        for store_id, qty in o.stores.items():
            parts.append(
                f"        <Склад ИдСклада={quoteattr(store_id)}"
                f" КоличествоНаСкладе={quoteattr(str(qty))}/>\n"
            )
        parts.append("      </Предложение>\n")
    parts += ["    </Предложения>\n", "  </ПакетПредложений>\n"]
    return document("".join(parts), **doc)


def rests_xml(
    rests: Mapping[str, Mapping[str, Number]], *, catalog_id: str = "catalog-0001", **doc: Any
) -> bytes:
    """rests___<guid>.xml (2.08+): per offer Ид, Остатки/Остаток/Склад with child Ид and
    Количество; stores need not be listed anywhere in the exchange."""
    parts = [
        '  <ПакетПредложений СодержитТолькоИзменения="false">\n',
        _el("Ид", f"{catalog_id}#", 4),
        _el("Наименование", "Пакет предложений (Остатки)", 4),
        _el("ИдКаталога", catalog_id, 4),
        _el("ИдКлассификатора", catalog_id, 4),
        "    <Предложения>\n",
    ]
    for offer_id, by_store in rests.items():
        parts.append("      <Предложение>\n")
        parts.append(_el("Ид", offer_id, 8))
        parts.append("        <Остатки>\n")
        for store_id, qty in by_store.items():
            parts.append("          <Остаток>\n            <Склад>\n")
            parts.append(_el("Ид", store_id, 14))
            parts.append(_el("Количество", qty, 14))
            parts.append("            </Склад>\n          </Остаток>\n")
        parts.append("        </Остатки>\n")
        parts.append("      </Предложение>\n")
    parts += ["    </Предложения>\n", "  </ПакетПредложений>\n"]
    return document("".join(parts), **doc)


@dataclass(frozen=True)
class OrderChange:
    """A Документ 1C sends back about one of the site's orders."""

    id: str
    number: str | None = None
    number_1c: str | None = None
    version: str | None = None
    deleted: bool = False
    posted: bool = True
    cancelled: bool = False
    paid_on: datetime | None = None  # Дата оплаты по 1С
    payment_number: str | None = None  # Номер оплаты по 1С
    shipped_on: datetime | None = None  # Дата отгрузки по 1С
    shipment_number: str | None = None  # Номер отгрузки по 1С
    status_id: str | None = None
    status: str | None = None
    total: Number = "0"
    lines: Sequence[tuple[str, str, Number, Number]] = ()  # (Ид, name, quantity, price)


def orders_xml(changes: Iterable[OrderChange], **doc: Any) -> bytes:
    """The order changes 1C sends on `sale&mode=file` (Документ per order, as 1C 8.3 writes
    them: Единица + Коэффициент + Цена in Товары, the state in ЗначенияРеквизитов)."""
    parts: list[str] = []
    now = datetime.now(UTC)
    for c in changes:
        parts.append("  <Документ>\n")
        parts.append(_el("Ид", c.id, 4))
        parts.append(_el("НомерВерсии", c.version, 4))
        parts.append(_el("ПометкаУдаления", str(c.deleted).lower(), 4))
        parts.append(_el("Номер", c.number or c.id, 4))
        parts.append(_el("Номер1С", c.number_1c, 4))
        parts.append(_el("Дата", cml_time(now)[:10], 4))
        parts.append(_el("Дата1С", cml_time(now)[:10], 4))
        parts.append(_el("Время", cml_time(now)[11:], 4))
        parts.append(_el("ХозОперация", "Заказ товара", 4))
        parts.append(_el("Роль", "Продавец", 4))
        parts.append(_el("Валюта", "руб", 4))
        parts.append(_el("Курс", "1", 4))
        parts.append(_el("Сумма", c.total, 4))
        parts.append(
            "    <Контрагенты>\n      <Контрагент>\n"
            "        <Ид>4a65ecb6-8b1b-11df-be16-e0cb4ed5f70f</Ид>\n"
            "        <Наименование>Розничный покупатель</Наименование>\n"
            "        <Роль>Покупатель</Роль>\n"
            "      </Контрагент>\n    </Контрагенты>\n"
        )
        parts.append("    <Товары>\n")
        for xml_id, name, qty, price in c.lines:
            parts.append("      <Товар>\n")
            parts.append(_el("Ид", xml_id, 8))
            parts.append(_el("Наименование", name, 8))
            parts.append(_el("Единица", "шт", 8))
            parts.append(_el("Коэффициент", 1, 8))
            parts.append(_el("Цена", price, 8))
            parts.append(_el("Количество", qty, 8))
            parts.append(_el("Сумма", Decimal(str(qty)) * Decimal(str(price)), 8))
            parts.append("      </Товар>\n")
        parts.append("    </Товары>\n")
        props: list[tuple[str, str]] = [
            ("Проведен", str(c.posted).lower()),
            ("Отменен", str(c.cancelled).lower()),
        ]
        if c.payment_number or c.paid_on:
            props.append(("Номер оплаты по 1С", c.payment_number or "ПКО-000001"))
        if c.paid_on:
            props.append(("Дата оплаты по 1С", cml_time(c.paid_on)))
        if c.shipment_number or c.shipped_on:
            props.append(("Номер отгрузки по 1С", c.shipment_number or "РТУ-000001"))
        if c.shipped_on:
            props.append(("Дата отгрузки по 1С", cml_time(c.shipped_on)))
        if c.status_id:
            props.append(("Статуса заказа ИД", c.status_id))
        if c.status:
            props.append(("Статус заказа", c.status))
        props.append(("Дата изменения статуса", cml_time(now)))
        parts.append("    <ЗначенияРеквизитов>\n")
        for name, value in props:
            parts.append(
                "      <ЗначениеРеквизита>"
                f"<Наименование>{escape(name)}</Наименование>"
                f"<Значение>{escape(value)}</Значение>"
                "</ЗначениеРеквизита>\n"
            )
        parts.append("    </ЗначенияРеквизитов>\n")
        parts.append("  </Документ>\n")
    doc.setdefault("schema", "2.09")
    return document("".join(parts), **doc)


def make_zip(files: Mapping[str, bytes], *, method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip archive in memory, members in the given order."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data, method)
    return buffer.getvalue()


# --- reading what the site sends -------------------------------------------------------------


def _local(tag: object) -> str:
    return str(tag).rpartition("}")[2]


def _text(element: etree._Element, name: str) -> str | None:
    for child in element:
        if _local(child.tag) == name:
            return (child.text or "").strip()
    return None


def _child(element: etree._Element, name: str) -> etree._Element | None:
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


def _properties(element: etree._Element) -> dict[str, str]:
    values = _child(element, "ЗначенияРеквизитов")
    result: dict[str, str] = {}
    if values is not None:
        for item in values:
            if _local(item.tag) == "ЗначениеРеквизита":
                result[_text(item, "Наименование") or ""] = _text(item, "Значение") or ""
    return result


def _stores(element: etree._Element, names: tuple[str, ...]) -> list[list[str]]:
    """The named fields of each Склады/Склад under `element`."""
    box = _child(element, "Склады")
    found: list[list[str]] = []
    for store in box if box is not None else []:
        if _local(store.tag) == "Склад":
            found.append([_text(store, n) or "" for n in names])
    return found


@dataclass(frozen=True)
class ExportedOrder:
    """A Документ of the site's orders document, as 1C reads it."""

    fields: dict[str, str]  # Ид, Номер, Дата, Время, ХозОперация, Роль, Валюта, Сумма, ...
    lines: list[dict[str, str]]  # per Товар: Ид, Наименование, ЦенаЗаЕдиницу, Количество, ...
    line_properties: list[dict[str, str]]
    properties: dict[str, str]  # ЗначенияРеквизитов
    customer: dict[str, str]
    stores: list[str] = field(default_factory=list)  # Склады/Склад/Ид of the document
    # per Товар: (Склад Ид, Количество) of its Склады, as 1C writes off per warehouse
    line_stores: list[list[tuple[str, str]]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.fields["Ид"]


@dataclass(frozen=True)
class OrdersDocument:
    root: str
    attributes: dict[str, str]
    orders: list[ExportedOrder]

    def by_id(self) -> dict[str, ExportedOrder]:
        return {o.id: o for o in self.orders}


def parse_orders(body: bytes) -> OrdersDocument:
    """The document of `sale&mode=query`, parsed by its own declared encoding."""
    root = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))
    orders: list[ExportedOrder] = []
    for doc in root:
        if _local(doc.tag) != "Документ":
            continue
        fields = {
            _local(c.tag): (c.text or "").strip()
            for c in doc
            if len(c) == 0 and isinstance(c.tag, str)
        }
        lines: list[dict[str, str]] = []
        line_props: list[dict[str, str]] = []
        line_stores: list[list[tuple[str, str]]] = []
        goods = _child(doc, "Товары")
        for item in goods if goods is not None else []:
            if _local(item.tag) != "Товар":
                continue
            lines.append(
                {
                    _local(c.tag): (c.text or "").strip()
                    for c in item
                    if isinstance(c.tag, str) and len(c) == 0
                }
            )
            line_props.append(_properties(item))
            line_stores.append([(s[0], s[1]) for s in _stores(item, ("Ид", "Количество"))])
        customer: dict[str, str] = {}
        agents = _child(doc, "Контрагенты")
        agent = _child(agents, "Контрагент") if agents is not None else None
        if agent is not None:
            customer = {
                _local(c.tag): (c.text or "").strip()
                for c in agent
                if len(c) == 0 and isinstance(c.tag, str)
            }
        orders.append(
            ExportedOrder(
                fields,
                lines,
                line_props,
                _properties(doc),
                customer,
                [s[0] for s in _stores(doc, ("Ид",))],
                line_stores,
            )
        )
    return OrdersDocument(_local(root.tag), {_local(k): v for k, v in root.attrib.items()}, orders)


def declared_encoding(body: bytes) -> str | None:
    """The encoding named in the XML declaration, if any."""
    head = body[:200].decode("ascii", errors="replace")
    marker = 'encoding="'
    if marker not in head:
        return None
    return head.split(marker, 1)[1].split('"', 1)[0]
