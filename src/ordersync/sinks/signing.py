"""Signing webhook bodies (Stripe-style), so receivers know a request came from ordersync
and was not replayed.

Every webhook request carries

    X-Ordersync-Signature: t=<timestamp>,v1=<signature>

where ``<timestamp>`` is the sender's Unix time in whole seconds and ``<signature>`` is the
lowercase hex HMAC-SHA256, keyed with the sink's shared secret, of the bytes

    f"{timestamp}.".encode("ascii") + body

(``body`` being the raw request body exactly as received, before any JSON parsing).
The same timestamp is also sent as ``X-Ordersync-Timestamp`` for convenience; only the one
inside the signature header is authenticated.

A receiver should call :func:`verify` with the raw body and its own clock: it accepts the
request only when one of the ``v1`` signatures matches (compared in constant time) and the
timestamp is within ``tolerance_seconds`` of ``now`` (either direction), which bounds how
long a captured request can be replayed. Within that window, receivers deduplicate on the
event ids (delivery is at least once anyway). Several ``v1=`` entries are allowed so that a
secret can be rotated by signing with both keys for a while.
"""

from __future__ import annotations

import hashlib
import hmac

SCHEME = "v1"


def _digest(secret: bytes, timestamp: int, body: bytes) -> str:
    message = f"{timestamp}.".encode("ascii") + body
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The value of X-Ordersync-Signature for `body` sent at `timestamp` (Unix seconds)."""
    return f"t={timestamp},{SCHEME}={_digest(secret, timestamp, body)}"


def verify(
    secret: bytes, header: str, body: bytes, now: float, tolerance_seconds: float = 300
) -> bool:
    """True when `header` is a valid signature of `body` with `secret`, made no more than
    `tolerance_seconds` away from `now` (Unix seconds). Malformed headers give False."""
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if key == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit():
                return False
            timestamp = int(value)
        elif key == SCHEME:
            signatures.append(value)
    if timestamp is None or not signatures:
        return False
    if abs(now - timestamp) > tolerance_seconds:
        return False
    expected = _digest(secret, timestamp, body).encode("ascii")
    matched = False
    for candidate in signatures:
        # compare every candidate (no early exit), bytes so non-ASCII input cannot raise
        if hmac.compare_digest(expected, candidate.encode("utf-8")):
            matched = True
    return matched
