"""The webhook and 1C push sinks over HTTP (no database): httpx.MockTransport for what the
receiver answers, real local sockets for timeouts and refused connections."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from ordersync.domain import events
from ordersync.sinks.base import DeliveryFailed, OutboxEvent
from ordersync.sinks.filters import EventFilter
from ordersync.sinks.onec_push import OneCPushSink
from ordersync.sinks.signing import verify
from ordersync.sinks.webhook import WebhookSink, retry_after_seconds

SECRET = b"webhook-secret-do-not-leak"
NOW = 1_700_000_000.0
URL = "https://receiver.example/hooks/ordersync?token=abc"
CREATED = datetime(2026, 11, 27, 10, 30, tzinfo=UTC)
ALL = EventFilter()


def stock_event(event_id: int, store_id: int = 1, **extra: Any) -> OutboxEvent:
    payload: dict[str, Any] = {
        "product_id": 7,
        "store_id": store_id,
        "on_hand": "5",
        "reserved": "1",
        "available": "4",
        "reason": "hold",
        "document_type": "order",
        "document_id": "ord-1",
        **extra,
    }
    return OutboxEvent(event_id, "stock.changed", "stock", f"7:{store_id}", payload, CREATED)


def order_event(
    event_id: int, event_type: str = "order.created", payload: dict[str, Any] | None = None
) -> OutboxEvent:
    body = payload if payload is not None else {"order_id": "ord-1", "store_id": None}
    return OutboxEvent(event_id, event_type, "order", "ord-1", body, CREATED)


class Receiver:
    """A MockTransport that records requests and answers with the given response."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self._answer = answer or (lambda request: httpx.Response(200))

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self._answer(request)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handler))

    @property
    def only(self) -> httpx.Request:
        assert len(self.requests) == 1
        return self.requests[0]


def webhook(client: httpx.AsyncClient, **kwargs: Any) -> WebhookSink:
    options: dict[str, Any] = {"event_filter": ALL, "client": client, "clock": lambda: NOW}
    options.update(kwargs)
    return WebhookSink("shop", URL, SECRET, **options)


async def deliver_answered(
    response: httpx.Response, events: Sequence[OutboxEvent] | None = None
) -> DeliveryFailed:
    receiver = Receiver(lambda request: response)
    async with receiver.client() as client:
        with pytest.raises(DeliveryFailed) as caught:
            await webhook(client).deliver(events or [stock_event(1)])
    assert len(receiver.requests) == 1
    return caught.value


# --- the request ------------------------------------------------------------------------------


async def test_the_body_is_the_sink_name_and_the_events_in_batch_order() -> None:
    receiver = Receiver()
    events = [stock_event(5), order_event(3), stock_event(9, store_id=2)]
    async with receiver.client() as client:
        await webhook(client).deliver(events)
    request = receiver.only
    assert request.method == "POST"
    assert str(request.url) == URL
    body = json.loads(request.content)
    assert body == {"sink": "shop", "events": [event.as_json() for event in events]}
    assert [event["id"] for event in body["events"]] == [5, 3, 9]
    assert request.headers["X-Ordersync-Event-Ids"] == "5,3,9"
    assert b" " not in request.content  # compact separators


async def test_the_headers_carry_type_agent_timestamp_and_signature() -> None:
    receiver = Receiver()
    async with receiver.client() as client:
        await webhook(client).deliver([stock_event(1)])
    headers = receiver.only.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "ordersync"
    assert headers["X-Ordersync-Timestamp"] == "1700000000"
    assert headers["X-Ordersync-Signature"].startswith("t=1700000000,v1=")


async def test_the_signature_verifies_with_the_secret_only_over_the_exact_body() -> None:
    receiver = Receiver()
    async with receiver.client() as client:
        await webhook(client).deliver([stock_event(1), order_event(2)])
    request = receiver.only
    header = request.headers["X-Ordersync-Signature"]
    assert verify(SECRET, header, request.content, now=NOW + 10)
    assert not verify(b"wrong-secret", header, request.content, now=NOW + 10)
    assert not verify(SECRET, header, request.content.replace(b'"id":2', b'"id":3'), now=NOW)
    assert not verify(SECRET, header, request.content, now=NOW + 301)


async def test_a_str_secret_signs_like_its_utf8_bytes() -> None:
    receiver = Receiver()
    async with receiver.client() as client:
        sink = WebhookSink("shop", URL, "секрет", ALL, client=client, clock=lambda: NOW)
        await sink.deliver([stock_event(1)])
    request = receiver.only
    header = request.headers["X-Ordersync-Signature"]
    assert verify("секрет".encode(), header, request.content, now=NOW)


async def test_cyrillic_payloads_round_trip_as_utf8_text() -> None:
    receiver = Receiver()
    event = stock_event(1, name="Чай зелёный «Сенча»", note="склад №1")
    async with receiver.client() as client:
        await webhook(client).deliver([event])
    content = receiver.only.content
    assert "Чай зелёный «Сенча»".encode() in content  # not \u-escaped
    assert b"\\u" not in content
    assert json.loads(content.decode("utf-8"))["events"][0]["payload"] == event.payload


async def test_an_empty_batch_sends_nothing() -> None:
    receiver = Receiver()
    async with receiver.client() as client:
        await webhook(client).deliver([])
    assert receiver.requests == []


# --- the answers ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204])
async def test_a_2xx_answer_acknowledges_the_batch(status: int) -> None:
    receiver = Receiver(lambda request: httpx.Response(status))
    async with receiver.client() as client:
        await webhook(client).deliver([stock_event(1)])
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("status", [500, 400, 404, 302])
async def test_any_other_status_fails_the_batch_naming_the_status(status: int) -> None:
    failure = await deliver_answered(httpx.Response(status, text="boom happened"))
    assert f"HTTP {status}" in str(failure)
    assert "'shop'" in str(failure)
    assert failure.retry_after is None


@pytest.mark.parametrize("status", [400, 409, 413, 415, 422])
async def test_a_4xx_that_judges_the_content_refuses_the_batch_for_good(status: int) -> None:
    """The receiver refused what was sent: sending it again unchanged cannot help, so the
    relay narrows it down to the event and dead-letters that one."""
    assert (await deliver_answered(httpx.Response(status))).permanent


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 302])
async def test_408_429_5xx_and_redirects_say_the_receiver_is_down_not_the_event_bad(
    status: int,
) -> None:
    assert not (await deliver_answered(httpx.Response(status))).permanent


@pytest.mark.parametrize("status", [401, 403, 404, 405, 407, 410, 421])
async def test_a_misconfigured_receiver_s_answer_is_retried_not_dead_lettered(
    status: int,
) -> None:
    """Wrong credentials or a wrong path answer every event alike: dead-lettering them one
    by one would empty the outbox into the dead letters; the lane waits for the fix."""
    assert not (await deliver_answered(httpx.Response(status))).permanent


async def test_a_failure_message_never_leaks_the_secret_or_the_url_token() -> None:
    failure = await deliver_answered(httpx.Response(500, text="nope"))
    message = str(failure)
    assert "receiver.example" in message
    assert SECRET.decode() not in message
    assert "token=abc" not in message


async def test_503_with_retry_after_seconds_gives_retry_after() -> None:
    failure = await deliver_answered(httpx.Response(503, headers={"Retry-After": "7"}))
    assert failure.retry_after == 7
    assert "HTTP 503" in str(failure)


async def test_429_with_retry_after_seconds_gives_retry_after() -> None:
    failure = await deliver_answered(httpx.Response(429, headers={"Retry-After": "30"}))
    assert failure.retry_after == 30


async def test_503_with_retry_after_as_http_date_gives_seconds_from_now() -> None:
    when = format_datetime(datetime.fromtimestamp(NOW + 120, tz=UTC), usegmt=True)
    failure = await deliver_answered(httpx.Response(503, headers={"Retry-After": when}))
    assert failure.retry_after == pytest.approx(120)


async def test_503_without_retry_after_and_500_with_it_give_none() -> None:
    assert (await deliver_answered(httpx.Response(503))).retry_after is None
    failure = await deliver_answered(httpx.Response(500, headers={"Retry-After": "7"}))
    assert failure.retry_after is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        (" 0 ", 0.0),
        ("Tue, 14 Nov 2023 22:15:20 GMT", 120.0),  # NOW + 120
        ("Tue, 14 Nov 2023 22:00:00 GMT", 0.0),  # in the past
        ("soon", None),
        ("-5", None),
        (None, None),
    ],
)
def test_retry_after_parsing(value: str | None, expected: float | None) -> None:
    assert retry_after_seconds(value, NOW) == expected


# --- transport failures (real sockets) ---------------------------------------------------------


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """A local server that accepts connections and never answers."""
    release = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/hook"
    release.set()
    server.close()
    await server.wait_closed()


async def test_a_timeout_fails_the_batch(silent_server: str) -> None:
    sink = WebhookSink("shop", silent_server, SECRET, ALL, timeout_seconds=0.2)
    try:
        with pytest.raises(DeliveryFailed, match="timed out") as caught:
            await asyncio.wait_for(sink.deliver([stock_event(1)]), 5)
    finally:
        await sink.close()
    assert caught.value.retry_after is None
    assert not caught.value.permanent


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_a_refused_connection_fails_the_batch() -> None:
    sink = WebhookSink("shop", f"http://127.0.0.1:{closed_port()}/hook", SECRET, ALL)
    try:
        with pytest.raises(DeliveryFailed, match="ConnectError") as caught:
            await sink.deliver([stock_event(1)])
    finally:
        await sink.close()
    assert SECRET.decode() not in str(caught.value)
    assert not caught.value.permanent


# --- client ownership and construction ---------------------------------------------------------


async def test_close_closes_an_owned_client_but_not_a_passed_one() -> None:
    owned = WebhookSink("shop", URL, SECRET, ALL)
    await owned.close()
    assert owned._client.is_closed
    async with Receiver().client() as client:
        await webhook(client).close()
        assert not client.is_closed


@pytest.mark.parametrize("url", ["ftp://x.example/", "/relative/path"])
def test_a_non_http_url_is_refused_at_construction(url: str) -> None:
    with pytest.raises(ValueError):
        WebhookSink("shop", url, SECRET, ALL)


async def test_repr_does_not_show_the_secret() -> None:
    async with Receiver().client() as client:
        assert SECRET.decode() not in repr(webhook(client))
        assert "пароль" not in repr(onec(client))


# --- the filter ---------------------------------------------------------------------------------


def test_the_type_filter_keeps_listed_types_only() -> None:
    only_stock = EventFilter(types=frozenset({"stock.changed"}))
    assert only_stock.matches(stock_event(1))
    assert not only_stock.matches(order_event(2))
    assert ALL.matches(order_event(2, "order.paid", {"order_id": "ord-1"}))


def test_the_store_filter_keeps_listed_stores_only() -> None:
    stores = EventFilter(stores=frozenset({1, 3}))
    assert stores.matches(stock_event(1, store_id=1))
    assert stores.matches(stock_event(2, store_id=3))
    assert not stores.matches(stock_event(3, store_id=2))
    assert stores.matches(order_event(4, payload={"order_id": "o", "store_id": 3}))
    assert not stores.matches(order_event(5, payload={"order_id": "o", "store_id": 2}))


def levels_event(event_id: int, *store_ids: int) -> OutboxEvent:
    payload = events.stock_levels_changed(
        7, [(s, Decimal(5), Decimal(1)) for s in store_ids], "exchange_1c", "exchange_1c", "1/o"
    )
    return OutboxEvent(event_id, events.STOCK_LEVELS_CHANGED, "stock", "7", payload, CREATED)


def test_a_stock_levels_changed_passes_the_store_filter_when_one_of_its_levels_is_there() -> None:
    stores = EventFilter(stores=frozenset({1, 3}))
    assert stores.matches(levels_event(1, 2, 3))
    assert not stores.matches(levels_event(2, 2, 4))
    typed = EventFilter(types=frozenset({events.STOCK_LEVELS_CHANGED}), stores=frozenset({4}))
    assert typed.matches(levels_event(3, 2, 4)) and not typed.matches(stock_event(4, store_id=4))


def test_a_type_filter_listing_stock_changed_passes_the_levels_shape_too() -> None:
    stock_only = EventFilter(types=frozenset({events.STOCK_CHANGED}), stores=frozenset({4}))
    assert stock_only.matches(levels_event(1, 2, 4))
    assert not stock_only.matches(levels_event(2, 2, 5))
    orders_only = EventFilter(types=frozenset({events.ORDER_PAID}))
    assert not orders_only.matches(levels_event(3, 4))


def test_events_without_a_store_pass_the_store_filter() -> None:
    stores = EventFilter(stores=frozenset({1}))
    assert stores.matches(order_event(1, payload={"order_id": "o", "store_id": None}))
    assert stores.matches(order_event(2, "order.paid", {"order_id": "o", "paid_at": "x"}))
    assert stores.matches(
        order_event(3, "order.status_changed", {"order_id": "o", "from": "new", "to": "x"})
    )


def test_type_and_store_filters_combine() -> None:
    both = EventFilter(types=frozenset({"stock.changed"}), stores=frozenset({1}))
    assert both.matches(stock_event(1, store_id=1))
    assert not both.matches(stock_event(2, store_id=2))
    assert not both.matches(order_event(3, payload={"order_id": "o", "store_id": 1}))


async def test_wants_is_the_configured_filter() -> None:
    async with Receiver().client() as client:
        sink = webhook(client, event_filter=EventFilter(stores=frozenset({2})))
        onec = OneCPushSink(
            "1c", URL, "u", "p", EventFilter(types=frozenset({"order.created"})), client=client
        )
        assert sink.wants(stock_event(1, store_id=2))
        assert not sink.wants(stock_event(1, store_id=1))
        assert onec.wants(order_event(1))
        assert not onec.wants(stock_event(1))


# --- 1C push -------------------------------------------------------------------------------------


def onec(client: httpx.AsyncClient, login: str = "Обмен", password: str = "пароль") -> OneCPushSink:
    return OneCPushSink(
        "1c", "http://1c.local/base/hs/ordersync/events", login, password, ALL, client=client
    )


async def test_1c_push_sends_basic_auth_and_the_events_as_utf8_json() -> None:
    receiver = Receiver()
    events = [stock_event(4, name="Молоко 3,2%"), order_event(2)]
    async with receiver.client() as client:
        await onec(client).deliver(events)
    request = receiver.only
    assert request.method == "POST"
    scheme, _, token = request.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(token).decode("utf-8") == "Обмен:пароль"
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert request.headers["X-Ordersync-Event-Ids"] == "4,2"
    assert "Молоко 3,2%".encode() in request.content
    assert json.loads(request.content.decode("utf-8")) == {
        "events": [event.as_json() for event in events]
    }
    assert "X-Ordersync-Signature" not in request.headers


@pytest.mark.parametrize("status", [200, 204])
async def test_1c_push_2xx_is_success(status: int) -> None:
    receiver = Receiver(lambda request: httpx.Response(status))
    async with receiver.client() as client:
        await onec(client).deliver([stock_event(1)])
    assert len(receiver.requests) == 1


async def test_1c_push_failures_raise_without_the_password() -> None:
    receiver = Receiver(lambda request: httpx.Response(500, text="Ошибка модуля"))
    async with receiver.client() as client:
        with pytest.raises(DeliveryFailed) as caught:
            await onec(client, password="очень-секретно").deliver([stock_event(1)])
    message = str(caught.value)
    assert "HTTP 500" in message
    assert "Ошибка модуля" in message
    assert "очень-секретно" not in message
    assert "1C push sink '1c'" in message


async def test_1c_push_503_retry_after() -> None:
    answer = httpx.Response(503, headers={"Retry-After": "7"})
    receiver = Receiver(lambda request: answer)
    async with receiver.client() as client:
        with pytest.raises(DeliveryFailed) as caught:
            await onec(client).deliver([stock_event(1)])
    assert caught.value.retry_after == 7


async def test_1c_push_refused_connection_fails() -> None:
    sink = OneCPushSink("1c", f"http://127.0.0.1:{closed_port()}/hs", "u", "p", ALL)
    try:
        with pytest.raises(DeliveryFailed):
            await sink.deliver([stock_event(1)])
    finally:
        await sink.close()
    assert sink._client.is_closed


def test_1c_push_refuses_a_login_with_a_colon() -> None:
    with pytest.raises(ValueError):
        OneCPushSink("1c", "http://1c.local/hs", "a:b", "p", ALL)


# --- Standard Webhooks (standardwebhooks.com) --------------------------------------------------


def spec_verify(key: bytes, headers: httpx.Headers, body: bytes) -> bool:
    """The verification the spec describes, written from it: HMAC-SHA256 over
    "<webhook-id>.<webhook-timestamp>.<body>", compared in constant time with each
    space-separated "v1,<base64>" of webhook-signature."""
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = hmac.new(key, signed, hashlib.sha256).digest()
    for candidate in headers["webhook-signature"].split(" "):
        version, _, encoded = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(expected, base64.b64decode(encoded)):
            return True
    return False


WHSEC_KEY = bytes(range(32))
WHSEC = "whsec_" + base64.b64encode(WHSEC_KEY).decode()


@pytest.mark.parametrize(("secret", "key"), [(WHSEC, WHSEC_KEY), ("raw-secret", b"raw-secret")])
async def test_requests_are_signed_per_standard_webhooks_and_the_spec_library_verifies_them(
    secret: str, key: bytes
) -> None:
    receiver = Receiver()
    async with receiver.client() as client:
        sink = WebhookSink("shop", URL, secret, ALL, client=client)  # a real clock
        await sink.deliver([stock_event(41), order_event(43, payload={"name": "Чай"})])
    request = receiver.only
    body = request.content

    assert request.headers["webhook-id"] == "ordersync-shop-41-43"
    assert int(request.headers["webhook-timestamp"]) == int(
        request.headers["X-Ordersync-Timestamp"]
    )
    assert request.headers["webhook-signature"].startswith("v1,")
    assert spec_verify(key, request.headers, body)
    # the spec's reference library: a whsec_ string as is, other secrets as their bytes
    standard = Webhook(secret if secret.startswith("whsec_") else key)
    assert standard.verify(body, dict(request.headers))["events"][0]["id"] == 41
    with pytest.raises(WebhookVerificationError):
        standard.verify(body + b" ", dict(request.headers))
    # today's header is still there and still checks out, keyed with the secret as written
    assert verify(secret.encode(), request.headers["X-Ordersync-Signature"], body, time.time())


async def test_a_retried_batch_keeps_its_webhook_id_and_is_signed_anew() -> None:
    receiver = Receiver(lambda request: httpx.Response(503))
    now = [NOW]
    async with receiver.client() as client:
        sink = WebhookSink("my.shop", URL, WHSEC, ALL, client=client, clock=lambda: now[0])
        for _ in range(2):
            with pytest.raises(DeliveryFailed):
                await sink.deliver([stock_event(7), stock_event(9)])
            now[0] += 60
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == "ordersync-my-shop-7-9"
    assert first.headers["webhook-timestamp"] != second.headers["webhook-timestamp"]
    assert first.headers["webhook-signature"] != second.headers["webhook-signature"]


def test_a_whsec_secret_that_is_not_base64_is_refused() -> None:
    with pytest.raises(ValueError, match="base64"):
        WebhookSink("shop", URL, "whsec_not base64!", ALL)
