"""The Evotor cloud (tests/evotor_sim.py) calling the hub's real /evotor endpoints: the public
samples, every document type, resends after a slow answer, a batch with one bad document, a
sale and its return out of order, a sale six hours late, receipts that are documents too,
stores, devices, employees, products created on tills, barcode lookups, account linking, and
errors in Evotor's format."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from ordersync.api.app import create_app
from ordersync.channels.evotor.intake import Intake
from ordersync.config import Settings
from ordersync.db.tables import (
    evotor_entities,
    evotor_inbox,
    evotor_products,
    order_attention,
    pos_returned,
    pos_transactions,
    products,
    stock_movements,
    till_review,
)
from ordersync.db.unit_of_work import Database
from tests import support
from tests.e2e.helpers import bearer, expect, pickup, placed
from tests.evotor_sim import (
    FREE_PRICE,
    Ids,
    Item,
    Till,
    WebhookSender,
    broken,
    device_json,
    employee_json,
    free_price_item,
    samples_dir,
    store_json,
    till_product_json,
)
from tests.integration import dbstate

D = Decimal
S01 = "20170228-F4F1-401B-80FA-9ECCA8451FFB"  # as real traffic writes it: dated, upper case
S02 = "7f3c5e2a-1b4d-4c6e-9a8b-0c1d2e3f4a5b"
TEA_UUID = "74e99680-3f9b-4abe-b902-fe197cf28ed2"  # the product of the public samples
TEA = Item(TEA_UUID, "1", "Чай", D("100.00"))
COFFEE = Item("0b5a2f9e-3c1d-4e7f-8a6b-5c4d3e2f1a0b", "COFFEE", "Кофе", D("250.50"))
MUG = Item(
    "c0ffee00-1111-4222-8333-444455556666", None, "Кружка", D("300.00"), barcode="4601234567890"
)
SUGAR = Item("5e1d2c3b-4a59-4687-b6c5-d4e3f2a1b0c9", "SUGAR", "Сахар", D("80.00"), measure="кг")
STRANGER = Item("9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a", "NOPE", "Неизвестно", D("5.00"))
NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass
class Cloud:
    sender: WebhookSender
    net: support.Network
    db: Database
    app: FastAPI
    http: httpx.AsyncClient

    async def settle(self) -> None:
        """What the hub applies in the background is done."""
        await self.sender.drain()
        await self.app.state.evotor.drain()

    async def level(self, sku: str, store: str = "S01") -> tuple[D, D]:
        return await dbstate.level(self.db, self.net, sku, store)


async def _cloud(
    db: Database, database_url: str, budget: float = 4.0, resend_after: float = 10.0
) -> AsyncIterator[Cloud]:
    settings = Settings(
        master="hub",
        database_url=database_url,
        seed_demo=False,
        catalog_cache_seconds=0,
        auth_cache_seconds=0,
        evotor={"apply_budget_seconds": budget},
    )
    net = await support.seed_network(
        db,
        {"S01": {"TEA": 10, "COFFEE": 10, "MUG": 10, "SUGAR": 10}, "S02": {"TEA": 5}},
        pos_stores=("S01", "S02"),
    )
    async with db.uow() as uow:
        for sku, xml_id, barcode in (("TEA", TEA_UUID, None), ("MUG", "1c-mug", MUG.barcode),
                                     ("SUGAR", SUGAR.uuid, None)):  # fmt: skip
            await uow.conn.execute(
                update(products).where(products.c.sku == sku).values(xml_id=xml_id, barcode=barcode)
            )
        await uow.commit()
    app = create_app(settings, db=db, sweeper=False)
    async with app.router.lifespan_context(app):
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub")
        admin = net.tokens["admin"]
        for code, uuid in (("S01", S01), ("S02", S02)):
            expect(
                await http.patch(
                    f"/stores/{code}", json={"evotor_uuid": uuid}, headers=bearer(admin)
                ),
                200,
            )
        sender = WebhookSender(app, token=net.tokens["evotor"], resend_after=resend_after)
        try:
            yield Cloud(sender, net, db, app, http)
        finally:
            await sender.aclose()
            await http.aclose()


@pytest.fixture
async def cloud(db: Database, database_url: str) -> AsyncIterator[Cloud]:
    async for c in _cloud(db, database_url):
        yield c


def till(store: str = S01, seed: int = 1, **kw: Any) -> Till:
    return Till(store, ids=Ids("upper", seed=seed), start=NOW - timedelta(hours=1), **kw)


async def inbox(db: Database) -> list[tuple[str | None, str, str]]:
    rows = await dbstate.rows(db, evotor_inbox)
    return [(r.document_uuid, r.feed, r.state) for r in rows]


# --- documents ----------------------------------------------------------------------------------


async def test_the_public_samples_are_a_sale_and_its_return(cloud: Cloud) -> None:
    folder = samples_dir()
    assert folder is not None, "the public Evotor samples (../shared/samples/evotor) are missing"

    sold = await cloud.sender.put_raw_documents(S01, (folder / "SELL.json").read_bytes())
    back = await cloud.sender.put_raw_documents(S01, (folder / "PAYBACK.json").read_bytes())

    assert (sold.status, back.status) == (200, 200)
    assert await cloud.level("TEA") == (D(10), D(0))
    moved = await dbstate.movements(cloud.db, cloud.net, "TEA", "S01")
    assert [(m.reason, m.quantity, m.business_time) for m in moved[1:]] == [
        ("pos_sale", D(-1), datetime(2016, 9, 13, 14, 32, 9, tzinfo=UTC)),
        ("pos_return", D(1), datetime(2016, 9, 13, 14, 47, 51, tzinfo=UTC)),
    ]
    (row,) = await dbstate.rows(cloud.db, pos_returned)
    assert (row.pos_id, row.transaction_id, row.sold, row.returned) == (
        "5a188de4-49b8-4cb4-800e-eb6b5202437e",
        "175d8ae9-79db-4588-a65a-8f0613e2d0ff",
        D(1),
        D(1),
    )
    assert [x[2] for x in await inbox(cloud.db)] == ["done", "done"]


async def test_every_document_type_moves_stock_as_it_says_or_is_acknowledged(
    cloud: Cloud,
) -> None:
    t = till()
    sale = t.sell([(TEA, 2), (COFFEE, 1), (MUG, 1), (free_price_item("12.00"), 1)])
    documents = [
        t.open_session(),
        sale,
        t.payback(sale, [(TEA, 1)]),
        t.accept([(TEA, 5), (SUGAR, "1.250")]),
        t.write_off([(COFFEE, 2)]),
        t.inventory([(MUG, 3, 9)]),
        t.supplier_return([(TEA, 1)]),
        t.cash_income("100.00"),
        t.cash_outcome("50.00"),
        t.x_report(),
        t.z_report(),
        t.revaluation(TEA, "110.00"),
        t.open_tare(TEA),
        t.buy([(TEA, 1)]),
        t.buyback([(TEA, 1)]),
        t.close_session(),
    ]

    delivery = await cloud.sender.put_documents(S01, documents)

    assert delivery.status == 200, delivery.body
    assert await cloud.level("TEA") == (D(10 - 2 + 1 + 5 - 1), D(0))
    assert await cloud.level("COFFEE") == (D(10 - 1 - 2), D(0))
    assert await cloud.level("MUG") == (D(3), D(0))  # counted after the sale
    assert await cloud.level("SUGAR") == (D("11.25"), D(0))
    reasons = {(m.reason, m.document_type) for m in await dbstate.rows(cloud.db, stock_movements)}
    assert {("pos_sale", "pos_sale"), ("pos_return", "pos_return"), ("receipt", "receipt"),
            ("write_off", "write_off"), ("count", "count"),
            ("write_off", "supplier_return")} <= reasons  # fmt: skip
    states = [state for _, _, state in await inbox(cloud.db)]
    assert states == ["done"] * len(documents)
    rows = await dbstate.rows(cloud.db, evotor_inbox)
    ignored = {r.evotor_type for r in rows if r.result and "ignored" in r.result}
    assert ignored == {"OPEN_SESSION", "CLOSE_SESSION", "CASH_INCOME", "CASH_OUTCOME", "FPRINT",
                       "REVALUATION", "OPEN_TARE", "BUY", "BUYBACK"}  # fmt: skip
    assert await dbstate.drift(cloud.db) == (5, [])


async def test_a_document_sent_twice_and_as_a_receipt_is_applied_once(cloud: Cloud) -> None:
    t = till()
    sale = t.sell([(TEA, 1)])
    event = t.receipt_event(sale)

    await cloud.sender.put_documents(S01, [sale])
    again = await cloud.sender.put_documents(S01.lower(), [{**sale, "uuid": sale["uuid"].lower()}])
    receipt = await cloud.sender.post_receipt(event)
    flat = await cloud.sender.post_receipts([t.flat_receipt(sale)])

    assert [d.status for d in (again, receipt, flat)] == [200, 200, 200]
    assert await cloud.level("TEA") == (D(9), D(0))
    assert await dbstate.count(cloud.db, pos_transactions) == 1
    assert await inbox(cloud.db) == [(sale["uuid"].lower(), "documents", "done")]


async def test_a_receipt_first_then_its_document_is_applied_once(cloud: Cloud) -> None:
    t = till()
    sale = t.sell([(TEA, 2)])

    assert (await cloud.sender.post_receipt(t.receipt_event(sale))).status == 200
    assert (await cloud.sender.put_documents(S01, [sale])).status == 200

    assert await cloud.level("TEA") == (D(8), D(0))
    assert await inbox(cloud.db) == [(sale["uuid"].lower(), "receipts", "done")]


async def test_a_batch_with_one_bad_document_applies_the_others_and_names_the_bad_one(
    cloud: Cloud,
) -> None:
    t = till()
    good, bad, also_good = t.sell([(TEA, 1)]), t.sell([(TEA, 1)]), t.sell([(COFFEE, 1)])

    delivery = await cloud.sender.put_documents(S01, [good, broken(bad, "bad_quantity"), also_good])

    assert delivery.status == 400
    subjects = [e["subject"] for e in delivery.body["errors"]]
    assert subjects and all(s.startswith("[1]") for s in subjects), delivery.body
    assert await cloud.level("TEA") == (D(9), D(0))
    assert await cloud.level("COFFEE") == (D(9), D(0))
    assert sorted(state for _, _, state in await inbox(cloud.db)) == ["done", "done", "rejected"]
    (review,) = await dbstate.rows(cloud.db, till_review)
    assert (review.kind, review.store_id) == ("failed_document", cloud.net.stores["S01"])


async def test_a_document_the_hub_cannot_apply_is_kept_failed_and_the_answer_says_so(
    cloud: Cloud,
) -> None:
    t = till()
    too_much = t.write_off([(TEA, 50)])  # a write-off takes free units only

    delivery = await cloud.sender.put_documents(S01, [t.sell([(TEA, 1)]), too_much])

    assert delivery.status == 400
    assert [e["subject"] for e in delivery.body["errors"]] == ["[1]"]
    assert "not applied" in delivery.body["errors"][0]["reason"]
    assert [state for _, _, state in await inbox(cloud.db)] == ["done", "failed"]
    assert [r.kind for r in await dbstate.rows(cloud.db, till_review)] == ["failed_document"]


async def test_a_sale_and_its_return_out_of_order_end_linked(cloud: Cloud) -> None:
    t = till()
    sale = t.sell([(TEA, 2)])
    back = t.payback(sale, [(TEA, 1)])

    await cloud.sender.put_documents(S01, [back])
    await cloud.sender.put_documents(S01, [sale])

    assert await cloud.level("TEA") == (D(9), D(0))
    (row,) = await dbstate.rows(cloud.db, pos_returned)
    assert (row.sold, row.returned) == (D(2), D(1))
    (item,) = await dbstate.rows(cloud.db, till_review)
    assert (item.kind, item.resolved_at is not None) == ("unlinked_return", True)


async def test_a_sale_six_hours_late_is_recorded_at_its_close_time_and_takes_the_held_units(
    cloud: Cloud,
) -> None:
    """The till was offline: it sold the last TEA at 10:00; at 13:00 an online order held
    the TEA the hub still believed was there; at 16:00 the sale arrives."""
    t = till(S02)
    closed = NOW - timedelta(hours=6)
    sale = t.sell([(TEA, 5)], at=closed)
    order = await placed(cloud.http, cloud.net.tokens["online"], pickup("S02", {"sku": "TEA",
                         "quantity": "2"}))  # fmt: skip

    delivery = await cloud.sender.put_documents(S02, [sale])

    assert delivery.status == 200
    assert await cloud.level("TEA", "S02") == (D(0), D(0))
    (moved,) = await dbstate.movements(cloud.db, cloud.net, "TEA", "S02", reason="pos_sale")
    assert moved.business_time == closed.replace(microsecond=0)
    assert moved.recorded_at > moved.business_time + timedelta(hours=5)
    (item,) = await dbstate.rows(cloud.db, order_attention)
    assert (item.order_id, item.code) == (order["id"], "stock_taken_by_till_sale")
    assert item.detail["sale"]["business_time"] == closed.isoformat()


async def test_unmatched_lines_are_kept_with_the_document_and_the_rest_is_recorded(
    cloud: Cloud,
) -> None:
    t = till()
    sale = t.sell([(TEA, 1), (STRANGER, 2), (free_price_item("9.99", uuid=None), 1)])

    assert (await cloud.sender.put_documents(S01, [sale])).status == 200

    assert await cloud.level("TEA") == (D(9), D(0))
    (item,) = await dbstate.rows(cloud.db, till_review)
    assert (item.kind, item.commodity_uuid, item.code, item.name, item.quantity, item.price) == (
        "unmatched_line",
        STRANGER.uuid,
        "NOPE",
        "Неизвестно",
        D(2),
        D("5.00"),
    )
    assert FREE_PRICE not in {item.commodity_uuid}


async def test_documents_of_a_store_not_linked_are_refused_whole_in_evotors_format(
    cloud: Cloud,
) -> None:
    other = "11111111-2222-4333-8444-555555555555"
    delivery = await cloud.sender.put_documents(other, [till(other).sell([(TEA, 1)])])

    assert delivery.status == 400
    assert delivery.body == {
        "errors": [
            {
                "code": 2003,
                "reason": "incorrect: not a store linked to the hub",
                "subject": "storeUuid",
                "value": other,
            }
        ]
    }
    assert await inbox(cloud.db) == []


@pytest.mark.parametrize("token", ["admin", "pos", "nonsense", ""])
async def test_only_an_evotor_token_opens_the_webhooks(cloud: Cloud, token: str) -> None:
    cloud.sender.token = cloud.net.tokens.get(token, token)
    delivery = await cloud.sender.put_documents(S01, [till().sell([(TEA, 1)])])

    assert delivery.status == 401
    assert delivery.body["errors"][0]["code"] in (1001, 1002)
    assert await cloud.level("TEA") == (D(10), D(0))


async def test_unknown_paths_and_methods_are_answered_in_evotors_format(cloud: Cloud) -> None:
    missing = await cloud.sender.send("GET", "/api/v1/nothing/here")
    wrong = await cloud.sender.send("DELETE", "/api/v1/inventories/stores")

    assert (missing.status, wrong.status) == (404, 405)
    assert all("errors" in d.body for d in (missing, wrong))


# --- slow answers and resends -----------------------------------------------------------------


def _slow(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    real = Intake.apply

    async def slowly(self: Intake, inbox_id: int, known: Any = None) -> str | None:
        await asyncio.sleep(seconds)
        return await real(self, inbox_id, known)

    monkeypatch.setattr(Intake, "apply", slowly)


async def test_a_slow_apply_never_makes_the_cloud_resend(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async for cloud in _cloud(db, database_url, budget=0.2, resend_after=1.0):
        _slow(monkeypatch, 1.5)
        sale = till().sell([(TEA, 3)])

        delivery = await cloud.sender.put_documents(S01, [sale])
        await cloud.settle()

        assert [a.status for a in delivery.attempts] == [200]
        assert await cloud.level("TEA") == (D(7), D(0))


async def test_resends_after_a_slow_answer_are_applied_once(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async for cloud in _cloud(db, database_url, budget=5.0, resend_after=0.3):
        _slow(monkeypatch, 0.5)
        sale = till().sell([(TEA, 3)])

        delivery = await cloud.sender.put_documents(S01, [sale])
        await cloud.settle()

        assert len(delivery.attempts) >= 2  # the cloud gave up waiting and sent it again
        assert await cloud.level("TEA") == (D(7), D(0))
        assert await dbstate.count(db, pos_transactions) == 1
        assert await inbox(db) == [(sale["uuid"].lower(), "documents", "done")]


# --- stores, devices, employees, products, accounts --------------------------------------------


async def test_stores_devices_and_employees_are_kept(cloud: Cloud) -> None:
    device = Ids(seed=3).new()
    assert (await cloud.sender.put_stores([store_json(S01, "Магазин 1", "Москва")])).status == 200
    assert (await cloud.sender.put_devices([device_json(device, "Касса 1", S01)])).status == 200
    employees = [employee_json(Ids(seed=4).new(), "Анна", [S01], last_name="Петрова")]
    assert (await cloud.sender.put_employees(employees)).status == 200

    rows = await dbstate.rows(cloud.db, evotor_entities, order_by=evotor_entities.c.kind)
    assert [(r.kind, r.name, r.store_uuid) for r in rows] == [
        ("device", "Касса 1", S01.lower()),
        ("employee", "Петрова Анна", None),
        ("store", "Магазин 1", S01.lower()),
    ]


async def test_products_created_on_a_till_are_matched_or_listed_for_review(cloud: Cloud) -> None:
    known = Ids(seed=5).new()
    unknown = Ids(seed=6).new()
    created = [
        till_product_json(known, "Кружка белая", "300", barcodes=[MUG.barcode or ""]),
        till_product_json(unknown, "Пирожок", "45", code="P-1"),
    ]

    assert (await cloud.sender.post_products(S01, created)).status == 200
    sale = till().sell([(Item(known, None, "Кружка белая", D("300")), 1)])
    assert (await cloud.sender.put_documents(S01, [sale])).status == 200

    assert await cloud.level("MUG") == (D(9), D(0))
    mapped = await dbstate.rows(cloud.db, evotor_products)
    assert [(r.evotor_uuid, r.origin) for r in mapped] == [(known.lower(), "till")]
    (item,) = await dbstate.rows(cloud.db, till_review)
    assert (item.kind, item.commodity_uuid, item.code) == ("unknown_till_product", unknown.lower(),
                                                           "P-1")  # fmt: skip


async def test_a_product_is_found_by_its_barcode(cloud: Cloud) -> None:
    found = await cloud.sender.commodities(MUG.barcode or "")
    none = await cloud.sender.commodities("0000000000000")

    assert found.status == 200 and none.status == 200
    assert [(p["name"], p["barCodes"], p["price"]) for p in found.body] == [
        ("Mug", [MUG.barcode], D("300.00"))
    ]
    assert none.body == []


async def test_an_account_is_linked_and_the_cloud_hands_over_its_token(cloud: Cloud) -> None:
    user = "01-000000000000001"
    wrong = await cloud.sender.user_verify(user, "integrator", "not-a-token")
    right = await cloud.sender.user_verify(user, "integrator", cloud.net.tokens["evotor"])
    created = await cloud.sender.user_create("01-000000000000002")
    handed = await cloud.sender.user_token(user, "cloud-token-0f3a")

    assert (wrong.status, wrong.body["errors"][0]["code"]) == (401, 1006)
    assert right.status == 200 and right.body["userId"] == user
    assert right.body["token"].startswith("os_") and right.body["hasBilling"] is False
    assert created.status == 200 and created.body["token"] != right.body["token"]
    assert handed.status == 200
    # the token handed back to the cloud opens the webhooks
    cloud.sender.token = right.body["token"]
    assert (await cloud.sender.put_stores([])).status == 200


async def test_a_batch_of_sales_is_recorded_as_each_sale_alone_would_be(cloud: Cloud) -> None:
    """On PostgreSQL the sales that free units cover are written together; the one that
    must displace a hold, and the one a return named first, are recorded one by one."""
    t = till()
    order = await placed(cloud.http, cloud.net.tokens["online"], pickup("S01", {"sku": "MUG",
                         "quantity": "9"}))  # fmt: skip
    sales = [t.sell([(TEA, 1), (COFFEE, 1)]) for _ in range(6)]
    sales.append(t.sell([(MUG, 2)]))  # 10 on hand, 9 held: takes one from the order
    named = t.sell([(TEA, 1)])
    await cloud.sender.put_documents(S01, [t.payback(named, [(TEA, 1)])])

    delivery = await cloud.sender.put_documents(S01, [*sales, named])
    again = await cloud.sender.put_documents(S01, [*sales, named])

    assert (delivery.status, again.status) == (200, 200)
    assert await cloud.level("TEA") == (D(10 - 6 - 1 + 1), D(0))
    assert await cloud.level("COFFEE") == (D(4), D(0))
    assert await cloud.level("MUG") == (D(8), D(8))
    records = await dbstate.rows(cloud.db, pos_transactions, pos_transactions.c.kind == "sale")
    assert len(records) == 8
    numbers = sorted(r.result["order_number"] for r in records)
    assert len(set(numbers)) == 8 and all(n > order["number"] for n in numbers)
    moved = await dbstate.movements(cloud.db, cloud.net, "TEA", "S01", reason="pos_sale")
    assert len(moved) == 7  # one per sale and product
    assert {r.state for r in await dbstate.rows(cloud.db, evotor_inbox)} == {"done"}
    (row,) = await dbstate.rows(cloud.db, pos_returned,
                                pos_returned.c.transaction_id == named["uuid"].lower())  # fmt: skip
    assert (row.sold, row.returned) == (D(1), D(1))
    assert await dbstate.drift(cloud.db) == (5, [])
