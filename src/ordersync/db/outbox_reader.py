"""Reading new outbox events for the console's live stream (ui/live.py): in id order from a
high-water mark, and again by id for ids skipped at the time (on PostgreSQL a transaction can
take an id and commit after a later one; SQLite has one writer, so ids are commit order)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.events import AGGREGATE_ORDER
from .tables import outbox_events

# (event id, the order's id when it is an order's event): the stream needs no more.
NewEvent = tuple[int, str | None]


def _columns() -> Select[int, str | None]:
    e = outbox_events.c
    order_id = case((e.aggregate_type == AGGREGATE_ORDER, e.aggregate_id), else_=None)
    return select(e.id, order_id)


async def last_id(conn: AsyncConnection, created_before: datetime | None = None) -> int:
    """The newest event id; with `created_before`, the newest created before it. A page on
    PostgreSQL asks for the latter, since a transaction still open there may hold a lower id
    than one committed; SQLite's single writer commits in id order."""
    e = outbox_events.c
    query = select(func.max(e.id))
    if created_before is not None:
        query = query.where(e.created_at < created_before)
    return int((await conn.execute(query)).scalar() or 0)


async def events_after(
    conn: AsyncConnection,
    after_id: int,
    limit: int,
    up_to: int | None = None,
    newest_first: bool = False,
) -> list[NewEvent]:
    """Events after `after_id` (and up to `up_to`), at most `limit`: the oldest of them in id
    order, or the newest in falling id order."""
    e = outbox_events.c
    query = _columns().where(e.id > after_id)
    if up_to is not None:
        query = query.where(e.id <= up_to)
    rows = await conn.execute(query.order_by(e.id.desc() if newest_first else e.id).limit(limit))
    return [(r[0], r[1]) for r in rows]


async def events_by_ids(conn: AsyncConnection, ids: Sequence[int]) -> list[NewEvent]:
    if not ids:
        return []
    e = outbox_events.c
    rows = await conn.execute(_columns().where(e.id.in_(list(ids))).order_by(e.id))
    return [(r[0], r[1]) for r in rows]
