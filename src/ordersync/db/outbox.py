"""Writing outbox events; always inside the transaction of the change they describe."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from .tables import outbox_events


async def add_event(
    conn: AsyncConnection,
    type_: str,
    aggregate_type: str,
    aggregate_id: str,
    payload: dict[str, Any],
    now: datetime,
) -> None:
    await conn.execute(
        insert(outbox_events).values(
            type=type_,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            payload=payload,
            created_at=now,
        )
    )
