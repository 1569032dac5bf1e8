"""Search keys of a customer, written with the order and computed the same way from what an
operator types: a phone as its digits (Russian numbers as 7XXXXXXXXXX, whether written +7,
8 or without the country code), a name folded (any letter case, Cyrillic included; ё as е;
spaces collapsed)."""

from __future__ import annotations

import re
from typing import Any

_NOT_DIGIT = re.compile(r"\D")
PHONE_KEY_LENGTH = 32
NAME_KEY_LENGTH = 255


def phone_key(raw: Any) -> str | None:
    """'+7 (916) 123-45-67', '8 916 123 45 67' and '9161234567' all give '79161234567'."""
    if not isinstance(raw, str | int):
        return None
    digits = _NOT_DIGIT.sub("", str(raw))
    if len(digits) == 11 and digits[0] == "8":
        digits = "7" + digits[1:]
    elif len(digits) == 10 and digits[0] == "9":
        digits = "7" + digits
    return digits[:PHONE_KEY_LENGTH] or None


def name_key(raw: Any) -> str | None:
    if not isinstance(raw, str):
        return None
    folded = " ".join(raw.casefold().replace("ё", "е").split())
    return folded[:NAME_KEY_LENGTH] or None


def customer_keys(customer: dict[str, Any]) -> tuple[str | None, str | None]:
    """(phone key, name key) of an order's customer."""
    return phone_key(customer.get("phone")), name_key(customer.get("name"))


def prefix_bounds(prefix: str) -> tuple[str, str]:
    """[low, high): every text that starts with `prefix`, in code point (binary) order."""
    head = prefix
    while head:
        following = ord(head[-1]) + 1
        if following <= 0x10FFFF:
            if 0xD800 <= following <= 0xDFFF:  # no text holds a surrogate
                following = 0xE000
            return prefix, head[:-1] + chr(following)
        head = head[:-1]
    raise ValueError("no text follows every text with this prefix")


def phone_prefix(typed: str) -> str | None:
    """The start of a phone key from what an operator typed so far: '8 916 12' and
    '+7 916 12' give '791612'; None when it is not (yet) a phone: fewer than 5 digits."""
    digits = _NOT_DIGIT.sub("", typed)
    if len(digits) >= 11:
        return phone_key(digits)
    if digits[:1] == "8":
        digits = "7" + digits[1:]
    elif digits[:1] == "9":
        digits = "7" + digits
    return digits if len(digits) >= 5 else None
