"""Reading the scalar values of Bitrix REST payloads, as the official documentation shows them
(bitrix24/b24restdocs, api-reference/sale/data-types.md and the examples of each method).

The same field arrives in more than one form: ids as numbers in one place and strings in
another (`sale.order.get` gives `"id": 236` but `basketItems[].id: "255"`), money as JSON
numbers, flags as "Y"/"N", dates as ISO 8601 with the site's offset. These readers accept every
documented form and refuse what would make the data wrong (a flag that is neither, a price that
is not a number, a date without an offset when none is known)."""

from __future__ import annotations

import math
import re
from datetime import datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from ...domain.errors import InvalidRequest

_ASCII_DIGITS = re.compile(r"[0-9]{1,18}")


class BadSitePayload(InvalidRequest):
    """The site sent something its documentation does not allow."""

    code = "bad_site_payload"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, **details)


def site_id(value: Any, what: str) -> str:
    """An integer id given as a number or a string, as its canonical decimal text."""
    if isinstance(value, bool) or value is None:
        raise BadSitePayload(f"{what} is not an id: {value!r}", field=what)
    if isinstance(value, int):
        whole = value
    elif isinstance(value, str) and _ASCII_DIGITS.fullmatch(value.strip()):
        whole = int(value.strip())
    elif isinstance(value, float | Decimal) and _whole(value):
        whole = int(value)
    else:
        raise BadSitePayload(f"{what} is not an id: {value!r}", field=what)
    if whole < 0:
        raise BadSitePayload(f"{what} is negative: {value!r}", field=what)
    return str(whole)


def _whole(value: float | Decimal) -> bool:
    if isinstance(value, float):
        return math.isfinite(value) and value.is_integer()
    return value.is_finite() and value == value.to_integral_value()


def optional_id(value: Any, what: str) -> str | None:
    if value is None or value == "":
        return None
    return site_id(value, what)


def flag(value: Any, what: str) -> bool:
    """A Y/N flag (lower case and JSON booleans are tolerated)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().upper() in ("Y", "N"):
        return value.strip().upper() == "Y"
    raise BadSitePayload(f"{what} is not a Y/N flag: {value!r}", field=what)


def number(value: Any, what: str) -> Decimal:
    """A number as Decimal from its text: a JSON number (int, float, or Decimal when the JSON
    was parsed with parse_float=Decimal) or a numeric string."""
    if isinstance(value, bool) or value is None:
        raise BadSitePayload(f"{what} is not a number: {value!r}", field=what)
    if isinstance(value, float) and not math.isfinite(value):
        raise BadSitePayload(f"{what} is not a finite number: {value!r}", field=what)
    try:
        # str() of a float is its shortest round-trip text: 0.1 -> "0.1", not the binary value
        result = Decimal(value.strip() if isinstance(value, str) else str(value))
    except (InvalidOperation, AttributeError, TypeError) as exc:
        raise BadSitePayload(f"{what} is not a number: {value!r}", field=what) from exc
    if not result.is_finite():
        raise BadSitePayload(f"{what} is not a finite number: {value!r}", field=what)
    return result


def moment(value: Any, what: str, naive_tz: tzinfo | None = None) -> datetime:
    """An ISO 8601 date and time with its offset ("2024-02-28T17:37:11+02:00"). A value without
    an offset takes `naive_tz` if given and is refused otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise BadSitePayload(f"{what} is not a date: {value!r}", field=what)
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise BadSitePayload(f"{what} is not an ISO 8601 date: {value!r}", field=what) from exc
    if parsed.tzinfo is None:
        if naive_tz is None:
            raise BadSitePayload(f"{what} has no UTC offset: {value!r}", field=what)
        parsed = parsed.replace(tzinfo=naive_tz)
    return parsed


def optional_moment(value: Any, what: str, naive_tz: tzinfo | None = None) -> datetime | None:
    if value is None or value == "":
        return None
    return moment(value, what, naive_tz)


def text(value: Any) -> str:
    """A string field that may be null or, in some answers, a number."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, int | float | Decimal):
        return str(value)
    raise BadSitePayload(f"not a text value: {value!r}")


def optional_text(value: Any) -> str | None:
    result = text(value).strip()
    return result or None
