"""The 1C stock import (CommerceML offers and rests files), driven at the service level: an
exchange session and its file row, the file in the session's work directory, then
CatalogImport.step until `success`.

master = "1c": each stock level becomes 1C's figure (negatives as 0) plus the hub's own
movements 1C cannot have counted yet, never below 0; holds stay. master = "hub": the figures are
only recorded beside the hub's, for `reconcile`."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text

from ordersync.config import ExchangeSettings
from ordersync.db import exchange_records, exchange_stock, reconcile
from ordersync.db.exchange_records import ExchangeFile, ExchangeSession
from ordersync.db.tables import (
    exchange_files,
    exchange_log,
    exchange_stage_items,
    exchange_stock_coverage,
    metadata,
    outbox_events,
    products,
    stock_1c_figures,
    stock_levels,
    stock_movements,
    stores,
)
from ordersync.db.unit_of_work import Database
from ordersync.domain import events
from ordersync.domain.commands import (
    LineInput,
    PlaceOrder,
    ProductRef,
    RecordPosSale,
    StockDocument,
    StockLine,
)
from ordersync.domain.errors import BadExchangeFile
from ordersync.domain.orders import Order
from ordersync.domain.types import Channel, Fulfillment, Master, MovementReason
from ordersync.exchange.auth import cookie_hash
from ordersync.exchange.catalog_import import CatalogImport, Step
from ordersync.exchange.work_dir import WorkDir
from ordersync.services import stock
from ordersync.services.context import utcnow
from ordersync.services.orders import place_order
from ordersync.services.ports import StockChange
from ordersync.services.pos import record_pos_sale
from tests import support
from tests.integration import dbstate

D = Decimal
ZONE = "Europe/Moscow"  # ExchangeSettings.timezone, set explicitly below
FILE = "offers.xml"
EXCHANGE_1C = "exchange_1c"


# --- building the files ------------------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    """A Предложение: its Ид, its name (None in a rests-only file) and its figure per store Ид."""

    xml_id: str
    stock: Mapping[str, str | int] = field(default_factory=dict)
    name: str | None = None
    total: str | None = None  # Количество; by default the sum of the store figures


def local_time(moment: datetime, zone: str = ZONE) -> str:
    """ДатаФормирования as 1C writes it: local time without a zone."""
    return moment.astimezone(ZoneInfo(zone)).replace(tzinfo=None).isoformat(timespec="seconds")


def offers_xml(
    formed: datetime, offers: Sequence[Offer], store_names: Mapping[str, str] | None = None
) -> str:
    """An offers.xml of schema 2.08: ПакетПредложений with Склады and Предложения, each offer
    with Количество and a <Склад ИдСклада КоличествоНаСкладе/> per store."""
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<КоммерческаяИнформация ВерсияСхемы="2.08" ДатаФормирования="{local_time(formed)}">',
        '<ПакетПредложений СодержитТолькоИзменения="false">',
        "<Ид>pkg-1#</Ид><Наименование>Пакет предложений</Наименование>",
        "<ИдКаталога>cat-1</ИдКаталога><ИдКлассификатора>cls-1</ИдКлассификатора>",
    ]
    if store_names:
        out.append("<Склады>")
        for xml_id, name in store_names.items():
            out.append(
                f"<Склад><Ид>{escape(xml_id)}</Ид><Наименование>{escape(name)}</Наименование>"
                "</Склад>"
            )
        out.append("</Склады>")
    out.append("<Предложения>")
    for offer in offers:
        out.append(f"<Предложение><Ид>{escape(offer.xml_id)}</Ид>")
        if offer.name is not None:
            out.append(f"<Наименование>{escape(offer.name)}</Наименование>")
        total = offer.total
        if total is None:
            total = str(sum((D(str(q).replace(",", ".")) for q in offer.stock.values()), D(0)))
        out.append(f"<Количество>{escape(total)}</Количество>")
        for store_id, qty in offer.stock.items():
            out.append(
                f"<Склад ИдСклада={quoteattr(store_id)} КоличествоНаСкладе={quoteattr(str(qty))}/>"
            )
        out.append("</Предложение>")
    out.append("</Предложения></ПакетПредложений></КоммерческаяИнформация>")
    return "\n".join(out)


def rests_xml(formed: datetime, offers: Sequence[Offer]) -> str:
    """A rests*.xml of 2.08 to 2.10: offers with Остатки/Остаток/Склад(Ид, Количество) only."""
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<КоммерческаяИнформация ВерсияСхемы="2.10" ДатаФормирования="{local_time(formed)}">',
        '<ПакетПредложений СодержитТолькоИзменения="false">',
        "<Ид>pkg-rests</Ид><Наименование>Остатки</Наименование>",
        "<Предложения>",
    ]
    for offer in offers:
        out.append(f"<Предложение><Ид>{escape(offer.xml_id)}</Ид><Остатки>")
        for store_id, qty in offer.stock.items():
            out.append(
                f"<Остаток><Склад><Ид>{escape(store_id)}</Ид>"
                f"<Количество>{escape(str(qty))}</Количество></Склад></Остаток>"
            )
        out.append("</Остатки></Предложение>")
    out.append("</Предложения></ПакетПредложений></КоммерческаяИнформация>")
    return "\n".join(out)


# --- driving the import ------------------------------------------------------------------------


class Exchange:
    """Plays 1C's part without HTTP: a session, its file, then import steps until success."""

    def __init__(
        self,
        db: Database,
        root: Path,
        master: Master,
        chunk_offers: int = 2000,
        step_seconds: float = 20.0,
    ) -> None:
        self.db = db
        self.master = master
        self.settings = ExchangeSettings(
            work_dir=root,
            step_seconds=step_seconds,
            chunk_offers=chunk_offers,
            timezone=ZONE,
        )

    def importer(self) -> CatalogImport:
        """A new CatalogImport: what a restarted process would build (no reader kept open)."""
        return CatalogImport(self.db, self.settings, self.master)

    async def upload(self, body: str, name: str = FILE) -> ExchangeSession:
        session_id = str(uuid.uuid4())
        hashed = cookie_hash(uuid.uuid4().hex)
        now = utcnow()
        async with self.db.uow() as uow:
            await exchange_records.create_session(
                uow.conn, session_id, "catalog", hashed, "1c", now
            )
            await uow.commit()
        path = WorkDir(self.settings.work_dir, session_id).file(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")
        async with self.db.uow() as uow:
            await exchange_records.create_file(uow.conn, session_id, name, None, now)
            await uow.commit()
        async with self.db.uow_read() as uow:
            session = await exchange_records.session_by_cookie(uow.conn, hashed)
        assert session is not None and session.id == session_id
        return session

    async def run(
        self,
        session: ExchangeSession,
        name: str = FILE,
        importer: CatalogImport | None = None,
        max_steps: int = 500,
    ) -> list[Step]:
        importer = importer or self.importer()
        steps: list[Step] = []
        for _ in range(max_steps):
            step = await importer.step(session, name)
            steps.append(step)
            if step.status == "success":
                return steps
            assert step.status == "progress", step
        raise AssertionError(f"no success after {max_steps} steps: {steps[-3:]}")

    async def load(self, body: str, name: str = FILE) -> tuple[ExchangeSession, list[Step]]:
        session = await self.upload(body, name)
        return session, await self.run(session, name)

    async def file(self, session: ExchangeSession, name: str = FILE) -> ExchangeFile:
        async with self.db.uow_read() as uow:
            found = await exchange_records.get_file(uow.conn, session.id, name)
        assert found is not None
        return found


def document_id(session: ExchangeSession, name: str = FILE) -> str:
    return f"{session.id}/{name}"


# --- reading what was written --------------------------------------------------------------------


Level = tuple[Decimal, Decimal]


async def levels_by_xml_id(db: Database) -> dict[tuple[str, str], Level]:
    """(on_hand, reserved) by (product Ид, store Ид), for every stock level."""
    sl = stock_levels.c
    stmt = (
        select(products.c.xml_id, stores.c.xml_id.label("store"), sl.on_hand, sl.reserved)
        .join(products, products.c.id == sl.product_id)
        .join(stores, stores.c.id == sl.store_id)
    )
    async with db.uow_read() as uow:
        rows = (await uow.conn.execute(stmt)).all()
    return {(r.xml_id, r.store): (r.on_hand, r.reserved) for r in rows}


async def import_movements(db: Database, session: ExchangeSession, name: str = FILE) -> list[Any]:
    m = stock_movements.c
    return await dbstate.rows(
        db,
        stock_movements,
        m.document_type == EXCHANGE_1C,
        m.document_id == document_id(session, name),
    )


@dataclass(frozen=True)
class Figure:
    """One level's figure in an import's stock.levels_changed event."""

    event: Any  # the outbox row
    payload: dict[str, Any]  # shaped as a stock.changed payload (events.stock_figures)

    @property
    def aggregate_id(self) -> str:
        return events.stock_aggregate_id(self.payload["product_id"], self.payload["store_id"])


async def import_events(db: Database, session: ExchangeSession, name: str = FILE) -> list[Figure]:
    """The figures the import's events carry, level by level, in event order."""
    return [
        Figure(e, figure)
        for e in await dbstate.events(db, events.STOCK_LEVELS_CHANGED)
        if e.payload.get("document_id") == document_id(session, name)
        for figure in events.stock_figures(e.type, e.payload)
    ]


async def assert_payloads_match_levels(
    db: Database, found: Sequence[Figure], reason: str, document_type: str, doc: str
) -> None:
    """Each stock.levels_changed event is exactly what events.stock_levels_changed() makes of
    its product's levels as they stand now (nothing moved the levels since), one event per
    product and chunk: on PostgreSQL the import builds the payload in SQL, so this compares
    that text with Python's."""
    async with db.uow_read() as uow:
        current = {
            (x.product_id, x.store_id): x
            for x in await uow.read_stock([int(f.payload["product_id"]) for f in found])
        }
    by_event: dict[int, list[Figure]] = {}
    for figure in found:
        by_event.setdefault(figure.event.id, []).append(figure)
    for figures in by_event.values():
        event = figures[0].event
        product_id = event.payload["product_id"]
        levels = [
            (s, current[(product_id, s)].on_hand, current[(product_id, s)].reserved)
            for s in (f.payload["store_id"] for f in figures)
        ]
        assert [s for s, _, _ in levels] == sorted(s for s, _, _ in levels)
        expected = events.stock_levels_changed(product_id, levels, reason, document_type, doc)
        assert dict(event.payload) == expected
        assert (event.type, event.aggregate_type) == (
            events.STOCK_LEVELS_CHANGED,
            events.AGGREGATE_STOCK,
        )
        assert event.aggregate_id == str(product_id)
        for figure in figures:
            level = current[(product_id, figure.payload["store_id"])]
            assert figure.payload == events.stock_changed(
                product_id, level.store_id, level.on_hand, level.reserved, reason,
                document_type, doc,
            )  # fmt: skip


async def latest_figure(db: Database, product_id: int, store_id: int) -> dict[str, Any]:
    """The level's figure in the last stock event that carries it (either shape)."""
    figures = [
        f
        for e in await dbstate.events(db)
        for f in events.stock_figures(e.type, e.payload)
        if (f["product_id"], f["store_id"]) == (product_id, store_id)
    ]
    return figures[-1]


async def warnings(db: Database) -> list[str]:
    found = await dbstate.rows(db, exchange_log, exchange_log.c.level == "warning")
    return [r.message for r in found]


async def no_drift(db: Database) -> None:
    _, drifts = await dbstate.drift(db)
    assert drifts == []


# --- the hub's own movements -------------------------------------------------------------------


def formed_time() -> datetime:
    """When 1C formed the file: two hours ago, whole seconds (ДатаФормирования has no more)."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


async def receive(
    db: Database, at: datetime, store: str, doc: str, *items: tuple[str, int | str]
) -> None:
    """A receipt recorded at `at` (its business time too)."""
    lines = tuple(StockLine(ProductRef(sku=s), D(q)) for s, q in items)
    ctx = support.context(support.Clock(at))
    await stock.receive(db.uow, StockDocument(store, doc, lines), ctx, None)


async def sell(
    db: Database,
    store: str,
    transaction: str,
    sku: str,
    qty: int | str,
    business_time: datetime,
    recorded_at: datetime | None = None,
) -> None:
    """A till sale at `business_time`, which the hub learns of at `recorded_at`."""
    clock = support.Clock(recorded_at) if recorded_at is not None else None
    cmd = RecordPosSale(
        store, "till-1", transaction, (LineInput(ProductRef(sku=sku), D(qty)),), business_time
    )
    await record_pos_sale(db.uow, cmd, support.context(clock))


@pytest.fixture
def one_c(db: Database, tmp_path: Path) -> Exchange:
    return Exchange(db, tmp_path / "exchange", Master.ONE_C)


@pytest.fixture
def hub(db: Database, tmp_path: Path) -> Exchange:
    return Exchange(db, tmp_path / "exchange", Master.HUB)


def offers_of(
    figures: Mapping[tuple[str, str], str | int], names: Mapping[str, str]
) -> list[Offer]:
    """Offers grouping figures by product Ид, in first-seen order."""
    by_product: dict[str, dict[str, str | int]] = {}
    for (product, store_id), qty in figures.items():
        by_product.setdefault(product, {})[store_id] = qty
    return [Offer(p, stock, name=names.get(p)) for p, stock in by_product.items()]


SEEDED_NAMES = {f"1c-{sku.lower()}": sku.title() for sku, _, _ in support.PRODUCTS}


# --- master = "1c": the first import -------------------------------------------------------------


async def test_a_first_import_sets_every_level_with_one_movement_and_one_event_per_figure(
    db: Database, one_c: Exchange
) -> None:
    net = await support.seed_network(db)
    formed = formed_time()
    figures: dict[tuple[str, str], str | int] = {
        ("1c-tea", "WH1"): 12,
        ("1c-tea", "S01"): "3",
        ("1c-tea", "S02"): "0",
        ("1c-coffee", "WH1"): "7.000",
        ("1c-coffee", "S02"): 1,
        ("1c-sugar", "WH1"): "2.5",
        ("1c-sugar", "S01"): "0,125",
        ("1c-sugar", "S02"): "10",
        ("1c-mug", "S01"): "100",
        ("1c-mug", "S02"): "0.000",
    }
    expected = {k: D(str(v).replace(",", ".")) for k, v in figures.items()}

    session, steps = await one_c.load(offers_xml(formed, offers_of(figures, SEEDED_NAMES)))

    assert steps[-1].status == "success"
    assert await levels_by_xml_id(db) == {k: (v, D(0)) for k, v in expected.items()}
    file = await one_c.file(session)
    assert (file.status, file.kind, file.formed_at) == ("done", "offers", formed)
    assert file.result["stock_changed"] == 8
    moved = await import_movements(db, session)
    ids = {v: f"1c-{k.lower()}" for k, v in net.products.items()}
    codes = {v: k for k, v in net.stores.items()}
    assert sorted((ids[m.product_id], codes[m.store_id], m.quantity) for m in moved) == sorted(
        (p, s, q) for (p, s), q in expected.items() if q != 0
    )
    assert {(m.reason, m.business_time) for m in moved} == {(EXCHANGE_1C, formed)}
    found = await import_events(db, session)
    assert len(found) == 8
    assert sorted(e.aggregate_id for e in found) == sorted(
        f"{m.product_id}:{m.store_id}" for m in moved
    )
    await assert_payloads_match_levels(db, found, EXCHANGE_1C, EXCHANGE_1C, document_id(session))
    assert {e.payload["on_hand"] for e in found} >= {"2.5", "0.125", "7", "100", "12"}
    assert {e.payload["reserved"] for e in found} == {"0"}
    await no_drift(db)


async def test_the_import_writes_one_stock_levels_changed_per_product_and_chunk_with_its_levels(
    db: Database, tmp_path: Path
) -> None:
    """Not an event per level: one per product of each chunk, carrying every level of it that
    changed (in store order); a level set to the figure it had is in none."""
    net = await support.seed_network(db)
    formed = formed_time()
    chunked = Exchange(db, tmp_path / "x", Master.ONE_C, chunk_offers=2)
    figures: dict[tuple[str, str], str | int] = {
        ("1c-tea", "S02"): 3,
        ("1c-tea", "WH1"): 12,
        ("1c-tea", "S01"): 0,  # a new level at zero: no movement, no figure
        ("1c-coffee", "WH1"): 7,
        ("1c-sugar", "S01"): "2.5",
    }
    session, _ = await chunked.load(offers_xml(formed, offers_of(figures, SEEDED_NAMES)))

    found = await import_events(db, session)
    rows = {f.event.id: f.event for f in found}
    assert sorted(
        (e.type, e.aggregate_id, [x["store_id"] for x in e.payload["levels"]])
        for e in rows.values()
    ) == sorted([
        (events.STOCK_LEVELS_CHANGED, str(net.products["TEA"]),
         sorted([net.stores["S02"], net.stores["WH1"]])),
        (events.STOCK_LEVELS_CHANGED, str(net.products["COFFEE"]), [net.stores["WH1"]]),
        (events.STOCK_LEVELS_CHANGED, str(net.products["SUGAR"]), [net.stores["S01"]]),
    ])  # fmt: skip
    await assert_payloads_match_levels(db, found, EXCHANGE_1C, EXCHANGE_1C, document_id(session))
    assert len(found) == len(await import_movements(db, session)) == 4

    again = {**figures, ("1c-tea", "WH1"): 11}  # one level of tea changes, the rest stay
    later, _ = await chunked.load(
        offers_xml(formed + timedelta(hours=1), offers_of(again, SEEDED_NAMES))
    )
    changed = await import_events(db, later)
    assert [(f.aggregate_id, f.payload["on_hand"]) for f in changed] == [
        (events.stock_aggregate_id(net.products["TEA"], net.stores["WH1"]), "11")
    ]
    assert [x["store_id"] for x in changed[0].event.payload["levels"]] == [net.stores["WH1"]]
    await no_drift(db)


async def test_an_id_given_twice_in_one_file_counts_once_with_its_last_figures(
    db: Database, tmp_path: Path
) -> None:
    """The last item of an Ид wins, whichever chunk each lands in; the earlier ones are
    dropped from the stage before anything is applied, and counted."""
    net = await support.seed_network(db)
    formed = formed_time()
    chunked = Exchange(db, tmp_path / "x", Master.ONE_C, chunk_offers=2)
    offers = [
        Offer("1c-tea", {"WH1": 5, "S01": 1}, name="Tea"),
        Offer("1c-coffee", {"WH1": 7}, name="Coffee"),
        Offer("1c-tea", {"WH1": 9}, name="Tea"),
        Offer("1c-sugar", {"S01": 2}, name="Sugar"),
        Offer("1c-coffee", {"WH1": 3}, name="Coffee"),
    ]
    session, _ = await chunked.load(offers_xml(formed, offers))

    levels = await levels_by_xml_id(db)
    assert {k: v[0] for k, v in levels.items() if k[0] in ("1c-tea", "1c-coffee")} == {
        ("1c-tea", "WH1"): D(9),
        ("1c-coffee", "WH1"): D(3),
    }
    assert (await chunked.file(session)).result["repeated_items"] == 2
    assert len(await import_movements(db, session)) == 3  # tea, coffee and sugar, once each
    assert net.products["TEA"] in {
        f.payload["product_id"] for f in await import_events(db, session)
    }
    await no_drift(db)


async def test_the_formed_time_is_read_in_the_configured_zone(db: Database, tmp_path: Path) -> None:
    """ДатаФормирования carries no zone: Europe/Moscow is UTC+3, Asia/Vladivostok UTC+10."""
    await support.seed_network(db)
    formed = formed_time()
    body = offers_xml(formed, [Offer("1c-tea", {"WH1": 1}, name="Tea")])
    east = Exchange(db, tmp_path / "x", Master.ONE_C)
    east.settings = east.settings.model_copy(update={"timezone": "Asia/Vladivostok"})

    session, _ = await east.load(body)

    # The Moscow wall-clock time read as Vladivostok's is 7 hours earlier.
    assert (await east.file(session)).formed_at == formed - timedelta(hours=7)


# --- master = "1c": imports again ----------------------------------------------------------------


async def test_the_same_figures_again_change_nothing_and_two_changed_figures_move_two_levels(
    db: Database, one_c: Exchange
) -> None:
    await support.seed_network(db)
    formed = formed_time()
    figures: dict[tuple[str, str], str | int] = {}
    for i in range(10):
        figures[(f"P{i:02}", "WH1")] = 10 + i
        figures[(f"P{i:02}", "S01")] = i % 3
    names = {f"P{i:02}": f"Product {i}" for i in range(10)}
    first, _ = await one_c.load(offers_xml(formed, offers_of(figures, names)))
    assert len(await import_movements(db, first)) == 16  # the non-zero figures
    after_first = await levels_by_xml_id(db)
    movements_before = await dbstate.count(db, stock_movements)
    events_before = await dbstate.count(db, outbox_events)

    same, _ = await one_c.load(
        offers_xml(formed + timedelta(minutes=10), offers_of(figures, names))
    )

    assert await levels_by_xml_id(db) == after_first
    assert await dbstate.count(db, stock_movements) == movements_before
    assert await dbstate.count(db, outbox_events) == events_before
    assert (await one_c.file(same)).result.get("stock_changed") == 0

    changed = {**figures, ("P03", "WH1"): 20, ("P05", "S01"): 0}
    later, _ = await one_c.load(
        offers_xml(formed + timedelta(minutes=20), offers_of(changed, names))
    )

    assert await levels_by_xml_id(db) == {k: (D(v), D(0)) for k, v in changed.items()}
    moved = await import_movements(db, later)
    assert sorted(m.quantity for m in moved) == [D(-2), D(7)]
    assert await dbstate.count(db, stock_movements) == movements_before + 2
    found = await import_events(db, later)
    assert len(found) == 2
    assert await dbstate.count(db, outbox_events) == events_before + 2
    await assert_payloads_match_levels(db, found, EXCHANGE_1C, EXCHANGE_1C, document_id(later))
    assert sorted(e.payload["on_hand"] for e in found) == ["0", "20"]
    assert (await one_c.file(later)).result["stock_changed"] == 2
    await no_drift(db)


# --- master = "1c": the hub's movements that 1C cannot have counted ----------------------------


async def test_movements_1c_cannot_have_counted_are_added_to_its_figure_never_below_zero(
    db: Database, one_c: Exchange
) -> None:
    net = await support.seed_network(db, pos_stores=("S01", "S02"))
    formed = formed_time()
    before, after = formed - timedelta(minutes=30), formed + timedelta(minutes=20)
    await receive(db, formed - timedelta(hours=1), "S02", "R-1",
                  ("TEA", 10), ("COFFEE", 10), ("MUG", 10), ("SUGAR", 5))  # fmt: skip
    await receive(db, formed - timedelta(hours=1), "S01", "R-2", ("TEA", 5), ("MUG", 5))
    # After the file was formed, in business time and in recording.
    await sell(db, "S02", "T1", "TEA", 2, business_time=after, recorded_at=after)
    # Sold before, reported late by a till that was offline.
    await sell(db, "S02", "T2", "COFFEE", 3, business_time=before, recorded_at=after)
    # Sold and recorded before: 1C's figure contains it.
    await sell(db, "S02", "T3", "MUG", 4, business_time=before, recorded_at=before)
    # A till whose clock runs ahead: business time after, recorded before.
    await sell(db, "S01", "T4", "MUG", 1, business_time=after, recorded_at=before)
    # Received after.
    await receive(db, after, "S02", "R-3", ("SUGAR", "1.5"))
    # More sold after than 1C's figure.
    await sell(db, "S01", "T5", "TEA", 3, business_time=after, recorded_at=after)
    figures: dict[tuple[str, str], str | int] = {
        ("1c-tea", "S02"): 8,
        ("1c-coffee", "S02"): 9,
        ("1c-mug", "S02"): 6,
        ("1c-sugar", "S02"): "2.5",
        ("1c-tea", "S01"): 1,
        ("1c-mug", "S01"): 5,
    }

    session, _ = await one_c.load(offers_xml(formed, offers_of(figures, SEEDED_NAMES)))

    assert await dbstate.stock(db, net) == {
        ("TEA", "S02"): (D(6), D(0)),  # 8 - 2
        ("COFFEE", "S02"): (D(6), D(0)),  # 9 - 3
        ("MUG", "S02"): (D(6), D(0)),  # 6: the sale is in 1C's figure
        ("SUGAR", "S02"): (D(4), D(0)),  # 2.5 + 1.5
        ("TEA", "S01"): (D(0), D(0)),  # 1 - 3, never below 0
        ("MUG", "S01"): (D(4), D(0)),  # 5 - 1
    }
    found = await import_events(db, session)
    await assert_payloads_match_levels(db, found, EXCHANGE_1C, EXCHANGE_1C, document_id(session))
    moved = await import_movements(db, session)
    assert len(found) == len(moved) == 4  # MUG @ S02 and @ S01 stay as they were
    await no_drift(db)


async def test_a_sale_after_the_import_is_not_counted_twice_by_the_next_import(
    db: Database, one_c: Exchange
) -> None:
    net = await support.seed_network(db, pos_stores=("S02",))
    formed = formed_time()
    await one_c.load(offers_xml(formed, [Offer("1c-tea", {"S02": 10}, name="Tea")]))
    sold_at = formed + timedelta(minutes=30)
    await sell(db, "S02", "T1", "TEA", 2, business_time=sold_at, recorded_at=sold_at)
    assert await dbstate.level(db, net, "TEA", "S02") == (D(8), D(0))

    # 1C formed its next file after the sale and counted it: 8, and 8 it stays.
    later = formed + timedelta(hours=1)
    again, _ = await one_c.load(offers_xml(later, [Offer("1c-tea", {"S02": 8}, name="Tea")]))

    assert await dbstate.level(db, net, "TEA", "S02") == (D(8), D(0))
    assert await import_movements(db, again) == []
    await no_drift(db)


async def test_a_chunk_of_more_items_than_a_slice_writes_each_figure_once_and_covers_them_all(
    db: Database, one_c: Exchange
) -> None:
    # 600 offers in one chunk: SQLite applies it in slices of 250 items, PostgreSQL at once;
    # either way one event per product, and what the file set is covered as a whole.
    await support.seed_network(db)
    formed = formed_time()
    offers = [Offer(f"N{i:03}", {"WH1": i % 7, "S01": 3}, name=f"N {i}") for i in range(600)]
    session, _ = await one_c.load(offers_xml(formed, offers))

    levels = await levels_by_xml_id(db)
    assert len(levels) == 1200
    assert all(levels[(f"N{i:03}", "WH1")] == (D(i % 7), D(0)) for i in range(600))
    found = await import_events(db, session)
    assert len(found) == len(await import_movements(db, session)) == 600 + 600 - 600 // 7 - 1
    assert len({f.event.payload["product_id"] for f in found}) == 600
    assert len({f.event.id for f in found}) == 600
    await assert_payloads_match_levels(db, found, EXCHANGE_1C, EXCHANGE_1C, document_id(session))

    older = [Offer(f"N{i:03}", {"WH1": 50, "S01": 50}, name=f"N {i}") for i in range(600)]
    stale, _ = await one_c.load(offers_xml(formed - timedelta(minutes=5), older), "older.xml")

    assert await levels_by_xml_id(db) == levels
    assert (await one_c.file(stale, "older.xml")).result["figures_skipped_newer"] == 1200
    await no_drift(db)


async def stage_only(ex: Exchange, body: str) -> ExchangeSession:
    """Uploads a file and runs one step, which stages it (and compares it with the levels)
    but applies nothing."""
    session = await ex.upload(body)
    step = await ex.importer().step(session, FILE)
    assert step.status == "progress", step
    assert (await ex.file(session)).status == "staging"
    return session


async def test_a_sale_committed_after_staging_compared_a_level_is_counted_by_the_apply(
    db: Database, tmp_path: Path
) -> None:
    # Staging found TEA's figure equal to its level; a sale that 1C's figure already contains
    # (recorded before the file was formed) commits after that comparison: the apply must read
    # the level again and set 1C's figure, as it would have without the comparison.
    net = await support.seed_network(db, pos_stores=("S02",))
    ex = Exchange(db, tmp_path / "x", Master.ONE_C, step_seconds=0.0001)
    first = formed_time()
    stock_of = {"S02": 10}
    await ex.load(offers_xml(first, [Offer("1c-tea", stock_of, name="Tea")]), "first.xml")
    formed = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    session = await stage_only(ex, offers_xml(formed, [Offer("1c-tea", stock_of, name="Tea")]))
    sold = formed - timedelta(minutes=1)
    await sell(db, "S02", "T1", "TEA", 2, business_time=sold, recorded_at=sold)
    assert await dbstate.level(db, net, "TEA", "S02") == (D(8), D(0))

    await ex.run(session)

    assert await dbstate.level(db, net, "TEA", "S02") == (D(10), D(0))
    assert [m.quantity for m in await import_movements(db, session)] == [D(2)]
    await no_drift(db)


@pytest.mark.parametrize("sent_again", [False, True], ids=["finished", "sent-again"])
async def test_an_older_file_applied_between_staging_and_apply_is_overwritten_by_the_newer(
    db: Database, tmp_path: Path, sent_again: bool
) -> None:
    net = await support.seed_network(db)
    ex = Exchange(db, tmp_path / "x", Master.ONE_C, step_seconds=0.0001)
    formed = formed_time()
    await ex.load(offers_xml(formed, [Offer("1c-tea", {"S02": 10}, name="Tea")]), "first.xml")
    newer = await stage_only(
        ex, offers_xml(formed + timedelta(minutes=20), [Offer("1c-tea", {"S02": 10}, name="Tea")])
    )
    # Formed before `newer`, applied while `newer` waits between its staging and its apply.
    older, _ = await ex.load(
        offers_xml(formed + timedelta(minutes=10), [Offer("1c-tea", {"S02": 7}, name="Tea")]),
        "older.xml",
    )
    if sent_again:
        # Not finished: part of it was applied, then 1C sent it again (back to receiving). It
        # still wrote a level after `newer` compared it.
        async with db.engine.begin() as conn:
            await conn.execute(
                exchange_files.update()
                .where(exchange_files.c.session_id == older.id)
                .values(status="receiving", updated_at=datetime.now(UTC))
            )
    assert await dbstate.level(db, net, "TEA", "S02") == (D(7), D(0))

    await ex.run(newer)

    assert await dbstate.level(db, net, "TEA", "S02") == (D(10), D(0))
    assert [m.quantity for m in await import_movements(db, newer)] == [D(3)]
    await no_drift(db)


async def test_holds_stay_through_an_import(db: Database, one_c: Exchange) -> None:
    net = await support.seed_network(db)
    formed = formed_time()
    clock = support.Clock(formed - timedelta(minutes=10))
    await receive(db, formed - timedelta(hours=1), "WH1", "R-1", ("TEA", 5), ("COFFEE", 5))
    lines = (LineInput(ProductRef(sku="TEA"), D(2)), LineInput(ProductRef(sku="COFFEE"), D(2)))
    order = await place_order(
        db.placement_uow,
        PlaceOrder(Channel.ONLINE, Fulfillment.DELIVERY, lines),
        support.context(clock, minutes=600),
    )
    assert isinstance(order, Order)
    assert await dbstate.level(db, net, "TEA", "WH1") == (D(5), D(2))
    await receive(db, formed + timedelta(minutes=5), "WH1", "R-2", ("TEA", 3))
    figures: dict[tuple[str, str], str | int] = {("1c-tea", "WH1"): 7, ("1c-coffee", "WH1"): 1}

    session, _ = await one_c.load(offers_xml(formed, offers_of(figures, SEEDED_NAMES)))

    assert await dbstate.level(db, net, "TEA", "WH1") == (D(10), D(2))  # 7 + 3 late
    assert await dbstate.level(db, net, "COFFEE", "WH1") == (D(1), D(2))  # the hold stays
    assert [h.state for h in await dbstate.holds_of(db, order.id)] == ["active", "active"]
    found = await import_events(db, session)
    assert sorted(e.payload["available"] for e in found) == ["-1", "8"]
    await assert_payloads_match_levels(db, found, EXCHANGE_1C, EXCHANGE_1C, document_id(session))
    await no_drift(db)


async def test_a_negative_figure_is_taken_as_zero_with_a_warning(
    db: Database, one_c: Exchange
) -> None:
    net = await support.seed_network(db)
    formed = formed_time()
    await receive(db, formed - timedelta(hours=1), "S02", "R-1", ("TEA", 4))
    figures: dict[tuple[str, str], str | int] = {
        ("1c-tea", "S02"): "-3",
        ("1c-coffee", "S02"): "-2.5",
        ("1c-mug", "S02"): 2,
    }

    session, _ = await one_c.load(offers_xml(formed, offers_of(figures, SEEDED_NAMES)))

    assert await dbstate.stock(db, net) == {
        ("TEA", "S02"): (D(0), D(0)),
        ("COFFEE", "S02"): (D(0), D(0)),
        ("MUG", "S02"): (D(2), D(0)),
    }
    assert sorted(m.quantity for m in await import_movements(db, session)) == [D(-4), D(2)]
    assert (await one_c.file(session)).result["negative"] == 2
    assert await warnings(db) == [f"2 negative 1C balances in {FILE} taken as 0"]
    log = await dbstate.rows(db, exchange_log)
    assert [(r.session_id, r.file_name, r.level) for r in log] == [(session.id, FILE, "warning")]
    await no_drift(db)


async def test_a_store_never_seen_is_created_serving_nothing_online(
    db: Database, one_c: Exchange
) -> None:
    await support.seed_network(db)
    formed = formed_time()
    store_names = {"WH1": "Warehouse", "a1b2c3d4-e5f6": "Склад на Ленина"}
    offers = [
        Offer("1c-tea", {"WH1": 1, "a1b2c3d4-e5f6": 4, "only-by-id": 2}, name="Tea"),
        Offer("1c-mug", {"a1b2c3d4-e5f6": "1.000"}, name="Mug"),
    ]

    session, _ = await one_c.load(offers_xml(formed, offers, store_names))

    found = {r.xml_id: r for r in await dbstate.rows(db, stores, stores.c.xml_id.in_(
        ["a1b2c3d4-e5f6", "only-by-id"]))}  # fmt: skip
    assert set(found) == {"a1b2c3d4-e5f6", "only-by-id"}
    named = found["a1b2c3d4-e5f6"]
    assert (named.code, named.name, named.kind) == ("1C-a1b2c3d4", "Склад на Ленина", "warehouse")
    assert found["only-by-id"].name == "only-by-id"
    for row in found.values():
        assert (row.serves_online, row.is_pickup_point, row.active) == (False, False, True)
    levels = await levels_by_xml_id(db)
    assert levels[("1c-tea", "a1b2c3d4-e5f6")] == (D(4), D(0))
    assert levels[("1c-tea", "only-by-id")] == (D(2), D(0))
    assert levels[("1c-mug", "a1b2c3d4-e5f6")] == (D(1), D(0))
    logged = await warnings(db)
    assert len(logged) == 2
    assert any("a1b2c3d4-e5f6" in m and "1C-a1b2c3d4" in m for m in logged)
    assert any("only-by-id" in m for m in logged)
    assert len(await import_movements(db, session)) == 4
    await no_drift(db)


async def test_a_rests_only_file_skips_and_counts_products_the_hub_does_not_know(
    db: Database, one_c: Exchange
) -> None:
    net = await support.seed_network(db)
    formed = formed_time()
    products_before = await dbstate.rows(db, products)
    offers = [
        Offer("1c-tea", {"S02": 3, "WH1": "1.5"}),
        Offer("ghost-1", {"S02": 5, "WH1": 1}),
        Offer("1c-coffee", {"S02": 2}),
        Offer("ghost-2", {"S02": 7}),
    ]

    session, _ = await one_c.load(rests_xml(formed, offers), "rests_1.xml")

    assert await dbstate.rows(db, products) == products_before
    assert await dbstate.stock(db, net) == {
        ("TEA", "S02"): (D(3), D(0)),
        ("TEA", "WH1"): (D(1), D(0)),  # tea is sold in pieces: 1C's 1.5 is taken as 1
        ("COFFEE", "S02"): (D(2), D(0)),
    }
    assert await dbstate.count(db, stock_levels) == 3
    file = await one_c.file(session, "rests_1.xml")
    assert file.result["unknown_products"] == 2  # ghost-1 and ghost-2
    assert file.result.get("products_created", 0) == 0
    logged = await warnings(db)
    assert len(logged) == 1
    assert re.search(r"\b2 items\b.*skipped", logged[0]), logged
    assert len(await import_movements(db, session, "rests_1.xml")) == 3
    await no_drift(db)


# --- chunks, steps and restarts ------------------------------------------------------------------


def world_offers(p: str) -> tuple[list[Offer], dict[str, str]]:
    """A file of 19 offers whose every Ид starts with `p`: stores named in Склады and one named
    only by the quantities that mention it, a negative figure and an unknown, unnamed product."""
    offers = []
    for i in range(18):
        figures: dict[str, str | int] = {f"{p}wh": i + 1, f"{p}shop": i % 4}
        if i % 2:
            figures[f"{p}only"] = i
        offers.append(Offer(f"{p}item{i}", figures, name=f"Item {i}"))
    offers[4] = Offer(f"{p}item4", {f"{p}wh": "-1", f"{p}shop": "0.5"}, name="Item 4")
    offers.insert(6, Offer(f"{p}ghost", {f"{p}wh": 3}))
    return offers, {f"{p}wh": "Warehouse", f"{p}shop": "Shop"}


async def world(db: Database, session: ExchangeSession, p: str) -> dict[str, Any]:
    """Everything one import wrote for the Ид prefix `p`, with the prefix taken out."""

    def plain(value: Any) -> Any:
        return value.replace(p, "") if isinstance(value, str) else value

    store_rows = await dbstate.rows(db, stores, stores.c.xml_id.startswith(p))
    product_rows = await dbstate.rows(db, products, products.c.xml_id.startswith(p))
    xml = {("p", r.id): r.xml_id for r in product_rows} | {
        ("s", r.id): r.xml_id for r in store_rows
    }
    moved = await import_movements(db, session)
    found = await import_events(db, session)
    log = await dbstate.rows(db, exchange_log, exchange_log.c.session_id == session.id)
    file = await dbstate.rows(db, exchange_files, exchange_files.c.session_id == session.id)
    return {
        "stores": sorted(
            (
                plain(r.xml_id),
                plain(r.code),
                plain(r.name),
                r.kind,
                r.serves_online,
                r.is_pickup_point,
            )
            for r in store_rows
        ),
        "products": sorted((plain(r.xml_id), plain(r.sku), r.name) for r in product_rows),
        "levels": sorted(
            (plain(k[0]), plain(k[1]), v)
            for k, v in (await levels_by_xml_id(db)).items()
            if k[0].startswith(p)
        ),
        "movements": sorted(
            (
                plain(xml[("p", m.product_id)]),
                plain(xml[("s", m.store_id)]),
                m.quantity,
                m.reason,
                m.business_time,
            )
            for m in moved
        ),
        "events": sorted(
            (
                plain(xml[("p", e.payload["product_id"])]),
                plain(xml[("s", e.payload["store_id"])]),
                e.payload["on_hand"],
                e.payload["reserved"],
                e.payload["available"],
            )
            for e in found
        ),
        "log": sorted((r.level, plain(r.message)) for r in log),
        "file": [(r.status, r.kind, r.formed_at, r.staged, r.applied, r.result) for r in file],
    }


@pytest.mark.parametrize("restart", ["while staging", "while applying", "at every step"])
async def test_a_chunked_import_resumed_by_a_new_process_ends_as_a_single_step_import(
    db: Database, tmp_path: Path, restart: str
) -> None:
    formed = formed_time()
    single = Exchange(db, tmp_path / "x", Master.ONE_C)
    offers, names = world_offers("b~")
    reference, steps = await single.load(offers_xml(formed, offers, names))
    assert [s.status for s in steps] == ["success"]

    chunked = Exchange(db, tmp_path / "x", Master.ONE_C, chunk_offers=3, step_seconds=0.0001)
    offers, names = world_offers("a~")
    session = await chunked.upload(offers_xml(formed, offers, names))
    importer = chunked.importer()
    seen: list[str] = []
    between: list[tuple[str, int, int]] = []  # (status, applied, staged) before each step
    restarted = False
    while True:
        file = await chunked.file(session)
        between.append((file.status, file.applied, file.staged))
        midway = {
            "while staging": file.status == "staging",  # part read, not yet finished
            "while applying": file.status == "applying" and file.applied > 0,
            "at every step": True,
        }[restart]
        if midway and (restart == "at every step" or not restarted):
            importer = chunked.importer()  # a new process: no reader kept open
            restarted = True
        step = await importer.step(session, FILE)
        seen.append(step.status)
        if step.status == "success":
            break
        assert len(seen) < 100
    assert restarted
    assert seen.count("progress") >= 3, seen
    assert any(st == "applying" and 0 < a < n for st, a, n in between), between  # part applied
    moved = await import_movements(db, session)
    assert len({(m.product_id, m.store_id) for m in moved}) == len(moved)  # none twice

    resumed, whole = await world(db, session, "a~"), await world(db, reference, "b~")
    for part in ("stores", "products", "levels", "movements", "events", "log"):
        assert resumed[part] == whole[part], part
    await no_drift(db)
    # The file's own record too: its kind, formed time, counts and result (the chunk size
    # recorded with it aside: the two runs were told different ones).
    assert _without_chunk(resumed["file"]) == _without_chunk(whole["file"])


def _without_chunk(rows: Any) -> Any:
    """The result without what differs between two runs: the chunk size, the arrival time."""
    apart = ("chunk", "received_at")
    return [(*row[:-1], {k: v for k, v in row[-1].items() if k not in apart}) for row in rows]


async def _lock_waits(db: Database) -> int:
    """How many sessions of this (PostgreSQL) database wait for a lock."""
    probe = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with db.uow_read() as uow:
        return int((await uow.conn.execute(probe)).scalar_one())


async def test_an_offer_given_twice_in_two_chunks_ends_at_its_later_figure(
    db: Database, backend: str, tmp_path: Path
) -> None:
    """Within a chunk the later of two figures for a level wins; across chunks it must too,
    including on PostgreSQL, where `apply_workers` (2 by default) apply chunks at once. There a
    transaction that has the stock row (a sale about to be refused) holds both chunk statements
    at the row after each has read the level, so they meet there every time."""
    net = await support.seed_network(db)
    formed = formed_time()
    await receive(db, formed - timedelta(hours=1), "S02", "R-1", ("TEA", 10))
    offers = [
        Offer("1c-tea", {"S02": 4}, name="Tea"),
        Offer("1c-coffee", {"S02": 1}, name="Coffee"),
        Offer("1c-mug", {"S02": 1}, name="Mug"),
        Offer("1c-tea", {"S02": 9}, name="Tea"),  # the same level again, in the second chunk
    ]
    ex = Exchange(db, tmp_path / "x", Master.ONE_C, chunk_offers=2)
    session = await ex.upload(offers_xml(formed, offers))
    if backend == "sqlite":
        await ex.run(session)
    else:
        assert ex.settings.apply_workers >= 2
        tea, s02 = net.products["TEA"], net.stores["S02"]
        async with db.uow() as holder:
            await holder.conn.execute(
                select(stock_levels.c.on_hand)
                .where(stock_levels.c.product_id == tea, stock_levels.c.store_id == s02)
                .with_for_update()
            )
            importing = asyncio.create_task(ex.run(session))
            for _ in range(500):
                if await _lock_waits(db) >= 2 or importing.done():
                    break
                await asyncio.sleep(0.01)
            # rolled back: the holder changed nothing
        await asyncio.wait_for(importing, timeout=30)

    assert await dbstate.level(db, net, "TEA", "S02") == (D(9), D(0))
    await no_drift(db)
    found = [
        e
        for e in await import_events(db, session)
        if e.payload["product_id"] == net.products["TEA"]
    ]
    assert found[-1].payload["on_hand"] == "9"


# --- a broken file --------------------------------------------------------------------------------


async def test_a_file_found_broken_after_part_of_it_was_staged_leaves_the_ledger_untouched(
    db: Database, tmp_path: Path
) -> None:
    net = await support.seed_network(db)
    formed = formed_time()
    await receive(db, formed - timedelta(hours=1), "S02", "R-1", ("TEA", 4), ("MUG", 2))
    offers = [Offer("1c-tea", {"S02": 9}, name="Tea")]
    offers += [Offer(f"NEW{i:04}", {"S02": i % 5, "WH1": 1}, name=f"New {i}") for i in range(2100)]
    offers.append(Offer("1c-mug", {"S02": 1}, name="Mug", total="abc"))
    ex = Exchange(db, tmp_path / "x", Master.ONE_C, chunk_offers=500, step_seconds=0.0001)
    before = {
        "products": await dbstate.rows(db, products),
        "stock": await dbstate.stock(db, net),
        "levels": await dbstate.count(db, stock_levels),
        "movements": await dbstate.rows(db, stock_movements),
        "events": await dbstate.rows(db, outbox_events),
        "figures": await dbstate.count(db, stock_1c_figures),
    }
    session = await ex.upload(offers_xml(formed, offers))
    importer = ex.importer()

    first = await importer.step(session, FILE)
    file = await ex.file(session)
    assert first.status == "progress" and file.staged == 2000  # the first batch is staged
    assert await dbstate.count(db, exchange_stage_items, exchange_stage_items.c.file_id == file.id)
    with pytest.raises(BadExchangeFile) as raised:
        while (await importer.step(session, FILE)).status == "progress":
            pass

    assert "abc" in raised.value.message and "1c-mug" in raised.value.message
    after = {
        "products": await dbstate.rows(db, products),
        "stock": await dbstate.stock(db, net),
        "levels": await dbstate.count(db, stock_levels),
        "movements": await dbstate.rows(db, stock_movements),
        "events": await dbstate.rows(db, outbox_events),
        "figures": await dbstate.count(db, stock_1c_figures),
    }
    assert after == before
    stage_tables = [t for t in metadata.sorted_tables if t.name.startswith("exchange_stage_")]
    assert stage_tables
    for table in stage_tables:
        assert await dbstate.count(db, table, table.c.file_id == file.id) == 0, table.name
    failed = await ex.file(session)
    assert failed.status == "failed" and "abc" in (failed.message or "")
    errors = await dbstate.rows(db, exchange_log, exchange_log.c.level == "error")
    assert [(r.session_id, r.file_name) for r in errors] == [(session.id, FILE)]
    # Asked again, the file stays failed and still changes nothing.
    with pytest.raises(BadExchangeFile):
        await ex.importer().step(session, FILE)
    assert await dbstate.rows(db, products) == before["products"]
    await no_drift(db)


# --- master = "hub" -------------------------------------------------------------------------------


async def test_with_the_hub_as_master_figures_are_recorded_and_adopted_only_on_request(
    db: Database, hub: Exchange
) -> None:
    net = await support.seed_network(db, pos_stores=("S02",))
    formed = formed_time()
    after = formed + timedelta(minutes=10)
    await receive(db, formed - timedelta(hours=1), "S02", "R-1",
                  ("TEA", 10), ("COFFEE", 10), ("MUG", 3))  # fmt: skip
    await sell(db, "S02", "T1", "TEA", 2, business_time=after, recorded_at=after)
    await sell(db, "S02", "T2", "COFFEE", 1, business_time=after, recorded_at=after)
    figures: dict[tuple[str, str], str | int] = {
        ("1c-tea", "S02"): 10,  # the hub had 10 then too (8 now, 2 sold after)
        ("1c-coffee", "S02"): 7,  # the hub had 10
        ("1c-mug", "S02"): 3,
        ("1c-sugar", "S02"): "1.5",  # the hub has no such level
    }
    stock_before = await dbstate.stock(db, net)
    movements_before = await dbstate.rows(db, stock_movements)
    events_before = await dbstate.rows(db, outbox_events)

    session, _ = await hub.load(offers_xml(formed, offers_of(figures, SEEDED_NAMES)))

    assert await dbstate.stock(db, net) == stock_before
    assert await dbstate.rows(db, stock_movements) == movements_before
    assert await dbstate.rows(db, outbox_events) == events_before
    assert (await hub.file(session)).result["figures_recorded"] == 4
    ids = {v: k for k, v in net.products.items()}
    recorded = await dbstate.rows(db, stock_1c_figures, order_by=stock_1c_figures.c.product_id)
    assert {
        (ids[r.product_id], r.store_id): (r.quantity, r.hub_on_hand, r.formed_at) for r in recorded
    } == {
        ("TEA", net.stores["S02"]): (D(10), D(10), formed),
        ("COFFEE", net.stores["S02"]): (D(7), D(10), formed),
        ("MUG", net.stores["S02"]): (D(3), D(3), formed),
        ("SUGAR", net.stores["S02"]): (D("1.5"), D(0), formed),
    }
    async with db.uow_read() as uow:
        found = await reconcile.drifts(uow.conn)
    assert [(d.sku, d.store, d.figure_1c, d.hub, d.drift) for d in found] == [
        ("COFFEE", "S02", D(7), D(10), D(3)),
        ("SUGAR", "S02", D("1.5"), D(0), D("-1.5")),
    ]

    for drift in found:
        async with db.uow() as uow:
            await reconcile.adopt(uow.conn, drift, utcnow())
            await uow.commit()

    async with db.uow_read() as uow:
        assert await reconcile.drifts(uow.conn) == []
    await no_drift(db)
    adopted = (await dbstate.events(db, events.STOCK_CHANGED))[len(events_before) :]
    assert len(adopted) == 2
    async with db.uow_read() as uow:
        current = {
            (x.product_id, x.store_id): x
            for x in await uow.read_stock([int(e.payload["product_id"]) for e in adopted])
        }
    for event in adopted:  # a count per level, each with its stock.changed
        level = current[(event.payload["product_id"], event.payload["store_id"])]
        assert event.payload == events.stock_changed(
            level.product_id, level.store_id, level.on_hand, level.reserved, "count",
            reconcile.DOCUMENT_TYPE, formed.isoformat(),
        )  # fmt: skip
        assert event.aggregate_id == events.stock_aggregate_id(level.product_id, level.store_id)
    # On hand := 1C's figure + the hub's movements since 1C formed its file.
    assert await dbstate.stock(db, net) == {
        **stock_before,
        ("COFFEE", "S02"): (D(6), D(0)),  # 7 - 1 sold after
        ("SUGAR", "S02"): (D("1.5"), D(0)),
    }
    counts = await dbstate.movements(db, net, reason="count")
    assert sorted((ids[m.product_id], m.quantity, m.document_type) for m in counts) == [
        ("COFFEE", D(-3), reconcile.DOCUMENT_TYPE),
        ("SUGAR", D("1.5"), reconcile.DOCUMENT_TYPE),
    ]


# --- concurrency (PostgreSQL) ---------------------------------------------------------------------


# SQLite takes one writer at a time: nothing runs alongside an import there.
@pytest.mark.parametrize("backend", ["postgres"])
async def test_till_sales_during_a_large_import_are_applied_on_top_of_the_new_figures(
    db: Database, backend: str, tmp_path: Path
) -> None:
    await support.seed_network(db, pos_stores=("WH1", "S01", "S02"))
    count, codes = 3000, ("WH1", "S01", "S02")
    names = {f"C{i:04}": f"Item {i}" for i in range(count)}
    formed = formed_time()
    ex = Exchange(db, tmp_path / "x", Master.ONE_C, chunk_offers=500, step_seconds=0.02)
    old = [Offer(x, dict.fromkeys(codes, 100), name=n) for x, n in names.items()]
    await ex.load(offers_xml(formed - timedelta(hours=1), old))
    new = {(x, c): 20 + (i * 7 + j) % 13 for i, x in enumerate(names) for j, c in enumerate(codes)}
    session = await ex.upload(offers_xml(formed, offers_of(new, names)))
    # Spread over the file, so some land in chunks already applied and some in chunks to come.
    sales = [(f"C{(i * 61) % count:04}", codes[i % 3], 1 + i % 3) for i in range(50)]
    sold: dict[tuple[str, str], int] = {}
    during: list[bool] = []
    done = asyncio.Event()

    async def till(worker: int) -> None:
        for n in range(worker, len(sales), 5):
            xml_id, code, qty = sales[n]
            await sell(db, code, f"T{n}", xml_id, qty, business_time=utcnow())
            sold[(xml_id, code)] = sold.get((xml_id, code), 0) + qty
            during.append(not done.is_set())
            await asyncio.sleep(0.002)

    async def importing() -> list[Step]:
        try:
            return await ex.run(session)
        finally:
            done.set()

    tills = [asyncio.create_task(till(w)) for w in range(5)]
    steps = await asyncio.wait_for(importing(), timeout=60)
    await asyncio.wait_for(asyncio.gather(*tills), timeout=60)

    assert len(steps) > 1 and sum(sold.values()) == sum(q for _, _, q in sales)
    assert any(during), "no sale ran while the import did"
    levels = await levels_by_xml_id(db)
    wrong = {
        k: (levels.get(k), figure - sold.get(k, 0))
        for k, figure in new.items()
        if levels.get(k) != (D(figure - sold.get(k, 0)), D(0))
    }
    assert wrong == {}
    await no_drift(db)


async def _wait_for_a_lock_wait(db: Database, task: asyncio.Task[Any]) -> bool:
    """True once some session of this database waits for a lock; False if `task` ends first."""
    for _ in range(1000):
        if task.done():
            return False
        if await _lock_waits(db):
            return True
        await asyncio.sleep(0.01)
    raise AssertionError("the import neither waited for the sale's row nor finished")


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_sale_committing_while_the_import_waits_for_its_row_keeps_the_events_true(
    db: Database, backend: str, tmp_path: Path
) -> None:
    """The sale took the stock row before the import's chunk statement and commits while that
    statement waits for the row. The level must end at 1C's figure less the sale, and (as for
    every change, see test_outbox_and_ledger) the level's latest stock.changed event must show
    its stored figures, which is what an outbox consumer ends up believing."""
    net = await support.seed_network(db, pos_stores=("S02",))
    formed = formed_time()
    await receive(db, formed - timedelta(hours=1), "S02", "R-1", ("TEA", 10))
    ex = Exchange(db, tmp_path / "x", Master.ONE_C)
    session = await ex.upload(offers_xml(formed, [Offer("1c-tea", {"S02": 8}, name="Tea")]))
    tea, s02 = net.products["TEA"], net.stores["S02"]
    now = utcnow()
    # What record_pos_sale writes in its transaction (deduction, movement, event), held open.
    sale = StockChange(tea, s02, D(2), MovementReason.POS_SALE, "pos_sale", "till-1:T1", now, now)
    async with db.uow() as till:
        assert await till.deduct_stock(sale) is not None
        importing = asyncio.create_task(ex.run(session))
        waited = await _wait_for_a_lock_wait(db, importing)
        await till.commit()
    await asyncio.wait_for(importing, timeout=30)

    assert waited, "the import did not wait for the sale's row"
    assert await dbstate.level(db, net, "TEA", "S02") == (D(6), D(0))  # 8 - 2 sold after
    await no_drift(db)
    latest = await latest_figure(db, tea, s02)
    assert (latest["on_hand"], latest["available"]) == ("6", "6"), latest


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_level_created_while_the_import_inserts_it_is_updated_with_what_it_holds(
    db: Database, backend: str, tmp_path: Path
) -> None:
    """The import found no level and inserts one; a receipt creating that very level commits
    while the insert waits for it. The insert's unique violation runs the chunk again, which
    then updates the level: 1C's figure plus the receipt recorded after the file was formed."""
    net = await support.seed_network(db, pos_stores=("S02",))
    formed = formed_time()
    ex = Exchange(db, tmp_path / "x", Master.ONE_C)
    session = await ex.upload(offers_xml(formed, [Offer("1c-mug", {"S02": 8}, name="Mug")]))
    mug, s02 = net.products["MUG"], net.stores["S02"]
    async with db.uow_read() as uow:
        assert await uow.read_stock([mug], [s02]) == [], "the seed made the level already"
    now = utcnow()
    got = StockChange(mug, s02, D(3), MovementReason.RECEIPT, "receipt", "R-9", now, now)
    async with db.uow() as receiving:
        await receiving.add_stock(got)
        importing = asyncio.create_task(ex.run(session))
        waited = await _wait_for_a_lock_wait(db, importing)
        await receiving.commit()
    await asyncio.wait_for(importing, timeout=30)

    assert waited, "the import did not wait for the receipt's new level"
    assert await dbstate.level(db, net, "MUG", "S02") == (D(11), D(0))  # 8 + 3 received after
    await no_drift(db)
    latest = await latest_figure(db, mug, s02)
    assert (latest["on_hand"], latest["available"]) == ("11", "11"), latest


# --- files formed earlier than others already applied --------------------------------------------


async def test_with_the_hub_as_master_a_figure_never_replaces_one_formed_later(
    db: Database, hub: Exchange
) -> None:
    net = await support.seed_network(db)
    formed = formed_time()
    await hub.load(offers_xml(formed, [Offer("1c-tea", {"S02": 5}, name="Tea")]))

    older = [Offer("1c-tea", {"S02": 2}, name="Tea"), Offer("1c-coffee", {"S02": 4}, name="Co")]
    session, _ = await hub.load(offers_xml(formed - timedelta(minutes=10), older))

    recorded = await dbstate.rows(db, stock_1c_figures)
    tea, coffee, s02 = net.products["TEA"], net.products["COFFEE"], net.stores["S02"]
    assert {(r.product_id, r.store_id): (r.quantity, r.formed_at) for r in recorded} == {
        (tea, s02): (D(5), formed),
        (coffee, s02): (D(4), formed - timedelta(minutes=10)),
    }
    result = (await hub.file(session)).result
    assert (result["figures_recorded"], result["figures_skipped_newer"]) == (1, 1)


async def test_what_files_set_is_kept_30_days_before_the_newest_file_of_each_store(
    db: Database, one_c: Exchange
) -> None:
    await support.seed_network(db)
    formed = formed_time()
    await one_c.load(offers_xml(formed - timedelta(days=40), [Offer("1c-tea", {"S01": 1})]))
    await one_c.load(offers_xml(formed - timedelta(days=40), [Offer("1c-tea", {"S02": 1})]))
    await one_c.load(offers_xml(formed - timedelta(days=20), [Offer("1c-mug", {"S01": 1})]))
    await one_c.load(offers_xml(formed, [Offer("1c-coffee", {"S01": 1})]))

    async with db.uow() as uow:
        await exchange_stock.prune_coverage(uow.conn)
        await uow.commit()

    kept = await dbstate.rows(db, exchange_stock_coverage)
    stores = {v: k for k, v in (await support_stores(db)).items()}
    assert sorted((stores[r.store_id], r.formed_at) for r in kept) == [
        ("S01", formed - timedelta(days=20)),
        ("S01", formed),
        ("S02", formed - timedelta(days=40)),  # the newest file of S02
    ]


async def support_stores(db: Database) -> dict[str, int]:
    async with db.uow_read() as uow:
        return {s.code: s.id for s in await uow.stores()}


async def test_an_older_file_in_chunks_of_another_size_skips_exactly_the_later_levels(
    db: Database, one_c: Exchange
) -> None:
    """Chunks of several sizes: the level-by-level check runs on every chunk of the older
    file, and the coverage rows a chunk's bounds leave out do not hide a level."""
    await support.seed_network(db)
    formed = formed_time()
    names = {x: x for x in ("1c-tea", "1c-coffee", "1c-sugar", "1c-mug")}
    small = Exchange(db, one_c.settings.work_dir, Master.ONE_C, chunk_offers=1)
    await small.load(offers_xml(formed, [Offer("1c-tea", {"S01": 5}), Offer("1c-mug", {"S01": 7})]))

    older = {("1c-tea", "S01"): 1, ("1c-coffee", "S01"): 2, ("1c-sugar", "S01"): 3,
             ("1c-mug", "S01"): 4, ("1c-mug", "S02"): 8}  # fmt: skip
    session, _ = await one_c.load(
        offers_xml(formed - timedelta(minutes=1), offers_of(older, names))
    )

    found = {k: v[0] for k, v in (await levels_by_xml_id(db)).items()}
    assert found == {
        ("1c-tea", "S01"): D(5),
        ("1c-coffee", "S01"): D(2),
        ("1c-sugar", "S01"): D(3),
        ("1c-mug", "S01"): D(7),
        ("1c-mug", "S02"): D(8),
    }
    assert (await one_c.file(session)).result["figures_skipped_newer"] == 2
    await no_drift(db)
