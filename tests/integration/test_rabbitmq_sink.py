"""The RabbitMQ sink against a real broker (ORDERSYNC_TEST_AMQP_URL, default
amqp://guest:guest@127.0.0.1:5672/). Outside CI an unreachable broker skips these tests; in CI
(CI=true) it fails them. Every test uses its own exchange, deleted afterwards."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractQueue,
    DeliveryMode,
    ExchangeType,
)

from ordersync.domain import events
from ordersync.sinks.base import DeliveryFailed, OutboxEvent
from ordersync.sinks.filters import EventFilter
from ordersync.sinks.rabbitmq import RabbitMQSink, publications, routing_key
from tests.support import in_ci

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
CREATED = datetime(2026, 5, 1, 12, 30, 15, tzinfo=UTC)


def amqp_url() -> str:
    return os.environ.get("ORDERSYNC_TEST_AMQP_URL", DEFAULT_AMQP_URL)


def unavailable(message: str) -> None:
    if in_ci():
        pytest.fail(message + " (CI runs the broker tests)")
    pytest.skip(message)


async def broker_reachable() -> bool:
    try:
        conn = await aio_pika.connect(amqp_url(), timeout=10)
    except Exception:
        return False
    await conn.close()
    return True


def stock(event_id: int, store_id: int, on_hand: str = "5") -> OutboxEvent:
    return OutboxEvent(
        id=event_id,
        type="stock.changed",
        aggregate_type="stock",
        aggregate_id=f"7:{store_id}",
        payload={
            "product_id": 7,
            "store_id": store_id,
            "on_hand": on_hand,
            "reserved": "0",
            "available": on_hand,
            "reason": "receipt",
            "document_type": "receipt",
            "document_id": f"R-{event_id}",
        },
        created_at=CREATED,
    )


def order_created(event_id: int, store_id: int | None) -> OutboxEvent:
    return OutboxEvent(
        id=event_id,
        type="order.created",
        aggregate_type="order",
        aggregate_id=f"ord-{event_id}",
        payload={"order_id": f"ord-{event_id}", "store_id": store_id, "total": "100"},
        created_at=CREATED,
    )


def status_changed(event_id: int) -> OutboxEvent:
    return OutboxEvent(
        id=event_id,
        type="order.status_changed",
        aggregate_type="order",
        aggregate_id="ord-2",
        payload={"order_id": "ord-2", "from": "new", "to": "confirmed", "reason": "тест"},
        created_at=CREATED,
    )


@pytest.fixture
def exchange_name() -> str:
    return f"ordersync-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def consumer(exchange_name: str) -> AsyncIterator[AbstractChannel]:
    """A channel of the test's own connection, with the test's exchange declared (as the sink
    declares it); deletes the exchange afterwards."""
    if not await broker_reachable():
        unavailable(f"RabbitMQ is not reachable at {amqp_url()}")
    conn: AbstractConnection = await aio_pika.connect(amqp_url(), timeout=5)
    channel = await conn.channel()
    await channel.declare_exchange(exchange_name, ExchangeType.TOPIC, durable=True)
    yield channel
    try:
        await channel.exchange_delete(exchange_name)
    finally:
        await conn.close()


@pytest.fixture
async def sink(exchange_name: str, consumer: AbstractChannel) -> AsyncIterator[RabbitMQSink]:
    s = RabbitMQSink(
        f"test-{uuid.uuid4().hex[:8]}", amqp_url(), exchange=exchange_name, connect_timeout=15
    )
    yield s
    await s.close()


async def bound_queue(
    channel: AbstractChannel, exchange: str, *patterns: str, **arguments: Any
) -> AbstractQueue:
    queue = await channel.declare_queue(exclusive=True, arguments=arguments or None)
    for pattern in patterns:
        await queue.bind(exchange, routing_key=pattern)
    return queue


async def drain(queue: AbstractQueue, expected: int) -> list[AbstractIncomingMessage]:
    """Exactly `expected` messages (waits up to 5 s for them), and checks nothing else is
    queued."""
    messages: list[AbstractIncomingMessage] = []
    deadline = time.monotonic() + 5
    while len(messages) < expected and time.monotonic() < deadline:
        msg = await queue.get(no_ack=True, fail=False)
        if msg is None:
            await asyncio.sleep(0.05)
        else:
            messages.append(msg)
    await asyncio.sleep(0.2)
    extra = await queue.get(no_ack=True, fail=False)
    assert extra is None, f"unexpected message {extra.routing_key if extra else ''}"
    assert len(messages) == expected, [m.routing_key for m in messages]
    return messages


def ids(messages: list[AbstractIncomingMessage]) -> list[str | None]:
    return [m.message_id for m in messages]


def test_routing_key_is_type_and_store() -> None:
    assert routing_key(stock(1, 12)) == "stock.changed.12"
    assert routing_key(order_created(2, 3)) == "order.created.3"
    assert routing_key(order_created(3, None)) == "order.created.none"
    assert routing_key(status_changed(4)) == "order.status_changed.none"


def test_a_stock_levels_changed_is_published_per_level_routed_by_its_store() -> None:
    payload = events.stock_levels_changed(
        7, [(3, Decimal(5), Decimal(0)), (12, Decimal(2), Decimal(1))], "exchange_1c",
        "exchange_1c", "1/offers.xml",
    )  # fmt: skip
    event = OutboxEvent(40, events.STOCK_LEVELS_CHANGED, "stock", "7", payload, CREATED)

    published = publications(event)

    assert [(key, m.message_id) for key, m in published] == [
        ("stock.levels_changed.3", "40.3"),
        ("stock.levels_changed.12", "40.12"),
    ]
    body = json.loads(published[1][1].body)
    assert body["id"] == 40 and body["payload"]["levels"] == [payload["levels"][1]]
    assert body["payload"]["document_id"] == "1/offers.xml"
    only_12 = publications(event, frozenset({12}))
    assert [key for key, _ in only_12] == ["stock.levels_changed.12"]
    assert [key for key, _ in publications(stock(41, 12))] == ["stock.changed.12"]


async def test_batch_is_published_in_order_as_persistent_json(
    sink: RabbitMQSink, consumer: AbstractChannel, exchange_name: str
) -> None:
    everything = await bound_queue(consumer, exchange_name, "#")
    stock_only = await bound_queue(consumer, exchange_name, "stock.changed.#")
    store_12 = await bound_queue(consumer, exchange_name, "*.*.12")
    batch = [
        stock(101, 12, "5"),
        order_created(102, None),
        stock(103, 7, "2"),
        status_changed(104),
        stock(105, 12, "4"),
        order_created(106, 12),
    ]

    await sink.deliver(batch)

    received = await drain(everything, 6)
    assert ids(received) == ["101", "102", "103", "104", "105", "106"]
    assert [m.routing_key for m in received] == [
        "stock.changed.12",
        "order.created.none",
        "stock.changed.7",
        "order.status_changed.none",
        "stock.changed.12",
        "order.created.12",
    ]
    for msg, event in zip(received, batch, strict=True):
        assert msg.delivery_mode == DeliveryMode.PERSISTENT
        assert msg.content_type == "application/json"
        assert msg.type == event.type
        assert msg.exchange == exchange_name
        assert msg.timestamp is not None
        assert msg.timestamp.timestamp() == CREATED.timestamp()
        assert msg.headers == {
            "aggregate_type": event.aggregate_type,
            "aggregate_id": event.aggregate_id,
        }
        assert json.loads(msg.body) == event.as_json()
    assert json.loads(received[3].body)["payload"]["reason"] == "тест"

    assert ids(await drain(stock_only, 3)) == ["101", "103", "105"]
    assert ids(await drain(store_12, 3)) == ["101", "105", "106"]


async def test_an_exchange_without_queues_acks_and_a_later_queue_gets_later_events(
    sink: RabbitMQSink, consumer: AbstractChannel, exchange_name: str
) -> None:
    await sink.deliver([stock(1, 1)])  # nobody bound: dropped by the broker, not an error
    queue = await bound_queue(consumer, exchange_name, "#")
    await sink.deliver([stock(2, 1)])
    assert ids(await drain(queue, 1)) == ["2"]


async def test_filtering_is_wants_and_deliver_publishes_what_it_is_given(
    consumer: AbstractChannel, exchange_name: str
) -> None:
    sink = RabbitMQSink(
        "filtered",
        amqp_url(),
        exchange=exchange_name,
        event_filter=EventFilter(types=frozenset({"stock.changed"}), stores=frozenset({12})),
        connect_timeout=15,
    )
    queue = await bound_queue(consumer, exchange_name, "#")
    events = [stock(1, 12), stock(2, 7), order_created(3, 12), stock(4, 12)]
    try:
        assert [sink.wants(e) for e in events] == [True, False, False, True]
        await sink.deliver([e for e in events if sink.wants(e)])  # what the relay does
        assert ids(await drain(queue, 2)) == ["1", "4"]

        await sink.deliver([stock(2, 7)])  # deliver does not filter again
        assert ids(await drain(queue, 1)) == ["2"]
    finally:
        await sink.close()
    assert RabbitMQSink("all", amqp_url()).wants(order_created(5, None))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_broker_fails_quickly_every_time() -> None:
    sink = RabbitMQSink(
        "nowhere", f"amqp://guest:guest@127.0.0.1:{free_port()}/", connect_timeout=1
    )
    try:
        for _ in range(2):
            started = time.monotonic()
            with pytest.raises(DeliveryFailed, match="nowhere") as failed:
                await sink.deliver([stock(1, 1)])
            assert time.monotonic() - started < 3
            assert not failed.value.permanent  # the broker is away: retried, never dead
    finally:
        await sink.close()


async def test_a_server_that_never_answers_fails_after_connect_timeout() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # accepts the TCP connection, never speaks AMQP

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sink = RabbitMQSink("silent", f"amqp://guest:guest@127.0.0.1:{port}/", connect_timeout=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(DeliveryFailed):
            await sink.deliver([stock(1, 1)])
        elapsed = time.monotonic() - started
        assert 0.4 < elapsed < 3
        assert accepted, "the sink never reached the server"
    finally:
        await sink.close()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_wrong_credentials_fail(exchange_name: str, consumer: AbstractChannel) -> None:
    url = amqp_url().replace("guest:guest@", "guest:wrong-password@")
    sink = RabbitMQSink("badauth", url, exchange=exchange_name, connect_timeout=15)
    try:
        with pytest.raises(DeliveryFailed):
            await sink.deliver([stock(1, 1)])
    finally:
        await sink.close()


async def test_a_nack_fails_the_batch(
    sink: RabbitMQSink, consumer: AbstractChannel, exchange_name: str
) -> None:
    # A queue that holds one message and rejects further publishes: the broker nacks them.
    full = await bound_queue(
        consumer, exchange_name, "#", **{"x-max-length": 1, "x-overflow": "reject-publish"}
    )
    with pytest.raises(DeliveryFailed) as nacked:
        await sink.deliver([stock(1, 1), stock(2, 1), stock(3, 1)])
    assert not nacked.value.permanent  # a full queue is the broker saying "not now"
    assert ids(await drain(full, 1)) == ["1"]
    await sink.deliver([stock(4, 1)])  # room again: the sink works on
    assert ids(await drain(full, 1)) == ["4"]


async def test_a_closed_channel_fails_and_the_next_deliver_recovers(
    sink: RabbitMQSink, consumer: AbstractChannel, exchange_name: str
) -> None:
    # The exchange exists with another type: declaring it closes the sink's channel.
    await consumer.exchange_delete(exchange_name)
    await consumer.declare_exchange(exchange_name, ExchangeType.DIRECT, durable=True)
    with pytest.raises(DeliveryFailed, match="PRECONDITION_FAILED"):
        await sink.deliver([stock(1, 1)])

    await consumer.exchange_delete(exchange_name)
    await consumer.declare_exchange(exchange_name, ExchangeType.TOPIC, durable=True)
    queue = await bound_queue(consumer, exchange_name, "#")
    await sink.deliver([stock(2, 1)])
    assert ids(await drain(queue, 1)) == ["2"]


async def test_deliver_after_close_reconnects(
    sink: RabbitMQSink, consumer: AbstractChannel, exchange_name: str
) -> None:
    queue = await bound_queue(consumer, exchange_name, "#")
    await sink.deliver([stock(1, 1)])
    await sink.close()
    await sink.deliver([stock(2, 1)])
    assert ids(await drain(queue, 2)) == ["1", "2"]


@pytest.fixture
def rabbitmqctl() -> Iterator[str]:
    path = shutil.which("rabbitmqctl")
    if path is None:
        unavailable("rabbitmqctl is not installed")
    assert path is not None
    yield path


def close_broker_side(ctl: str, connection_name: str) -> None:
    listing = subprocess.run(
        [ctl, "list_connections", "pid", "client_properties", "-q", "--no-table-headers"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    pids = [
        line.split("\t")[0]
        for line in listing.splitlines()
        if f'{{"connection_name","{connection_name}"}}' in line
    ]
    assert len(pids) == 1, listing
    subprocess.run(
        [ctl, "close_connection", pids[0], "closed by test"],
        capture_output=True,
        check=True,
        timeout=30,
    )


async def test_deliver_after_the_broker_closed_the_connection_reconnects(
    sink: RabbitMQSink, consumer: AbstractChannel, exchange_name: str, rabbitmqctl: str
) -> None:
    queue = await bound_queue(consumer, exchange_name, "#")
    await sink.deliver([stock(1, 1)])
    await asyncio.to_thread(close_broker_side, rabbitmqctl, sink.connection_name)
    await asyncio.sleep(0.3)  # let the client see the Connection.Close

    await sink.deliver([stock(2, 1), stock(3, 1)])
    assert ids(await drain(queue, 3)) == ["1", "2", "3"]
