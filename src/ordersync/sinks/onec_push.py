"""The 1C push sink (optional): POSTs batches of stock and order events to an HTTP service
published from the 1C base, so 1C hears about sales before the next CommerceML exchange.

Request::

    POST <url>
    Authorization: Basic base64(utf-8 "<login>:<password>")
    Content-Type: application/json; charset=utf-8
    User-Agent: ordersync
    X-Ordersync-Event-Ids: 41,42,43

    {"events":[<OutboxEvent.as_json()>, ...]}

1C HTTP services answer 200; any 2xx acknowledges the batch and everything else fails it,
with the same rules as the webhook sink (Retry-After on 429/503, timeouts, connection
errors; see sinks.webhook). Login and password are encoded as UTF-8 (1C user names are
often Cyrillic). The 1C handler should deduplicate on the event ids: delivery is at least
once.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Sequence

import httpx

from .base import OutboxEvent
from .filters import EventFilter
from .http_post import USER_AGENT, HttpPostSink, encode_json


def basic_auth(login: str, password: str) -> str:
    token = base64.b64encode(f"{login}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


class OneCPushSink(HttpPostSink):
    kind = "1C push sink"

    def __init__(
        self,
        name: str,
        url: str,
        login: str,
        password: str,
        event_filter: EventFilter,
        timeout_seconds: float = 10,
        client: httpx.AsyncClient | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ":" in login:
            raise ValueError(f"1C push sink {name!r}: HTTP Basic logins cannot contain ':'")
        super().__init__(name, url, event_filter, timeout_seconds, client, clock=clock)
        self._authorization = basic_auth(login, password)

    def body(self, events: Sequence[OutboxEvent]) -> bytes:
        return encode_json({"events": [event.as_json() for event in events]})

    async def deliver(self, events: Sequence[OutboxEvent]) -> None:
        if not events:
            return
        headers = {
            "Authorization": self._authorization,
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            "X-Ordersync-Event-Ids": ",".join(str(event.id) for event in events),
        }
        await self._post(self.body(events), headers)
