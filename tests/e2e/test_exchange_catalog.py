"""The catalog exchange end to end: a simulated 1C plays the whole dialogue (checkauth, init,
chunked files, stepwise import) against the running hub, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ordersync.db.tables import stock_1c_figures
from tests.e2e.conftest import Hub, HubFactory
from tests.e2e.helpers import bearer, expect, line, pickup, placed, sale
from tests.sim_1c import (
    BOM,
    Offer,
    OneC,
    Product,
    import_xml,
    make_zip,
    offers_xml,
    rests_xml,
)

D = Decimal
ZERO = D(0)
MSK, SPB = "5e3c1a2b-0001-11ee-8000-00155d000001", "5e3c1a2b-0002-11ee-8000-00155d000002"
STORES = {MSK: "Склад Москва (основной)", SPB: "Магазин «Невский»"}
PRODUCTS = [
    Product("a1b2-0001", "Чай зелёный «Сенча», 100 г", article="ЧАЙ-001", barcode="4600000000011"),
    Product(
        "a1b2-0002",
        "Кофе молотый",
        unit_code="166 ",
        unit_name="Килограмм",
        unit_abbr="KGM",
        unit_short="кг",
    ),
    Product("a1b2-0003", "Кружка керамическая", article="MUG-3"),
]
OFFERS = [
    Offer("a1b2-0001", "Чай зелёный «Сенча», 100 г", price="150.00", total=15,
          stores={MSK: 12, SPB: 3}),
    Offer("a1b2-0002", "Кофе молотый", price="1 200,50", total="2,5", stores={MSK: "2,5"}),
    Offer("a1b2-0003#c-red", "Кружка керамическая (красная)", price=300, total=4,
          stores={MSK: "4.000", SPB: 0}),
    Offer("a1b2-0003#c-blue", "Кружка керамическая (синяя)", price=300, total=7,
          stores={MSK: 0, SPB: 7}),
]  # fmt: skip
EXPECTED_ON_HAND = {
    ("a1b2-0001", MSK): D(12),
    ("a1b2-0001", SPB): D(3),
    ("a1b2-0002", MSK): D("2.5"),
    ("a1b2-0003#c-red", MSK): D(4),
    ("a1b2-0003#c-red", SPB): ZERO,
    ("a1b2-0003#c-blue", MSK): ZERO,
    ("a1b2-0003#c-blue", SPB): D(7),
}
CHANGED = {k: v for k, v in EXPECTED_ON_HAND.items() if v}


def earlier(**delta: float) -> datetime:
    return (datetime.now(UTC) - timedelta(**delta)).replace(microsecond=0)


def soon() -> datetime:
    """A ДатаФормирования after everything the hub recorded so far."""
    return (datetime.now(UTC) + timedelta(minutes=1)).replace(microsecond=0)


def catalog_files(
    encoding: str = "utf-8", formed: datetime | None = None
) -> list[tuple[str, bytes]]:
    formed = formed or earlier(hours=1)
    return [
        ("import.xml", import_xml(PRODUCTS, encoding=encoding, formed=formed)),
        ("offers.xml", offers_xml(OFFERS, STORES, encoding=encoding, formed=formed)),
    ]


def only(found: dict[tuple[str, str], Decimal], prefix: str) -> dict[tuple[str, str], Decimal]:
    return {k: v for k, v in found.items() if k[0].startswith(prefix)}


async def exchange(
    onec: OneC, files: list[tuple[str, bytes]]
) -> dict[str, tuple[str, list[str], int]]:
    results = await onec.catalog_exchange(files)
    for name, (status, lines, _) in results.items():
        assert status == "success", f"{name}: {lines}"
    return results


# --- 1. the whole dialogue, in both encodings ------------------------------------------------


@pytest.mark.parametrize("file_encoding", ["utf-8", "windows-1251"])
@pytest.mark.parametrize("reply_encoding", ["utf-8", "windows-1251"])
async def test_a_catalog_exchange_creates_products_stores_and_stock_from_chunked_files(
    start_hub: HubFactory, file_encoding: str, reply_encoding: str
) -> None:
    hub = await start_hub(encoding=reply_encoding, file_limit=1024)
    onec = hub.onec()
    formed = earlier(hours=1)
    files = dict(catalog_files(file_encoding, formed))
    if file_encoding == "utf-8":
        assert files["offers.xml"].startswith(BOM)
        assert b'xmlns="urn:1C.ru:commerceml_2"' in files["offers.xml"]
    else:
        assert files["offers.xml"].startswith(b'<?xml version="1.0" encoding="windows-1251"?>')
        assert b"xmlns=" not in files["offers.xml"]

    auth = await onec.checkauth("catalog")
    assert auth.raw.startswith(b"success\n")
    assert auth.content_type.endswith(f"charset={reply_encoding}")
    name, value = auth.lines[1], auth.lines[2]
    assert name == "ordersync_exchange" and "." not in name and value
    assert auth.lines[3].startswith("sessid=") and len(auth.lines[3]) > len("sessid=")
    assert onec.timestamp is not None
    assert abs(onec.timestamp - datetime.now(UTC).timestamp()) < 60

    init = await onec.init("catalog")
    assert init.raw == b"zip=no\nfile_limit=1024"
    for filename, data in files.items():
        replies = await onec.upload("catalog", filename, data)
        assert len(replies) == -(-len(data) // 1024) > 1
        assert all(r.raw.startswith(b"success") for r in replies)
    session_dirs = list(hub.work_dir.iterdir())
    assert len(session_dirs) == 1
    for filename, data in files.items():
        assert (session_dirs[0] / filename).read_bytes() == data  # chunks joined exactly

    status, lines, _ = await onec.import_file("catalog", "import.xml")
    assert status == "success", lines
    found = await hub.products()
    assert found["a1b2-0001"].name == "Чай зелёный «Сенча», 100 г"
    assert found["a1b2-0001"].sku == "ЧАЙ-001"  # the Артикул, when free
    assert found["a1b2-0001"].barcode == "4600000000011"
    assert found["a1b2-0002"].sku == "a1b2-0002"  # no Артикул: the Ид
    assert found["a1b2-0002"].unit == "kg"
    assert found["a1b2-0003"].unit == "pcs"
    assert await hub.ledger() == (0, 0)  # a catalog without offers moves no stock

    status, lines, _ = await onec.import_file("catalog", "offers.xml")
    assert status == "success", lines
    for mode in ("deactivate", "complete"):
        reply = await onec.call("catalog", mode, timestamp=str(onec.timestamp))
        assert reply.raw.startswith(b"success"), reply

    found = await hub.products()
    for xml_id in ("a1b2-0003#c-red", "a1b2-0003#c-blue"):  # a characteristic: its own product
        assert found[xml_id].sku == xml_id
        assert found[xml_id].price == D(300)
    assert found["a1b2-0003#c-red"].name == "Кружка керамическая (красная)"
    assert found["a1b2-0001"].price == D("150.00")
    assert found["a1b2-0002"].price == D("1200.50")

    made = await hub.stores()
    for xml_id, store_name in STORES.items():
        store = made[xml_id]
        assert store.name == store_name
        assert (store.serves_online, store.is_pickup_point, store.kind) == (
            False,
            False,
            "warehouse",
        )
    assert await hub.on_hand() == EXPECTED_ON_HAND

    moved = await hub.movements("exchange_1c")
    product_ids = {r.id: r.xml_id for r in found.values()}
    store_ids = {r.id: r.xml_id for r in made.values()}
    assert {(product_ids[m.product_id], store_ids[m.store_id]): m.quantity for m in moved} == (
        CHANGED
    )
    assert len(moved) == len(CHANGED)
    for m in moved:
        assert m.document_type == "exchange_1c"
        assert m.document_id.endswith("/offers.xml")
        assert m.business_time == formed  # ДатаФормирования, read in Moscow time
    events = await hub.stock_figures()
    assert len(events) == len(CHANGED)
    shown = {
        (product_ids[e.payload["product_id"]], store_ids[e.payload["store_id"]]): (
            D(e.payload["on_hand"]),
            e.payload["reason"],
        )
        for e in events
    }
    assert shown == {k: (v, "exchange_1c") for k, v in CHANGED.items()}
    coffee = next(e for e in events if product_ids[e.payload["product_id"]] == "a1b2-0002")
    movement = next(m for m in moved if product_ids[m.product_id] == "a1b2-0002")
    assert (coffee.aggregate_type, coffee.aggregate_id) == (
        "stock",
        f"{movement.product_id}:{movement.store_id}",
    )
    assert coffee.payload == {
        "product_id": movement.product_id,
        "store_id": movement.store_id,
        "on_hand": "2.5",
        "reserved": "0",
        "available": "2.5",
        "reason": "exchange_1c",
        "document_type": "exchange_1c",
        "document_id": movement.document_id,
    }
    log = await hub.log("warning")
    assert sum("is new: created as" in m for m in log) == 2


# --- 2. stepwise -----------------------------------------------------------------------------


def many_offers(prefix: str, count: int = 20) -> bytes:
    stores = {f"{prefix}store-a": "Склад А", f"{prefix}store-b": "Склад Б"}
    offers = [
        Offer(
            f"{prefix}item-{i:02d}",
            f"Товар №{i}",
            price=100 + i,
            stores={f"{prefix}store-a": i % 7, f"{prefix}store-b": (i * 3) % 5},
        )
        for i in range(count)
    ]
    return offers_xml(offers, stores, formed=earlier(hours=1))


async def state_of(hub: Hub, prefix: str) -> dict[str, object]:
    """What an import of many_offers(prefix) left, with the prefix taken off."""
    cut = len(prefix)
    found = await hub.products()
    ids = {r.id: r.xml_id for r in found.values()}
    mine = {r.id for r in found.values() if r.xml_id.startswith(prefix)}
    moved = [m for m in await hub.movements("exchange_1c") if m.product_id in mine]
    events = [e for e in await hub.stock_figures() if e.payload["product_id"] in mine]
    return {
        "products": {k[cut:]: (r.name, r.price) for k, r in found.items() if k.startswith(prefix)},
        "stores": {
            k[cut:]: (r.name, r.serves_online)
            for k, r in (await hub.stores()).items()
            if k.startswith(prefix)
        },
        "stock": {
            (p[cut:], s[cut:]): v
            for (p, s), v in (await hub.on_hand()).items()
            if p.startswith(prefix)
        },
        "movements": sorted((ids[m.product_id][cut:], m.quantity) for m in moved),
        "events": sorted(
            (ids[e.payload["product_id"]][cut:], e.payload["on_hand"]) for e in events
        ),
    }


async def test_a_big_file_is_imported_in_progress_steps_with_the_result_of_one_step(
    start_hub: HubFactory,
) -> None:
    stepwise = await start_hub(step_seconds=0.001, chunk_offers=3)
    onec = stepwise.onec()
    await onec.open("catalog")
    await onec.upload("catalog", "offers.xml", many_offers("step-"))
    replies = await onec.import_steps("catalog", "offers.xml")
    statuses = [r.status for r in replies]
    assert statuses[-1] == "success", replies[-1]
    assert statuses[:-1] == ["progress"] * (len(replies) - 1)
    assert len(replies) >= 4  # reading, then chunks of 3 offers (on PostgreSQL 2 at a time)
    for reply in replies:
        assert reply.lines[1], reply  # every step says what it did

    at_once = await start_hub(step_seconds=30, chunk_offers=2000)
    onec = at_once.onec()
    await onec.open("catalog")
    await onec.upload("catalog", "offers.xml", many_offers("once-"))
    status, lines, calls = await onec.import_file("catalog", "offers.xml")
    assert (status, calls) == ("success", 1), lines

    step_state = await state_of(stepwise, "step-")
    assert step_state == await state_of(at_once, "once-")
    assert len(step_state["products"]) == 20  # type: ignore[arg-type]
    assert step_state["stock"][("item-06", "store-a")] == D(6)  # type: ignore[index]
    assert len(step_state["events"]) == len(step_state["movements"]) > 0  # type: ignore[arg-type]


async def test_an_import_broken_off_resumes_in_another_process_with_the_same_result(
    start_hub: HubFactory,
) -> None:
    """One worker reads the first batch (2000 items) and stops; another process, knowing
    nothing of it, finishes the file. Stores first named after the first batch, and the
    negative figures of both halves, come out as in one go."""
    figures: dict[tuple[str, str], int] = {}
    offers = []
    for i in range(2300):  # (SQLite applies stock row by row: few items carry any)
        stores: dict[str, int] = {}
        if i % 40 == 0:
            stores = {"split-a": i % 5, "split-b": (i % 3) - 1}  # -1 for every third
        if i >= 2100 and i % 10 == 0:
            stores = {"split-c": i % 7, "split-a": 2}
        offers.append(Offer(f"split-{i:04d}", f"Товар {i}", stores=stores))
        figures.update({(f"split-{i:04d}", s): max(q, 0) for s, q in stores.items()})
    data = offers_xml(offers, {"split-b": "Склад Б", "split-d": "Склад Д"}, formed=earlier(hours=1))

    first = await start_hub(step_seconds=0.001, chunk_offers=500)
    onec = first.onec()
    await onec.open("catalog")
    await onec.upload("catalog", "offers.xml", data)
    reply = await onec.call("catalog", "import", filename="offers.xml")
    assert reply.status == "progress", reply

    second = await start_hub(step_seconds=30, chunk_offers=500)
    resumed = second.onec()
    resumed.cookie, resumed.sessid = onec.cookie, onec.sessid
    status, lines, _ = await resumed.import_file("catalog", "offers.xml")
    assert status == "success", lines

    stock = {k: v for k, v in (await second.on_hand()).items() if k[0].startswith("split-")}
    assert stock == {k: D(v) for k, v in figures.items()}
    made = await second.stores()
    assert {k: made[k].name for k in ("split-a", "split-b", "split-c", "split-d")} == {
        "split-a": "split-a",
        "split-b": "Склад Б",
        "split-c": "split-c",
        "split-d": "Склад Д",
    }
    negatives = sum(1 for i in range(0, 2100, 40) if i % 3 == 0)
    assert any(f"{negatives} negative" in m for m in await second.log("warning"))
    moved = await second.movements("exchange_1c")
    assert len(moved) == sum(1 for v in figures.values() if v)


# --- 3. zip ----------------------------------------------------------------------------------


async def test_with_zip_the_archive_is_uploaded_in_chunks_and_unpacked_in_a_progress_step(
    start_hub: HubFactory,
) -> None:
    hub = await start_hub(zip=True, file_limit=2048)
    onec = hub.onec()
    await onec.checkauth("catalog")
    init = await onec.init("catalog")
    assert init.raw == b"zip=yes\nfile_limit=2048"
    files = catalog_files()
    filler = [Product(f"f00d{i:04d}-{i * 7919:08x}", f"Наполнитель {i}") for i in range(60)]
    files[0] = ("import.xml", import_xml(PRODUCTS + filler))
    archive = make_zip(dict(files))
    replies = await onec.upload("catalog", "import.zip", archive)
    assert len(replies) > 1

    first = await onec.call("catalog", "import", filename="import.xml")
    assert first.status == "progress", first
    assert "unpacked" in first.reason
    status, lines, _ = await onec.import_file("catalog", "import.xml")
    assert status == "success", lines
    status, lines, calls = await onec.import_file("catalog", "offers.xml")
    assert (status, calls) == ("success", 1), lines
    assert await hub.on_hand() == EXPECTED_ON_HAND
    assert len(await hub.products()) == 4 + 3 + 2 + 60


async def test_a_zip_member_that_climbs_out_of_the_work_directory_fails(
    start_hub: HubFactory,
) -> None:
    hub = await start_hub(zip=True)
    before = await hub.domain_state()
    onec = hub.onec()
    await onec.open("catalog")
    archive = make_zip({"offers.xml": offers_xml(OFFERS, STORES), "../evil.xml": b"<evil/>"})
    await onec.upload("catalog", "import.zip", archive)
    status, lines, _ = await onec.import_file("catalog", "offers.xml")
    assert status == "failure"
    assert "evil.xml" in "\n".join(lines[1:])
    assert not (hub.work_dir / "evil.xml").exists()
    assert not any(p.name == "evil.xml" for p in hub.work_dir.parent.rglob("evil.xml"))
    assert await hub.domain_state() == before
    assert any("evil.xml" in m for m in await hub.log("error"))


# --- 4. idempotency --------------------------------------------------------------------------


async def test_imports_are_idempotent_and_a_changed_figure_moves_once(hub: Hub) -> None:
    formed = earlier(hours=1)
    files = catalog_files(formed=formed)
    onec = hub.onec()
    await exchange(onec, files)
    after_first = await hub.ledger()
    assert after_first == (len(CHANGED), len(CHANGED))

    status, lines, calls = await onec.import_file("catalog", "offers.xml")  # again, finished
    assert (status, calls) == ("success", 1), lines
    assert await hub.ledger() == after_first

    await exchange(hub.onec(), files)  # the same files in a new session
    assert await hub.ledger() == after_first
    assert await hub.on_hand() == EXPECTED_ON_HAND

    changed = [Offer("a1b2-0001", OFFERS[0].name, price="150.00", stores={MSK: 11, SPB: 3})]
    changed += OFFERS[1:]
    again = hub.onec()
    await again.open("catalog")
    await again.upload("catalog", "offers.xml", offers_xml(changed, STORES, formed=formed))
    status, lines, _ = await again.import_file("catalog", "offers.xml")
    assert status == "success", lines
    assert await hub.ledger() == (after_first[0] + 1, after_first[1] + 1)
    last = (await hub.movements("exchange_1c"))[-1]
    assert last.quantity == D(-1)
    event = (await hub.stock_figures())[-1]
    assert (D(event.payload["on_hand"]), D(event.payload["available"])) == (D(11), D(11))
    assert (await hub.on_hand())[("a1b2-0001", MSK)] == D(11)


async def test_a_chunk_posted_twice_in_a_row_is_appended_once(start_hub: HubFactory) -> None:
    hub = await start_hub(file_limit=2048)
    onec = hub.onec()
    await onec.open("catalog")
    data = offers_xml(OFFERS, STORES)
    chunks = onec.chunks(data)
    assert len(chunks) >= 3
    for i, chunk in enumerate(chunks):
        reply = await onec.post_chunk("catalog", "offers.xml", chunk)
        assert reply.raw.startswith(b"success")
        if i == 1:  # the answer was lost: 1C sends the same chunk again
            retry = await onec.post_chunk("catalog", "offers.xml", chunk)
            assert retry.raw.startswith(b"success")
    (session_dir,) = hub.work_dir.iterdir()
    assert (session_dir / "offers.xml").read_bytes() == data
    status, lines, _ = await onec.import_file("catalog", "offers.xml")
    assert status == "success", lines
    # Without import.xml the coffee is created in pieces (its offer names no unit), and a
    # piece product holds whole pieces only: 1C's 2,5 is taken as 2.
    expected = {**EXPECTED_ON_HAND, ("a1b2-0002", MSK): D(2)}
    assert only(await hub.on_hand(), "a1b2-") == expected
    assert any("repeated chunk" in m for m in await hub.log("warning"))


# --- 5. authentication and the shape of every reply ------------------------------------------


async def test_checkauth_refuses_missing_or_wrong_credentials(hub: Hub) -> None:
    onec = hub.onec()
    for kwargs in (
        {"credentials": False},
        {"password": "wrong"},
        {"login": "admin"},
        {"authorization": "Bearer abc"},
        {"authorization": "Basic !!!not-base64!!!"},
        {"authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
    ):
        reply = await onec.checkauth("catalog", **kwargs)  # type: ignore[arg-type]
        assert reply.raw.startswith(b"failure\n"), (kwargs, reply)
        assert reply.status_code == 200
        assert reply.reason
        assert onec.cookie is None
    reply = await onec.checkauth("get_catalog")
    assert reply.raw.startswith(b"failure\n"), reply


async def test_checkauth_refuses_credentials_it_cannot_decode_with_failure(hub: Hub) -> None:
    """A Basic header whose bytes are neither UTF-8 nor windows-1251 (0x98 is unassigned in
    windows-1251) is refused like any wrong password, not with a server error."""
    garbage = "Basic " + base64.b64encode(b"1c:\x98").decode()
    reply = await hub.onec().checkauth("catalog", authorization=garbage)
    assert reply.raw.startswith(b"failure\n"), reply


async def test_a_login_in_windows_1251_or_utf_8_is_accepted(start_hub: HubFactory) -> None:
    hub = await start_hub(login="обмен")
    for encoding in ("windows-1251", "utf-8"):
        onec = hub.onec(login="обмен")
        reply = await onec.checkauth("catalog", credentials_encoding=encoding)
        assert reply.raw.startswith(b"success\n"), (encoding, reply)


async def test_calls_need_a_live_session_of_either_exchange_type(hub: Hub) -> None:
    onec = hub.onec()
    assert (await onec.checkauth("catalog")).raw.startswith(b"success\n")
    assert (await onec.init("catalog")).raw.startswith(b"zip=")

    no_cookie = await onec.call("catalog", "init", with_cookie=False)
    assert no_cookie.raw.startswith(b"failure\n"), no_cookie
    stranger = OneC(hub.http, encoding=onec.encoding)
    stranger.cookie = (onec.cookie[0], "not-a-session")  # type: ignore[index]
    for mode in ("init", "import", "file"):
        reply = await stranger.call("catalog", mode, filename="offers.xml")
        assert reply.raw.startswith(b"failure\n"), (mode, reply)
    wrong_sessid = await onec.call("catalog", "init", sessid="0" * 32)
    assert wrong_sessid.raw.startswith(b"failure\n"), wrong_sessid
    other_type = await onec.call("sale", "query")  # sessions are not tied to a type
    assert other_type.raw.startswith(b"<?xml"), other_type
    unknown_mode = await onec.call("catalog", "dance")
    assert unknown_mode.raw.startswith(b"failure\n"), unknown_mode
    no_name = await onec.call("catalog", "file", content=b"<x/>")
    assert no_name.raw.startswith(b"failure\n"), no_name
    assert (await onec.call("catalog", "init")).raw.startswith(b"zip=")  # still fine


@pytest.mark.parametrize("encoding", ["utf-8", "windows-1251"])
async def test_nothing_precedes_the_status_word_in_any_reply(
    start_hub: HubFactory, encoding: str
) -> None:
    hub = await start_hub(encoding=encoding, step_seconds=0.001, chunk_offers=1, file_limit=2048)
    onec = hub.onec()
    seen: list[bytes] = []
    seen.append((await onec.call("catalog", "init")).raw)  # no session yet
    seen.append((await onec.checkauth("catalog")).raw)
    seen.append((await onec.init("catalog")).raw)
    for name, data in catalog_files(encoding):
        seen += [r.raw for r in await onec.upload("catalog", name, data)]
        seen += [r.raw for r in await onec.import_steps("catalog", name)]
    seen.append((await onec.call("catalog", "import", filename="nothing.xml")).raw)
    node = hub.onec()
    seen.append((await node.checkauth("sale")).raw)
    seen.append((await node.init("sale")).raw)
    seen.append((await node.success()).raw)
    assert {s.split(b"\n", 1)[0].split(b"=", 1)[0] for s in seen} == {
        b"success",
        b"failure",
        b"progress",
        b"zip",
    }
    for raw in seen:
        assert raw.startswith((b"success", b"failure", b"progress", b"zip=")), raw[:40]
        assert not raw.startswith(BOM)


# --- 6. split rests files --------------------------------------------------------------------


@pytest.mark.parametrize("filename", ["goods/1/rests___7c1e.xml", "goods\\1\\rests___7c1e.xml"])
async def test_a_rests_file_in_a_subfolder_creates_unknown_stores_and_zeroes_negatives(
    hub: Hub, filename: str
) -> None:
    onec = hub.onec()
    await onec.open("catalog")
    first = rests_xml({"1c-tea": {"WH1": 5}}, formed=earlier(hours=2))
    await onec.upload("catalog", "rests___0.xml", first)
    assert (await onec.import_file("catalog", "rests___0.xml"))[0] == "success"
    assert (await hub.on_hand())[("1c-tea", "WH1")] == D(5)

    new_store = "b7d0e2f4-77aa-11ee-8000-00155d0000ff"
    rests = rests_xml(
        {
            "1c-tea": {new_store: "8", "WH1": "-2"},
            "1c-mug": {new_store: "-3,000"},
            "never-heard-of": {new_store: "4"},
        },
        formed=earlier(hours=1),
    )
    await onec.upload("catalog", filename, rests)
    status, lines, _ = await onec.import_file("catalog", filename)
    assert status == "success", lines

    store = (await hub.stores())[new_store]
    assert (store.serves_online, store.is_pickup_point) == (False, False)
    assert store.name  # never empty: the Ид when no file names it
    stock = await hub.on_hand()
    assert stock[("1c-tea", new_store)] == D(8)
    assert stock[("1c-tea", "WH1")] == ZERO  # -2 from 1C: 0, never negative
    assert stock.get(("1c-mug", new_store), ZERO) == ZERO
    warnings = await hub.log("warning")
    assert any("2 negative" in m for m in warnings), warnings
    assert any(new_store in m and "is new" in m for m in warnings), warnings
    skipped = [m for m in warnings if "does not know" in m]
    assert len(skipped) == 1 and re.search(r"\b1\b", skipped[0]), warnings
    assert "never-heard-of" not in await hub.products()


# --- 7. master = "1c": what the hub did after 1C formed its file ------------------------------


async def test_master_1c_keeps_sales_1c_could_not_know_of_and_the_holds(hub: Hub) -> None:
    pos, online, admin = hub.net.tokens["pos"], hub.net.tokens["online"], hub.admin
    onec = hub.onec()
    await onec.open("catalog")
    figures = offers_xml(
        [
            Offer("1c-tea", stores={"S01": 10}),
            Offer("1c-coffee", stores={"WH1": 6}),
            Offer("1c-mug", stores={"S01": 5}),
        ],
        formed=earlier(hours=3),
    )
    await onec.upload("catalog", "offers.xml", figures)
    assert (await onec.import_file("catalog", "offers.xml"))[0] == "success"
    assert {k: v for k, v in (await hub.stock()).items() if v != (ZERO, ZERO)} == {
        ("1c-tea", "S01"): (D(10), ZERO),
        ("1c-coffee", "WH1"): (D(6), ZERO),
        ("1c-mug", "S01"): (D(5), ZERO),
    }

    formed = earlier(hours=1)
    # A sale after ДатаФормирования, and one made before it that the till reported late.
    now_sale = sale("S01", "A-1", line("TEA", 2))
    expect(await hub.http.post("/pos/sales", json=now_sale, headers=bearer(pos)), 201)
    late_sale = {**sale("S01", "A-2", line("TEA", 1)), "time": earlier(minutes=90).isoformat()}
    expect(await hub.http.post("/pos/sales", json=late_sale, headers=bearer(pos)), 201)
    mug = {**sale("S01", "A-3", line("MUG", 1)), "time": earlier(minutes=90).isoformat()}
    expect(await hub.http.post("/pos/sales", json=mug, headers=bearer(pos)), 201)
    order = await placed(
        hub.http, online, {"fulfillment": "delivery", "lines": [line("COFFEE", 2)]}
    )
    assert (await hub.stock())[("1c-coffee", "WH1")] == (D(6), D(2))

    again = hub.onec()
    await again.open("catalog")
    await again.upload(
        "catalog",
        "offers.xml",
        offers_xml(
            [
                Offer("1c-tea", stores={"S01": 10}),
                Offer("1c-coffee", stores={"WH1": 6}),
                Offer("1c-mug", stores={"S01": 5}),
            ],
            formed=formed,
        ),
    )
    status, lines, _ = await again.import_file("catalog", "offers.xml")
    assert status == "success", lines
    stock = await hub.stock()
    assert stock[("1c-tea", "S01")] == (D(10 - 2 - 1), ZERO)
    assert stock[("1c-mug", "S01")] == (D(4), ZERO)
    assert stock[("1c-coffee", "WH1")] == (D(6), D(2))  # the hold stays
    found = expect(await hub.http.get(f"/orders/{order['id']}", headers=bearer(admin)), 200)
    assert found["status"] == "placed"

    # A file formed after all of it: 1C's figure already contains those sales.
    later = hub.onec()
    await later.open("catalog")
    await later.upload(
        "catalog",
        "offers.xml",
        offers_xml(
            [Offer("1c-tea", stores={"S01": 20}), Offer("1c-coffee", stores={"WH1": 8})],
            formed=soon(),
        ),
    )
    events = len(await hub.stock_figures())
    assert (await later.import_file("catalog", "offers.xml"))[0] == "success"
    assert (await hub.stock())[("1c-tea", "S01")] == (D(20), ZERO)
    assert (await hub.stock())[("1c-coffee", "WH1")] == (D(8), D(2))
    new_events = (await hub.stock_figures())[events:]
    assert len(new_events) == 2
    coffee = next(e for e in new_events if e.payload["on_hand"] == "8")
    assert (coffee.payload["reserved"], coffee.payload["available"]) == ("2", "6")


async def test_master_hub_records_1c_figures_and_moves_no_stock(start_hub: HubFactory) -> None:
    hub = await start_hub("hub", stock={"WH1": {"TEA": 4}})
    before = (await hub.stock(), len(await hub.movements()), len(await hub.events()))
    onec = hub.onec()
    await onec.open("catalog")
    await onec.upload(
        "catalog",
        "offers.xml",
        offers_xml([Offer("1c-tea", stores={"WH1": 9})], formed=soon()),
    )
    status, lines, _ = await onec.import_file("catalog", "offers.xml")
    assert status == "success", lines
    assert (await hub.stock(), len(await hub.movements()), len(await hub.events())) == before
    (figure,) = await hub.rows(stock_1c_figures)
    assert (figure.quantity, figure.hub_on_hand) == (D(9), D(4))


async def test_an_online_pickup_hold_survives_a_figure_below_it(hub: Hub) -> None:
    """1C says fewer than are held: the holds stay (README), on_hand is 1C's figure."""
    onec = hub.onec()
    await onec.open("catalog")
    await onec.upload(
        "catalog",
        "offers.xml",
        offers_xml([Offer("1c-mug", stores={"S02": 3})], formed=earlier(hours=2)),
    )
    assert (await onec.import_file("catalog", "offers.xml"))[0] == "success"
    order = await placed(hub.http, hub.net.tokens["online"], pickup("S02", line("MUG", 2)))
    second = hub.onec()
    await second.open("catalog")
    await second.upload(
        "catalog",
        "offers.xml",
        offers_xml([Offer("1c-mug", stores={"S02": 1})], formed=soon()),
    )
    assert (await second.import_file("catalog", "offers.xml"))[0] == "success"
    assert (await hub.stock())[("1c-mug", "S02")] == (D(1), D(2))
    found = expect(await hub.http.get(f"/orders/{order['id']}", headers=bearer(hub.admin)), 200)
    assert found["status"] == "placed"


async def test_a_taken_article_leaves_the_sku_to_the_ид(hub: Hub) -> None:
    products = [
        Product("sku-0001", "Первый", article="TEA"),  # the seeded product's SKU
        Product("sku-0002", "Второй", article="DUP-1"),
        Product("sku-0003", "Третий", article="DUP-1"),
    ]
    results = await hub.onec().catalog_exchange([("import.xml", import_xml(products))])
    assert results["import.xml"][0] == "success", results
    found = await hub.products()
    assert found["sku-0001"].sku == "sku-0001"
    assert found["1c-tea"].sku == "TEA"
    assert sorted([found["sku-0002"].sku, found["sku-0003"].sku]) == ["DUP-1", "sku-0003"]


async def test_offers_with_only_a_total_go_to_the_total_stock_store(start_hub: HubFactory) -> None:
    hub = await start_hub(total_stock_store="WH1")
    offers = offers_xml([Offer("1c-tea", total=7), Offer("1c-mug", total="2,000")])
    results = await hub.onec().catalog_exchange([("offers.xml", offers)])
    assert results["offers.xml"][0] == "success", results
    stock = await hub.on_hand()
    assert (stock[("1c-tea", "WH1")], stock[("1c-mug", "WH1")]) == (D(7), D(2))

    wrong = await start_hub(total_stock_store="NOPE")
    results = await wrong.onec().catalog_exchange([("offers.xml", offers)])
    status, lines, _ = results["offers.xml"]
    assert status == "failure"
    assert "NOPE" in "\n".join(lines[1:])


# --- products 1C marked deleted --------------------------------------------------------------


async def test_a_product_1c_marked_deleted_is_still_counted_and_sold_at_the_till(
    start_hub: HubFactory,
) -> None:
    hub = await start_hub(stock={"S01": {"TEA": 5}})
    tea = (await hub.products())["1c-tea"]
    await exchange(
        hub.onec(), [("import.xml", import_xml([Product("1c-tea", "Tea", deleted=True)]))]
    )
    assert (await hub.products())["1c-tea"].active is False
    admin, till = bearer(hub.admin), bearer(hub.net.tokens["pos"])

    for ref in ({"sku": "TEA"}, {"xml_id": "1c-tea"}, {"product_id": tea.id}):
        found = expect(await hub.http.get("/stock", params=ref, headers=admin), 200)
        assert found["product"]["active"] is False
        assert [(x["store"], x["on_hand"]) for x in found["levels"]] == [("S01", "5")]
        expect(await hub.http.get("/stock/movements", params=ref, headers=admin), 200)
    sold = await hub.http.post(
        "/pos/sales", json=sale("S01", "T-del-1", line("TEA", 1)), headers=till
    )
    refused = await hub.http.post("/orders", json=pickup("S01", line("TEA", 1)), headers=admin)

    back = {**sale("S01", "T-del-2", line("TEA", 1)), "original_transaction_id": "T-del-1"}
    returned = await hub.http.post("/pos/returns", json=back, headers=till)
    sold_again = await hub.http.post(
        "/pos/sales", json=sale("S01", "T-del-3", line("TEA", 2)), headers=till
    )

    expect(sold, 201)
    expect(refused, 422, "unknown_product")  # no new order takes a deleted product
    expect(returned, 201)
    expect(sold_again, 201)
    assert (await hub.on_hand())[("1c-tea", "S01")] == D(3)
