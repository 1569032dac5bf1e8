"""A small async client for the REST API of a 1C-Bitrix site, through an incoming webhook
(`https://<site>/rest/<user>/<code>/`): single calls, the `batch` method, and Bitrix's error
envelope (`{"error": <number or string>, "error_description": ...}`)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx

BATCH_LIMIT = 50  # Bitrix refuses more commands with ERROR_BATCH_LENGTH_EXCEEDED
RATE_LIMIT_CODES = frozenset({"QUERY_LIMIT_EXCEEDED", "OVERLOAD_LIMIT"})
QUERY_LIMIT_DELAY = 1.0  # the leaky bucket drains about 2 requests a second
OVERLOAD_DELAY = 60.0  # the "operating" limit is counted over minutes

BatchCommand = tuple[str, Mapping[str, Any]]


class BitrixError(Exception):
    """An error answered by Bitrix. `code` is kept as Bitrix sent it: a number for the sale and
    catalog modules (200040300020), a string for system errors (QUERY_LIMIT_EXCEEDED)."""

    def __init__(
        self,
        code: int | str,
        description: str = "",
        status: int | None = None,
        method: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        where = f"{method}: " if method else ""
        super().__init__(f"{where}Bitrix error {code!r} (HTTP {status}): {description}")
        self.code = code
        self.description = description
        self.status = status
        self.method = method
        self.retry_after = retry_after

    @property
    def retry_later(self) -> bool:
        """The site is fine but refused for now (rate or load limit): come back later."""
        return False

    @property
    def refuses_data(self) -> bool:
        """A module refused what the command carried (a numeric sale or catalog error code:
        an unknown order or product, a status the site does not have, too little stock to
        write off), as opposed to the site being unreachable, limited, or closed to us
        (string system codes, access denied 2000403..., HTTP 401/403/5xx)."""
        if self.retry_later or self.status in (401, 403) or (self.status or 0) >= 500:
            return False
        code = str(self.code)
        return code.isdigit() and "0403" not in code


class BitrixRateLimited(BitrixError):
    """503 / QUERY_LIMIT_EXCEEDED / OVERLOAD_LIMIT: nothing wrong with the request."""

    @property
    def retry_later(self) -> bool:
        return True


class BitrixBatchError(BitrixError):
    """One or more commands of a batch failed (`result_error`). `results` holds what the other
    commands returned, `errors` the failure of each failed key."""

    def __init__(self, errors: dict[str, BitrixError], results: dict[str, Any]) -> None:
        first_key, first = next(iter(errors.items()))
        delays = [e.retry_after for e in errors.values() if e.retry_after is not None]
        super().__init__(
            first.code,
            f"{len(errors)} batch command(s) failed, first {first_key}: {first.description}",
            first.status,
            "batch",
            max(delays) if delays else None,
        )
        self.errors = errors
        self.results = results

    @property
    def retry_later(self) -> bool:
        return any(e.retry_later for e in self.errors.values())

    @property
    def refuses_data(self) -> bool:
        """Some command's data was refused, and nothing says to come back later."""
        if self.retry_later:
            return False
        return any(e.refuses_data for e in self.errors.values())


def parse_error(
    body: Any,
    status: int | None,
    method: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> BitrixError:
    """The exception for an error envelope (or a reply that is not one)."""
    code: int | str
    description = ""
    if isinstance(body, Mapping) and "error" in body:
        raw = body["error"]
        code = raw if isinstance(raw, int | str) else str(raw)
        description = str(body.get("error_description") or "")
    else:
        code = f"HTTP_{status}"
        description = str(body)[:200] if body is not None else ""
    limited = status == 503 or (isinstance(code, str) and code.upper() in RATE_LIMIT_CODES)
    if not limited:
        return BitrixError(code, description, status, method)
    delay = _retry_after_header(headers)
    if delay is None:
        delay = OVERLOAD_DELAY if code == "OVERLOAD_LIMIT" else QUERY_LIMIT_DELAY
    return BitrixRateLimited(code, description, status, method, delay)


def _retry_after_header(headers: Mapping[str, str] | None) -> float | None:
    if not headers:
        return None
    value = headers.get("retry-after") or headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(f"{prefix}[{key}]" if prefix else str(key), item, out)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _flatten(f"{prefix}[{index}]", item, out)
    else:
        out.append((prefix, _scalar(value)))


def php_query(params: Mapping[str, Any]) -> str:
    """PHP `http_build_query` style: `fields[docType]=A&filter[@productId][0]=5`. Brackets in
    keys are left readable (PHP's parse_str takes them either way); values are percent-encoded,
    so a `$result[key][field]` reference arrives intact after decoding."""
    pairs: list[tuple[str, str]] = []
    _flatten("", params, pairs)
    return "&".join(f"{quote(k, safe='[]')}={quote(v, safe='')}" for k, v in pairs)


class BitrixRest:
    """`call` posts JSON to `<webhook_url>/<method>.json`; `batch` sends up to 50 commands."""

    def __init__(
        self, webhook_url: str, client: httpx.AsyncClient | None = None, timeout: float = 30.0
    ) -> None:
        self.base = webhook_url.rstrip("/") + "/"
        self._own_client = client is None
        self.client = client or httpx.AsyncClient(timeout=timeout)

    async def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """The `result` of one method; raises BitrixError for an error envelope."""
        body = await self._post(method, dict(params or {}))
        return body["result"]

    async def call_all(
        self, method: str, params: Mapping[str, Any], key: str, max_pages: int = 100
    ) -> list[Any]:
        """Every row of a list method (`result[key]`, 50 a page), following `next`."""
        rows: list[Any] = []
        start: int | None = 0
        for _ in range(max_pages):
            body = await self._post(method, {**params, "start": start})
            rows.extend((body["result"] or {}).get(key) or [])
            start = body.get("next")
            if start is None:
                break
        return rows

    async def _post(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        response = await self.client.post(f"{self.base}{method}.json", json=params)
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        if response.status_code >= 400 or not isinstance(body, dict) or "error" in body:
            raise parse_error(body, response.status_code, method, response.headers)
        if "result" not in body:
            raise BitrixError("NO_RESULT", f"reply without result: {str(body)[:200]}", 200, method)
        return body

    async def batch(
        self, commands: Mapping[str, BatchCommand], halt: bool = False
    ) -> dict[str, Any]:
        """Runs the commands (keyed; a later one may refer to `$result[key][field]`) and returns
        each key's result. If any command failed, raises BitrixBatchError carrying both."""
        if not commands:
            return {}
        if len(commands) > BATCH_LIMIT:
            raise ValueError(f"a batch holds at most {BATCH_LIMIT} commands, not {len(commands)}")
        cmd = {key: f"{method}?{php_query(params)}" for key, (method, params) in commands.items()}
        body = await self._post("batch", {"halt": 1 if halt else 0, "cmd": cmd})
        outer = body["result"]
        results = outer.get("result") or {}
        raw_errors = outer.get("result_error") or {}
        # PHP serialises an empty array as [], a keyed one as {}
        results = dict(results) if isinstance(results, dict) else {}
        raw_errors = dict(raw_errors) if isinstance(raw_errors, dict) else {}
        if raw_errors:
            errors = {
                key: parse_error(value, _error_status(value), commands[key][0])
                if key in commands
                else parse_error(value, None, key)
                for key, value in raw_errors.items()
            }
            raise BitrixBatchError(errors, results)
        return results

    async def close(self) -> None:
        if self._own_client:
            await self.client.aclose()


def _error_status(value: Any) -> int | None:
    if isinstance(value, Mapping) and value.get("error") in RATE_LIMIT_CODES:
        return 503
    return None
