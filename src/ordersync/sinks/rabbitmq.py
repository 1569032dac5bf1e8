"""RabbitMQ sink: each outbox event becomes one persistent message on a durable topic exchange.

The broker is the scale-out path for consumers the hub does not know; the outbox stays the
source of truth, so delivery is at least once and consumers deduplicate on `message_id` (the
outbox event id).

Routing key: ``"<event type>.<store>"`` where store is ``payload["store_id"]`` when the payload
has one (and it is not null), else ``none``. Examples: ``stock.changed.12``,
``order.created.3`` (a pickup order at store 3), ``order.created.none`` (a delivery order),
``order.status_changed.none``. A ``stock.levels_changed`` (one product's levels changed
together) is published as one message per level, narrowed to that level (``levels`` holds
just it), routed as ``stock.levels_changed.<its store>`` with ``message_id``
``<event id>.<store id>``; with a store filter, only its stores' levels. Event types contain
a dot themselves, so bind with patterns such as ``stock.#`` (all stock changes),
``stock.changed.12`` (one store), ``order.#`` (every order event) or ``#.12`` (everything at
store 12).

Every message: delivery mode persistent, content type application/json, ``message_id`` = event
id, ``type`` = event type, ``timestamp`` = event creation time, headers ``aggregate_type`` and
``aggregate_id``, body = the event's JSON (`OutboxEvent.as_json`).

Publisher confirms are on: `deliver` returns only after the broker acked every message.
Messages are published without ``mandatory``: an exchange with no queue bound is a valid state
(nobody subscribed yet), and the broker acks such a message and drops it; binding queues is
the consumers' job.

Failures are never permanent (`DeliveryFailed.permanent` is False): the broker refused,
closed the connection or channel, timed out, or nacked a message (a queue full with
``x-overflow: reject-publish``, a broker out of resources). Each says the broker cannot take
messages now, not that an event is bad, so the relay retries the batch for as long as that
lasts and the RabbitMQ sink never sends an event to the dead letters.

Filtering is the relay's job: it calls `wants` and hands `deliver` only the events the sink
wants; `deliver` publishes everything it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import Sequence

import aio_pika
from aio_pika.abc import (
    AbstractExchange,
    AbstractRobustChannel,
    AbstractRobustConnection,
    DeliveryMode,
    ExchangeType,
)
from aio_pika.connection import make_url
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from ..domain import events as ev
from .base import DeliveryFailed, OutboxEvent
from .filters import EventFilter

# What a connection, channel or publish may raise when the broker is away, refuses, closes the
# channel or nacks (aio-pika's own list: AMQP errors, OSError, RuntimeError for "closed" states,
# pamqp errors), plus timeouts.
_FAILURES: tuple[type[BaseException], ...] = (*CONNECTION_EXCEPTIONS, asyncio.TimeoutError)


def routing_key(event: OutboxEvent) -> str:
    """``"<event type>.<store id>"``, or ``"<event type>.none"`` when the event has no store."""
    store = event.payload.get("store_id")
    levels = event.payload.get("levels")
    if store is None and isinstance(levels, list) and len(levels) == 1:
        store = levels[0].get("store_id")
    return f"{event.type}.{'none' if store is None else store}"


def publications(
    event: OutboxEvent, stores: frozenset[int] | None = None
) -> list[tuple[str, aio_pika.Message]]:
    """(routing key, message) for the event: one, or one per level of a stock.levels_changed
    (those at `stores` when given)."""
    levels = event.payload.get("levels")
    if event.type != ev.STOCK_LEVELS_CHANGED or not isinstance(levels, list):
        return [(routing_key(event), message(event))]
    out = []
    for level in levels:
        if stores is not None and level.get("store_id") not in stores:
            continue
        one = dataclasses.replace(event, payload={**event.payload, "levels": [level]})
        out.append((routing_key(one), message(one, f"{event.id}.{level.get('store_id')}")))
    return out


def message(event: OutboxEvent, message_id: str | None = None) -> aio_pika.Message:
    return aio_pika.Message(
        body=json.dumps(event.as_json(), ensure_ascii=False, separators=(",", ":")).encode(),
        content_type="application/json",
        content_encoding="utf-8",
        delivery_mode=DeliveryMode.PERSISTENT,
        message_id=message_id or str(event.id),
        type=event.type,
        timestamp=event.created_at,
        headers={
            "aggregate_type": event.aggregate_type,
            "aggregate_id": event.aggregate_id,
        },
    )


class RabbitMQSink:
    """Publishes to the topic exchange `exchange` on the broker at `url`
    (``amqp://guest:guest@127.0.0.1:5672/``).

    Connects lazily on the first `deliver`. Any failure (connection refused, connect timeout,
    channel or connection closed, nack, confirm timeout) raises DeliveryFailed and drops the
    connection, so the next `deliver` connects afresh. A batch that failed half way may already
    have published its first events: the relay resends the whole batch and consumers deduplicate
    on `message_id`.
    """

    def __init__(
        self,
        name: str,
        url: str,
        exchange: str = "ordersync",
        event_filter: EventFilter | None = None,
        connect_timeout: float = 5.0,
        publish_timeout: float = 10.0,
    ) -> None:
        self.name = name
        self.url = url
        self.exchange_name = exchange
        self.event_filter = event_filter
        self.connect_timeout = connect_timeout
        self.publish_timeout = publish_timeout  # per message, until the broker's confirm
        self.connection_name = f"ordersync sink {name}"  # shown by the broker's tools
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._lock = asyncio.Lock()  # one batch at a time keeps the order and one connection

    def wants(self, event: OutboxEvent) -> bool:
        return self.event_filter is None or self.event_filter.matches(event)

    async def deliver(self, events: Sequence[OutboxEvent]) -> None:
        if not events:
            return
        async with self._lock:
            try:
                exchange = await self._ready_exchange()
                stores = self.event_filter.stores if self.event_filter else None
                for event in events:
                    for key, body in publications(event, stores):
                        # With confirms on, publish returns once the broker acked; a nack
                        # raises.
                        await exchange.publish(
                            body, routing_key=key, mandatory=False, timeout=self.publish_timeout
                        )
            except _FAILURES as exc:
                await self._drop()
                detail = str(exc) or type(exc).__name__
                raise DeliveryFailed(
                    f"RabbitMQ sink {self.name!r}: {type(exc).__name__}: {detail}"
                ) from exc

    async def close(self) -> None:
        async with self._lock:
            await self._drop()

    async def _ready_exchange(self) -> AbstractExchange:
        if (
            self._exchange is not None
            and self._channel is not None
            and not self._channel.is_closed
            and self._connection is not None
            and not self._connection.is_closed
            and self._connection.connected.is_set()  # clear while a robust one reconnects
        ):
            return self._exchange
        await self._drop()
        connection = await self._connect()
        try:
            channel = await asyncio.wait_for(
                connection.channel(publisher_confirms=True), self.connect_timeout
            )
            exchange = await asyncio.wait_for(
                channel.declare_exchange(self.exchange_name, ExchangeType.TOPIC, durable=True),
                self.connect_timeout,
            )
        except BaseException:
            await _close_quietly(connection)
            raise
        self._connection, self._channel, self._exchange = connection, channel, exchange
        return exchange

    async def _connect(self) -> AbstractRobustConnection:
        # What aio_pika.connect_robust does, unrolled so that a failed or timed-out first attempt
        # can close the connection object (else its reconnection task could linger). The first
        # attempt fails fast; wait_for also bounds a broker that accepts TCP but never answers.
        connection = aio_pika.RobustConnection(
            make_url(self.url),
            client_properties={"connection_name": self.connection_name},
        )
        try:
            await asyncio.wait_for(
                connection.connect(timeout=self.connect_timeout), self.connect_timeout
            )
        except BaseException:
            await _close_quietly(connection)
            raise
        return connection

    async def _drop(self) -> None:
        connection = self._connection
        self._connection = self._channel = self._exchange = None
        if connection is not None:
            await _close_quietly(connection)


async def _close_quietly(connection: AbstractRobustConnection) -> None:
    # Closing a broken connection may fail; nothing is left to do with it then.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(connection.close(), 5.0)
