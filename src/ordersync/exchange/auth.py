"""Exchange credentials (kept as salted PBKDF2 hashes) and session cookies."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

COOKIE_NAME = "ordersync_exchange"  # 1C refuses cookie names with a dot
_ITERATIONS = 200_000


def hash_password(password: str, iterations: int = _ITERATIONS) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str | None) -> bool:
    if not stored:
        return False
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.pbkdf2_hmac(
            "sha256", password.encode(), base64.b64decode(salt), int(iterations)
        )
    except (ValueError, OverflowError, binascii.Error):
        return False
    return hmac.compare_digest(actual, expected)


def new_cookie() -> str:
    return secrets.token_urlsafe(32)


def cookie_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def credentials_token(login: str, password: str, stored: str) -> str:
    """The session key of a client that sends HTTP Basic instead of the cookie: the same
    credentials find the same session without PBKDF2 again. Keyed by the stored hash, so the
    database alone does not allow a fast guess, and a new password leaves old sessions behind."""
    message = f"{login}\0{password}".encode()
    return hmac.new(stored.encode(), message, hashlib.sha256).hexdigest()


def parse_basic(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True)
    except (ValueError, binascii.Error):
        return None
    for encoding in ("utf-8", "cp1251"):  # 1C sends the login in either
        try:
            text = decoded.decode(encoding)
        except UnicodeDecodeError:
            continue
        login, sep, password = text.partition(":")
        return (login, password) if sep else None
    return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
