"""API tokens, stored as SHA-256 hashes: the database never holds a usable token."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.types import Role
from .tables import api_tokens

TOKEN_PREFIX = "os_"


@dataclass(frozen=True, slots=True)
class TokenRow:
    id: int
    name: str
    role: Role
    store_ids: frozenset[int]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


async def create_token(
    conn: AsyncConnection, name: str, role: Role, store_ids: list[int], now: datetime
) -> tuple[int, str]:
    token = new_token()
    token_id = (
        await conn.execute(
            insert(api_tokens)
            .values(
                name=name,
                role=role.value,
                token_hash=hash_token(token),
                store_ids=sorted(store_ids),
                created_at=now,
            )
            .returning(api_tokens.c.id)
        )
    ).scalar_one()
    return int(token_id), token


async def find_token(conn: AsyncConnection, token: str) -> TokenRow | None:
    row = (
        await conn.execute(
            select(api_tokens).where(
                api_tokens.c.token_hash == hash_token(token), api_tokens.c.revoked_at.is_(None)
            )
        )
    ).first()
    if row is None:
        return None
    return TokenRow(row.id, row.name, Role(row.role), frozenset(row.store_ids))


async def revoke_token(conn: AsyncConnection, token_id: int, now: datetime) -> bool:
    result = await conn.execute(
        update(api_tokens)
        .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(result.rowcount)


async def list_tokens(conn: AsyncConnection) -> list[tuple[int, str, str, list[int], bool]]:
    rows = (await conn.execute(select(api_tokens).order_by(api_tokens.c.id))).all()
    return [(r.id, r.name, r.role, list(r.store_ids), r.revoked_at is None) for r in rows]
