"""Staff passwords: argon2id (argon2-cffi's defaults, RFC 9106's second recommended set),
hashed and checked in a worker thread so a login never stalls the other requests. A wrong
password or an unknown name gets the same answer after the same work and the same delay,
so neither the timing nor the message says which names exist."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ..db import users
from ..db.unit_of_work import Database
from ..domain.errors import InvalidRequest

MIN_PASSWORD = 8
MAX_PASSWORD = 1024
_hasher = PasswordHasher()


def check_password_rules(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidRequest(
            f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters", field="password"
        )


async def hash_password(password: str) -> str:
    check_password_rules(password)
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


class Authenticator:
    def __init__(self, db: Database, delay_seconds: float) -> None:
        self.db = db
        self.delay_seconds = delay_seconds
        self._dummy: str | None = None  # checked against for unknown names: the same work

    async def login(self, name: str, password: str) -> users.User | None:
        """The user, or None (after the delay) for a wrong name, password or a disabled one."""
        if self._dummy is None:
            self._dummy = await asyncio.to_thread(_hasher.hash, "not a password of anyone")
        async with self.db.connect(autocommit=True) as conn:
            user = await users.by_name(conn, name[:64])
        known = user is not None and not user.disabled
        stored = user.password_hash if user is not None and known else self._dummy
        right = await asyncio.to_thread(_verify, stored, password[:MAX_PASSWORD])
        if known and right:
            return user
        await asyncio.sleep(self.delay_seconds)
        return None
