"""Signing per the Standard Webhooks specification (https://www.standardwebhooks.com), so a
receiver can check ordersync's requests with an existing library (the spec's own, in many
languages) instead of code of its own. Sent beside X-Ordersync-Signature (sinks.signing),
which receivers already integrated keep using.

    webhook-id: <the batch's id, the same on every retry of the same events>
    webhook-timestamp: <Unix seconds of this attempt>
    webhook-signature: v1,<base64 of HMAC-SHA256 over "<webhook-id>.<webhook-timestamp>.<body>">

The key: a secret written `whsec_<base64>` (the spec's serialisation) is the bytes that base64
decodes to; any other secret is its own UTF-8 bytes (give a receiver's library those bytes,
not the string, since the libraries base64-decode strings).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"
_NOT_ID = re.compile(r"[^A-Za-z0-9_-]")


def signing_key(secret: str | bytes) -> bytes:
    """The HMAC key of a configured secret (see the module docstring)."""
    if isinstance(secret, bytes):
        return secret
    if secret.startswith(SECRET_PREFIX):
        encoded = secret.removeprefix(SECRET_PREFIX)
        try:
            return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except binascii.Error as exc:
            raise ValueError("a whsec_ secret must be base64 after the prefix") from exc
    return secret.encode("utf-8")


def message_id(sink: str, event_ids: Sequence[int]) -> str:
    """A stable id of a batch: its sink and its first and last event (a lane's events between
    two ids are always the same), with no "." (the spec forbids it in ids)."""
    return f"ordersync-{_NOT_ID.sub('-', sink)}-{event_ids[0]}-{event_ids[-1]}"


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(key: bytes, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(key, msg_id, timestamp, body),
    }
