"""The console over HTTP, in-process: what answers without a session, logging in (the same
answer, after the same delay, for a wrong password and an unknown name), sessions ending
when the account changes, CSRF and the form guard, languages, search, and dead letters."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import insert

from ordersync.api.app import create_app
from ordersync.config import Settings
from ordersync.db import users
from ordersync.db.tables import bitrix_inbox, outbox_events, relay_dead
from ordersync.db.unit_of_work import Database
from ordersync.domain.types import StaffRole
from ordersync.services.attention import raise_attention
from ordersync.services.context import utcnow
from ordersync.ui.accounts import hash_password
from tests import support

PASSWORD = "correct horse battery"
KEY = "a-console-signing-key-for-the-tests-0123456789"
DELAY = 0.3


@dataclass
class Console:
    http: httpx.AsyncClient
    net: support.Network
    db: Database

    async def token(self, path: str = "/ui/") -> str:
        page = await self.http.get(path)
        found = re.search(r'name="csrftoken" value="([^"]+)"', page.text)
        assert found, page.text[:500]
        return found.group(1)

    async def login(self, name: str, password: str = PASSWORD) -> httpx.Response:
        self.http.cookies.delete("ordersync_console")  # whoever was logged in
        token = await self.token()
        return await self.http.post(
            "/ui/login", data={"csrftoken": token, "username": name, "password": password}
        )

    async def place(self, body: dict[str, object], role: str = "operator") -> dict[str, object]:
        headers = {"Authorization": f"Bearer {self.net.tokens[role]}"}
        answer = await self.http.post("/orders", json=body, headers=headers)
        assert answer.status_code == 201, answer.text
        result: dict[str, object] = answer.json()
        return result


@pytest.fixture
async def console(database_url: str, db: Database) -> AsyncIterator[Console]:
    net = await support.seed_network(
        db, {"WH1": {"TEA": 50}, "S01": {"TEA": 10}, "S02": {"TEA": 5}}
    )
    hashed = await hash_password(PASSWORD)
    async with db.uow() as uow:
        for name, role, stores in (
            ("olga", StaffRole.OPERATOR, []),
            ("root", StaffRole.ADMIN, []),
            ("shop1", StaffRole.STORE, [net.stores["S01"]]),
        ):
            await users.create_user(uow.conn, name, role, stores, hashed, utcnow())
        await uow.commit()
    settings = Settings(
        master="hub",
        database_url=database_url,
        catalog_cache_seconds=0,
        auth_cache_seconds=0,
        ui={"secret_key": KEY, "login_delay_seconds": DELAY},
    )
    app = create_app(settings, db=db, sweeper=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            yield Console(http, net, db)


PAGES = ["/ui/orders", "/ui/orders/1", "/ui/new", "/ui/stock", "/ui/stock/products/1", "/ui/pick",
         "/ui/attention", "/ui/system", "/ui/placed/1", "/ui/orders/1/cancel"]  # fmt: skip


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_every_screen_asks_for_a_login_and_only_the_login_page_and_files_do_not(
    console: Console,
) -> None:
    for path in PAGES:
        answer = await console.http.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/ui/?next=")
    for path in ("/ui/live", "/ui/products?q=tea"):
        assert (
            await console.http.get(path, headers={"Accept": "text/event-stream"})
        ).status_code == 401
    token = await console.token()
    answer = await console.http.post("/ui/orders/1/cancel", data={"csrftoken": token})
    assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/?next=")
    assert (await console.http.get("/ui/")).status_code == 200
    css = await console.http.get("/ui/static/console.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_wrong_password_and_an_unknown_name_get_the_same_answer_after_the_delay(
    console: Console,
) -> None:
    answers = []
    for name, password in (("olga", "wrong password"), ("nobody", "wrong password")):
        started = time.monotonic()
        answer = await console.login(name, password)
        took = time.monotonic() - started
        assert answer.status_code == 401
        assert took >= DELAY
        assert "ordersync_console" not in answer.headers.get("set-cookie", "")
        answers.append(answer.text.replace(f'value="{name}"', 'value=""'))
    body = [re.sub(r'name="csrftoken" value="[^"]+"', "", a) for a in answers]
    assert body[0] == body[1]

    answer = await console.login("olga")
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/orders"
    cookie = answer.headers["set-cookie"]
    assert "ordersync_console=" in cookie and "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower() and "path=/ui" in cookie.lower()
    assert (await console.http.get("/ui/orders")).status_code == 200


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_login_goes_back_to_the_page_asked_for_but_never_to_another_host(
    console: Console,
) -> None:
    token = await console.token()
    home = "/ui/orders"
    cases = [("/ui/stock?store=S01", "/ui/stock?store=S01"), ("https://evil.example/", home),
             ("//evil.example", home)]  # fmt: skip
    for target, lands in cases:
        console.http.cookies.delete("ordersync_console")
        form = {"csrftoken": token, "username": "olga", "password": PASSWORD, "next": target}
        answer = await console.http.post("/ui/login", data=form)
        assert answer.headers["location"] == lands


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_disabling_an_account_or_changing_its_password_ends_its_sessions(
    console: Console,
) -> None:
    await console.login("olga")
    assert (await console.http.get("/ui/orders")).status_code == 200
    async with console.db.uow() as uow:
        await users.set_password(uow.conn, "olga", await hash_password("a new password"), utcnow())
        await uow.commit()
    assert (await console.http.get("/ui/orders")).status_code == 303

    await console.login("olga", "a new password")
    async with console.db.uow() as uow:
        await users.disable(uow.conn, "olga", utcnow())
        await uow.commit()
    assert (await console.http.get("/ui/orders")).status_code == 303
    assert (await console.login("olga", "a new password")).status_code == 401


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_posts_without_the_csrf_token_or_not_a_form_are_refused_and_change_nothing(
    console: Console,
) -> None:
    order = await console.place(
        {"fulfillment": "delivery", "lines": [{"sku": "TEA", "quantity": 1}]}
    )
    await console.login("olga")
    token = await console.token("/ui/orders")
    path = f"/ui/orders/{order['number']}/cancel"
    assert (await console.http.post(path, data={"reason": "none"})).status_code == 403
    assert (await console.http.post(path, data={"csrftoken": "forged"})).status_code == 403
    assert (await console.http.post(path, json={"csrftoken": token})).status_code == 415
    latin = "csrftoken=x&name=\xff".encode("latin-1")
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    assert (await console.http.post(path, content=latin, headers=headers)).status_code == 400
    huge = b"csrftoken=x&comment=" + b"a" * 300_000
    assert (await console.http.post(path, content=huge, headers=headers)).status_code == 413
    headers = {"Authorization": f"Bearer {console.net.tokens['admin']}"}
    got = (await console.http.get(f"/orders/{order['id']}", headers=headers)).json()
    assert got["status"] == "placed"

    answer = await console.http.post(path, data={"csrftoken": token})
    assert answer.status_code == 303
    got = (await console.http.get(f"/orders/{order['id']}", headers=headers)).json()
    assert got["status"] == "cancelled"


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_the_language_is_the_users_choice_else_the_browsers_else_russian(
    console: Console,
) -> None:
    await console.login("olga")
    assert "Заказы" in (await console.http.get("/ui/orders")).text
    english = await console.http.get("/ui/orders", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert ">Orders<" in english.text and 'lang="en"' in english.text
    token = await console.token("/ui/orders")
    await console.http.post("/ui/language", data={"csrftoken": token, "locale": "en"})
    chosen = await console.http.get("/ui/orders", headers={"Accept-Language": "ru"})
    assert ">Orders<" in chosen.text


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_the_orders_screen_finds_orders_by_number_phone_name_and_external_id(
    console: Console,
) -> None:
    tea = [{"sku": "TEA", "quantity": 1}]
    ivan = await console.place({"fulfillment": "delivery", "lines": tea, "customer": {
        "name": "Иван Ёлкин", "phone": "8 (916) 123-45-67"}})  # fmt: skip
    site = await console.place({"fulfillment": "delivery", "lines": tea, "external_id": "B-77",
                                "customer": {"name": "Anna Smith", "phone": "+79031112233"}},
                               role="online")  # fmt: skip
    await console.login("olga")

    async def found(q: str) -> set[int]:
        page = await console.http.get("/ui/orders", params={"q": q})
        assert page.status_code == 200
        return {int(n) for n in re.findall(r'data-number="(\d+)"', page.text)}

    assert await found(str(ivan["number"])) == {ivan["number"]}
    assert await found("+7 916 123") == {ivan["number"]}
    assert await found("8916123") == {ivan["number"]}
    assert await found("79031112233") == {site["number"]}
    assert await found("ИВАН") == {ivan["number"]}
    assert await found("иван елкин") == {ivan["number"]}  # ё is е
    assert await found("anna s") == {site["number"]}
    assert await found("B-77") == {site["number"]}
    assert await found("Smith") == set()  # names are found by their beginning


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_store_user_sees_its_stores_orders_only(console: Console) -> None:
    tea = [{"sku": "TEA", "quantity": 1}]
    mine = await console.place({"fulfillment": "pickup", "store": "S01", "lines": tea})
    theirs = await console.place({"fulfillment": "pickup", "store": "S02", "lines": tea})
    await console.login("shop1")
    listed = (await console.http.get("/ui/orders")).text
    assert f'data-number="{mine["number"]}"' in listed
    assert f'data-number="{theirs["number"]}"' not in listed
    assert (await console.http.get(f"/ui/orders/{theirs['number']}")).status_code == 404
    assert (await console.http.get(f"/ui/orders/{theirs['number']}/hand_over")).status_code == 404
    assert (await console.http.get("/ui/pick?store=S02")).status_code == 422
    token = await console.token("/ui/orders")
    assert (await console.http.post(f"/ui/orders/{mine['number']}/cancel",
                                    data={"csrftoken": token})).status_code == 403  # fmt: skip
    handed = await console.http.post(f"/ui/orders/{mine['number']}/hand_over",
                                     data={"csrftoken": token})  # fmt: skip
    assert handed.status_code == 303


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_an_admin_drops_a_dead_letter_and_a_retry_without_its_sink_keeps_it(
    console: Console,
) -> None:
    now = datetime.now(UTC)
    async with console.db.uow() as uow:
        event_id = (await uow.conn.execute(insert(outbox_events).values(
            type="stock.changed", aggregate_type="stock", aggregate_id="1:1", payload={},
            created_at=now).returning(outbox_events.c.id))).scalar_one()  # fmt: skip
        for sink in ("erp", "gone"):
            dead = {"sink": sink, "event_id": event_id, "attempts": 5, "error": "422 refused"}
            await uow.conn.execute(insert(relay_dead).values(**dead, dead_at=now))
        await uow.commit()
    await console.login("olga")
    assert (await console.http.get("/ui/system")).status_code == 403
    await console.login("root")
    page = await console.http.get("/ui/system")
    assert page.text.count(f'data-event="{event_id}"') == 2
    token = await console.token("/ui/system")
    form = {"csrftoken": token, "sink": "gone", "event": str(event_id)}
    retried = await console.http.post("/ui/system/dead-letters", data={**form, "action": "retry"})
    assert retried.headers["location"] == "/ui/system?failed=retry"
    dropped = await console.http.post("/ui/system/dead-letters", data={**form, "action": "drop"})
    assert dropped.headers["location"] == "/ui/system?done=drop"
    page = await console.http.get("/ui/system")
    assert page.text.count(f'data-event="{event_id}"') == 1


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_bad_input_on_the_screens_is_a_4xx_page_never_a_500(console: Console) -> None:
    await console.login("olga")
    for path in ("/ui/orders?channel=fax", "/ui/orders?before=yesterday", "/ui/orders?date_from=x",
                 "/ui/orders/abc", "/ui/orders/99999999999999999999", "/ui/stock?after=x|y",
                 "/ui/stock?store=NOPE", "/ui/stock/products/99999999999", "/ui/orders/1/fly",
                 "/ui/live?channel=fax", "/ui/pick?store=NOPE"):  # fmt: skip
        answer = await console.http.get(path)
        assert 400 <= answer.status_code < 500, (path, answer.status_code)
    token = await console.token("/ui/new")
    good = {"token": "a" * 32, "fulfillment": "delivery", "product_id": "1", "quantity": "1"}
    for form in ({}, {"token": "x" * 32}, {**good, "product_id": "", "quantity": ""},
                 {**good, "quantity": "-1"}, {**good, "fulfillment": "pickup", "store": "NOPE"},
                 {**good, "product_id": "99999"}, {**good, "quantity": "100000"},
                 {**good, "fulfillment": "air"}):  # fmt: skip
        answer = await console.http.post("/ui/new", data={"csrftoken": token, **form})
        assert 400 <= answer.status_code < 500, (form, answer.status_code, answer.text[-300:])


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_product_search_gives_what_each_store_can_give_an_operator_now(
    console: Console,
) -> None:
    await console.login("olga")
    found = (await console.http.get("/ui/products", params={"q": "te"})).json()["products"]
    (tea,) = [p for p in found if p["sku"] == "TEA"]
    by_store = {s["code"]: Decimal(s["available"]) for s in tea["stores"]}
    assert by_store == {"WH1": 50, "S01": 9, "S02": 5}  # S01 keeps 1 back (safety stock)


async def test_a_till_line_that_matched_no_product_is_on_the_attention_screen_until_resolved(
    console: Console,
) -> None:
    sale = {
        "store": "S01",
        "pos_id": "T1",
        "transaction_id": "R-9",
        "lines": [{"sku": "TEA", "quantity": "1"}, {"sku": "NO-SUCH-TEA", "quantity": "2"}],
    }
    headers = {"Authorization": f"Bearer {console.net.tokens['pos']}"}
    assert (await console.http.post("/pos/sales", json=sale, headers=headers)).status_code == 201

    await console.login("shop1")
    page = await console.http.get("/ui/attention")
    found = re.search(r'<tr data-item="(\d+)">', page.text)
    assert found, page.text
    assert "NO-SUCH-TEA" in page.text
    assert "/ui/attention/till/" not in page.text  # store staff see it, managers sort it out
    token = await console.token("/ui/attention")
    refused = await console.http.post(
        f"/ui/attention/till/{found.group(1)}", data={"csrftoken": token, "resolution": "x"}
    )
    assert refused.status_code == 403

    await console.login("olga")
    token = await console.token("/ui/attention")
    done = await console.http.post(
        f"/ui/attention/till/{found.group(1)}",
        data={"csrftoken": token, "resolution": "a new product, entered in 1C"},
    )
    assert done.status_code == 303
    assert 'data-item="' not in (await console.http.get("/ui/attention")).text
    again = await console.http.post(
        f"/ui/attention/till/{found.group(1)}", data={"csrftoken": token, "resolution": "x"}
    )
    assert again.status_code == 404


async def test_an_operator_holds_a_cut_line_again_from_its_attention_item(
    console: Console,
) -> None:
    order = await console.place(
        {"fulfillment": "pickup", "store": "S01", "lines": [{"sku": "TEA", "quantity": "2"}]}
    )
    sale = {"store": "S01", "pos_id": "T1", "transaction_id": "R-10",
            "lines": [{"sku": "TEA", "quantity": "10"}]}  # fmt: skip
    headers = {"Authorization": f"Bearer {console.net.tokens['pos']}"}
    assert (await console.http.post("/pos/sales", json=sale, headers=headers)).status_code == 201
    number = order["number"]

    await console.login("olga")
    page = await console.http.get(f"/ui/orders/{number}")
    assert 'class="inline-form line-fix" data-line="1"' in page.text
    assert 'value="WH1"' not in page.text.split('data-line="1"')[1].split("</form>")[0]
    confirm = await console.http.get(f"/ui/orders/{number}/lines/1/hold_line?store=S01")
    assert confirm.status_code == 200 and 'name="store" value="S01"' in confirm.text
    token = await console.token(f"/ui/orders/{number}/lines/1/hold_line?store=S01")
    form = {"csrftoken": token, "store": "S01"}
    short = await console.http.post(f"/ui/orders/{number}/lines/1/hold_line", data=form)
    assert short.status_code == 409  # nothing free at S01 yet
    dropped = await console.http.post(
        f"/ui/orders/{number}/lines/1/drop_line", data={"csrftoken": token}
    )
    assert dropped.status_code == 409  # its only line: cancel the order instead

    await support.receive(console.db, "S01", "R-S01", TEA=5)
    done = await console.http.post(f"/ui/orders/{number}/lines/1/hold_line", data=form)
    assert done.status_code == 303
    page = await console.http.get(f"/ui/orders/{number}")
    assert "line-fix" not in page.text and 'data-store="S01"' in page.text

    await console.login("shop1")
    token = await console.token(f"/ui/orders/{number}")
    refused = await console.http.post(
        f"/ui/orders/{number}/lines/1/hold_line", data={"csrftoken": token, "store": "S01"}
    )
    assert refused.status_code == 403


async def test_the_orders_screen_filters_by_attention_and_by_the_day_placed(
    console: Console,
) -> None:
    tea = [{"sku": "TEA", "quantity": 1}]
    calm = await console.place({"fulfillment": "delivery", "lines": tea})
    flagged = await console.place({"fulfillment": "delivery", "lines": tea})
    async with console.db.uow() as uow:
        order = await uow.get_order(str(flagged["id"]), lock=True)
        assert order is not None
        await raise_attention(uow, order, "site_order_short", {"lines": [1]}, utcnow())
        await uow.commit()
    await console.login("olga")

    async def listed(**params: str) -> set[int]:
        page = await console.http.get("/ui/orders", params=params)
        assert page.status_code == 200, page.text
        return {int(n) for n in re.findall(r'data-number="(\d+)"', page.text)}

    both = {calm["number"], flagged["number"]}
    assert await listed() == both
    assert await listed(attention="1") == {flagged["number"]}
    today = datetime.now(ZoneInfo("Europe/Moscow")).date()
    assert await listed(date_from=today.isoformat(), date_to=today.isoformat()) == both
    tomorrow = (today + timedelta(days=1)).isoformat()
    assert await listed(date_from=tomorrow) == set()
    assert await listed(date_to=(today - timedelta(days=1)).isoformat()) == set()
    bad = await console.http.get("/ui/orders", params={"date_from": "29.11.2026"})
    assert bad.status_code == 422


async def test_a_site_event_refused_for_good_is_on_the_attention_screen_for_managers(
    console: Console,
) -> None:
    async with console.db.uow() as uow:
        await uow.conn.execute(
            insert(bitrix_inbox).values(
                event="ONSALEORDERSAVED",
                site_order_id="4711",
                body="{}",
                state="failed",
                error="order 4711: basket item 9 has no quantity",
                received_at=utcnow(),
            )
        )
        await uow.commit()

    await console.login("olga")
    page = await console.http.get("/ui/attention")
    assert 'data-site-event="' in page.text and "has no quantity" in page.text
    await console.login("shop1")
    assert "data-site-event" not in (await console.http.get("/ui/attention")).text
