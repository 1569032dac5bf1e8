"""Stored responses of write requests, by (principal, Idempotency-Key)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.errors import IdempotencyKeyReused
from ..services.ports import StoredResponse
from .tables import idempotency_keys


async def find_response(
    conn: AsyncConnection, principal: str, key: str, request_hash: str
) -> StoredResponse | None:
    """The first response to this key, or None; a different body under the same key is refused."""
    row = (
        await conn.execute(
            select(idempotency_keys).where(
                idempotency_keys.c.principal == principal, idempotency_keys.c.key == key
            )
        )
    ).first()
    if row is None:
        return None
    if row.request_hash != request_hash:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used with a different request body", key=key
        )
    return StoredResponse(row.status_code, row.response)


async def save_response(
    conn: AsyncConnection,
    principal: str,
    key: str,
    request_hash: str,
    response: StoredResponse,
    now: datetime,
) -> None:
    await conn.execute(
        insert(idempotency_keys).values(
            principal=principal,
            key=key,
            request_hash=request_hash,
            status_code=response.status_code,
            response=response.body,
            created_at=now,
        )
    )
