"""The console's system screen: the 1C exchange's last sessions and what their files came to,
its recent log, and the connections' last contact (the seam for the Bitrix and Evotor
intakes). The relay's figures are db/relay.py's, read as /metrics reads them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from .tables import (
    bitrix_inbox,
    bitrix_watermarks,
    evotor_inbox,
    exchange_files,
    exchange_log,
    exchange_sessions,
)


@dataclass(frozen=True, slots=True)
class ExchangeFile:
    name: str
    kind: str | None
    status: str
    message: str | None
    at: datetime


@dataclass(slots=True)
class ExchangeSession:
    id: str
    type: str
    login: str
    started_at: datetime
    last_seen_at: datetime
    confirmed_at: datetime | None
    files: list[ExchangeFile] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LogLine:
    level: str
    message: str
    file_name: str | None
    at: datetime


async def last_sessions(conn: AsyncConnection, limit: int = 10) -> list[ExchangeSession]:
    s, f = exchange_sessions.c, exchange_files.c
    rows = await conn.execute(
        select(exchange_sessions).order_by(s.last_seen_at.desc()).limit(limit)
    )
    found = {
        r.id: ExchangeSession(r.id, r.type, r.login, r.created_at, r.last_seen_at, r.confirmed_at)
        for r in rows
    }
    if found:
        files = await conn.execute(
            select(f.session_id, f.name, f.kind, f.status, f.message, f.updated_at)
            .where(f.session_id.in_(list(found)))
            .order_by(f.id)
        )
        for r in files:
            found[r.session_id].files.append(
                ExchangeFile(r.name, r.kind, r.status, r.message, r.updated_at)
            )
    return list(found.values())


async def recent_log(conn: AsyncConnection, limit: int = 20) -> list[LogLine]:
    x = exchange_log.c
    rows = await conn.execute(select(exchange_log).order_by(x.at.desc(), x.id.desc()).limit(limit))
    return [LogLine(r.level, r.message, r.file_name, r.at) for r in rows]


async def last_contacts(conn: AsyncConnection) -> dict[str, datetime | None]:
    """When each inbound connection was last heard from: the Bitrix site (its newest event, or
    the last catch-up poll that answered) and the Evotor cloud (the newest till document it
    sent, by webhook or by the catch-up pull)."""
    b, e = bitrix_inbox.c, evotor_inbox.c
    # The newest row by the primary key: rows are added in time order, and it needs no scan.
    event = (await conn.execute(select(b.received_at).order_by(b.id.desc()).limit(1))).scalar()
    polled = (await conn.execute(select(func.max(bitrix_watermarks.c.polled_at)))).scalar()
    bitrix = max((t for t in (event, polled) if t is not None), default=None)
    evotor = (await conn.execute(select(e.received_at).order_by(e.id.desc()).limit(1))).scalar()
    return {"bitrix": bitrix, "evotor": evotor}
