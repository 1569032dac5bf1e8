"""The sale exchange end to end: a simulated 1C fetches the hub's orders (query, success) and
sends its changes back (file, import), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ordersync.db.tables import holds, order_1c, orders
from tests.e2e.conftest import Hub, HubFactory
from tests.e2e.helpers import bearer, delivery, expect, line, pickup, placed, sale
from tests.sim_1c import (
    OneC,
    OrderChange,
    declared_encoding,
    make_zip,
    orders_xml,
    parse_orders,
)

D = Decimal
ZERO = D(0)
MOSCOW = ZoneInfo("Europe/Moscow")
STOCK: dict[str, dict[str, Decimal | int]] = {
    "WH1": {"TEA": 10, "COFFEE": 5, "SUGAR": D("12.5"), "MUG": 4},
    "S01": {"TEA": 4, "MUG": 3},
    "S02": {"TEA": 2},
}


@pytest.fixture
async def hub(start_hub: HubFactory) -> Hub:
    """master = "1c", windows-1251, the stock above."""
    return await start_hub(stock=STOCK)


async def act(hub: Hub, order_id: str, action: str) -> dict[str, Any]:
    response = await hub.http.post(f"/orders/{order_id}/{action}", headers=bearer(hub.admin))
    return expect(response, 200)


async def get_order(hub: Hub, order_id: str) -> dict[str, Any]:
    return expect(await hub.http.get(f"/orders/{order_id}", headers=bearer(hub.admin)), 200)


async def pos_sale(hub: Hub, body: dict[str, Any]) -> dict[str, Any]:
    response = await hub.http.post("/pos/sales", json=body, headers=bearer(hub.net.tokens["pos"]))
    return expect(response, 201)


async def queried(onec: OneC) -> set[str]:
    return {o.id for o in parse_orders(await onec.query()).orders}


def local_date(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(MOSCOW).strftime("%Y-%m-%d")


async def level(hub: Hub, sku: str, store: str) -> tuple[Decimal, Decimal]:
    return (await hub.stock()).get((f"1c-{sku.lower()}", store), (ZERO, ZERO))


# --- 8. orders to 1C -------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["windows-1251", "utf-8"])
async def test_query_returns_each_order_as_a_bitrix_document_in_the_configured_encoding(
    start_hub: HubFactory, encoding: str
) -> None:
    hub = await start_hub(encoding=encoding, stock=STOCK)
    online = await placed(
        hub.http,
        hub.net.tokens["online"],
        delivery(
            line("TEA", 2),
            line("COFFEE", 1),
            line("SUGAR", "0.75"),
            customer={"name": "Иван Петров", "phone": "+79990000001", "email": "iv@example.ru"},
            comment="Позвонить за час 🙂 €",
            external_id="B-1001",
        ),
    )
    operator = await placed(
        hub.http,
        hub.net.tokens["operator"],
        pickup("S01", line("MUG", 1), customer={"name": "Ольга"}),
    )
    till = await pos_sale(hub, sale("S01", "R-77", line("TEA", 1, price="90")))
    assert till["order_id"]

    onec = hub.onec()
    await onec.open("sale")
    body = await onec.query()
    assert onec.last_response is not None
    assert onec.last_response.headers["content-type"] == f"application/xml; charset={encoding}"
    assert (declared_encoding(body) or "").lower() == encoding
    assert "Иван Петров" in body.decode(encoding)  # really in that encoding
    doc = parse_orders(body)
    assert doc.root == "КоммерческаяИнформация"
    assert doc.attributes["ФорматДаты"] == "ДФ=yyyy-MM-dd; ДЛФ=DT"
    assert doc.attributes["ФорматСуммы"] == "ЧЦ=18; ЧДЦ=2; ЧРД=."
    assert doc.attributes["ВерсияСхемы"].startswith("2.")
    assert datetime.fromisoformat(doc.attributes["ДатаФормирования"])
    found = doc.by_id()
    assert set(found) == {online["id"], operator["id"], till["order_id"]}
    assert len(doc.orders) == 3

    web = found[online["id"]]
    assert web.fields["Номер"] == str(online["number"])  # short, so 1C and clients read it
    assert int(web.fields["Номер"]) == online["number"]
    assert web.properties["Номер заказа на сайте"] == "B-1001"
    assert web.fields["Дата"] == local_date(online["created_at"])
    assert (web.fields["ХозОперация"], web.fields["Роль"]) == ("Заказ товара", "Продавец")
    assert D(web.fields["Сумма"]) == D("510.50")
    assert web.fields["Комментарий"] == "Позвонить за час 🙂 €"  # 🙂 as &#128578; in 1251
    assert [
        (x["Ид"], D(x["Количество"]), D(x["ЦенаЗаЕдиницу"]), D(x["Сумма"])) for x in web.lines
    ] == [
        ("1c-tea", D(2), D("100.00"), D("200.00")),
        ("1c-coffee", D(1), D("250.50"), D("250.50")),
        ("1c-sugar", D("0.75"), D("80.00"), D("60.00")),
    ]
    assert [x["БазоваяЕдиница"] for x in web.lines] == ["шт", "шт", "кг"]
    assert all(p["ТипНоменклатуры"] == "Товар" for p in web.line_properties)
    assert web.customer["Наименование"] == "Иван Петров"
    assert web.customer["Роль"] == "Покупатель"
    # As Bitrix writes it: <user id>#<login>#<name>, the same for the same customer.
    assert web.customer["Ид"] == "79990000001#iv@example.ru#Иван Петров"
    # Delivery from WH1 (priority 10): the warehouse 1C writes the stock off.
    assert web.stores == ["WH1"]
    assert web.line_stores == [[("WH1", "2")], [("WH1", "1")], [("WH1", "0.75")]]
    props = web.properties
    assert props["Заказ оплачен"] == "false"
    assert props["Отменен"] == "false"
    assert props["Статус заказа"] == "[placed] Принят"
    assert props["Канал"] == "online"
    assert props["Номер чека ККМ"] == ""

    phone = found[operator["id"]]
    assert phone.fields["Номер"] == str(operator["number"])
    assert phone.customer["Ид"] == "0#retail#Ольга"
    assert phone.stores == ["S01"]
    assert phone.properties["Канал"] == "operator"
    assert phone.properties["Склад"] == "S01"
    assert [(x["Ид"], D(x["Количество"])) for x in phone.lines] == [("1c-mug", D(1))]

    receipt = found[till["order_id"]]
    assert receipt.fields["Номер"] == str(till["order_number"])
    assert receipt.stores == ["S01"]
    assert len({web.fields["Номер"], phone.fields["Номер"], receipt.fields["Номер"]}) == 3
    assert receipt.properties["Канал"] == "pos"
    assert receipt.properties["Номер чека ККМ"] == "R-77"
    assert receipt.properties["Касса"] == "T1"
    assert receipt.properties["Заказ оплачен"] == "true"
    assert receipt.properties["Статус заказа"] == "[completed] Выполнен"
    assert receipt.properties["Финальный статус"] == "true"
    assert [(x["Ид"], D(x["ЦенаЗаЕдиницу"])) for x in receipt.lines] == [("1c-tea", D(90))]
    assert D(receipt.fields["Сумма"]) == D(90)


async def test_orders_count_as_received_only_on_success_and_return_when_changed(
    start_hub: HubFactory,
) -> None:
    hub = await start_hub(stock=STOCK)
    token = hub.net.tokens["online"]
    a = (await placed(hub.http, token, delivery(line("TEA", 1))))["id"]
    b = (await placed(hub.http, token, delivery(line("COFFEE", 1))))["id"]
    onec = hub.onec()
    await onec.open("sale")
    assert await queried(onec) == {a, b}
    assert await queried(onec) == {a, b}  # no success: sent again
    confirmed = await onec.success()
    assert confirmed.raw.startswith(b"success")
    assert await queried(onec) == set()
    assert (await onec.success()).raw.startswith(b"success")

    await act(hub, a, "pay")
    assert await queried(onec) == {a}
    await onec.success()
    await act(hub, b, "cancel")
    assert await queried(onec) == {b}
    await onec.success()
    assert await queried(onec) == set()

    # A change between query and success: 1C confirmed the order as it was, not as it is.
    c = (await placed(hub.http, token, delivery(line("SUGAR", 1))))["id"]
    assert await queried(onec) == {c}
    await act(hub, c, "ship")
    await onec.success()
    shipped = parse_orders(await onec.query()).by_id()
    assert set(shipped) == {c}
    assert shipped[c].properties["Статус заказа"] == "[shipped] Отгружен"
    await onec.success()

    # Another exchange session sees what this one confirmed.
    other = hub.onec()
    await other.open("sale")
    assert await queried(other) == set()


@pytest.mark.parametrize(
    ("asked", "answered"),
    [(None, "2.08"), ("2.05", "2.05"), ("2.09", "2.09"), ("2.10", "2.10"), ("2.1", "2.10"),
     ("3.1", "2.10"), ("2.01", "2.03"), ("новая", "2.08")],
)  # fmt: skip
async def test_orders_are_written_in_the_version_1c_asked_for_or_the_nearest_served(
    hub: Hub, asked: str | None, answered: str
) -> None:
    await placed(hub.http, hub.net.tokens["online"], delivery(line("TEA", 1)))
    onec = hub.onec()
    await onec.checkauth("sale")

    init = await onec.init("sale", asked)
    document = parse_orders(await onec.query())

    assert document.attributes["ВерсияСхемы"] == answered
    if asked is not None:
        assert f"version={answered}" in init.lines
        assert f"version={asked}" not in init.lines or asked == answered
    if asked not in (None, answered):
        assert any(asked in m and answered in m for m in await hub.log("warning"))


async def test_only_the_configured_channels_are_exported(start_hub: HubFactory) -> None:
    hub = await start_hub(stock=STOCK, export_channels=["online"])
    web = await placed(hub.http, hub.net.tokens["online"], delivery(line("TEA", 1)))
    await placed(hub.http, hub.net.tokens["operator"], pickup("S01", line("MUG", 1)))
    await pos_sale(hub, sale("S01", "R-1", line("TEA", 1)))
    onec = hub.onec()
    await onec.open("sale")
    assert await queried(onec) == {web["id"]}


async def test_query_sends_at_most_query_limit_orders_oldest_change_first(
    start_hub: HubFactory,
) -> None:
    hub = await start_hub(stock=STOCK, query_limit=2)
    token = hub.net.tokens["online"]
    ids = [(await placed(hub.http, token, delivery(line("TEA", 1))))["id"] for _ in range(3)]
    onec = hub.onec()
    await onec.open("sale")
    assert await queried(onec) == set(ids[:2])
    await onec.success()
    assert await queried(onec) == {ids[2]}
    await onec.success()
    assert await queried(onec) == set()


# --- 9. order changes from 1C ----------------------------------------------------------------


async def ledger_counts(hub: Hub) -> tuple[int, int, int]:
    return (len(await hub.movements()), len(await hub.events()), await hub.count(orders))


@pytest.mark.parametrize("version", [None, "2.09"], ids=["old-flow", "new-flow"])
async def test_order_changes_from_1c_pay_ship_cancel_once(
    start_hub: HubFactory, version: str | None
) -> None:
    hub = await start_hub(stock=STOCK, file_limit=65536)
    token = hub.net.tokens["online"]
    paid = (await placed(hub.http, token, delivery(line("TEA", 2))))["id"]
    shipped = (await placed(hub.http, token, delivery(line("COFFEE", 1))))["id"]
    cancelled = (await placed(hub.http, token, delivery(line("SUGAR", "1.5"))))["id"]
    deleted = (await placed(hub.http, token, delivery(line("MUG", 1))))["id"]
    completed = (await placed(hub.http, token, delivery(line("TEA", 1))))["id"]
    assert await level(hub, "TEA", "WH1") == (D(10), D(3))
    assert await level(hub, "COFFEE", "WH1") == (D(5), D(1))
    assert await level(hub, "SUGAR", "WH1") == (D("12.5"), D("1.5"))
    now = datetime.now(UTC)
    changes = orders_xml(
        [
            OrderChange(paid, number_1c="ТДЦУ-000001", paid_on=now, payment_number="ПКО-17"),
            OrderChange(shipped, number_1c="ТДЦУ-000002", shipped_on=now),
            OrderChange(cancelled, number_1c="ТДЦУ-000003", cancelled=True),
            OrderChange(deleted, number_1c="ТДЦУ-000004", deleted=True),
            OrderChange(completed, number_1c="ТДЦУ-000005", status_id="F", status="Выполнен"),
            OrderChange("no-such-order", number_1c="ТДЦУ-000099", paid_on=now),
        ],
        encoding="utf-8",
    )

    onec = hub.onec()
    await onec.checkauth("sale")
    init = await onec.init("sale", version)
    if version is None:
        assert init.lines == ["zip=no", "file_limit=65536"]
    else:
        assert init.lines[:2] == ["zip=no", "file_limit=65536"]
        assert f"sessid={onec.sessid}" in init.lines
        assert "version=2.09" in init.lines
        # The new flow: mode=file only stores the file; mode=import applies it.
        (reply,) = await onec.upload("sale", "orders-0.xml", changes)
        assert reply.raw == b"success"
        assert (await get_order(hub, paid))["payment_status"] == "unpaid"
    status, lines, _ = await onec.send_orders("orders.xml", changes)
    assert status == "success", lines
    notes = "\n".join(lines[1:])
    assert f"order {paid}: paid" in notes
    assert f"order {shipped}: shipped" in notes
    assert f"order {cancelled}: cancelled" in notes
    assert f"order {deleted}: cancelled" in notes
    assert "unknown order no-such-order" in notes

    assert (await get_order(hub, paid))["payment_status"] == "paid"
    assert (await get_order(hub, paid))["status"] == "placed"
    assert (await get_order(hub, shipped))["status"] == "shipped"
    assert (await get_order(hub, cancelled))["status"] == "cancelled"
    assert (await get_order(hub, deleted))["status"] == "cancelled"
    assert (await get_order(hub, completed))["status"] == "completed"
    assert await level(hub, "TEA", "WH1") == (D(9), D(2))  # completed: its hold consumed
    assert await level(hub, "COFFEE", "WH1") == (D(4), ZERO)  # shipped: hold consumed
    assert await level(hub, "SUGAR", "WH1") == (D("12.5"), ZERO)  # cancelled: released
    assert await level(hub, "MUG", "WH1") == (D(4), ZERO)
    states = {r.order_id: r.state for r in await hub.rows(holds)}
    assert (states[shipped], states[cancelled], states[paid]) == ("consumed", "released", "active")
    assert await hub.count(orders, orders.c.id == "no-such-order") == 0
    assert any("no-such-order" in m for m in await hub.log())
    numbers = {r.order_id: r.number_1c for r in await hub.rows(order_1c)}
    assert numbers[paid] == "ТДЦУ-000001"

    before = await ledger_counts(hub)
    stamps = {r.id: r.updated_at for r in await hub.rows(orders)}
    status, lines, _ = await onec.send_orders("orders.xml", changes)  # again, same session
    assert status == "success", lines
    assert await ledger_counts(hub) == before
    again = hub.onec()
    await again.open("sale", version)
    status, lines, _ = await again.send_orders("orders.xml", changes)  # a new session
    assert status == "success", lines
    assert "unknown order no-such-order" in "\n".join(lines)
    assert await ledger_counts(hub) == before
    assert {r.id: r.updated_at for r in await hub.rows(orders)} == stamps


async def test_1c_can_name_an_order_by_its_own_number_once_it_knows_it(hub: Hub) -> None:
    order = await placed(hub.http, hub.net.tokens["online"], delivery(line("MUG", 1)))
    onec = hub.onec()
    await onec.open("sale")
    first = orders_xml([OrderChange(order["id"], number_1c="ТДЦУ-000042")])
    assert (await onec.send_orders("orders-1.xml", first))[0] == "success"
    by_number = orders_xml([OrderChange("ТДЦУ-000042", cancelled=True)])
    status, lines, _ = await onec.send_orders("orders-2.xml", by_number)
    assert status == "success", lines
    assert (await get_order(hub, order["id"]))["status"] == "cancelled"


async def test_a_version_already_applied_is_skipped(hub: Hub) -> None:
    order = await placed(hub.http, hub.net.tokens["online"], delivery(line("MUG", 1)))
    onec = hub.onec()
    await onec.open("sale", "2.09")
    first = orders_xml([OrderChange(order["id"], version="AAAAEAAAAAA=")])
    assert (await onec.send_orders("a.xml", first))[0] == "success"
    same_version = orders_xml([OrderChange(order["id"], version="AAAAEAAAAAA=", cancelled=True)])
    status, lines, _ = await onec.send_orders("b.xml", same_version)
    assert status == "success", lines
    assert (await get_order(hub, order["id"]))["status"] == "placed"
    newer = orders_xml([OrderChange(order["id"], version="AAAAEQAAAAA=", cancelled=True)])
    assert (await onec.send_orders("c.xml", newer))[0] == "success"
    assert (await get_order(hub, order["id"]))["status"] == "cancelled"


async def test_a_change_the_order_cannot_take_is_reported_and_the_rest_applied(hub: Hub) -> None:
    token = hub.net.tokens["online"]
    gone = (await placed(hub.http, token, delivery(line("MUG", 1))))["id"]
    other = (await placed(hub.http, token, delivery(line("TEA", 1))))["id"]
    await act(hub, gone, "cancel")
    before = len(await hub.movements())
    onec = hub.onec()
    await onec.open("sale")
    now = datetime.now(UTC)
    changes = orders_xml([OrderChange(gone, shipped_on=now), OrderChange(other, paid_on=now)])
    status, lines, _ = await onec.send_orders("orders.xml", changes)
    assert status == "success", lines
    assert any(gone in x and "cancelled" in x for x in lines[1:]), lines
    assert (await get_order(hub, gone))["status"] == "cancelled"
    assert (await get_order(hub, other))["payment_status"] == "paid"
    assert len(await hub.movements()) == before


async def test_a_truncated_orders_file_fails_and_changes_nothing(hub: Hub) -> None:
    order = await placed(hub.http, hub.net.tokens["online"], delivery(line("MUG", 1)))
    before = await hub.domain_state()
    onec = hub.onec()
    await onec.open("sale")
    good = orders_xml([OrderChange(order["id"], cancelled=True)])
    status, lines, _ = await onec.send_orders("orders.xml", good[: len(good) * 2 // 3])
    assert status == "failure"
    assert lines[1:], lines
    assert await hub.domain_state() == before


@pytest.mark.parametrize("version", [None, "2.09"], ids=["old-flow", "new-flow"])
async def test_with_zip_an_orders_archive_from_1c_is_applied(
    start_hub: HubFactory, version: str | None
) -> None:
    """init answers zip=yes for sale too, so 1C sends its changes zipped (v8_*.zip)."""
    hub = await start_hub(zip=True, stock=STOCK)
    order = await placed(hub.http, hub.net.tokens["online"], delivery(line("MUG", 1)))
    onec = hub.onec()
    await onec.checkauth("sale")
    init = await onec.init("sale", version)
    assert init.lines[0] == "zip=yes"
    archive = make_zip({"orders.xml": orders_xml([OrderChange(order["id"], cancelled=True)])})
    status, lines, _ = await onec.send_orders("v8_52D8_e12.zip", archive)
    assert status == "success", lines
    assert (await get_order(hub, order["id"]))["status"] == "cancelled"


async def test_a_sale_session_may_run_catalog_calls_and_a_call_without_it_is_refused(
    hub: Hub,
) -> None:
    onec = hub.onec()
    await onec.open("sale")
    reply = await onec.call("catalog", "init")
    assert reply.raw.startswith(b"zip="), reply
    response = await hub.http.get(
        "/bitrix/admin/1c_exchange.php", params={"type": "sale", "mode": "query"}
    )
    assert response.content.startswith(b"failure\n")


# --- 1C names orders its own way ---------------------------------------------------------------


async def test_1c_s_own_document_id_with_the_site_s_number_finds_the_online_order(
    hub: Hub,
) -> None:
    # 1C writes its own GUID in Ид and the site's number in Номер: the order is found by the
    # number, and later documents carrying only that GUID find it too.
    site = await placed(
        hub.http, hub.net.tokens["online"], delivery(line("MUG", 1), external_id="555")
    )
    guid = "2b5c6d1e-0a9f-11ef-8e2b-0050569f1a2b"
    onec = hub.onec()
    await onec.open("sale")
    paid = orders_xml([OrderChange(guid, number="555", paid_on=datetime.now(UTC))])
    status, lines, _ = await onec.send_orders("a.xml", paid)
    assert status == "success", lines
    assert (await get_order(hub, site["id"]))["payment_status"] == "paid"

    by_guid_only = orders_xml([OrderChange(guid, number="1С-77", cancelled=True)])
    status, lines, _ = await onec.send_orders("b.xml", by_guid_only)
    assert status == "success", lines
    assert (await get_order(hub, site["id"]))["status"] == "cancelled"


async def test_1c_finds_an_order_by_the_hub_s_number(hub: Hub) -> None:
    order = await placed(hub.http, hub.net.tokens["operator"], pickup("S01", line("MUG", 1)))
    onec = hub.onec()
    await onec.open("sale")
    guid = "7f000000-0000-0000-0000-000000000001"
    changes = orders_xml([OrderChange(guid, number=str(order["number"]), cancelled=True)])
    status, lines, _ = await onec.send_orders("a.xml", changes)
    assert status == "success", lines
    assert (await get_order(hub, order["id"]))["status"] == "cancelled"


async def test_a_number_two_orders_share_is_told_apart_by_the_sum_or_not_applied(
    hub: Hub,
) -> None:
    phone = await placed(hub.http, hub.net.tokens["operator"], delivery(line("TEA", 1)))
    site = await placed(
        hub.http,
        hub.net.tokens["online"],
        delivery(line("COFFEE", 1), external_id=str(phone["number"])),
    )
    shared = str(phone["number"])
    onec = hub.onec()
    await onec.open("sale")

    unclear = orders_xml([OrderChange("guid-1", number=shared, total="1", cancelled=True)])
    status, lines, _ = await onec.send_orders("a.xml", unclear)
    assert status == "success", lines
    assert any("names 2 orders" in x for x in lines), lines
    assert (await get_order(hub, phone["id"]))["status"] == "placed"
    assert (await get_order(hub, site["id"]))["status"] == "placed"

    by_sum = orders_xml([OrderChange("guid-2", number=shared, total="250.50", cancelled=True)])
    status, lines, _ = await onec.send_orders("b.xml", by_sum)
    assert status == "success", lines
    assert (await get_order(hub, site["id"]))["status"] == "cancelled"
    assert (await get_order(hub, phone["id"]))["status"] == "placed"


async def test_a_delivery_order_split_over_stores_names_each_line_s_warehouse(hub: Hub) -> None:
    # TEA: 10 at WH1 (priority 10), 4 at S01 (priority 20, safety stock 1).
    order = await placed(hub.http, hub.net.tokens["online"], delivery(line("TEA", 12)))
    onec = hub.onec()
    await onec.open("sale")
    (doc,) = parse_orders(await onec.query()).orders
    assert doc.id == order["id"]
    assert doc.stores == ["WH1", "S01"]
    assert doc.line_stores == [[("WH1", "10"), ("S01", "2")]]


async def test_a_versioned_exchange_writes_the_order_s_version_and_it_changes(hub: Hub) -> None:
    order = await placed(hub.http, hub.net.tokens["online"], delivery(line("MUG", 1)))
    onec = hub.onec()
    await onec.open("sale", "2.09")
    (first,) = parse_orders(await onec.query()).orders
    await onec.success()
    await act(hub, order["id"], "pay")
    (second,) = parse_orders(await onec.query()).orders
    plain = hub.onec()
    await plain.open("sale")
    (unversioned,) = parse_orders(await plain.query()).orders

    assert first.fields["НомерВерсии"] == "1"
    assert second.fields["НомерВерсии"] == "2"
    assert "НомерВерсии" not in unversioned.fields
