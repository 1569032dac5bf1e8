"""A CommerceML offers.xml import through the 1C exchange protocol, against a bare lxml ceiling.

Run from the repository root, with the package installed in .venv:

    .venv/bin/python bench/cml_import.py [--offers 100000] [--stores 10] [--keep-db]
        [--keep-files] [--dir DIR] [--skip-generate]

What it does:

1. Writes, streaming with plain string writes, ``offers.xml`` in CommerceML 2.07 style (UTF-8
   with a BOM, ``xmlns="urn:1C.ru:commerceml_2"``): one ПакетПредложений with one price type,
   ``--stores`` stores and ``--offers`` Предложение, each with a price, a total and a quantity
   per store (0..500, seeded RNG); about 220 MB for 100,000 offers. Then ``offers2.xml``: the
   same offers and stores, a later ДатаФормирования and exactly 5 % of the store quantities
   changed, each to a different value. ``--dir`` keeps them in that directory (otherwise a
   temporary one, removed unless ``--keep-files``); ``--skip-generate`` reuses the files (and
   their ``cml_bench.json``) already in ``--dir``.
2. The bare ceiling: one ``lxml.etree.iterparse`` pass over offers.xml in a subprocess that
   reads each offer's Ид and its store quantities, clearing as it goes; offers/s and the peak
   RSS (VmHWM) of that subprocess.
3. Through the protocol on PostgreSQL: (re)creates the database ``ordersync_cml_bench`` on
   127.0.0.1:5432 (user postgres, trust auth), runs ``ordersync migrate``, starts ``ordersync
   serve --workers 1`` on a free port with master = "1c" and an ``[exchange]`` table
   (ORDERSYNC_CONFIG, a TOML file written here), and plays 1C with httpx: checkauth (HTTP
   Basic), init, file (the file in file_limit chunks), import repeated while ``progress``. The
   first import loads offers.xml into the empty database; the re-import sends offers2.xml (as
   offers.xml) to a freshly started server. After each, the server's peak RSS is read from
   /proc/<pid>/status (VmHWM) and stock_levels, the exchange_1c stock_movements and the
   outbox_events are counted with the stock figures they carry (a stock.levels_changed per
   product and chunk carries each of its changed levels); the re-import must add one movement
   and one figure in an event per changed
   quantity.
   On PostgreSQL, between the two, the write floor: each table the first import filled
   (products, stock_levels, stock_movements, outbox_events) copied by one INSERT ... SELECT
   into an empty copy of itself with the same indexes and checks (LIKE ... INCLUDING ALL),
   timed by the backend's CPU less that of only reading the rows: what PostgreSQL alone spends
   storing those rows with their indexes in one bulk insert per table, about the least any
   importer writing them there can cost it.
4. Prints a table (bare iterparse, first import, re-import, each with its rate as a share of
   the bare rate measured in the same run) and the targets: >= 10,000 offers/s (>= 0.35 of the
   bare rate) on the first import, >= 20,000 (>= 0.7) on the re-import, server peak RSS <= 150
   MB. ``--db NAME`` picks the scratch PostgreSQL database; ``--sqlite`` imports into a SQLite
   file instead (the protocol and the checks are the same). The database is
   dropped afterwards unless ``--keep-db``.

Needs a PostgreSQL server and the exchange endpoint (ordersync.exchange.http, .auth).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

import asyncpg
import common
from common import (
    BenchError,
    backend_cpu,
    cpu_seconds,
    cpu_since,
    database_urls,
    interrupt,
    log,
    log_tail,
    run,
    stop_group,
    venv_bin,
)

DB_NAME = "ordersync_cml_bench"


@dataclass
class Target:
    """The database the hub imports into: a scratch PostgreSQL database, or a SQLite file."""

    name: str = DB_NAME
    sqlite: Path | None = None

    @property
    def url(self) -> str:
        if self.sqlite is not None:
            return f"sqlite+aiosqlite:///{self.sqlite}"
        return database_urls(self.name)[0]

    @property
    def dsn(self) -> str:
        return database_urls(self.name)[1]

    @property
    def label(self) -> str:
        return "SQLite" if self.sqlite is not None else "PostgreSQL"


TARGET = Target()

EXCHANGE_PATH = "/bitrix/admin/1c_exchange.php"
LOGIN = "bench"
PASSWORD = "bench-pass"
FILE_LIMIT = 50_000_000
STEP_SECONDS = 20
HTTP_TIMEOUT = 600.0
REPLY_ENCODING = "windows-1251"
SERVER_START_TIMEOUT = 120.0
# 1C writes its local time without a zone; the server reads it in [exchange] timezone, whose
# default is Moscow, so the files carry Moscow wall-clock time.
EXCHANGE_ZONE = ZoneInfo("Europe/Moscow")

SEED = 20_07
MAX_QTY = 500
CHANGED_SHARE = 0.05
OFFERS_FILE = "offers.xml"
OFFERS2_FILE = "offers2.xml"
META_FILE = "cml_bench.json"
UPLOAD_NAME = "offers.xml"  # 1C sends the package under the same name every time

TARGET_FIRST_OPS = 10_000.0
TARGET_REIMPORT_OPS = 20_000.0
TARGET_RSS_MB = 150.0
TARGET_FIRST_RATIO = 0.35  # of the bare iterparse rate of the same file, same run
TARGET_REIMPORT_RATIO = 0.7


@dataclass
class Generated:
    """What the two files hold, as cml_bench.json records it."""

    offers: int
    stores: int
    seed: int
    changed: int
    nonzero1: int  # store quantities > 0 in offers.xml
    nonzero2: int
    total1: int  # sum of the store quantities in offers.xml
    total2: int
    size1: int
    size2: int


@dataclass(frozen=True)
class Ceiling:
    offers: int
    quantities: int
    seconds: float
    hwm_kb: int


@dataclass(frozen=True)
class Counts:
    stock_levels: int
    movements: int
    events: int
    figures: int  # stock figures carried by the events (one per changed level)
    products: int
    on_hand_sum: int  # thousandths


@dataclass
class ImportRun:
    label: str
    offers: int
    upload_s: float
    import_s: float
    steps: int
    hwm_kb: int
    processes: list[str] = field(default_factory=list)
    hub_cpu_s: float = 0.0  # the server's CPU time during the import calls
    db_cpu_s: float = 0.0  # its PostgreSQL backends' CPU time during the import calls

    @property
    def offers_per_s(self) -> float:
        return self.offers / self.import_s if self.import_s > 0 else 0.0

    @property
    def end_to_end_per_s(self) -> float:
        total = self.upload_s + self.import_s
        return self.offers / total if total > 0 else 0.0


@dataclass
class Results:
    generated: Generated | None = None
    ceiling: Ceiling | None = None
    first: ImportRun | None = None
    reimport: ImportRun | None = None
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    floor: Floor | None = None
    db_created: bool = False
    profile: Path | None = None


# --------------------------------------------------------------------------- helpers


def mb(kb: int) -> float:
    return kb / 1024.0


def local_now() -> datetime:
    return datetime.now(EXCHANGE_ZONE).replace(microsecond=0, tzinfo=None)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def db_cpu() -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend connected to the bench database."""
    return {} if TARGET.sqlite is not None else backend_cpu(TARGET.name)


def vm_hwm_kb(pid: int | str) -> int:
    """The peak resident set size of a process, from /proc/<pid>/status, in kB."""
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise BenchError(f"/proc/{pid}/status has no VmHWM line")


# --------------------------------------------------------------------------- step 1: the files

KINDS = (
    "Коврик детский",
    "Плед флисовый",
    "Светильник настенный",
    "Кабель силовой",
    "Набор посуды",
    "Футболка мужская",
    "Куртка демисезонная",
    "Рюкзак городской",
    "Чайник электрический",
    "Смеситель для кухни",
    "Полотенце махровое",
    "Кроссовки беговые",
    "Органайзер настольный",
    "Сковорода антипригарная",
    "Комплект постельного белья",
    "Дрель-шуруповерт аккумуляторная",
)
BRANDS = (
    "Prime Living",
    "Portable",
    "Arlight",
    "Tefal",
    "Gorenje",
    "Cleanwear",
    "NordStyle",
    "Рога и копыта",
    "ЭкоДом",
    "Сибирский текстиль",
    "Makita",
    "Bosch",
)
MATERIALS = (
    "хлопок 100%",
    "полиэстер",
    "нержавеющая сталь",
    "алюминий",
    "бамбук",
    "натуральная кожа",
    "ПВХ",
    "медь",
    "сатин",
    "поликарбонат",
)
COLOURS = (
    "белый",
    "черный",
    "серый меланж",
    "темно-синий",
    "бордовый",
    "оливковый",
    "бежевый",
    "графит",
    "Деревянные лошадки",
    "Котики/Веселый город",
    "Слонята",
)
DETAILS = (
    "в подарочной упаковке",
    "для дома и дачи",
    "гарантия 12 месяцев",
    "коллекция весна-лето",
    "не содержит BPA",
    "можно стирать при 40 °C",
    "сделано в России",
    "класс защиты IP44",
    "с антибактериальной пропиткой",
    "совместим с индукционными плитами",
    "двусторонний",
    "повышенной износостойкости",
)


@dataclass(frozen=True)
class Header:
    package_id: str
    catalog_id: str
    price_type_id: str
    store_ids: list[str]


@dataclass
class Offer:
    xml_id: str
    article: str
    name: str
    price: int  # roubles
    quantities: list[int]


def rng_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def make_header(seed: int, stores: int) -> Header:
    rng = random.Random(f"{seed}:header")
    catalog_id = rng_uuid(rng)
    return Header(
        package_id=f"{catalog_id}#",
        catalog_id=catalog_id,
        price_type_id=rng_uuid(rng),
        store_ids=[rng_uuid(rng) for _ in range(stores)],
    )


def make_name(rng: random.Random, n: int) -> str:
    kind = rng.choice(KINDS)
    brand = rng.choice(BRANDS)
    w, h = rng.randrange(20, 250, 10), rng.randrange(20, 250, 10)
    parts = [f"{kind} {brand} {w}x{h}x{rng.randint(1, 30)} см, {rng.choice(COLOURS)}"]
    if rng.random() < 0.5:
        parts.append(rng.choice(MATERIALS))
    if rng.random() < 0.3:
        parts.append(rng.choice(DETAILS))
    parts.append(f"модель {n % 997:03d}-{rng.choice('ABCDEKMX')}{rng.randint(10, 99)}")
    return ", ".join(parts)


def iter_offers(seed: int, count: int, stores: int) -> Iterator[Offer]:
    """The same offers for the same seed, one at a time."""
    rng = random.Random(f"{seed}:offers")
    for n in range(1, count + 1):
        yield Offer(
            xml_id=rng_uuid(rng),
            article=f"PM-{n:06d}-{rng.choice(('WP', 'LE', 'MX', 'LCFT', 'BK', 'GR'))}",
            name=make_name(rng, n),
            price=rng.randint(90, 49_990),
            quantities=[rng.randint(0, MAX_QTY) for _ in range(stores)],
        )


def changed_slots(seed: int, count: int, stores: int) -> tuple[set[int], random.Random]:
    """Exactly CHANGED_SHARE of the offer x store quantities, and the RNG for their new values."""
    slots = count * stores
    rng = random.Random(f"{seed}:changes")
    picked = set(rng.sample(range(slots), round(slots * CHANGED_SHARE)))
    return picked, random.Random(f"{seed}:deltas")


def write_head(f: TextIO, header: Header, formed_at: datetime) -> None:
    stores = "".join(
        f"\t\t\t<Склад>\n\t\t\t\t<Ид>{store_id}</Ид>\n"
        f"\t\t\t\t<Наименование>Склад {n}</Наименование>\n\t\t\t</Склад>\n"
        for n, store_id in enumerate(header.store_ids, 1)
    )
    f.write(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<КоммерческаяИнформация xmlns="urn:1C.ru:commerceml_2" '
        'xmlns:xs="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'ВерсияСхемы="2.07" ДатаФормирования="{formed_at.isoformat()}">\n'
        '\t<ПакетПредложений СодержитТолькоИзменения="false">\n'
        f"\t\t<Ид>{header.package_id}</Ид>\n"
        "\t\t<Наименование>Пакет предложений (Каталог товаров)</Наименование>\n"
        f"\t\t<ИдКаталога>{header.catalog_id}</ИдКаталога>\n"
        f"\t\t<ИдКлассификатора>{header.catalog_id}</ИдКлассификатора>\n"
        "\t\t<ТипыЦен>\n\t\t\t<ТипЦены>\n"
        f"\t\t\t\t<Ид>{header.price_type_id}</Ид>\n"
        "\t\t\t\t<Наименование>Розничная</Наименование>\n"
        "\t\t\t\t<Валюта>RUB</Валюта>\n"
        "\t\t\t\t<Налог>\n\t\t\t\t\t<Наименование>НДС</Наименование>\n"
        "\t\t\t\t\t<УчтеноВСумме>true</УчтеноВСумме>\n\t\t\t\t\t<Акциз>false</Акциз>\n"
        "\t\t\t\t</Налог>\n"
        "\t\t\t</ТипЦены>\n\t\t</ТипыЦен>\n"
        f"\t\t<Склады>\n{stores}\t\t</Склады>\n"
        "\t\t<Предложения>\n"
    )


def render_offer(offer: Offer, header: Header) -> str:
    stock = "".join(
        f'\t\t\t\t<Склад ИдСклада="{store_id}" КоличествоНаСкладе="{qty}"/>\n'
        for store_id, qty in zip(header.store_ids, offer.quantities, strict=True)
    )
    return (
        "\t\t\t<Предложение>\n"
        f"\t\t\t\t<Ид>{offer.xml_id}</Ид>\n"
        f"\t\t\t\t<Артикул>{offer.article}</Артикул>\n"
        f"\t\t\t\t<Наименование>{escape(offer.name)}</Наименование>\n"
        '\t\t\t\t<БазоваяЕдиница Код="796 " НаименованиеПолное="Штука" '
        'МеждународноеСокращение="PCE">шт</БазоваяЕдиница>\n'
        "\t\t\t\t<Цены>\n\t\t\t\t\t<Цена>\n"
        f"\t\t\t\t\t\t<Представление> {offer.price} RUB за PCE</Представление>\n"
        f"\t\t\t\t\t\t<ИдТипаЦены>{header.price_type_id}</ИдТипаЦены>\n"
        f"\t\t\t\t\t\t<ЦенаЗаЕдиницу>{offer.price}</ЦенаЗаЕдиницу>\n"
        "\t\t\t\t\t\t<Валюта>RUB</Валюта>\n"
        "\t\t\t\t\t\t<Единица>PCE</Единица>\n"
        "\t\t\t\t\t\t<Коэффициент>1</Коэффициент>\n"
        "\t\t\t\t\t</Цена>\n\t\t\t\t</Цены>\n"
        f"\t\t\t\t<Количество>{sum(offer.quantities)}</Количество>\n"
        f"{stock}"
        "\t\t\t</Предложение>\n"
    )


def write_offers(path: Path, header: Header, formed_at: datetime, offers: Iterator[Offer]) -> int:
    """Streams the file; returns how many offers it holds."""
    written = 0
    batch: list[str] = []
    with path.open("w", encoding="utf-8-sig", newline="\n", buffering=1 << 20) as f:
        write_head(f, header, formed_at)
        for offer in offers:
            batch.append(render_offer(offer, header))
            written += 1
            if len(batch) >= 1000:
                f.write("".join(batch))
                batch.clear()
        f.write("".join(batch))
        f.write("\t\t</Предложения>\n\t</ПакетПредложений>\n</КоммерческаяИнформация>\n")
    return written


def generate(workdir: Path, count: int, stores: int) -> Generated:
    header = make_header(SEED, stores)
    stats = {"nonzero1": 0, "total1": 0, "nonzero2": 0, "total2": 0, "changed": 0}

    def first() -> Iterator[Offer]:
        for offer in iter_offers(SEED, count, stores):
            stats["nonzero1"] += sum(1 for q in offer.quantities if q > 0)
            stats["total1"] += sum(offer.quantities)
            yield offer

    def second() -> Iterator[Offer]:
        picked, deltas = changed_slots(SEED, count, stores)
        slot = 0
        for offer in iter_offers(SEED, count, stores):
            quantities = offer.quantities
            for i, old in enumerate(quantities):
                if slot in picked:
                    new = (old + deltas.randint(1, MAX_QTY)) % (MAX_QTY + 1)
                    if new == old:  # cannot happen: the delta is 1..MAX_QTY modulo MAX_QTY + 1
                        raise BenchError(f"slot {slot}: the new quantity equals the old one")
                    quantities[i] = new
                    stats["changed"] += 1
                slot += 1
            stats["nonzero2"] += sum(1 for q in quantities if q > 0)
            stats["total2"] += sum(quantities)
            yield offer

    path1, path2 = workdir / OFFERS_FILE, workdir / OFFERS2_FILE
    formed1 = local_now()
    log(f"writing {path1}: {count} offers x {stores} stores")
    started = time.perf_counter()
    write_offers(path1, header, formed1, first())
    elapsed1 = time.perf_counter() - started
    size1 = path1.stat().st_size
    print(
        f"generated {path1}: {size1 / 1e6:.1f} MB ({size1 / count:.0f} bytes/offer) "
        f"in {elapsed1:.1f} s, ДатаФормирования {formed1.isoformat()}",
        flush=True,
    )

    formed2 = max(local_now(), formed1 + timedelta(seconds=1))
    log(f"writing {path2}")
    started = time.perf_counter()
    write_offers(path2, header, formed2, second())
    elapsed2 = time.perf_counter() - started
    size2 = path2.stat().st_size
    slots = count * stores
    print(
        f"generated {path2}: {size2 / 1e6:.1f} MB in {elapsed2:.1f} s, ДатаФормирования "
        f"{formed2.isoformat()}; {stats['changed']} of {slots} store quantities changed "
        f"({100 * stats['changed'] / slots:.2f} %)",
        flush=True,
    )
    generated = Generated(
        offers=count,
        stores=stores,
        seed=SEED,
        changed=stats["changed"],
        nonzero1=stats["nonzero1"],
        nonzero2=stats["nonzero2"],
        total1=stats["total1"],
        total2=stats["total2"],
        size1=size1,
        size2=size2,
    )
    (workdir / META_FILE).write_text(json.dumps(generated.__dict__, indent=2) + "\n")
    return generated


def load_generated(workdir: Path, count: int, stores: int) -> Generated:
    meta = workdir / META_FILE
    missing = [p for p in (workdir / OFFERS_FILE, workdir / OFFERS2_FILE, meta) if not p.is_file()]
    if missing:
        raise BenchError(
            f"--skip-generate: {', '.join(str(p) for p in missing)} missing; "
            "run once without --skip-generate (with --dir and --keep-files)"
        )
    try:
        generated = Generated(**json.loads(meta.read_text()))
    except (ValueError, TypeError) as exc:
        raise BenchError(f"{meta} is unreadable: {exc}") from exc
    if (generated.offers, generated.stores) != (count, stores):
        log(
            f"note: the files in {workdir} hold {generated.offers} offers x "
            f"{generated.stores} stores (not --offers {count} --stores {stores}); using them"
        )
    print(
        f"reusing {workdir / OFFERS_FILE} ({generated.size1 / 1e6:.1f} MB) and "
        f"{workdir / OFFERS2_FILE}: {generated.offers} offers x {generated.stores} stores, "
        f"{generated.changed} store quantities changed",
        flush=True,
    )
    return generated


# --------------------------------------------------------------------------- step 2: the ceiling

CEILING_LINE = re.compile(r"^CEILING (.*)$", re.MULTILINE)


def ceiling_pass(path: str) -> int:
    """Runs in the subprocess: one iterparse pass, then a CEILING line on stdout."""
    from lxml import etree

    offers = quantities = 0
    checksum = 0
    started = time.perf_counter()
    context = etree.iterparse(path, events=("end",), tag="{*}Предложение")
    for _, elem in context:
        xml_id = elem.findtext("{*}Ид")
        if xml_id:
            offers += 1
        for store in elem.iterfind("{*}Склад"):
            store_id = store.get("ИдСклада")
            qty = store.get("КоличествоНаСкладе")
            if store_id and qty is not None:
                quantities += 1
                checksum += int(qty)
        elem.clear()
        parent = elem.getparent()
        if parent is not None:
            while elem.getprevious() is not None:
                del parent[0]
    seconds = time.perf_counter() - started
    del context
    print(
        f"CEILING offers={offers} quantities={quantities} checksum={checksum} "
        f"seconds={seconds:.6f} hwm_kb={vm_hwm_kb('self')}",
        flush=True,
    )
    return 0


def run_ceiling(path: Path) -> Ceiling:
    log(f"bare iterparse over {path} in a subprocess")
    proc = run(
        [sys.executable, str(Path(__file__).resolve()), "--ceiling-pass", str(path)],
        timeout=3600,
        what="bare iterparse pass",
    )
    match = CEILING_LINE.search(proc.stdout)
    if match is None:
        raise BenchError(f"the iterparse pass printed no CEILING line:\n{proc.stdout}")
    fields = dict(part.partition("=")[::2] for part in match.group(1).split())
    ceiling = Ceiling(
        offers=int(fields["offers"]),
        quantities=int(fields["quantities"]),
        seconds=float(fields["seconds"]),
        hwm_kb=int(fields["hwm_kb"]),
    )
    rate = ceiling.offers / ceiling.seconds if ceiling.seconds > 0 else 0.0
    print(
        f"bare iterparse: {ceiling.offers} offers, {ceiling.quantities} store quantities in "
        f"{ceiling.seconds:.2f} s = {rate:,.0f} offers/s, peak RSS {mb(ceiling.hwm_kb):.1f} MB",
        flush=True,
    )
    return ceiling


# --------------------------------------------------------------------------- database


_COUNTS = """
            SELECT (SELECT count(*) FROM stock_levels) AS levels,
                   (SELECT coalesce(sum(on_hand), 0) FROM stock_levels) AS on_hand,
                   (SELECT count(*) FROM stock_movements WHERE reason = 'exchange_1c') AS moves,
                   (SELECT count(*) FROM outbox_events) AS events,
                   (SELECT coalesce(sum(CASE WHEN type = 'stock.levels_changed'
                                             THEN {levels} ELSE 1 END), 0)
                    FROM outbox_events WHERE type LIKE 'stock.%changed') AS figures,
                   (SELECT count(*) FROM products) AS products
"""


async def _counts() -> Counts:
    conn = await asyncpg.connect(TARGET.dsn)
    try:
        row = await conn.fetchrow(_COUNTS.format(levels="json_array_length(payload->'levels')"))
    finally:
        await conn.close()
    if row is None:
        raise BenchError("the count query returned no row")
    return Counts(
        stock_levels=int(row["levels"]),
        movements=int(row["moves"]),
        events=int(row["events"]),
        figures=int(row["figures"]),
        products=int(row["products"]),
        on_hand_sum=int(row["on_hand"]),
    )


def recreate_database() -> None:
    if TARGET.sqlite is not None:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                Path(f"{TARGET.sqlite}{suffix}").unlink()
        return
    common.recreate_database(TARGET.name)


def drop_database() -> None:
    if TARGET.sqlite is None:
        common.drop_database(TARGET.name)


def counts() -> Counts:
    if TARGET.sqlite is None:
        return asyncio.run(_counts())
    import sqlite3

    with contextlib.closing(sqlite3.connect(TARGET.sqlite)) as conn:
        query = _COUNTS.format(levels="json_array_length(payload, '$.levels')")
        levels, on_hand, moves, events, figures, products = conn.execute(query).fetchone()
    return Counts(
        stock_levels=int(levels),
        movements=int(moves),
        events=int(events),
        figures=int(figures),
        products=int(products),
        on_hand_sum=int(on_hand),
    )


# --------------------------------------------------------------------------- the write floor

# The tables a first import fills, in the order it fills them.
FLOOR_TABLES = ("products", "stock_levels", "stock_movements", "outbox_events")


@dataclass
class Floor:
    """PostgreSQL's CPU seconds to store, and to only read, the rows of each table."""

    write_s: dict[str, float] = field(default_factory=dict)
    scan_s: dict[str, float] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def total_s(self) -> float:
        return sum(self.write_s[t] - self.scan_s[t] for t in self.write_s)


async def _write_floor() -> Floor:
    """Copies of the tables (LIKE ... INCLUDING ALL: the same columns, indexes and checks)
    filled from the first import's rows, one INSERT ... SELECT each in its own transaction,
    timed by the backend's CPU; a plain scan of the source is timed too and taken off."""
    floor = Floor()
    conn = await asyncpg.connect(TARGET.dsn)
    try:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        for table in FLOOR_TABLES:
            copy = f"bench_floor_{table}"
            await conn.execute(f"CREATE TABLE {copy} (LIKE {table} INCLUDING ALL)")
            await conn.execute(f"SELECT count(*) FROM {table}")  # the source in the cache
            started = cpu_seconds(pid)
            await conn.execute(f"SELECT count(*) FROM (SELECT * FROM {table} OFFSET 0) AS t")
            floor.scan_s[table] = cpu_seconds(pid) - started
            started = cpu_seconds(pid)
            status = await conn.execute(f"INSERT INTO {copy} SELECT * FROM {table}")
            floor.write_s[table] = cpu_seconds(pid) - started
            floor.rows[table] = int(status.rsplit(" ", 1)[1])
        for table in FLOOR_TABLES:
            await conn.execute(f"DROP TABLE bench_floor_{table}")
    finally:
        await conn.close()
    return floor


def write_floor(results: Results) -> None:
    """What PostgreSQL alone spends storing the rows a first import must write, one bulk
    insert per table: about the least any importer writing them there can cost it."""
    if TARGET.sqlite is not None:
        return
    log("the write floor: the first import's rows inserted again into copies of their tables")
    floor = results.floor = asyncio.run(_write_floor())
    for table in FLOOR_TABLES:
        write, scan = floor.write_s[table], floor.scan_s[table]
        print(
            f"write floor: {table}: {floor.rows[table]} rows, {write - scan:.1f} s of "
            f"PostgreSQL CPU (the INSERT {write:.1f} s less reading them {scan:.1f} s)",
            flush=True,
        )


# --------------------------------------------------------------------------- the server


def write_config(path: Path, work_dir: Path, password_hash: str) -> None:
    def q(value: str) -> str:
        return json.dumps(value)  # a JSON string is a valid TOML basic string

    path.write_text(
        'master = "1c"\n'
        f"database_url = {q(TARGET.url)}\n"
        "\n"
        "[exchange]\n"
        f"login = {q(LOGIN)}\n"
        f"password_hash = {q(password_hash)}\n"
        "zip = false\n"
        f"file_limit = {FILE_LIMIT}\n"
        f"step_seconds = {STEP_SECONDS}\n"
        f"work_dir = {q(str(work_dir))}\n",
        encoding="utf-8",
    )


def app_env(config: Path) -> dict[str, str]:
    """Ours, without stray ORDERSYNC_* settings (they would override the file)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERSYNC_")}
    env.update(
        ORDERSYNC_CONFIG=str(config),
        ORDERSYNC_SEED_DEMO="false",
        ORDERSYNC_SWEEPER_INTERVAL_SECONDS="60",
        ORDERSYNC_UI__SECRET_KEY="bench-only-console-signing-key-0123456789",
    )
    return env


def process_tree(pid: int) -> list[int]:
    """pid and its descendants, from the PPid lines of /proc/*/status."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for line in (entry / "status").read_text(errors="replace").splitlines():
                if line.startswith("PPid:"):
                    parents[int(entry.name)] = int(line.split()[1])
                    break
    tree = [pid]
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        kids = [child for child, ppid in parents.items() if ppid == parent]
        tree.extend(kids)
        frontier.extend(kids)
    return tree


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


class Server:
    """`ordersync serve --workers 1` in its own process group, logging to a file."""

    def __init__(self, ordersync: Path, config: Path, log_path: Path) -> None:
        self.ordersync = ordersync
        self.config = config
        self.log_path = log_path
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.profile: Path | None = None  # --profile: serve under bench/profile_serve.py
        self.label = "server"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.port = free_port()
        with self.log_path.open("ab") as out:
            command = [str(self.ordersync), "serve", "--workers", "1", "--port", str(self.port)]
            if self.profile is not None:
                wrapper = Path(__file__).resolve().parent / "profile_serve.py"
                command = [
                    sys.executable,
                    str(wrapper),
                    str(self.profile),
                    self.label,
                    *command[1:],
                ]
            self.proc = subprocess.Popen(
                command,
                env=app_env(self.config),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"ordersync serve exited with {self.proc.returncode}\n{self.log_tail()}"
                )
            if self.healthz_ok():
                return
            time.sleep(0.25)
        raise BenchError(
            f"{self.url}/healthz did not return 200 within "
            f"{SERVER_START_TIMEOUT:.0f} s\n{self.log_tail()}"
        )

    def healthz_ok(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as resp:
                return int(resp.status) == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def peak_rss(self) -> tuple[int, list[str]]:
        """The largest VmHWM in the server's process tree (kB), and a line per process."""
        if self.proc is None or not self.alive():
            raise BenchError(f"the server is not running\n{self.log_tail()}")
        lines: list[str] = []
        peak = 0
        for pid in process_tree(self.proc.pid):
            try:
                hwm = vm_hwm_kb(pid)
            except (OSError, BenchError):
                continue
            peak = max(peak, hwm)
            lines.append(f"pid {pid} VmHWM {mb(hwm):.1f} MB: {cmdline(pid)[:120]}")
        return peak, lines

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        stop_group(proc)


# --------------------------------------------------------------------------- the protocol


class Exchange:
    """1C's side of type=catalog, on one httpx client."""

    def __init__(self, base_url: str) -> None:
        import httpx

        self.httpx = httpx
        self.client = httpx.Client(base_url=base_url, timeout=HTTP_TIMEOUT)
        self.cookie: str | None = None
        self.sessid: str | None = None

    def close(self) -> None:
        self.client.close()

    def call(
        self,
        mode: str,
        *,
        filename: str | None = None,
        body: bytes | None = None,
        status_word: bool = True,
    ) -> list[str]:
        """One call; its reply lines. With status_word (every reply but init's) the first
        line must be success or progress."""
        params = {"type": "catalog", "mode": mode}
        if filename is not None:
            params["filename"] = filename
        if self.sessid:
            params["sessid"] = self.sessid  # newer 1C appends it to every later URL
        headers = {"Cookie": self.cookie} if self.cookie else {}
        what = f"mode={mode}" + (f"&filename={filename}" if filename else "")
        try:
            if body is None:
                resp = self.client.get(EXCHANGE_PATH, params=params, headers=headers)
            else:
                headers["Content-Type"] = "application/octet-stream"
                resp = self.client.post(EXCHANGE_PATH, params=params, headers=headers, content=body)
        except self.httpx.HTTPError as exc:
            raise BenchError(f"{what}: {type(exc).__name__}: {exc}") from exc
        text = resp.content.decode(REPLY_ENCODING, errors="replace")
        lines = text.splitlines()
        if resp.status_code != 200:
            raise BenchError(f"{what}: HTTP {resp.status_code}\n{text[:2000]}")
        if not lines:
            raise BenchError(f"{what}: empty reply (HTTP {resp.status_code})")
        if lines[0].strip() == "failure" or (
            status_word and lines[0] not in ("success", "progress")
        ):
            raise BenchError(f"{what}: {lines[0]!r}\n{text[:2000]}")
        return lines

    def checkauth(self) -> None:
        try:
            resp = self.client.get(
                EXCHANGE_PATH,
                params={"type": "catalog", "mode": "checkauth"},
                auth=(LOGIN, PASSWORD),
            )
        except self.httpx.HTTPError as exc:
            raise BenchError(f"mode=checkauth: {type(exc).__name__}: {exc}") from exc
        text = resp.content.decode(REPLY_ENCODING, errors="replace")
        lines = text.splitlines()
        if resp.status_code != 200 or len(lines) < 3 or lines[0] != "success":
            raise BenchError(f"mode=checkauth: HTTP {resp.status_code}\n{text[:2000]}")
        name, value = lines[1].strip(), lines[2].strip()
        if not name or not value or "." in name:
            raise BenchError(f"mode=checkauth: bad cookie name/value {name!r}={value!r}")
        self.cookie = f"{name}={value}"
        extra = dict(line.partition("=")[::2] for line in lines[3:] if "=" in line)
        self.sessid = extra.get("sessid") or None
        log(
            f"checkauth: cookie {name}, sessid {'yes' if self.sessid else 'no'}, "
            f"timestamp {extra.get('timestamp', '-')}"
        )

    def init(self) -> int:
        lines = self.call("init", status_word=False)
        fields = dict(line.strip().partition("=")[::2] for line in lines if "=" in line)
        if fields.get("zip") != "no":
            raise BenchError(f"mode=init: expected zip=no, got {lines!r}")
        try:
            limit = int(fields["file_limit"])
        except (KeyError, ValueError) as exc:
            raise BenchError(f"mode=init: no file_limit in {lines!r}") from exc
        if limit < 1:
            raise BenchError(f"mode=init: file_limit={limit}")
        log(f"init: zip=no, file_limit={limit}")
        return limit

    def upload(self, path: Path, name: str, limit: int) -> int:
        chunks = 0
        with path.open("rb") as f:
            while chunk := f.read(limit):
                lines = self.call("file", filename=name, body=chunk)
                if lines[0] != "success":
                    raise BenchError(f"mode=file chunk {chunks + 1}: {lines!r}")
                chunks += 1
        return chunks

    def import_file(self, name: str, started: float) -> int:
        """mode=import until success; prints every progress line. Returns the number of calls."""
        steps = 0
        while True:
            lines = self.call("import", filename=name)
            steps += 1
            elapsed = time.perf_counter() - started
            if lines[0] == "success":
                print(f"  {elapsed:8.1f} s  success {' | '.join(lines[1:])}".rstrip(), flush=True)
                return steps
            print(f"  {elapsed:8.1f} s  {' | '.join(lines)}", flush=True)

    def complete(self) -> None:
        try:
            lines = self.call("complete")
            log(f"complete: {' | '.join(lines)}")
        except BenchError as exc:
            log(f"warning: mode=complete did not answer success: {exc}")


def exchange_once(label: str, server: Server, path: Path, offers: int) -> ImportRun:
    server.label = label.replace(" ", "-")
    server.start()
    try:
        log(f"{label}: server pid {server.proc.pid if server.proc else '?'} on {server.url}")
        exchange = Exchange(server.url)
        try:
            exchange.checkauth()
            limit = exchange.init()
            started = time.perf_counter()
            chunks = exchange.upload(path, UPLOAD_NAME, limit)
            upload_s = time.perf_counter() - started
            size = path.stat().st_size
            print(
                f"{label}: uploaded {size / 1e6:.1f} MB as {UPLOAD_NAME} in {chunks} chunk(s) "
                f"of <= {limit} bytes in {upload_s:.1f} s",
                flush=True,
            )
            print(f"{label}: mode=import", flush=True)
            pid = server.proc.pid if server.proc else 0
            hub_before, db_before = cpu_seconds(pid), db_cpu()
            started = time.perf_counter()
            steps = exchange.import_file(UPLOAD_NAME, started)
            import_s = time.perf_counter() - started
            hub_cpu = cpu_seconds(pid) - hub_before
            db_cpu_s = cpu_since(db_before, db_cpu())
            exchange.complete()
        finally:
            exchange.close()
        if not server.alive():
            raise BenchError(f"the server died during the {label}\n{server.log_tail()}")
        hwm, processes = server.peak_rss()
    except BenchError as exc:
        raise BenchError(f"{label}: {exc}\n{server.log_tail()}") from exc
    finally:
        server.stop()
    result = ImportRun(label, offers, upload_s, import_s, steps, hwm, processes, hub_cpu, db_cpu_s)
    print(
        f"{label}: {offers} offers imported in {import_s:.1f} s ({steps} import calls) = "
        f"{result.offers_per_s:,.0f} offers/s; with the upload {upload_s + import_s:.1f} s = "
        f"{result.end_to_end_per_s:,.0f} offers/s; server peak RSS {mb(hwm):.1f} MB; "
        f"CPU: hub {hub_cpu:.1f} s, PostgreSQL {db_cpu_s:.1f} s",
        flush=True,
    )
    for line in processes:
        print(f"  {line}", flush=True)
    if len(processes) > 1:
        log(f"note: the server ran as {len(processes)} processes; the table shows the largest")
    return result


def print_counts(label: str, c: Counts) -> None:
    print(
        f"{label}: stock_levels {c.stock_levels}, exchange_1c movements {c.movements}, "
        f"outbox_events {c.events} (stock figures {c.figures}), products {c.products}, "
        f"sum(on_hand) {c.on_hand_sum / 1000:.0f}",
        flush=True,
    )


def check(results: Results, name: str, ok: bool, detail: str) -> None:
    results.checks.append((name, ok, detail))
    print(f"{'OK      ' if ok else 'MISMATCH'} {name}: {detail}", flush=True)


def through_protocol(files: Path, workdir: Path, results: Results, password_hash: str) -> None:
    generated = results.generated
    if generated is None:
        raise BenchError("no files to import")
    ordersync = venv_bin("ordersync")
    config = workdir / "ordersync.toml"
    if TARGET.sqlite is not None:
        TARGET.sqlite = workdir / "bench.sqlite3"
    write_config(config, workdir / "exchange", password_hash)

    log(f"recreating database {TARGET.url}")
    results.db_created = True
    recreate_database()
    log("ordersync migrate")
    run([ordersync, "migrate"], env=app_env(config), timeout=300, what="ordersync migrate")

    server = Server(ordersync, config, workdir / "server.log")
    server.profile = results.profile
    offers = generated.offers
    results.first = exchange_once("first import", server, files / OFFERS_FILE, offers)
    before = counts()
    print_counts("after the first import", before)
    slots = generated.offers * generated.stores
    check(
        results,
        "first import: stock levels",
        before.stock_levels == slots,
        f"{before.stock_levels} (expected {slots}: one per offer x store)",
    )
    check(
        results,
        "first import: sum(on_hand)",
        before.on_hand_sum == generated.total1 * 1000,
        f"{before.on_hand_sum / 1000:.0f} (the file's quantities add up to {generated.total1})",
    )
    check(
        results,
        "first import: movements",
        before.movements == generated.nonzero1,
        f"{before.movements} (expected {generated.nonzero1}: one per non-zero store quantity)",
    )
    check(
        results,
        "first import: stock figures in the events",
        before.figures == generated.nonzero1,
        f"{before.figures} in {before.events} events (expected {generated.nonzero1})",
    )

    write_floor(results)

    results.reimport = exchange_once("re-import", server, files / OFFERS2_FILE, offers)
    after = counts()
    print_counts("after the re-import", after)
    moved = after.movements - before.movements
    events = after.events - before.events
    figures = after.figures - before.figures
    print(
        f"re-import deltas: stock_levels {after.stock_levels - before.stock_levels:+d}, "
        f"movements {moved:+d}, outbox_events {events:+d} (stock figures {figures:+d}), "
        f"products {after.products - before.products:+d} "
        f"(changed quantities: {generated.changed})",
        flush=True,
    )
    check(
        results,
        "re-import: movements added",
        moved == generated.changed,
        f"{moved} (expected {generated.changed})",
    )
    check(
        results,
        "re-import: stock figures in the events added",
        figures == generated.changed,
        f"{figures} in {events} events (expected {generated.changed})",
    )
    check(
        results,
        "re-import: sum(on_hand)",
        after.on_hand_sum == generated.total2 * 1000,
        f"{after.on_hand_sum / 1000:.0f} (offers2.xml's quantities add up to {generated.total2})",
    )


# --------------------------------------------------------------------------- report


def print_report(results: Results) -> None:
    print()
    print(f"CommerceML offers import, {TARGET.label}, serve --workers 1, {os.cpu_count()} CPUs")
    header = (
        f"{'phase':<16} {'offers':>8} {'seconds':>8} {'offers/s':>9} {'/ bare':>7} "
        f"{'peak RSS MB':>11}"
    )
    print(header)
    print("-" * len(header))
    c = results.ceiling
    bare = 0.0
    if c is not None:
        bare = c.offers / c.seconds if c.seconds > 0 else 0.0
        print(
            f"{'bare iterparse':<16} {c.offers:>8} {c.seconds:>8.1f} {bare:>9.0f} {1:>7.2f} "
            f"{mb(c.hwm_kb):>11.1f}"
        )

    def ratio(run_: ImportRun | None) -> float | None:
        return run_.offers_per_s / bare if run_ is not None and bare > 0 else None

    for run_ in (results.first, results.reimport):
        if run_ is None:
            continue
        print(
            f"{run_.label:<16} {run_.offers:>8} {run_.import_s:>8.1f} {run_.offers_per_s:>9.0f} "
            f"{ratio(run_) or 0:>7.2f} {mb(run_.hwm_kb):>11.1f}"
        )
    for run_ in (results.first, results.reimport):
        if run_ is not None:
            print(
                f"  {run_.label}: upload {run_.upload_s:.1f} s, end to end "
                f"{run_.upload_s + run_.import_s:.1f} s = {run_.end_to_end_per_s:.0f} offers/s; "
                f"CPU during the import: hub {run_.hub_cpu_s:.1f} s, PostgreSQL "
                f"{run_.db_cpu_s:.1f} s"
            )
    if results.floor is not None and results.first is not None and bare > 0:
        floor_s = results.floor.total_s
        cpus = os.cpu_count() or 1
        best = cpus * results.first.offers / floor_s if floor_s > 0 else 0.0
        print(
            f"  write floor: PostgreSQL's CPU to store the first import's rows alone "
            f"{floor_s:.1f} s; on {cpus} CPUs doing nothing else, at most {best:.0f} offers/s "
            f"({best / bare:.2f} of the bare rate)"
        )
    print()

    def verdict(label: str, run_: ImportRun | None, value: float | None, ok: bool) -> None:
        if run_ is None or value is None:
            print(f"N/A      {label}: not run")
        else:
            print(f"{'met    ' if ok else 'not met'}  {label}: {value:,.2f}")

    first, again = results.first, results.reimport
    verdict(
        f"first import >= {TARGET_FIRST_OPS:,.0f} offers/s",
        first,
        first.offers_per_s if first else None,
        bool(first and first.offers_per_s >= TARGET_FIRST_OPS),
    )
    verdict(
        f"re-import >= {TARGET_REIMPORT_OPS:,.0f} offers/s",
        again,
        again.offers_per_s if again else None,
        bool(again and again.offers_per_s >= TARGET_REIMPORT_OPS),
    )
    for label, run_, share in (
        ("first import", first, TARGET_FIRST_RATIO),
        ("re-import", again, TARGET_REIMPORT_RATIO),
    ):
        value = ratio(run_)
        verdict(
            f"{label} >= {share} of the bare iterparse rate",
            run_,
            value,
            value is not None and value >= share,
        )
    for label, run_ in (("first import", first), ("re-import", again)):
        verdict(
            f"{label} server peak RSS <= {TARGET_RSS_MB:.0f} MB",
            run_,
            mb(run_.hwm_kb) if run_ else None,
            bool(run_ and mb(run_.hwm_kb) <= TARGET_RSS_MB),
        )
    for name, ok, detail in results.checks:
        if not ok:
            print(f"MISMATCH {name}: {detail}")


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--offers", type=int, default=100_000, help="offers in the file (default 100000)"
    )
    parser.add_argument("--stores", type=int, default=10, help="stores (default 10)")
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the XML files go (default: a temp dir)"
    )
    parser.add_argument(
        "--keep-db", action="store_true", help="keep the PostgreSQL database afterwards"
    )
    parser.add_argument(
        "--db", default=DB_NAME, help=f"the scratch PostgreSQL database (default {DB_NAME})"
    )
    parser.add_argument(
        "--sqlite", action="store_true", help="import into a SQLite file instead of PostgreSQL"
    )
    parser.add_argument(
        "--keep-files", action="store_true", help="keep the generated files (and their dir)"
    )
    parser.add_argument(
        "--skip-generate",
        action="store_true",
        help="reuse offers.xml, offers2.xml and cml_bench.json in --dir",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="serve under cProfile (bench/profile_serve.py); profiles and top entries go to DIR",
    )
    parser.add_argument("--ceiling-pass", metavar="FILE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ceiling_pass:
        return args
    if args.offers < 1:
        parser.error("--offers must be at least 1")
    if args.stores < 1:
        parser.error("--stores must be at least 1")
    if args.skip_generate and args.dir is None:
        parser.error("--skip-generate needs --dir (the directory that holds the files)")
    return args


def bench(args: argparse.Namespace, files: Path, workdir: Path, results: Results) -> None:
    hash_error: str | None = None
    password_hash = ""
    try:
        from ordersync.exchange.auth import hash_password

        password_hash = hash_password(PASSWORD)
    except ImportError as exc:
        hash_error = f"cannot import ordersync.exchange.auth.hash_password: {exc}"
        log(f"warning: {hash_error}; step 3 will not run")

    if args.skip_generate:
        results.generated = load_generated(files, args.offers, args.stores)
    else:
        results.generated = generate(files, args.offers, args.stores)
    results.ceiling = run_ceiling(files / OFFERS_FILE)
    if hash_error is not None:
        raise BenchError(f"step 3 (through the protocol) not run: {hash_error}")
    through_protocol(files, workdir, results, password_hash)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.ceiling_pass:
        return ceiling_pass(args.ceiling_pass)
    signal.signal(signal.SIGTERM, interrupt)
    TARGET.name = args.db
    TARGET.sqlite = Path("bench.sqlite3") if args.sqlite else None
    results = Results(profile=args.profile.resolve() if args.profile else None)
    code = 0
    if args.dir is not None:
        files = Path(args.dir).resolve()
        files.mkdir(parents=True, exist_ok=True)
        own_files = False
    else:
        files = Path(tempfile.mkdtemp(prefix="ordersync-cml-files-"))
        own_files = True
    try:
        with tempfile.TemporaryDirectory(prefix="ordersync-cml-bench-") as tmp:
            try:
                bench(args, files, Path(tmp), results)
            except BenchError as exc:
                print(f"bench failed: {exc}", file=sys.stderr)
                code = 1
            except KeyboardInterrupt:
                print("bench interrupted", file=sys.stderr)
                code = 130
    finally:
        if results.db_created and not args.keep_db:
            try:
                drop_database()
            except (OSError, asyncpg.PostgresError) as exc:
                print(f"could not drop {TARGET.name}: {exc}", file=sys.stderr)
        if args.keep_files:
            log(f"files kept in {files}")
        elif own_files:
            shutil.rmtree(files, ignore_errors=True)
        elif not args.skip_generate:
            for name in (OFFERS_FILE, OFFERS2_FILE, META_FILE):
                with contextlib.suppress(OSError):
                    (files / name).unlink()
    print_report(results)
    return code


if __name__ == "__main__":
    sys.exit(main())
