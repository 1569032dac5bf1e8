"""Field readers for Evotor payloads: ids compared case-insensitively, aware datetimes, and
quantities (3 places) and money (2 places) as Decimals from their decimal text. Each reader
names the field it refuses by its path, in Evotor's error format."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from ...domain.quantities import MAX_MONEY, MAX_QUANTITY, MONEY_SCALE, QUANTITY_SCALE
from .errors import EvotorRequestError, incorrect, missing

QUANTUM = Decimal(1).scaleb(-QUANTITY_SCALE)  # 0.001
CENT = Decimal(1).scaleb(-MONEY_SCALE)  # 0.01
_ID = re.compile(r"[0-9a-z_-]{1,64}")
_TEXT_LIMIT = 1000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def normalize_id(value: str) -> str:
    """Evotor ids compared case-insensitively: real traffic mixes `5a188de4-...` and
    `20190528-92E7-...` (a date where uuid4 has random digits). Lower case, trimmed."""
    return value.strip().lower()


def same_id(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and normalize_id(a) == normalize_id(b)


class Fields:
    """One JSON object of a payload and where it sits (`transactions[3]`), read field by field.
    `required=True` turns an absent or null field into 2002; a value of the wrong shape is 2003."""

    def __init__(self, raw: Any, path: str = "") -> None:
        if not isinstance(raw, Mapping):
            raise incorrect(path or "body", "not a JSON object")
        self.raw: Mapping[str, Any] = raw
        self.path = path

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return self.raw.get(key) is not None

    def value(self, key: str, required: bool = False) -> Any:
        value = self.raw.get(key)
        if value is None and required:
            raise missing(self.at(key))
        return value

    def text(self, key: str, required: bool = False, max_length: int = _TEXT_LIMIT) -> str | None:
        value = self.value(key, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
            raise incorrect(self.at(key), "not a string", value)
        text = str(value).strip()
        if not text:
            if required:
                raise missing(self.at(key))
            return None
        if len(text) > max_length:
            raise incorrect(self.at(key), f"longer than {max_length} characters")
        return text

    def ident(self, key: str, required: bool = False) -> str | None:
        text = self.text(key, required, max_length=64)
        if text is None:
            return None
        normal = normalize_id(text)
        if not _ID.fullmatch(normal):
            raise incorrect(self.at(key), "not an id", text)
        return normal

    def moment(self, key: str, required: bool = False) -> datetime | None:
        value = self.value(key, required)
        return None if value is None else parse_moment(value, self.at(key))

    def quantity(self, key: str, required: bool = False) -> Decimal | None:
        value = self.value(key, required)
        return None if value is None else parse_quantity(value, self.at(key))

    def money(self, key: str, required: bool = False) -> Decimal | None:
        value = self.value(key, required)
        return None if value is None else parse_money(value, self.at(key))

    def integer(self, key: str, required: bool = False) -> int | None:
        value = self.value(key, required)
        if value is None:
            return None
        number = parse_decimal(value, self.at(key))
        if number != number.to_integral_value() or abs(number) > 10**18:
            raise incorrect(self.at(key), "not a whole number", value)
        return int(number)

    def cost(self, key: str) -> Decimal | None:
        """A cost price: Evotor allows 3 places (`100.123`), so it is rounded to kopecks; an
        unreadable one is None (informational, never worth refusing a document for)."""
        value = self.raw.get(key)
        try:
            return None if value is None else abs(round_money(value, self.at(key)))
        except EvotorRequestError:
            return None

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise incorrect(self.at(key), "not true or false", value)
        return value

    def objects(self, key: str, required: bool = False) -> Iterator[Fields]:
        """The objects of an array field, each with its own path (`transactions[2]`)."""
        for index, item in enumerate(self.array(key, required)):
            yield Fields(item, f"{self.at(key)}[{index}]")

    def array(self, key: str, required: bool = False) -> list[Any]:
        value = self.value(key, required)
        if value is None:
            return []
        if not isinstance(value, list):
            raise incorrect(self.at(key), "not an array")
        return value

    def lenient(self, read: str, key: str) -> Any:
        """An informational field: its value, or None when it cannot be read (a till's own
        idea of its stock is not worth refusing a sale for)."""
        try:
            return getattr(self, read)(key)
        except EvotorRequestError:
            return None


def parse_decimal(value: Any, subject: str) -> Decimal:
    """A number from JSON (int, or the Decimal `wire.loads` makes) or from a numeric string
    (`"3548"`, `"247.5"`, `"10"`: Evotor sends some figures as strings). Never a float."""
    if isinstance(value, bool):
        raise incorrect(subject, "not a number", value)
    if isinstance(value, float):
        raise incorrect(subject, "a binary float (read the body with wire.loads)", value)
    if isinstance(value, int | Decimal):
        number = Decimal(value)
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip().replace(",", "."))
        except InvalidOperation:
            raise incorrect(subject, "not a number", value) from None
    else:
        raise incorrect(subject, "not a number", value)
    if not number.is_finite():
        raise incorrect(subject, "not a finite number", value)
    return number


def parse_quantity(value: Any, subject: str) -> Decimal:
    """Signed, at most 3 decimals, at most a billion: returned with exactly 3 places."""
    return _scaled(value, subject, QUANTITY_SCALE, QUANTUM, MAX_QUANTITY)


def parse_money(value: Any, subject: str) -> Decimal:
    """Signed, at most 2 decimals (trailing zeros aside: `37.500` is 37.50)."""
    return _scaled(value, subject, MONEY_SCALE, CENT, MAX_MONEY)


def round_money(value: Any, subject: str) -> Decimal:
    """Money where Evotor allows more places than kopecks (a cost price of `100.123`):
    rounded half up to 2 places."""
    number = parse_decimal(value, subject)
    if abs(number) > MAX_MONEY:
        raise incorrect(subject, "too large", value)
    return number.quantize(CENT, ROUND_HALF_UP)


def _scaled(value: Any, subject: str, scale: int, quantum: Decimal, limit: Decimal) -> Decimal:
    number = parse_decimal(value, subject)
    if abs(number) > limit:
        raise incorrect(subject, "too large", value)
    if decimals(number) > scale:
        raise incorrect(subject, f"more than {scale} decimals", value)
    return number.quantize(quantum)


def magnitude(value: Decimal | None) -> Decimal | None:
    return None if value is None else abs(value)


def decimals(value: Decimal) -> int:
    """Places after the point, trailing zeros aside (`37.500` has 1)."""
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    places, index = -exponent, len(digits) - 1
    while places > 0 and index >= 0 and digits[index] == 0:
        places, index = places - 1, index - 1
    return max(0, places)


def parse_moment(value: Any, subject: str) -> datetime:
    """`2017-01-10T09:33:19.757+0000` (documents), `2017-06-07T12:55:18Z` (receipts), or epoch
    milliseconds as a number; always with its offset, returned in UTC."""
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        try:
            return EPOCH + timedelta(microseconds=int(Decimal(value) * 1000))
        except (OverflowError, ValueError, ArithmeticError):
            raise incorrect(subject, "not a time", value) from None
    if not isinstance(value, str):
        raise incorrect(subject, "not a time", value)
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise incorrect(subject, "not an ISO 8601 time", value) from None
    if moment.tzinfo is None:
        raise incorrect(subject, "a time without its UTC offset", value)
    return moment.astimezone(UTC)


def format_moment(moment: datetime) -> str:
    """The cloud's own format, `2017-01-10T09:33:19.757+0000`, in UTC."""
    if moment.tzinfo is None:
        raise ValueError("an aware datetime is needed")
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}+0000"


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and time `months` calendar months later (or earlier), the day clipped to
    the month's end: the cloud's "one month" window and "six months back" limit."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    last = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
    return moment.replace(year=year, month=month, day=min(moment.day, last))
