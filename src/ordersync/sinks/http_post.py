"""What the HTTP sinks share: one POST of a JSON batch, its success and failure rules.

Any 2xx acknowledges the whole batch. Anything else fails it with DeliveryFailed: 429 and 503
carry `retry_after` when the receiver sent Retry-After (seconds or an HTTP date); redirects
are not followed (a 3xx is a failure); timeouts and connection errors fail too. A 4xx that
judges the content (400, 409, 413, 415, 422, ...) refuses the batch for what it holds
(`permanent`); everything else, including the 401/403/404 of a misconfigured receiver, says
the receiver is down, busy or wrong for every event (see NOT_REFUSALS). Error messages
name the sink, the host and the status or error, never a secret nor the URL's path/query
(which may hold a token).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

# httpx runs on anyio, which loads its asyncio backend at the first request: loaded here, the
# relay's first delivery after a start does not wait for the import.
import anyio._backends._asyncio  # noqa: F401
import httpx

from .base import DeliveryFailed, OutboxEvent
from .filters import EventFilter

USER_AGENT = "ordersync"
RETRY_AFTER_STATUSES = frozenset({429, 503})
# 4xx that say "not now" or "not here", not "not this": a timeout or a rate limit, and the
# answers of a receiver that is misconfigured or missing (credentials refused, no such path,
# a proxy in the way), which every event would get alike. Those are retried for as long as
# they last, with /metrics showing the failing lanes; a refusal of one event's content (400,
# 409, 413, 415, 422, ...) goes to the dead letters once the relay has narrowed it down.
NOT_REFUSALS = frozenset({401, 403, 404, 405, 407, 408, 410, 421, 423, 425, 429})
_DETAIL_CHARS = 200


def encode_json(document: Any) -> bytes:
    """Compact UTF-8 JSON; NaN/Infinity are refused (they are not JSON)."""
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Retry-After as seconds from `now`: delay-seconds or an HTTP date (a past date gives 0).
    None when absent or unparseable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def checked_url(url: str) -> httpx.URL:
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"a sink URL must be absolute http(s), not {parsed.scheme!r}")
    return parsed


def _detail(response: httpx.Response) -> str:
    try:
        text = " ".join(response.text.split())
    except (UnicodeDecodeError, LookupError):
        return ""
    if not text:
        return ""
    if len(text) > _DETAIL_CHARS:
        text = text[:_DETAIL_CHARS] + "…"
    return f": {text}"


async def post_batch(
    client: httpx.AsyncClient,
    *,
    label: str,
    url: httpx.URL,
    body: bytes,
    headers: Mapping[str, str],
    timeout_seconds: float,
    clock: Callable[[], float],
) -> None:
    """POSTs `body`; returns on 2xx, else raises DeliveryFailed (see the module docstring)."""
    where = url.host
    try:
        response = await client.post(
            url, content=body, headers=dict(headers), timeout=timeout_seconds
        )
    except httpx.TimeoutException as exc:
        raise DeliveryFailed(
            f"{label}: {where} timed out after {timeout_seconds:g}s ({type(exc).__name__})"
        ) from exc
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        raise DeliveryFailed(
            f"{label}: request to {where} failed: {type(exc).__name__}: {reason}"
        ) from exc
    status = response.status_code
    if 200 <= status < 300:
        return
    retry_after = None
    if status in RETRY_AFTER_STATUSES:
        retry_after = retry_after_seconds(response.headers.get("Retry-After"), clock())
    raise DeliveryFailed(
        f"{label}: {where} answered HTTP {status}{_detail(response)}",
        retry_after=retry_after,
        permanent=is_refusal(status),
    )


def is_refusal(status: int) -> bool:
    """A status that refuses the request itself, so sending it again unchanged cannot help."""
    return 400 <= status < 500 and status not in NOT_REFUSALS


class HttpPostSink:
    """The common part of a sink that POSTs JSON batches: its URL, filter, client and clock.
    Subclasses say what the body and the headers are."""

    kind = "HTTP sink"

    def __init__(
        self,
        name: str,
        url: str,
        event_filter: EventFilter,
        timeout_seconds: float = 10,
        client: httpx.AsyncClient | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.url = checked_url(url)
        self.event_filter = event_filter
        self.timeout_seconds = timeout_seconds
        self._clock = clock
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout_seconds)

    def __repr__(self) -> str:  # never a secret
        return f"{type(self).__name__}(name={self.name!r}, host={self.url.host!r})"

    def wants(self, event: OutboxEvent) -> bool:
        return self.event_filter.matches(event)

    async def _post(self, body: bytes, headers: Mapping[str, str]) -> None:
        await post_batch(
            self._client,
            label=f"{self.kind} {self.name!r}",
            url=self.url,
            body=body,
            headers=headers,
            timeout_seconds=self.timeout_seconds,
            clock=self._clock,
        )

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()
