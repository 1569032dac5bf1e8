"""Stored responses of write requests, by (principal, Idempotency-Key).

A write that carries a key claims it first, inside its own transaction (`claim`): a row with
status PENDING. A concurrent request with the same key then waits on the primary key until
the first transaction ends: it reads the stored response if that committed, or takes the key
itself if that was refused and rolled back. A PENDING row is never committed: the write
replaces it with its response (`save_response`) in the same transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.errors import Conflict, IdempotencyKeyReused
from ..services.ports import StoredResponse
from .tables import idempotency_keys

PENDING = 0  # the status of a key claimed by a transaction that has not finished


async def claim(
    conn: AsyncConnection, principal: str, key: str, request_hash: str, now: datetime
) -> StoredResponse | None:
    """Takes the key for this request (None), or returns the first request's response.
    On PostgreSQL the insert waits while another transaction holds the same key; SQLite
    runs one writer at a time, so there the first request has always finished."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = (
        dialect.insert(idempotency_keys)
        .values(
            principal=principal,
            key=key,
            request_hash=request_hash,
            status_code=PENDING,
            response={},
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["principal", "key"])
    )
    if (await conn.execute(stmt)).rowcount == 1:
        return None
    return await find_response(conn, principal, key, request_hash)


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
    if row.status_code == PENDING:  # only a transaction's own claim; never committed
        raise Conflict("the first request with this Idempotency-Key has not finished", key=key)
    return StoredResponse(row.status_code, row.response)


async def save_response(
    conn: AsyncConnection,
    principal: str,
    key: str,
    request_hash: str,
    response: StoredResponse,
    now: datetime,
) -> None:
    """The response in place of this transaction's claim, or a new row (order placement,
    whose key is written with the order)."""
    claimed = await conn.execute(
        update(idempotency_keys)
        .where(
            idempotency_keys.c.principal == principal,
            idempotency_keys.c.key == key,
            idempotency_keys.c.status_code == PENDING,
        )
        .values(status_code=response.status_code, response=response.body)
    )
    if claimed.rowcount:
        return
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
