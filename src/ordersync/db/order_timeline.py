"""An order's history for the console: its events in the order they happened, kept
`ui.timeline_days` (written with each event by outbox.py and pg_placement.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from .tables import order_timeline


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    event_id: int
    type: str
    payload: dict[str, Any]
    at: datetime


async def timeline_of(
    conn: AsyncConnection, order_id: str, limit: int = 500
) -> list[TimelineEntry]:
    t = order_timeline.c
    rows = await conn.execute(
        select(t.event_id, t.type, t.payload, t.created_at)
        .where(t.order_id == order_id)
        .order_by(t.event_id)
        .limit(limit)
    )
    return [TimelineEntry(r.event_id, r.type, r.payload, r.created_at) for r in rows]


async def prune(conn: AsyncConnection, before: datetime, limit: int = 10_000) -> int:
    """Deletes up to `limit` entries older than `before`; how many it deleted."""
    t = order_timeline.c
    oldest = select(t.event_id).where(t.created_at < before).order_by(t.created_at).limit(limit)
    result = await conn.execute(
        delete(order_timeline).where(t.event_id.in_(oldest.scalar_subquery()))
    )
    return int(result.rowcount or 0)
