"""The exchange's own records: sessions (one per 1C dialogue), files and the exchange log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from .tables import (
    exchange_chunks,
    exchange_files,
    exchange_log,
    exchange_sessions,
    exchange_stage_items,
    exchange_stage_stores,
)


@dataclass(frozen=True)
class ExchangeSession:
    id: str
    type: str
    login: str
    version: str | None
    pending_query: list[list[str]] | None
    created_at: datetime
    last_seen_at: datetime


@dataclass(frozen=True)
class ExchangeFile:
    id: int
    session_id: str
    name: str
    kind: str | None
    status: str  # receiving, staging, staged, applying, done, failed
    size: int
    last_chunk_hash: str | None
    formed_at: datetime | None
    staged: int
    applied: int
    result: dict[str, Any]
    message: str | None
    updated_at: datetime  # while receiving: when its last chunk arrived


async def create_session(
    conn: AsyncConnection, id_: str, type_: str, cookie_hash: str, login: str, now: datetime
) -> None:
    await conn.execute(
        insert(exchange_sessions).values(
            id=id_,
            type=type_,
            cookie_hash=cookie_hash,
            login=login,
            created_at=now,
            last_seen_at=now,
        )
    )


async def open_session(
    conn: AsyncConnection, id_: str, type_: str, cookie_hash: str, login: str, now: datetime
) -> None:
    """Like create_session, unless a session with this key exists (opened meanwhile by a
    concurrent call with the same credentials)."""
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    await conn.execute(
        dialect_insert(exchange_sessions)
        .values(
            id=id_,
            type=type_,
            cookie_hash=cookie_hash,
            login=login,
            created_at=now,
            last_seen_at=now,
        )
        .on_conflict_do_nothing(index_elements=["cookie_hash"])
    )


async def session_by_cookie(conn: AsyncConnection, cookie_hash: str) -> ExchangeSession | None:
    t = exchange_sessions.c
    row = (
        await conn.execute(
            select(
                t.id, t.type, t.login, t.version, t.pending_query, t.created_at, t.last_seen_at
            ).where(t.cookie_hash == cookie_hash)
        )
    ).first()
    return None if row is None else ExchangeSession(**row._mapping)


async def update_session(conn: AsyncConnection, session_id: str, **values: Any) -> None:
    await conn.execute(
        update(exchange_sessions).where(exchange_sessions.c.id == session_id).values(**values)
    )


async def expired_sessions(conn: AsyncConnection, before: datetime) -> list[str]:
    t = exchange_sessions.c
    rows = await conn.execute(select(t.id).where(t.last_seen_at < before))
    return [r.id for r in rows]


async def drop_session(conn: AsyncConnection, session_id: str) -> None:
    await drop_files(conn, session_id)
    await conn.execute(delete(exchange_sessions).where(exchange_sessions.c.id == session_id))


async def drop_files(conn: AsyncConnection, session_id: str) -> None:
    for file in await session_files(conn, session_id):
        await clear_stage(conn, file.id)
        await conn.execute(delete(exchange_chunks).where(exchange_chunks.c.file_id == file.id))
    await conn.execute(delete(exchange_files).where(exchange_files.c.session_id == session_id))


_FILE_COLUMNS = (
    exchange_files.c.id,
    exchange_files.c.session_id,
    exchange_files.c.name,
    exchange_files.c.kind,
    exchange_files.c.status,
    exchange_files.c.size,
    exchange_files.c.last_chunk_hash,
    exchange_files.c.formed_at,
    exchange_files.c.staged,
    exchange_files.c.applied,
    exchange_files.c.result,
    exchange_files.c.message,
    exchange_files.c.updated_at,
)


async def get_file(
    conn: AsyncConnection, session_id: str, name: str, lock: bool = False
) -> ExchangeFile | None:
    t = exchange_files.c
    stmt = select(*_FILE_COLUMNS).where(t.session_id == session_id, t.name == name)
    if lock and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    return None if row is None else ExchangeFile(**row._mapping)


async def session_files(conn: AsyncConnection, session_id: str) -> list[ExchangeFile]:
    stmt = select(*_FILE_COLUMNS).where(exchange_files.c.session_id == session_id)
    return [ExchangeFile(**row._mapping) for row in await conn.execute(stmt)]


async def create_file(
    conn: AsyncConnection, session_id: str, name: str, kind: str | None, now: datetime
) -> None:
    await conn.execute(
        insert(exchange_files).values(
            session_id=session_id,
            name=name,
            kind=kind,
            status="receiving",
            size=0,
            staged=0,
            applied=0,
            result={},
            updated_at=now,
        )
    )


async def update_file(conn: AsyncConnection, file_id: int, now: datetime, **values: Any) -> None:
    await conn.execute(
        update(exchange_files)
        .where(exchange_files.c.id == file_id)
        .values(updated_at=now, **values)
    )


async def clear_stage(conn: AsyncConnection, file_id: int) -> None:
    for table in (exchange_stage_items, exchange_stage_stores):
        await conn.execute(delete(table).where(table.c.file_id == file_id))


async def log(
    conn: AsyncConnection,
    session_id: str | None,
    file_name: str | None,
    level: str,
    message: str,
    now: datetime,
) -> None:
    await conn.execute(
        insert(exchange_log).values(
            session_id=session_id, file_name=file_name, level=level, message=message, at=now
        )
    )


async def recent_log(conn: AsyncConnection, limit: int = 100) -> list[tuple[datetime, str, str]]:
    t = exchange_log.c
    rows = await conn.execute(select(t.at, t.level, t.message).order_by(t.id.desc()).limit(limit))
    return [(r.at, r.level, r.message) for r in rows]


async def prune_log(conn: AsyncConnection, before: datetime) -> None:
    await conn.execute(delete(exchange_log).where(exchange_log.c.at < before))


async def claim_chunk(conn: AsyncConnection, file_id: int, chunk: int) -> bool:
    """True when this transaction is the one applying the chunk; a concurrent claimer waits
    for the first to commit (then gets False) or to roll back (then gets True)."""
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = (
        dialect_insert(exchange_chunks)
        .values(file_id=file_id, chunk=chunk, result={})
        .on_conflict_do_nothing()
        .returning(exchange_chunks.c.chunk)
    )
    return (await conn.execute(stmt)).first() is not None


async def set_chunk_result(
    conn: AsyncConnection, file_id: int, chunk: int, result: dict[str, int]
) -> None:
    c = exchange_chunks.c
    await conn.execute(
        update(exchange_chunks).where(c.file_id == file_id, c.chunk == chunk).values(result=result)
    )


async def chunk_results(conn: AsyncConnection, file_id: int) -> dict[int, dict[str, int]]:
    c = exchange_chunks.c
    rows = await conn.execute(select(c.chunk, c.result).where(c.file_id == file_id))
    return {r.chunk: r.result for r in rows}


async def reset_file(conn: AsyncConnection, file_id: int, now: datetime) -> None:
    """A file sent again under its name starts over: nothing staged or applied of it counts."""
    await clear_stage(conn, file_id)
    await conn.execute(delete(exchange_chunks).where(exchange_chunks.c.file_id == file_id))
    await update_file(
        conn, file_id, now, status="receiving", size=0, last_chunk_hash=None, staged=0,
        applied=0, result={}, message=None, formed_at=None, kind=None,
    )  # fmt: skip


async def grow_file(
    conn: AsyncConnection, file_id: int, old_size: int, new_size: int, hash_: str, now: datetime
) -> bool:
    """Records an appended chunk, unless someone else recorded one meanwhile."""
    t = exchange_files.c
    result = await conn.execute(
        update(exchange_files)
        .where(t.id == file_id, t.size == old_size, t.status == "receiving")
        .values(size=new_size, last_chunk_hash=hash_, updated_at=now)
    )
    return bool(result.rowcount)
