"""The webhook sink: a signed JSON POST of the whole batch to a configured URL.

Request::

    POST <url>
    Content-Type: application/json
    User-Agent: ordersync
    X-Ordersync-Timestamp: <unix seconds>
    X-Ordersync-Signature: t=<unix seconds>,v1=<hex hmac-sha256>   (see sinks.signing)
    X-Ordersync-Event-Ids: 41,42,43
    webhook-id: ordersync-<name>-41-43                  (Standard Webhooks, see
    webhook-timestamp: <unix seconds>                    sinks.standard_webhooks)
    webhook-signature: v1,<base64 hmac-sha256 of "<webhook-id>.<timestamp>.<body>">

    {"sink":"<name>","events":[<OutboxEvent.as_json()>, ...]}

The body is compact UTF-8 JSON (non-ASCII text as is, not \\u-escaped), events in the
batch's order. Success and failure as for every HTTP sink (sinks.http_post).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import httpx

from . import standard_webhooks
from .base import OutboxEvent
from .filters import EventFilter
from .http_post import USER_AGENT, HttpPostSink, encode_json, retry_after_seconds
from .signing import sign

__all__ = ["WebhookSink", "retry_after_seconds"]


class WebhookSink(HttpPostSink):
    kind = "webhook sink"

    def __init__(
        self,
        name: str,
        url: str,
        secret: bytes | str,
        event_filter: EventFilter,
        timeout_seconds: float = 10,
        client: httpx.AsyncClient | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError(f"webhook sink {name!r} needs a non-empty secret")
        super().__init__(name, url, event_filter, timeout_seconds, client, clock=clock)
        self._secret = secret.encode("utf-8") if isinstance(secret, str) else secret
        self._standard_key = standard_webhooks.signing_key(secret)

    def body(self, events: Sequence[OutboxEvent]) -> bytes:
        return encode_json({"sink": self.name, "events": [event.as_json() for event in events]})

    async def deliver(self, events: Sequence[OutboxEvent]) -> None:
        if not events:
            return
        body = self.body(events)
        timestamp = int(self._clock())
        ids = [event.id for event in events]
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Ordersync-Timestamp": str(timestamp),
            "X-Ordersync-Signature": sign(self._secret, timestamp, body),
            "X-Ordersync-Event-Ids": ",".join(map(str, ids)),
            **standard_webhooks.headers(
                self._standard_key, standard_webhooks.message_id(self.name, ids), timestamp, body
            ),
        }
        await self._post(body, headers)
