"""Outgoing webhooks of the simulated Bitrix site (see tests/bitrix_sim.py).

As local-integrations/local-webhooks.md and api-reference/events/index.md describe: the site
queues an event for every save and a queue server later POSTs it, form-encoded
(`application/x-www-form-urlencoded`, PHP's nested keys), to the handler URL: `event` (upper
case), `event_handler_id`, `data[FIELDS][ID]`, `data[FIELDS][XML_ID]`, `data[FIELDS][ACTION]`
(api-reference/sale/events/on-sale-order-saved.md, on-sale-before-order-delete.md), `ts`, and
`auth[domain]`, `auth[member_id]`, `auth[application_token]`. A failed or slow delivery is never
retried ("No second chances"); here a share of events can also be dropped on purpose.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx


@dataclass(frozen=True)
class QueuedEvent:
    name: str  # upper case
    fields: dict[str, str]  # data[FIELDS][...]
    ts: datetime


@dataclass
class Delivery:
    event: QueuedEvent
    outcome: str  # "sent", "dropped", "failed"
    status: int | None = None


@dataclass
class OutgoingWebhook:
    """One outgoing webhook: a handler URL and the events it was created for."""

    url: str
    events: frozenset[str]
    handler_id: int
    client: httpx.AsyncClient
    drop_share: float = 0.0
    rng: random.Random = field(default_factory=random.Random)
    log: list[Delivery] = field(default_factory=list)

    def wants(self, event: QueuedEvent) -> bool:
        return event.name in self.events

    def of(self, outcome: str) -> list[QueuedEvent]:
        return [d.event for d in self.log if d.outcome == outcome]

    @property
    def sent(self) -> list[QueuedEvent]:
        return self.of("sent")

    @property
    def dropped(self) -> list[QueuedEvent]:
        return self.of("dropped")

    @property
    def failed(self) -> list[QueuedEvent]:
        return self.of("failed")


def form(event: QueuedEvent, handler_id: int, auth: dict[str, str]) -> list[tuple[str, str]]:
    pairs = [("event", event.name), ("event_handler_id", str(handler_id))]
    pairs += [(f"data[FIELDS][{k}]", v) for k, v in event.fields.items()]
    pairs.append(("ts", str(int(event.ts.timestamp()))))
    pairs += [(f"auth[{k}]", v) for k, v in auth.items()]
    return pairs


class EventQueue:
    """The site's event queue and the webhooks it serves, in the order events were queued."""

    def __init__(self, auth: dict[str, str]) -> None:
        self.auth = auth
        self.pending: list[QueuedEvent] = []
        self.webhooks: list[OutgoingWebhook] = []
        self.fired: list[QueuedEvent] = []  # every event ever queued

    def add_webhook(
        self,
        url: str,
        events: Iterable[str],
        *,
        client: httpx.AsyncClient,
        drop_share: float = 0.0,
        seed: int = 0,
    ) -> OutgoingWebhook:
        if not 0.0 <= drop_share <= 1.0:
            raise ValueError("drop_share is a share between 0 and 1")
        hook = OutgoingWebhook(
            url,
            frozenset(e.upper() for e in events),
            len(self.webhooks) + 1,
            client,
            drop_share,
            random.Random(seed),
        )
        self.webhooks.append(hook)
        return hook

    def push(self, name: str, fields: dict[str, Any], ts: datetime) -> None:
        event = QueuedEvent(name.upper(), {k: str(v) for k, v in fields.items()}, ts)
        self.fired.append(event)
        if any(hook.wants(event) for hook in self.webhooks):
            self.pending.append(event)

    async def deliver(self) -> int:
        """Sends what is queued, in order; returns how many POSTs were answered 2xx."""
        delivered = 0
        while self.pending:
            event = self.pending.pop(0)
            for hook in self.webhooks:
                if hook.wants(event):
                    delivered += await self._send(hook, event)
        return delivered

    async def _send(self, hook: OutgoingWebhook, event: QueuedEvent) -> int:
        if hook.drop_share and hook.rng.random() < hook.drop_share:
            hook.log.append(Delivery(event, "dropped"))
            return 0
        try:
            response = await hook.client.post(
                hook.url, data=dict(form(event, hook.handler_id, self.auth))
            )
        except httpx.HTTPError:
            hook.log.append(Delivery(event, "failed"))
            return 0
        ok = 200 <= response.status_code < 300
        hook.log.append(Delivery(event, "sent" if ok else "failed", response.status_code))
        return 1 if ok else 0

    @asynccontextmanager
    async def pump(self, before: Any, interval: float = 0.005) -> AsyncIterator[None]:
        """Delivers in the background while the block runs, then what is left. `before` runs
        ahead of each round (the site commits its late orders there)."""

        async def loop() -> None:
            while True:
                before()
                await self.deliver()
                await asyncio.sleep(interval)

        task = asyncio.create_task(loop())
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
            before()
            await self.deliver()

    async def close(self) -> None:
        for hook in self.webhooks:
            await hook.client.aclose()
