"""Stock files from 1C that arrive late, early or odd, over HTTP on SQLite and PostgreSQL: an
older file never rolls a level back, but it is skipped only for the levels a file formed later
set; a file from the future freezes nothing; stock in a shape the reader does not know is
reported, never silently lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from xml.sax.saxutils import escape

from ordersync.db.tables import exchange_stock_coverage, stock_movements
from tests.e2e.conftest import Hub, HubFactory
from tests.sim_1c import Offer, OneC, document, offers_xml

D = Decimal
T = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
STORES = {"WH1": "Warehouse", "S01": "Shop 1", "S02": "Shop 2"}


def offers(formed: datetime, **figures: dict[str, int]) -> bytes:
    """offers.xml formed at `formed`: per product Ид (1c-tea, ...) its figure per store code."""
    found = [
        Offer(f"1c-{sku}", stores=by_store, total=sum(by_store.values()))
        for sku, by_store in figures.items()
    ]
    named = {code: STORES[code] for by_store in figures.values() for code in by_store}
    return offers_xml(found, named, formed=formed)


async def send(hub: Hub, data: bytes, node: OneC | None = None) -> list[str]:
    """One catalog exchange of offers.xml; the reply's lines."""
    results = await (node or hub.onec()).catalog_exchange([("offers.xml", data)])
    status, lines, _ = results["offers.xml"]
    assert status == "success", lines
    return lines


async def level(hub: Hub, sku: str, store: str) -> Decimal | None:
    return (await hub.on_hand()).get((f"1c-{sku}", store))


async def skipped_warnings(hub: Hub) -> list[str]:
    return [m for m in await hub.log("warning") if "were skipped" in m]


# --- the two nodes of the issue ---------------------------------------------------------------


async def test_two_nodes_feeding_different_stores_each_set_theirs_whatever_the_order(
    hub: Hub,
) -> None:
    # The trade system's node (the warehouse) formed its file at T, the shop's node at T - 5 s;
    # the warehouse's arrives first.
    node_a, node_b = hub.onec(), hub.onec()
    await send(hub, offers(T, tea={"WH1": 7}), node_a)

    lines = await send(hub, offers(T - timedelta(seconds=5), tea={"S01": 3}), node_b)

    assert await level(hub, "tea", "WH1") == D(7)
    assert await level(hub, "tea", "S01") == D(3)
    assert not any("skipped" in line for line in lines), lines
    assert await skipped_warnings(hub) == []


async def test_an_older_file_is_skipped_only_where_a_newer_one_set_the_level(hub: Hub) -> None:
    await send(hub, offers(T - timedelta(minutes=20), tea={"S01": 5}))
    # Formed later: sets TEA @ S01 to the 5 it already had (no movement is written for it).
    await send(hub, offers(T, tea={"S01": 5}))
    moved = await hub.count(stock_movements, stock_movements.c.reason == "exchange_1c")

    # Formed between the two, arriving last: TEA @ S01 is the later file's; the rest is its.
    lines = await send(
        hub, offers(T - timedelta(minutes=10), tea={"S01": 2, "S02": 4}, mug={"S01": 6})
    )

    assert moved == 1
    assert await level(hub, "tea", "S01") == D(5)
    assert await level(hub, "tea", "S02") == D(4)
    assert await level(hub, "mug", "S01") == D(6)
    assert "figures_skipped_newer 1" in lines[1]
    assert await skipped_warnings(hub) == [
        "1 stock figures of offers.xml were skipped: a file formed later had already set "
        "those levels"
    ]


async def test_a_historical_file_sets_the_levels_no_later_file_set(hub: Hub) -> None:
    await send(hub, offers(T, tea={"S01": 5}))

    await send(hub, offers(T - timedelta(days=2), tea={"S01": 1}, coffee={"S01": 6}))

    assert await level(hub, "tea", "S01") == D(5)
    assert await level(hub, "coffee", "S01") == D(6)


async def test_a_file_formed_long_before_the_newest_of_a_store_has_its_figures_skipped(
    hub: Hub,
) -> None:
    # What files set is kept 30 days before the newest file of a store: an older file cannot
    # be compared level by level any more, so that store's figures are skipped, and said so.
    await send(hub, offers(T, tea={"S01": 5}))

    await send(hub, offers(T - timedelta(days=31), coffee={"S01": 6, "S02": 2}))

    assert await level(hub, "coffee", "S01") is None
    assert await level(hub, "coffee", "S02") == D(2)  # nothing later was ever sent for S02
    assert await skipped_warnings(hub) == [
        "1 stock figures of offers.xml were skipped: it was formed more than 30 days before "
        "the newest stock file of their stores"
    ]


# --- a file from the future -------------------------------------------------------------------


async def test_a_file_formed_in_the_future_is_taken_as_formed_on_arrival(hub: Hub) -> None:
    # 1C's clock three hours ahead (or exchange.timezone wrong by three hours).
    before = datetime.now(UTC)
    await send(hub, offers(before + timedelta(hours=3), tea={"S01": 5}))
    after = datetime.now(UTC)
    (first,) = await hub.movements("exchange_1c")

    # A file formed now, after the first arrived, is not older than it.
    await send(hub, offers(datetime.now(UTC) + timedelta(seconds=1), tea={"S01": 8}))

    assert before - timedelta(seconds=1) <= first.business_time <= after
    assert await level(hub, "tea", "S01") == D(8)
    assert await skipped_warnings(hub) == []
    assert any("after it arrived" in m for m in await hub.log("warning"))


# --- stock the reader does not know -----------------------------------------------------------


def rests(*offers: tuple[str, str]) -> bytes:
    """A rests file: per offer Ид, the raw inside of its Остатки."""
    body = "".join(
        f"<Предложение><Ид>{escape(xml_id)}</Ид><Остатки>{inner}</Остатки></Предложение>"
        for xml_id, inner in offers
    )
    return document(
        f"<ПакетПредложений><Предложения>{body}</Предложения></ПакетПредложений>",
        formed=T,
        schema="2.10",
    )


async def test_an_остаток_given_as_a_bare_number_is_a_total(start_hub: HubFactory) -> None:
    hub = await start_hub(total_stock_store="S02")

    await send(
        hub, rests(("1c-tea", "<Остаток>37</Остаток>"), ("1c-mug", "<Остаток>2,5</Остаток>"))
    )

    assert await level(hub, "tea", "S02") == D(37)
    assert await level(hub, "mug", "S02") == D(2)  # whole pieces
    assert not any("could not be read" in m for m in await hub.log("warning"))


async def test_offers_whose_stock_cannot_be_read_are_named_in_a_warning(hub: Hub) -> None:
    unreadable = [
        ("1c-tea", "<Остаток>много</Остаток>"),
        ("1c-coffee", "<Остаток><Склад><Наименование>S01</Наименование></Склад></Остаток>"),
        ("1c-mug", ""),
    ]
    lines = await send(hub, rests(*unreadable, ("1c-sugar", "<Остаток>4</Остаток>")))

    assert "stock_unread 3" in lines[1], lines
    assert await hub.on_hand() == {}
    warnings = await hub.log("warning")
    assert (
        "the stock of 3 offers in offers.xml could not be read (a shape the hub does not "
        "know; e.g. 1c-tea, 1c-coffee, 1c-mug): their stock is not imported"
    ) in warnings
    # A total with no store to put it in is said too (exchange.total_stock_store is unset).
    assert (
        "1 offers in offers.xml carry only a total stock, without stores: set "
        "exchange.total_stock_store to the store it belongs to"
    ) in warnings


# --- what is kept of each file ----------------------------------------------------------------


async def test_the_same_full_file_again_replaces_what_its_predecessor_kept(hub: Hub) -> None:
    figures = {"tea": {"S01": 5, "S02": 1}, "mug": {"S01": 3}}
    await send(hub, offers(T - timedelta(minutes=5), **figures))
    kept = await hub.count(exchange_stock_coverage)

    await send(hub, offers(T, **figures))

    assert kept == 2  # one row per chunk and store
    assert await hub.count(exchange_stock_coverage) == kept
