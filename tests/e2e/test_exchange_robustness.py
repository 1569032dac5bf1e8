"""What a production exchange meets beyond the happy path: a file sent again under its name, an
upload torn by a crash, an older file after a newer one, and text 1C's XML cannot carry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tests.e2e.conftest import Hub, HubFactory
from tests.e2e.helpers import delivery, line, placed
from tests.sim_1c import Offer, offers_xml, parse_orders

D = Decimal
MSK = "5e3c1a2b-0001-11ee-8000-00155d000001"
STORES = {MSK: "Склад Москва"}


def offers(quantity: int, formed: datetime | None = None) -> bytes:
    return offers_xml([Offer("r-0001", "Чай", total=quantity, stores={MSK: quantity})], STORES,
                      formed=formed)  # fmt: skip


async def on_hand(hub: Hub) -> Decimal:
    return (await hub.on_hand())[("r-0001", MSK)]


async def test_a_file_sent_again_under_its_name_is_applied_again(start_hub: HubFactory) -> None:
    hub = await start_hub()
    onec = hub.onec()
    await onec.open("catalog")
    await onec.upload("catalog", "offers.xml", offers(5))
    assert (await onec.import_file("catalog", "offers.xml"))[0] == "success"
    assert await on_hand(hub) == D(5)

    await onec.upload("catalog", "offers.xml", offers(8))  # the same session, new content
    status, lines, _ = await onec.import_file("catalog", "offers.xml")

    assert status == "success", lines
    assert await on_hand(hub) == D(8)


async def test_a_tail_left_by_a_crash_between_append_and_commit_is_cut(
    start_hub: HubFactory,
) -> None:
    hub = await start_hub(file_limit=1024)
    onec = hub.onec()
    await onec.open("catalog")
    data = offers(6)
    first, *rest = onec.chunks(data)
    assert rest
    assert (await onec.post_chunk("catalog", "offers.xml", first)).raw.startswith(b"success")
    (session_dir,) = hub.work_dir.iterdir()
    with (session_dir / "offers.xml").open("ab") as f:  # appended, never recorded
        f.write(rest[0][:100])

    for chunk in rest:
        assert (await onec.post_chunk("catalog", "offers.xml", chunk)).raw.startswith(b"success")

    assert (session_dir / "offers.xml").read_bytes() == data
    assert (await onec.import_file("catalog", "offers.xml"))[0] == "success"
    assert await on_hand(hub) == D(6)


async def test_a_file_formed_before_one_already_applied_does_not_roll_stock_back(
    start_hub: HubFactory,
) -> None:
    hub = await start_hub()
    now = datetime.now(UTC).replace(microsecond=0)
    newer, older = hub.onec(), hub.onec()
    await newer.open("catalog")
    await older.open("catalog")
    await older.upload("catalog", "offers.xml", offers(3, formed=now - timedelta(minutes=10)))
    await newer.upload("catalog", "offers.xml", offers(9, formed=now - timedelta(minutes=1)))
    assert (await newer.import_file("catalog", "offers.xml"))[0] == "success"

    status, lines, _ = await older.import_file("catalog", "offers.xml")

    assert status == "success", lines
    assert await on_hand(hub) == D(9)
    assert any(
        "a file formed later had already set those levels" in m for m in await hub.log("warning")
    )


async def test_an_order_with_control_characters_still_reaches_1c(start_hub: HubFactory) -> None:
    hub = await start_hub(stock={"WH1": {"TEA": 10}})
    order = await placed(
        hub.http,
        hub.net.tokens["online"],
        delivery(line("TEA", 1), comment="звонок\x01 в дверь\x1f", customer={"name": "Ан\x0bна"}),
    )
    onec = hub.onec()
    await onec.open("sale")

    exported = parse_orders(await onec.query())

    doc = exported.by_id()[order["id"]]
    assert doc.fields["Комментарий"] == "звонок в дверь"
    assert doc.customer["Наименование"] == "Анна"
