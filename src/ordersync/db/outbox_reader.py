"""Reading new outbox events for the console's live stream (ui/live.py): in id order from a
high-water mark, and again by id for ids skipped at the time (on PostgreSQL a transaction can
take an id and commit after a later one; SQLite has one writer, so ids are commit order)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from .tables import outbox_events


@dataclass(frozen=True, slots=True)
class NewEvent:
    id: int
    type: str
    aggregate_type: str
    aggregate_id: str


def _columns() -> Select[tuple[int, str, str, str]]:
    e = outbox_events.c
    return select(e.id, e.type, e.aggregate_type, e.aggregate_id)


async def last_id(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.max(outbox_events.c.id)))).scalar() or 0)


async def events_after(conn: AsyncConnection, after_id: int, limit: int) -> list[NewEvent]:
    e = outbox_events.c
    rows = await conn.execute(_columns().where(e.id > after_id).order_by(e.id).limit(limit))
    return [NewEvent(r.id, r.type, r.aggregate_type, r.aggregate_id) for r in rows]


async def events_by_ids(conn: AsyncConnection, ids: Sequence[int]) -> list[NewEvent]:
    if not ids:
        return []
    e = outbox_events.c
    rows = await conn.execute(_columns().where(e.id.in_(list(ids))).order_by(e.id))
    return [NewEvent(r.id, r.type, r.aggregate_type, r.aggregate_id) for r in rows]
