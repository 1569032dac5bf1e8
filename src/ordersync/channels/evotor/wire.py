"""JSON as Evotor writes it, without binary floats: every number with a fraction or an
exponent is read as a Decimal from its own text (`1.000`, `37.500`, `3548.0`), whole numbers as
ints; NaN and Infinity are refused. `dumps` writes Decimals back as JSON numbers, digit for
digit, and refuses floats so none can slip into what the hub sends."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .errors import syntax


def loads(body: bytes | str) -> Any:
    """The parsed body; EvotorRequestError 2001 when it is not JSON."""
    try:
        return json.loads(body, parse_float=Decimal, parse_constant=_refuse_constant)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise syntax(f"not JSON: {_short(exc)}") from None


def dumps(value: Any) -> str:
    """Compact JSON with Decimals as numbers (`Decimal("12.50")` is written `12.50`)."""
    parts: list[str] = []
    _encode(value, parts)
    return "".join(parts)


def stored(value: Any) -> str:
    """JSON as the hub keeps what it received (the inbox): compact, by the C encoder, with
    each number read as a Decimal written as its exact decimal text in a string (`"1.000"`):
    the readers take numbers and numeric strings alike. Floats are refused."""
    return json.dumps(value, default=_as_text, ensure_ascii=False, separators=(",", ":"))


def _as_text(value: Any) -> str:
    if isinstance(value, Decimal) and value.is_finite():
        return format(value, "f")
    raise TypeError(f"{type(value).__name__} is not JSON")


def _encode(value: Any, out: list[str]) -> None:
    if value is None or isinstance(value, bool | str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a finite number")
        out.append(format(value, "f"))
    elif isinstance(value, float):
        raise TypeError("floats are not written: pass a Decimal")
    elif isinstance(value, Mapping):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys are strings, not {type(key).__name__}")
            out.append("," if index else "")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            out.append("," if index else "")
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"{type(value).__name__} is not JSON")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _short(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)[:120]


__all__ = ["dumps", "loads", "stored"]
