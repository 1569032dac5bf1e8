"""Identifiers made by the hub, so a whole order can be written in one statement."""

from __future__ import annotations

import os
import time
import uuid


def uuid7() -> str:
    """A time-ordered UUID (RFC 9562 version 7): new rows land at the end of the index."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))
