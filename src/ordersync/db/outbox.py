"""Writing outbox events; always inside the transaction of the change they describe. An
order's events are also copied to its timeline (order_timeline), which outlives the outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.events import AGGREGATE_ORDER
from .tables import order_timeline, outbox_events


async def add_event(
    conn: AsyncConnection,
    type_: str,
    aggregate_type: str,
    aggregate_id: str,
    payload: dict[str, Any],
    now: datetime,
) -> None:
    stmt = insert(outbox_events).values(
        type=type_,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        payload=payload,
        created_at=now,
    )
    if aggregate_type != AGGREGATE_ORDER:
        await conn.execute(stmt)
        return
    event_id = (await conn.execute(stmt.returning(outbox_events.c.id))).scalar_one()
    await conn.execute(
        insert(order_timeline).values(
            event_id=event_id, order_id=aggregate_id, type=type_, payload=payload, created_at=now
        )
    )
