"""The console in a real browser: Debian's headless chromium driven by Playwright, against the
hub served for real (uvicorn on a free port), on SQLite and, where the database changes what
happens (the live stream's wake-up, Cyrillic search, placement), on PostgreSQL too. The
screenshots in docs/screenshots are made here (`make screenshots`)."""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    Route,
    expect,
    sync_playwright,
)

from tests.e2e import console_hub
from tests.e2e.console_hub import PASSWORD, Hub

# `make screenshots` writes the README's pictures into docs/screenshots; an ordinary test run
# takes them all the same, into a scratch directory, so it leaves the tree as it found it.
SCREENSHOTS = Path(
    os.environ.get("ORDERSYNC_SCREENSHOTS")
    or Path(tempfile.gettempdir()) / f"ordersync-screenshots-{os.getpid()}"
)
OFFICE = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Hub]]:
    """Hubs by backend, started on first use and kept for the module."""
    cache: dict[str, Hub] = {}
    databases = console_hub.Databases(tmp_path_factory.mktemp("console"))
    yield cache
    for hub in cache.values():
        hub.stop()
    databases.drop()


@pytest.fixture
def hub(started: dict[str, Hub], backend: str, tmp_path_factory: pytest.TempPathFactory) -> Hub:
    if backend not in started:
        databases = console_hub.Databases(tmp_path_factory.mktemp(f"console-{backend}"))
        started[backend] = console_hub.start(databases.url(backend, "console"), backend)
    return started[backend]


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    console_hub.chromium_or_fail()
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(
        executable_path=console_hub.CHROMIUM, args=console_hub.CHROMIUM_FLAGS
    )
    yield browser
    browser.close()


class Offsite:
    """Every request a context made to a host other than the hub."""

    def __init__(self, context: BrowserContext, hub: Hub) -> None:
        self.requests: list[str] = []
        context.on("request", lambda r: self._seen(r.url, hub.url))

    def _seen(self, url: str, base: str) -> None:
        if not url.startswith(base) and not url.startswith(("data:", "blob:", "about:")):
            self.requests.append(url)


@pytest.fixture
def contexts(browser: Browser, hub: Hub) -> Iterator[list[BrowserContext]]:
    made: list[BrowserContext] = []
    yield made
    for context in made:
        context.close()


def new_context(
    browser: Browser, hub: Hub, made: list[BrowserContext], locale: str = "ru-RU", **kw: Any
) -> BrowserContext:
    context = browser.new_context(
        base_url=hub.url, viewport=kw.pop("viewport", OFFICE), locale=locale, **kw
    )
    made.append(context)
    return context


def login(context: BrowserContext, name: str, password: str = PASSWORD) -> Page:
    page = context.new_page()
    page.goto("/ui/")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    page.click("form.login-card button")
    page.wait_for_url(re.compile(r"/ui/orders"))
    return page


def menu(page: Page) -> list[str]:
    return [a.get_attribute("href") or "" for a in page.locator("nav.menu a").all()]


def placed_number(page: Page) -> int:
    return int(page.locator("#placed-number").inner_text())


# --- roles -----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"])
def test_each_role_logs_in_and_sees_only_what_it_may(
    hub: Hub, browser: Browser, contexts: list[BrowserContext]
) -> None:
    at_s02 = hub.place(
        {"fulfillment": "pickup", "store": "S02", "lines": [{"sku": "TEA", "quantity": 1}]}
    )
    at_s01 = hub.place(
        {"fulfillment": "pickup", "store": "S01", "lines": [{"sku": "MUG", "quantity": 1}]}
    )

    operator = login(new_context(browser, hub, contexts), "olga")
    assert menu(operator) == ["/ui/orders", "/ui/new", "/ui/stock", "/ui/pick", "/ui/attention"]
    assert operator.goto("/ui/system").status == 403
    assert operator.goto(f"/ui/orders/{at_s02['number']}").status == 200

    shop = login(new_context(browser, hub, contexts), "shop1")
    assert menu(shop) == ["/ui/orders", "/ui/stock", "/ui/pick", "/ui/attention"]
    shop.goto("/ui/orders")
    expect(shop.locator(f"tr[data-number='{at_s01['number']}']")).to_be_visible()
    expect(shop.locator(f"tr[data-number='{at_s02['number']}']")).to_have_count(0)
    assert shop.goto(f"/ui/orders/{at_s02['number']}").status == 404
    assert shop.goto("/ui/new").status == 403
    assert shop.goto("/ui/system").status == 403
    assert shop.goto("/ui/stock?store=WH1").status == 422
    shop.goto("/ui/stock")
    assert [o.get_attribute("value") for o in shop.locator("select[name=store] option").all()] == [
        "S01"
    ]
    shop.goto(f"/ui/orders/{at_s01['number']}")
    assert [a.get_attribute("data-action") for a in shop.locator(".actions a").all()] == [
        "hand_over"
    ]

    admin = login(new_context(browser, hub, contexts), "root")
    assert "/ui/system" in menu(admin)
    admin.goto("/ui/system")
    expect(admin.locator("h1")).to_have_text("Система")


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_wrong_password_is_refused_and_logout_ends_the_session(
    hub: Hub, browser: Browser, contexts: list[BrowserContext]
) -> None:
    context = new_context(browser, hub, contexts)
    page = context.new_page()
    page.goto("/ui/")
    page.fill("input[name=username]", "olga")
    page.fill("input[name=password]", "not the password")
    page.click("form.login-card button")
    expect(page.locator(".error")).to_have_text("Неверное имя или пароль.")

    page = login(context, "olga")
    page.click("#logout")
    page.wait_for_url(re.compile(r"/ui/$"))
    page.goto("/ui/orders")
    assert "/ui/?next=" in page.url


# --- the phone call and stock ----------------------------------------------------------------


def place_by_phone(page: Page, search: str, quantity: str, store: str | None, name: str) -> int:
    page.goto("/ui/new")
    page.fill("#product-search", search)
    page.locator("#results button.add").first.click()
    page.fill("#lines input[name=quantity]", quantity)
    if store is not None:
        page.check("input[name=fulfillment][value=pickup]")
        page.select_option("#pickup-store", store)
    page.fill("input[name=name]", name)
    page.fill("input[name=phone]", "+7 916 555-01-02")
    page.click("#place")
    page.wait_for_url(re.compile(r"/ui/placed/\d+"))
    return placed_number(page)


def available_on_screen(page: Page, store: str, sku: str) -> Decimal:
    page.goto(f"/ui/stock?store={store}")
    text = page.locator(f"tr[data-sku='{sku}'] td.available").inner_text()
    return Decimal(text.replace("\xa0", "").replace(" ", "").replace(",", "."))


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_phone_pickup_order_found_by_cyrillic_search_lowers_availability_on_the_stock_screen(
    hub: Hub, browser: Browser, contexts: list[BrowserContext]
) -> None:
    page = login(new_context(browser, hub, contexts), "olga")
    before = available_on_screen(page, "S01", "OOLONG-1")

    page.goto("/ui/new")
    page.fill("#product-search", "УЛУН")  # the product is "Чай Улун молочный"
    expect(page.locator("#results tbody tr")).to_have_count(1)
    # What an operator's order can take: available less the shop's safety stock (1 unit).
    expect(page.locator("#results .chip[data-store='S01']")).to_have_text(f"S01 {before - 1:f}")
    number = place_by_phone(page, "улун", "2", "S01", "Иван Петров")

    assert available_on_screen(page, "S01", "OOLONG-1") == before - 2
    page.goto(f"/ui/orders/{number}")
    expect(page.locator(".hold[data-store='S01']")).to_contain_text("2")
    assert hub.level("OOLONG-1", "S01")[2] == before - 2


# --- live ------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_an_order_placed_through_the_api_appears_on_the_orders_screens_within_a_second(
    hub: Hub, browser: Browser, contexts: list[BrowserContext]
) -> None:
    office = login(new_context(browser, hub, contexts), "olga")
    shop = login(new_context(browser, hub, contexts, locale="en-US"), "shop1")
    for page in (office, shop):
        page.goto("/ui/orders")
        expect(page.locator("body")).to_have_attribute("data-live", "on")

    order = hub.place(
        {"fulfillment": "pickup", "store": "S01", "lines": [{"sku": "TEA", "quantity": 1}],
         "customer": {"name": "Live Test"}},
        role="online",
    )  # fmt: skip
    placed_at = time.monotonic()
    for page in (office, shop):
        row = page.locator(f"#orders tr[data-number='{order['number']}']")
        expect(row).to_be_visible(timeout=1000)
    assert time.monotonic() - placed_at < 1.0
    expect(shop.locator(f"tr[data-number='{order['number']}'] .badge.st-placed")).to_have_text(
        "Placed"
    )

    hub.api("POST", f"/orders/{order['id']}/cancel", "operator")
    cancelled_at = time.monotonic()
    expect(
        office.locator(f"tr[data-number='{order['number']}'] .badge.st-cancelled")
    ).to_be_visible(timeout=1000)
    assert time.monotonic() - cancelled_at < 1.0


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_an_order_placed_after_the_page_was_read_but_before_its_stream_opened_is_shown(
    hub: Hub, browser: Browser, contexts: list[BrowserContext]
) -> None:
    office = login(new_context(browser, hub, contexts), "olga")
    placed: list[dict[str, Any]] = []

    def stream_opens_late(route: Route) -> None:
        if not placed:  # the page is read; its stream is not open yet
            placed.append(hub.place({"fulfillment": "delivery", "lines": [{"sku": "TEA",
                                     "quantity": 1}]}, role="online"))  # fmt: skip
            # The stream the login's page opened has read past the order or ended by now.
            time.sleep(1.5)
        route.continue_()

    office.route(re.compile(r"/ui/live\?"), stream_opens_late)
    office.goto("/ui/orders")
    expect(office.locator("body")).to_have_attribute("data-live", "on")
    (order,) = placed
    expect(office.locator(f"#orders tr[data-number='{order['number']}']")).to_be_visible(
        timeout=2000
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_an_orders_screen_says_it_changed_only_once_it_did(
    hub: Hub, browser: Browser, contexts: list[BrowserContext]
) -> None:
    order = hub.place({"fulfillment": "delivery", "lines": [{"sku": "TEA", "quantity": 1}]})
    assert hub.api("POST", f"/orders/{order['id']}/pay", "operator").status_code < 300
    page = login(new_context(browser, hub, contexts), "olga")
    page.goto(f"/ui/orders/{order['number']}")  # a change of a moment ago, already shown
    expect(page.locator("body")).to_have_attribute("data-live", "on")
    time.sleep(1.5)  # the stream has caught the screen up (on PostgreSQL, with that change)
    expect(page.locator("#order-changed")).to_be_hidden()

    assert hub.api("POST", f"/orders/{order['id']}/cancel", "operator").status_code < 300
    expect(page.locator("#order-changed")).to_be_visible(timeout=2000)


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """Server-sent events as the WHATWG spec reads them: fields until a blank line."""
    event: dict[str, str] = {}
    for line in lines:
        if not line:
            if "data" in event:
                yield event
            event = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            event[name] = value.removeprefix(" ")


def numbers(told: dict[str, str]) -> list[int]:
    rows = json.loads(told["data"])["rows"]
    return [int(re.findall(r'data-number="(\d+)"', row["html"])[0]) for row in rows]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_stream_reopened_with_its_last_event_id_hears_what_changed_while_it_was_down(
    hub: Hub, browser: Browser, contexts: list[BrowserContext]
) -> None:
    context = new_context(browser, hub, contexts)
    login(context, "olga")
    cookies = {c["name"]: c["value"] for c in context.cookies()}
    tea = [{"sku": "TEA", "quantity": 1}]
    with httpx.Client(base_url=hub.url, cookies=cookies, timeout=5) as http:
        with http.stream("GET", "/ui/live", params={"view": "orders"}) as stream:
            events = sse_events(stream.iter_lines())
            assert next(events)["event"] == "ready"
            seen = hub.place({"fulfillment": "delivery", "lines": tea})
            told = next(events)
            assert told["event"] == "orders" and numbers(told) == [seen["number"]]
        missed = hub.place({"fulfillment": "delivery", "lines": tea})  # while no stream is open
        headers = {"Last-Event-ID": told["id"]}
        with http.stream("GET", "/ui/live", params={"view": "orders"}, headers=headers) as again:
            events = sse_events(again.iter_lines())
            assert next(events)["event"] == "ready"
            told = next(events)
            assert missed["number"] in numbers(told)
            if hub.backend == "sqlite":  # exact; PostgreSQL may tell again of what was awaited
                assert numbers(told) == [missed["number"]]


# --- an order's actions ----------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"])
def test_cancel_from_the_order_screen_after_confirming_releases_the_hold(
    hub: Hub, browser: Browser, contexts: list[BrowserContext]
) -> None:
    receipt = {
        "store": "S01",
        "document_id": f"MUGS-{time.time()}",
        "lines": [{"sku": "MUG", "quantity": 5}],
    }
    assert hub.api("POST", "/stock/receipts", json=receipt).status_code == 201
    _, reserved_before, _ = hub.level("MUG", "S01")
    order = hub.place(
        {"fulfillment": "pickup", "store": "S01", "lines": [{"sku": "MUG", "quantity": 2}]}
    )
    assert hub.level("MUG", "S01")[1] == reserved_before + 2
    page = login(new_context(browser, hub, contexts), "olga")
    page.goto(f"/ui/orders/{order['number']}")
    expect(page.locator(".hold[data-store='S01']")).to_contain_text("в резерве")

    page.click("a[data-action='cancel']")
    page.wait_for_url(re.compile(rf"/ui/orders/{order['number']}/cancel$"))
    assert hub.level("MUG", "S01")[1] == reserved_before + 2  # nothing yet: it asks first
    page.click("#confirm")
    page.wait_for_url(re.compile(rf"/ui/orders/{order['number']}\?done=cancel"))

    expect(page.locator("#status")).to_have_text("Отменён")
    expect(page.locator(".hold[data-store='S01']")).to_contain_text("снят")
    assert hub.level("MUG", "S01")[1] == reserved_before
    expect(page.locator("#timeline li")).to_have_count(2)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_resubmitted_or_double_clicked_new_order_form_places_one_order(
    hub: Hub, browser: Browser, contexts: list[BrowserContext]
) -> None:
    context = new_context(browser, hub, contexts)
    page = login(context, "olga")
    page.goto("/ui/new")
    page.fill("#product-search", "TEA")
    page.locator("#results button.add").first.click()
    page.fill("input[name=name]", "Resubmitted Twice")
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/ui/new")) as sent:
        page.click("#place")
    page.wait_for_url(re.compile(r"/ui/placed/\d+"))
    number = placed_number(page)
    form = sent.value.post_data or ""

    again = context.request.post(
        "/ui/new",
        data=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        max_redirects=0,
    )
    assert again.status == 303
    assert again.headers["location"] == f"/ui/placed/{number}"
    page.go_back()  # the browser's own resubmission of the same form
    page.wait_for_load_state()

    page.goto("/ui/new")
    page.fill("#product-search", "TEA")
    page.locator("#results button.add").first.click()
    page.fill("input[name=name]", "Double Click")
    page.dblclick("#place")
    page.wait_for_url(re.compile(r"/ui/placed/\d+"))

    names = [
        o["customer"].get("name")
        for o in hub.api("GET", "/orders", params={"limit": 500}).json()["orders"]
    ]
    assert names.count("Resubmitted Twice") == 1
    assert names.count("Double Click") == 1


# --- CSRF, session expiry --------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_form_without_its_csrf_token_is_refused(
    hub: Hub, browser: Browser, contexts: list[BrowserContext]
) -> None:
    order = hub.place({"fulfillment": "delivery", "lines": [{"sku": "TEA", "quantity": 1}]})
    context = new_context(browser, hub, contexts)
    login(context, "olga")
    for form in ({}, {"csrftoken": "forged"}):
        answer = context.request.post(
            f"/ui/orders/{order['number']}/cancel", form=form, max_redirects=0
        )
        assert answer.status == 403
    assert hub.api("GET", f"/orders/{order['id']}").json()["status"] == "placed"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_idle_session_ends_and_an_open_dashboard_goes_back_to_the_login(
    hub: Hub, browser: Browser, contexts: list[BrowserContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ordersync.ui.routes import live

    monkeypatch.setattr(live, "CHECK_SECONDS", 0.3)
    context = new_context(browser, hub, contexts)
    page = login(context, "olga")
    expect(page.locator("body")).to_have_attribute("data-live", "on")
    monkeypatch.setattr(hub.console, "idle_seconds", 1.5)

    page.wait_for_url(re.compile(r"/ui/\?next="), timeout=6000)  # the stream said: expired
    expect(page.locator("input[name=username]")).to_be_visible()
    other = context.new_page()
    other.goto("/ui/stock")
    assert "/ui/?next=" in other.url


# --- /docs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"])
def test_docs_render_and_authorize_with_no_network(
    hub: Hub, browser: Browser, contexts: list[BrowserContext]
) -> None:
    context = new_context(browser, hub, contexts, locale="en-US")
    offsite = Offsite(context, hub)
    page = context.new_page()
    page.goto("/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("ordersync", timeout=10000)

    page.click("button.authorize")
    page.locator(".modal-ux input").first.fill(hub.tokens["admin"])
    page.locator(".modal-ux button.authorize").click()
    page.locator(".modal-ux button.btn-done").click()
    operation = page.locator("#operations-catalog-list_stores_stores_get")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    with page.expect_response(lambda r: r.url.endswith("/stores")) as answer:
        operation.locator("button.execute").click()
    assert answer.value.status == 200
    assert answer.value.request.headers["authorization"] == f"Bearer {hub.tokens['admin']}"
    expect(
        operation.locator(".live-responses-table tbody .response-col_status").first
    ).to_have_text("200")
    assert offsite.requests == []


# --- screens at an office screen and on a phone; the README's screenshots ---------------------


def fits(page: Page) -> bool:
    width: int = page.evaluate("document.documentElement.scrollWidth")
    return width <= page.viewport_size["width"] if page.viewport_size else False


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_main_screens_fit_an_office_screen_and_the_pick_list_a_phone(
    hub: Hub, browser: Browser, contexts: list[BrowserContext]
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    maria = {"name": "Мария Соколова", "phone": "+7 903 123-45-67", "address": "ул. Ленина, 7"}
    two = [{"sku": "COFFEE", "quantity": 2}, {"sku": "TEA", "quantity": 1}]
    hub.place({"fulfillment": "delivery", "lines": two, "customer": maria}, role="online")
    sale = {"store": "S01", "pos_id": "T1", "transaction_id": f"shot-{time.time()}",
            "lines": [{"sku": "TEA", "quantity": 1}]}  # fmt: skip
    hub.api("POST", "/pos/sales", "pos", json=sale)
    pavel = {"name": "Павел Козлов", "phone": "+7 916 700-00-01"}
    oolong = [{"sku": "OOLONG-1", "quantity": 1}]
    pickup = hub.place(
        {"fulfillment": "pickup", "store": "S01", "lines": oolong, "customer": pavel}
    )
    hub.api("POST", f"/orders/{pickup['id']}/pay", "operator")
    context = new_context(browser, hub, contexts)
    admin = login(context, "root")
    for path, name in (
        ("/ui/orders", "orders"),
        (f"/ui/orders/{pickup['number']}", "order"),
        ("/ui/stock?store=S01", "stock"),
        ("/ui/attention", "attention"),
        ("/ui/system", "system"),
    ):
        admin.goto(path)
        assert fits(admin), f"{path} is wider than 1366 px"
        admin.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
    admin.goto("/ui/new")
    admin.fill("#product-search", "чай")
    expect(admin.locator("#results tbody tr").first).to_be_visible()
    admin.locator("#results button.add").first.click()
    assert fits(admin)
    admin.screenshot(path=str(SCREENSHOTS / "new-order.png"))

    phone = login(new_context(browser, hub, contexts, viewport=PHONE, is_mobile=True), "shop1")
    phone.goto("/ui/pick")
    expect(phone.locator(f".pick[data-number='{pickup['number']}']")).to_be_visible()
    assert fits(phone), "the pick list is wider than a phone"
    phone.screenshot(path=str(SCREENSHOTS / "pick-list-phone.png"), full_page=True)
    phone.goto("/ui/")
