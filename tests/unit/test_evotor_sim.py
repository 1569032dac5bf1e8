"""The Evotor simulator's own behaviour (it is product-grade test code): the sender's paths,
headers and resends against a small ASGI hub, the documents its till writes against the
required fields of definitions.yaml, and the REST side's rules (token, rate limit, products,
documents by close time)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import uvicorn

from tests.evotor_sim import (
    DEFECTS,
    FREE_PRICE,
    CloudApi,
    Ids,
    Item,
    ProtocolError,
    Till,
    WebhookSender,
    broken,
    doc_time,
    free_price_item,
    till_product_json,
    to_json,
)

D = Decimal
STORE = "20170228-F4F1-401B-80FA-9ECCA8451FFB"
TEA = Item("74e99680-3f9b-4abe-b902-fe197cf28ed2", "TEA-001", "Чай", D("199.99"))
NOW = datetime(2024, 6, 15, 12, 0, tzinfo=UTC)
# definitions.yaml#/document: required
REQUIRED = {
    "uuid",
    "type",
    "deviceUuid",
    "closeDate",
    "openDate",
    "openUserCode",
    "openUserUuid",
    "closeUserCode",
    "closeUserUuid",
    "sessionUUID",
    "sessionNumber",
    "number",
    "closeResultSum",
    "closeSum",
    "storeUuid",
    "extras",
    "version",
}

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class Hub:
    """A stand-in hub: records each request; answers `status`, after `delays` (one a call)."""

    status: int = 200
    delays: list[float] = field(default_factory=list)
    seen: list[dict[str, Any]] = field(default_factory=list)
    finished: int = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.seen.append(
            {
                "method": scope["method"],
                "path": scope["path"],
                "query": scope["query_string"],
                "headers": headers,
                "body": body,
            }
        )
        if self.delays:
            await asyncio.sleep(self.delays.pop(0))
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"ok": true}'})
        self.finished += 1


# --- the sender ---------------------------------------------------------------------------------


async def test_every_webhook_goes_to_its_documented_path_with_the_bearer_token() -> None:
    hub = Hub()
    sender = WebhookSender(hub, token="t0ken", prefix="/evotor/")
    till = Till(STORE)
    sale = till.sell([(TEA, 1)])

    await sender.put_stores([{"uuid": STORE, "name": "A"}])
    await sender.put_devices([])
    await sender.put_employees([])
    await sender.put_documents(STORE, [sale])
    await sender.post_receipt(till.receipt_event(sale))
    await sender.post_receipts([till.flat_receipt(sale)])
    await sender.post_products(STORE, [till_product_json(Ids().new(), "Сидр", "123.12")])
    await sender.commodities("2000000000060", alc_code="0000000000000000001")
    await sender.user_verify("01-000000000000001", "user", "secret")
    await sender.user_create("01-000000000000001", inn="7700000000")
    await sender.user_token("01-000000000000001", "cloud-token")
    await sender.aclose()

    assert [(s["method"], s["path"]) for s in hub.seen] == [
        ("PUT", "/evotor/api/v1/inventories/stores"),
        ("PUT", "/evotor/api/v1/inventories/devices"),
        ("PUT", "/evotor/api/v1/inventories/employees"),
        ("PUT", f"/evotor/api/v1/inventories/stores/{STORE}/documents"),
        ("POST", "/evotor/api/v2/receipts"),
        ("POST", "/evotor/api/v2/receipts"),
        ("POST", f"/evotor/api/v1/inventories/stores/{STORE}/products"),
        ("GET", "/evotor/api/v1/commodities"),
        ("POST", "/evotor/api/v1/user/verify"),
        ("POST", "/evotor/api/v1/user/create"),
        ("POST", "/evotor/api/v1/user/token"),
    ]
    assert {s["headers"]["authorization"] for s in hub.seen} == {"Bearer t0ken"}
    assert hub.seen[7]["query"] == b"scanCode=2000000000060&alcCode=0000000000000000001"
    assert hub.seen[3]["headers"]["content-type"] == "application/json;charset=UTF-8"
    assert b'"quantity":1.000' in hub.seen[3]["body"] and b'"price":199.99' in hub.seen[3]["body"]
    assert all(d.delivered for d in sender.deliveries)


async def test_a_webhook_not_answered_in_time_is_sent_again_and_the_first_still_finishes() -> None:
    hub = Hub(delays=[0.3, 0.0])
    sender = WebhookSender(hub, resend_after=0.05)

    delivery = await sender.put_documents(STORE, [Till(STORE).sell([(TEA, 1)])])

    assert [a.status for a in delivery.attempts] == [None, 200] and delivery.delivered
    assert delivery.attempts[0].elapsed >= 0.05 and hub.finished == 1
    await sender.drain()
    assert hub.finished == 2 and hub.seen[0]["body"] == hub.seen[1]["body"]
    await sender.aclose()


async def test_against_a_real_server_a_slow_answer_is_sent_again_over_the_network() -> None:
    hub = Hub(delays=[0.3, 0.0])
    server = uvicorn.Server(uvicorn.Config(hub, host="127.0.0.1", port=0, log_level="error"))
    serving = asyncio.create_task(server.serve())
    for _ in range(500):  # up to 5 s for the server to listen
        if server.started:
            break
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    sender = WebhookSender(base_url=f"http://127.0.0.1:{port}", resend_after=0.1)
    try:
        delivery = await sender.put_stores([{"uuid": STORE, "name": "A"}])
        await sender.drain()
    finally:
        await sender.aclose()
        server.should_exit = True
        await serving

    assert [a.status for a in delivery.attempts] == [None, 200]
    assert len(hub.seen) == 2 and hub.finished == 2


async def test_a_5xx_is_sent_again_up_to_the_limit_and_a_4xx_is_not() -> None:
    failing, refusing = Hub(status=500), Hub(status=400)
    for hub, attempts in ((failing, 3), (refusing, 1)):
        sender = WebhookSender(hub, max_attempts=3)
        delivery = await sender.put_stores([])
        await sender.aclose()
        assert len(delivery.attempts) == attempts and len(hub.seen) == attempts
        assert not delivery.delivered and delivery.body == {"ok": True}


async def test_the_account_calls_may_use_basic_authorization() -> None:
    hub = Hub()
    sender = WebhookSender(hub, token="login:password")

    await sender.send(
        "POST", "/api/v1/user/verify", {"userId": "01-000000000000001"}, scheme="Basic"
    )
    await sender.aclose()

    assert hub.seen[0]["headers"]["authorization"] == "Basic bG9naW46cGFzc3dvcmQ="


# --- the till -----------------------------------------------------------------------------------


def all_documents(till: Till) -> list[dict[str, Any]]:
    opened = till.open_session()
    sale = till.sell([(TEA, 2), (free_price_item("10.00"), 1)])
    return [
        opened,
        sale,
        till.payback(sale, [(TEA, 1)]),
        till.accept([(TEA, 5)]),
        till.write_off([(TEA, 1)]),
        till.inventory([(TEA, 6, 5)]),
        till.supplier_return([(TEA, 1)]),
        till.cash_income("100"),
        till.cash_outcome("50"),
        till.x_report(),
        till.z_report(),
        till.revaluation(TEA, "219.99"),
        till.open_tare(TEA),
        till.close_session(),
    ]


@pytest.mark.parametrize("style", Ids.STYLES)
def test_every_v1_document_has_the_fields_the_documentation_requires(style: str) -> None:
    till = Till(STORE, ids=Ids(style))

    documents = all_documents(till)

    for document in documents:
        assert set(document) >= REQUIRED, document["type"]
        assert document["transactions"], document["type"]
        json.loads(to_json(document))
    numbers = [d["number"] for d in documents]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    closes = [d["closeDate"] for d in documents]
    assert closes == sorted(closes)


def test_ids_come_in_the_styles_of_real_traffic() -> None:
    lower, upper, dated = (Ids(style, seed=3).new() for style in Ids.STYLES)

    assert lower == lower.lower() and upper == lower.upper() and lower[9:] == dated[9:].lower()
    assert dated.startswith("20190528-") and dated[9:] == dated[9:].upper()
    assert Ids(seed=3).new() == lower  # reproducible


def test_a_payback_names_its_sale_with_negative_quantities_and_sums() -> None:
    till = Till(STORE)
    sale = till.sell([(TEA, 3)])

    back = till.payback(sale, [(TEA, 2)])

    opened, line = back["transactions"][0], back["transactions"][1]
    assert (opened["baseDocumentUUID"], opened["baseDocumentNumber"]) == (sale["uuid"], "1")
    assert line["quantity"] == D("-2.000") and line["sum"] == D("-399.98")
    assert back["closeResultSum"] == "399.98"


def test_a_free_price_line_carries_the_reserved_uuid_and_a_code() -> None:
    sale = Till(STORE).sell([(free_price_item("10.00"), 1)])

    line = sale["transactions"][1]

    assert (line["commodityUuid"], line["commodityCode"]) == (FREE_PRICE, "1")


def test_the_receipt_event_of_a_sale_names_the_sales_uuid() -> None:
    till = Till(STORE)
    sale = till.sell([(TEA, 2)], discount_percent=10)

    event = till.receipt_event(sale)

    assert set(event) == {"id", "timestamp", "userId", "type", "version", "data"}
    assert event["data"]["id"] == sale["uuid"] and event["data"]["items"][0]["id"] == TEA.uuid
    assert event["data"]["items"][0]["discount"] == D("40.00")
    with pytest.raises(ProtocolError):
        till.receipt_event(till.accept([(TEA, 1)]))


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_each_defect_breaks_a_copy_and_leaves_the_document(defect: str) -> None:
    sale = Till(STORE).sell([(TEA, 1)])
    before = to_json(sale)

    assert broken(sale, defect) != sale and to_json(sale) == before


def test_the_simulator_writes_no_floats() -> None:
    with pytest.raises(ProtocolError):
        to_json({"price": 1.5})


# --- the REST side ------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def call(
    api: CloudApi, method: str, path: str, body: Any = None, token: str | None = None, **params: str
) -> httpx.Response:
    headers = {"X-Authorization": api.token if token is None else token}
    content = None
    if body is not None:
        content = to_json(body).encode()
        headers["Content-Type"] = "application/json"
    request = httpx.Request(
        method, f"https://api.evotor.ru{path}", params=params, headers=headers, content=content
    )
    return api.handler(request)


def test_the_rest_api_refuses_a_wrong_token_with_code_1002() -> None:
    api = CloudApi()

    response = call(api, "GET", "/api/v1/inventories/stores/search", token="nope")

    assert response.status_code == 401 and response.json()["errors"][0]["code"] == 1002


def test_the_rate_limit_counts_down_refuses_with_429_and_resets_with_the_interval() -> None:
    clock = Clock()
    api = CloudApi(limit=2, window=60, clock=clock)
    path = "/api/v1/inventories/stores/search"

    first, second = call(api, "GET", path), call(api, "GET", path)
    clock.now = 59.5
    third = call(api, "GET", path)
    clock.now = 60
    fourth = call(api, "GET", path)

    assert [r.headers["X-RateLimit-Remaining"] for r in (first, second)] == ["1", "0"]
    assert third.status_code == 429 and third.headers["X-RateLimit-Reset"] == "1"
    assert fourth.status_code == 200 and fourth.headers["X-RateLimit-Limit"] == "2"


def test_every_nth_request_can_be_refused_with_429() -> None:
    api = CloudApi(limit=100)
    api.throttle_every(3)

    statuses = [call(api, "GET", "/api/v1/inventories/stores/search").status_code for _ in range(7)]
    api.throttle_every(None)

    assert statuses == [200, 200, 429, 200, 200, 429, 200]
    assert call(api, "GET", "/api/v1/inventories/stores/search").status_code == 200


def test_products_breaking_the_schema_or_sent_twice_are_counted_and_not_kept() -> None:
    api = CloudApi()
    good = till_product_json("0b0c2f0e-7d1a-4c55-9a57-000000000001", "Чай", "10.00")
    twice = till_product_json("0b0c2f0e-7d1a-4c55-9a57-000000000002", "Сыр", "10.00")
    bad = good | {"uuid": "NOT-A-UUID", "tax": "VAT_7"}
    path = f"/api/v1/inventories/stores/{STORE}/products"

    response = call(api, "POST", path, [good, twice, bad, twice])

    assert response.headers["X-Products-Violations-Count"] == "3"
    assert list(api.products[STORE]) == [good["uuid"]]
    call(api, "POST", f"{path}/delete", [])
    assert api.products[STORE] == {}


def test_documents_are_served_strictly_between_the_close_dates_asked() -> None:
    api = CloudApi(now=lambda: NOW)
    till = Till(STORE)
    edge = NOW - timedelta(days=2)
    api.add_documents(
        STORE, [till.sell([(TEA, 1)], at=edge + timedelta(milliseconds=m)) for m in (0, 1, 2)]
    )
    path = f"/api/v1/inventories/stores/{STORE}/documents"

    response = call(
        api,
        "GET",
        path,
        gtCloseDate=doc_time(edge),
        ltCloseDate=doc_time(edge + timedelta(milliseconds=2)),
    )

    assert [d["closeDate"] for d in response.json()] == [doc_time(edge + timedelta(milliseconds=1))]


@pytest.mark.parametrize(
    ("after", "before", "subject"),
    [
        (NOW - timedelta(days=40), NOW, "ltCloseDate"),
        (NOW - timedelta(days=200), NOW - timedelta(days=190), "gtCloseDate"),
    ],
)
def test_documents_are_refused_for_a_range_over_a_month_or_older_than_six_months(
    after: datetime, before: datetime, subject: str
) -> None:
    api = CloudApi(now=lambda: NOW)
    path = f"/api/v1/inventories/stores/{STORE}/documents"

    response = call(api, "GET", path, gtCloseDate=doc_time(after), ltCloseDate=doc_time(before))

    assert response.status_code == 400
    assert response.json()["errors"][0] == {
        "code": 2003,
        "reason": response.json()["errors"][0]["reason"],
        "subject": subject,
    }


def test_a_close_date_not_in_the_documented_format_is_refused() -> None:
    api = CloudApi(now=lambda: NOW)
    path = f"/api/v1/inventories/stores/{STORE}/documents"

    response = call(api, "GET", path, gtCloseDate="2024-06-14T12:00:00Z")

    assert response.status_code == 400


def test_a_body_that_is_not_json_is_a_protocol_error() -> None:
    api = CloudApi()
    request = httpx.Request(
        "POST",
        f"https://api.evotor.ru/api/v1/inventories/stores/{STORE}/products",
        headers={"X-Authorization": api.token, "Content-Type": "application/json"},
        content=b"not json",
    )

    with pytest.raises(ProtocolError):
        api.handler(request)
