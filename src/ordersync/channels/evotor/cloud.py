"""The hub's client of the Evotor cloud's REST API (paths.yaml `/api.evotor.ru/...`), with the
cloud token in `X-Authorization` (parameters.yaml `auth`): publish a store's products and
quantities, pull its documents by close time, list stores, devices and employees.

Every answer may carry X-RateLimit-Limit / -Remaining / -Reset (seconds to the next interval).
The client remembers them: with the budget spent it does not call until the interval ends (it
sleeps up to `max_wait` seconds, else raises CloudRateLimited saying when to come back), and a
429 or 503 raises CloudRateLimited with the time to wait. The token never appears in an error,
a repr or a log line. The errors: cloud_errors.py."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from .cloud_errors import (
    CloudAuthError,
    CloudError,
    CloudProtocolError,
    CloudRateLimited,
    CloudRequestError,
    CloudUnavailable,
    InvalidProducts,
)
from .documents import read_documents
from .entities import (
    EvotorDevice,
    EvotorEmployee,
    EvotorStore,
    read_devices,
    read_employees,
    read_stores,
)
from .errors import EvotorErrorItem, EvotorRequestError
from .model import DocumentResult
from .products import EvotorProduct
from .values import add_months, decimals, format_moment, parse_quantity
from .wire import dumps, loads

DEFAULT_BASE_URL = "https://api.evotor.ru"
# paths.yaml documents the pull at /api/v1/...; the issue names /api/v2/...: configurable
DOCUMENTS_PATH = "/api/v1/inventories/stores/{store}/documents"
MONTHS_BACK = 6  # "documents created no more than six months ago"
_SAFETY = timedelta(hours=1)  # stay clear of the six-month edge as the clock moves on
_MS = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class RateLimit:
    limit: int | None
    remaining: int | None
    reset_after: float | None  # seconds from observed_at
    observed_at: float  # the client's monotonic clock

    def wait(self, now: float) -> float:
        """Seconds to wait before the next call: zero unless the budget is spent."""
        if self.remaining is None or self.remaining > 0 or self.reset_after is None:
            return 0.0
        return max(0.0, self.observed_at + self.reset_after - now)


@dataclass(frozen=True, slots=True)
class PublishResult:
    requests: int
    violations: int = 0  # X-Products-Violations-Count: products the cloud did not take
    violation_details: tuple[str, ...] = ()  # X-Products-Violations: the first 20, per request


@dataclass(frozen=True, slots=True)
class DocumentWindow:
    """One pull: the documents closed in [since, until). Once a window is read the caller may
    move its watermark to `until`: the next window starts there, and nothing between is lost
    (each request asks from 1 ms before `since`, the cloud's bounds being exclusive)."""

    since: datetime
    until: datetime
    results: list[DocumentResult] = field(default_factory=list)
    # set on the first window when the asked start was older than the cloud keeps documents
    # (six months): what closed before this moment can no longer be pulled
    truncated_before: datetime | None = None
    raws: list[Any] = field(default_factory=list)  # each document as the cloud wrote it


class EvotorCloud:
    def __init__(
        self,
        token: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
        max_wait: float = 0.0,
        default_retry_after: float = 1.0,
        products_per_request: int = 500,
        documents_path: str = DOCUMENTS_PATH,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not token:
            raise ValueError("the cloud token is empty")
        self._token = token
        self._base = base_url.rstrip("/")
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self.max_wait = max_wait
        self.default_retry_after = default_retry_after
        self.products_per_request = products_per_request
        self.documents_path = documents_path
        self._clock, self._now, self._sleep = clock, now, sleep
        self.rate_limit: RateLimit | None = None

    def __repr__(self) -> str:
        return f"EvotorCloud({self._base!r})"

    async def close(self) -> None:
        if self._own_client:
            await self._client.aclose()

    async def __aenter__(self) -> EvotorCloud:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- products and quantities ----------------------------------------------------------

    async def publish_products(
        self, store_uuid: str, products: Sequence[EvotorProduct]
    ) -> PublishResult:
        """Sends the full description of each product (the cloud replaces its old fields), in
        requests of at most `products_per_request`, each product once."""
        problems = {p.uuid: p.problems() for p in products if p.problems()}
        if problems:
            raise InvalidProducts(problems)
        _refuse_repeats(p.uuid for p in products)
        path = f"/api/v1/inventories/stores/{store_uuid}/products"
        results = []
        for chunk in _chunks([p.as_json() for p in products], self.products_per_request):
            results += await self._post_halving(path, chunk)
        return PublishResult(
            requests=len(results),
            violations=sum(_int_header(r, "X-Products-Violations-Count") for r in results),
            violation_details=tuple(
                r.headers["X-Products-Violations"]
                for r in results
                if r.headers.get("X-Products-Violations")
            ),
        )

    async def delete_products(
        self, store_uuid: str, uuids: Sequence[str], everything: bool = False
    ) -> None:
        """`.../products/delete`. The cloud deletes every product of the store for an empty
        array, so that takes `everything=True`."""
        if not uuids and not everything:
            raise ValueError("no products named: pass everything=True to delete them all")
        path = f"/api/v1/inventories/stores/{store_uuid}/products/delete"
        await self._request("POST", path, body=[{"uuid": u} for u in uuids])

    async def publish_quantities(self, store_uuid: str, quantities: Mapping[str, Decimal]) -> int:
        """`{"<product uuid>": "<quantity>"}` as the documentation's example writes it (the
        figure as a string); returns the number of requests made."""
        body = {uuid: _quantity_text(uuid, q) for uuid, q in quantities.items()}
        path = f"/api/v1/inventories/stores/{store_uuid}/products/quantities"
        requests = 0
        for chunk in _chunks(list(body.items()), self.products_per_request):
            await self._request("POST", path, body=dict(chunk))
            requests += 1
        return requests

    async def quantities(self, store_uuid: str) -> dict[str, Decimal]:
        path = f"/api/v1/inventories/stores/{store_uuid}/products/quantities"
        body = self._json(await self._request("GET", path), "GET quantities")
        if not isinstance(body, dict):
            raise CloudProtocolError("GET quantities: not an object")
        try:
            return {k.lower(): parse_quantity(v, k) for k, v in body.items()}
        except EvotorRequestError as exc:
            raise CloudProtocolError(f"GET quantities: {exc}") from None

    # --- documents ------------------------------------------------------------------------

    async def documents(
        self,
        store_uuid: str,
        since: datetime,
        until: datetime | None = None,
        *,
        types: Iterable[str] = (),
        device_uuid: str | None = None,
    ) -> AsyncIterator[DocumentWindow]:
        """The documents closed in [since, until) (until defaults to now), a window of at most
        a month per request as the cloud requires, oldest first. A till offline for hours
        syncs documents whose close time is long past: pull from a watermark set back by as
        long as a till may stay offline; applying by uuid makes the overlap harmless.
        The cloud compares `device_uuid` case-sensitively: pass it as the cloud wrote it, not
        as the readers normalize it."""
        now = self._now()
        start, until = since, min(until or now, now)
        earliest = add_months(now, -MONTHS_BACK) + _SAFETY
        truncated = earliest if start < earliest else None
        start = max(start, earliest)
        path = self.documents_path.format(store=store_uuid)
        while start < until:
            after = start - _MS
            before = min(add_months(after, 1), until)
            params = {"gtCloseDate": format_moment(after), "ltCloseDate": format_moment(before)}
            if types:
                params["types"] = ",".join(types)
            if device_uuid:
                params["deviceUuid"] = device_uuid
            body = self._json(await self._request("GET", path, params=params), "GET documents")
            if not isinstance(body, list):
                raise CloudProtocolError("GET documents: not an array")
            results = read_documents(body, store_uuid)
            yield DocumentWindow(start, before, results, truncated, list(body))
            start, truncated = before, None

    # --- stores, devices, employees -------------------------------------------------------

    async def stores(self) -> list[EvotorStore]:
        return self._entities(await self._get("/api/v1/inventories/stores/search"), read_stores)

    async def devices(self) -> list[EvotorDevice]:
        body = await self._get("/api/v1/inventories/devices/search")
        return self._entities(body, read_devices)

    async def employees(self) -> list[EvotorEmployee]:
        body = await self._get("/api/v1/inventories/employees/search")
        return self._entities(body, read_employees)

    # --- HTTP -----------------------------------------------------------------------------

    async def _get(self, path: str) -> Any:
        return self._json(await self._request("GET", path), f"GET {path}")

    def _entities(self, body: Any, read: Callable[[Any], list[Any]]) -> list[Any]:
        try:
            return read(body)
        except EvotorRequestError as exc:
            raise CloudProtocolError(f"a list the documentation does not describe: {exc}") from None

    async def _post_halving(self, path: str, items: list[Any]) -> list[httpx.Response]:
        """One request, or, when the cloud finds it too large (413), two of half the size."""
        try:
            return [await self._request("POST", path, body=items)]
        except CloudRequestError as exc:
            if exc.status != 413 or len(items) < 2:
                raise
        middle = len(items) // 2
        return await self._post_halving(path, items[:middle]) + await self._post_halving(
            path, items[middle:]
        )

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> httpx.Response:
        where = f"{method} {path}"
        await self._respect_budget(where)
        headers = {"X-Authorization": self._token, "Accept": "application/json"}
        content = None
        if body is not None:
            content = dumps(body).encode()
            headers["Content-Type"] = "application/json;charset=UTF-8"
        try:
            response = await self._client.request(
                method, self._base + path, params=params, content=content, headers=headers
            )
        except httpx.HTTPError as exc:
            # `from None`: the exception's request holds the headers, the token among them
            raise CloudUnavailable(f"{where}: no answer ({type(exc).__name__})") from None
        self._observe(response)
        status = response.status_code
        if status in (429, 503):
            raise CloudRateLimited(f"{where}: HTTP {status}", self._retry_after(response), status)
        if status == 401:
            raise CloudAuthError(f"{where}: the cloud refused the token ({_codes(response)})", 401)
        if status >= 500:
            raise CloudUnavailable(f"{where}: HTTP {status}", status)
        if status >= 400:
            raise CloudRequestError(f"{where}: HTTP {status}", status, _errors(response))
        return response

    async def _respect_budget(self, where: str) -> None:
        wait = self.rate_limit.wait(self._clock()) if self.rate_limit else 0.0
        if wait <= 0:
            return
        if wait > self.max_wait:
            raise CloudRateLimited(f"{where}: the rate limit is spent", wait)
        await self._sleep(wait)
        self.rate_limit = None

    def _observe(self, response: httpx.Response) -> None:
        headers = response.headers
        if not any(h in headers for h in ("X-RateLimit-Remaining", "X-RateLimit-Reset")):
            return
        self.rate_limit = RateLimit(
            limit=_optional_int(headers.get("X-RateLimit-Limit")),
            remaining=_optional_int(headers.get("X-RateLimit-Remaining")),
            reset_after=self._reset_seconds(headers.get("X-RateLimit-Reset")),
            observed_at=self._clock(),
        )

    def _retry_after(self, response: httpx.Response) -> float:
        for seconds in (
            _optional_float(response.headers.get("Retry-After")),
            self._reset_seconds(response.headers.get("X-RateLimit-Reset")),
        ):
            if seconds is not None:
                return seconds
        return self.default_retry_after

    def _reset_seconds(self, value: str | None) -> float | None:
        """Seconds to the next interval ("время, оставшееся до начала нового интервала");
        read as a Unix time instead when it is one."""
        seconds = _optional_float(value)
        if seconds is None:
            return None
        if seconds > 1e9:
            seconds -= self._now().timestamp()
        return max(0.0, seconds)

    def _json(self, response: httpx.Response, where: str) -> Any:
        try:
            return loads(response.content)
        except EvotorRequestError:
            raise CloudProtocolError(f"{where}: the answer is not JSON") from None


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), max(1, size))]


def _refuse_repeats(uuids: Iterable[str]) -> None:
    seen: set[str] = set()
    for uuid in uuids:
        if uuid in seen:
            # "make sure a product is sent once per sync, else the cloud does not save it"
            raise ValueError(f"product {uuid} is named twice in one publication")
        seen.add(uuid)


def _quantity_text(uuid: str, quantity: Decimal) -> str:
    if not isinstance(quantity, Decimal) or not quantity.is_finite() or decimals(quantity) > 3:
        raise ValueError(f"quantity of {uuid} must be a Decimal with at most 3 places")
    return format(quantity.quantize(Decimal("0.001")).normalize(), "f")


def _errors(response: httpx.Response) -> list[EvotorErrorItem]:
    try:
        body = loads(response.content)
    except EvotorRequestError:
        return []
    items = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(items, list):
        return []
    return [
        EvotorErrorItem(
            int(item["code"]) if isinstance(item.get("code"), int) else 0,
            str(item.get("reason") or ""),
            str(item["subject"]) if item.get("subject") is not None else None,
        )
        for item in items
        if isinstance(item, dict)
    ]


def _codes(response: httpx.Response) -> str:
    return ", ".join(str(e.code) for e in _errors(response)) or "no code"


def _int_header(response: httpx.Response, name: str) -> int:
    return _optional_int(response.headers.get(name)) or 0


def _optional_int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _optional_float(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


__all__ = [
    "CloudAuthError",
    "CloudError",
    "CloudProtocolError",
    "CloudRateLimited",
    "CloudRequestError",
    "CloudUnavailable",
    "DocumentWindow",
    "EvotorCloud",
    "InvalidProducts",
    "PublishResult",
    "RateLimit",
]
