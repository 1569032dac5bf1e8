"""Staff accounts of the console: stored with an argon2 hash of the password (hashed and
checked in ui/accounts.py), never the password."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Row, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.errors import DuplicateKey
from ..domain.types import StaffRole
from .tables import users


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    role: StaffRole
    store_ids: frozenset[int]
    password_hash: str
    locale: str | None
    session_version: int
    disabled: bool


def _user(row: Row[object]) -> User:
    r = row._mapping
    return User(
        r["id"],
        r["name"],
        StaffRole(r["role"]),
        frozenset(r["store_ids"]),
        r["password_hash"],
        r["locale"],
        r["session_version"],
        r["disabled_at"] is not None,
    )


async def create_user(
    conn: AsyncConnection,
    name: str,
    role: StaffRole,
    store_ids: Sequence[int],
    password_hash: str,
    now: datetime,
) -> int:
    try:
        result = await conn.execute(
            insert(users)
            .values(
                name=name,
                role=role.value,
                store_ids=sorted(store_ids),
                password_hash=password_hash,
                created_at=now,
                updated_at=now,
            )
            .returning(users.c.id)
        )
    except IntegrityError as exc:
        raise DuplicateKey(f"a user named {name} exists", name=name) from exc
    return int(result.scalar_one())


async def by_name(conn: AsyncConnection, name: str) -> User | None:
    row = (await conn.execute(select(users).where(users.c.name == name))).first()
    return None if row is None else _user(row)


async def by_id(conn: AsyncConnection, user_id: int) -> User | None:
    row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
    return None if row is None else _user(row)


async def all_users(conn: AsyncConnection) -> list[User]:
    return [_user(r) for r in await conn.execute(select(users).order_by(users.c.id))]


async def count_users(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(users))).scalar_one())


async def set_password(conn: AsyncConnection, name: str, password_hash: str, now: datetime) -> bool:
    """A new password ends the user's open sessions (and enables a disabled account)."""
    result = await conn.execute(
        update(users)
        .where(users.c.name == name)
        .values(
            password_hash=password_hash,
            session_version=users.c.session_version + 1,
            disabled_at=None,
            updated_at=now,
        )
    )
    return bool(result.rowcount)


async def disable(conn: AsyncConnection, name: str, now: datetime) -> bool:
    result = await conn.execute(
        update(users)
        .where(users.c.name == name, users.c.disabled_at.is_(None))
        .values(disabled_at=now, session_version=users.c.session_version + 1, updated_at=now)
    )
    return bool(result.rowcount)


async def set_locale(
    conn: AsyncConnection, user_id: int, locale: str | None, now: datetime
) -> None:
    await conn.execute(
        update(users).where(users.c.id == user_id).values(locale=locale, updated_at=now)
    )
