"""Open attention items of orders: raised, read with their orders, resolved."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.orders import Attention
from .tables import order_attention


async def raise_item(
    conn: AsyncConnection, order_id: str, code: str, detail: dict[str, Any], now: datetime
) -> int:
    result = await conn.execute(
        insert(order_attention)
        .values(order_id=order_id, code=code, detail=detail, created_at=now)
        .returning(order_attention.c.id)
    )
    return int(result.scalar_one())


async def open_of(conn: AsyncConnection, order_ids: Sequence[str]) -> dict[str, list[Attention]]:
    a = order_attention.c
    rows = await conn.execute(
        select(a.id, a.order_id, a.code, a.detail, a.created_at)
        .where(a.order_id.in_(order_ids), a.resolved_at.is_(None))
        .order_by(a.order_id, a.id)
    )
    found: dict[str, list[Attention]] = {}
    for r in rows:
        found.setdefault(r.order_id, []).append(Attention(r.id, r.code, r.detail, r.created_at))
    return found


async def resolve(
    conn: AsyncConnection,
    order_id: str,
    attention_ids: Sequence[int] | None,
    resolution: str,
    now: datetime,
) -> list[Attention]:
    """Closes the order's open items (all of them, or those named); returns what it closed."""
    a = order_attention.c
    stmt = (
        update(order_attention)
        .where(a.order_id == order_id, a.resolved_at.is_(None))
        .values(resolved_at=now, resolution=resolution[:255])
        .returning(a.id, a.code, a.detail, a.created_at)
    )
    if attention_ids is not None:
        stmt = stmt.where(a.id.in_(attention_ids))
    rows = (await conn.execute(stmt)).all()
    return sorted(
        (Attention(r.id, r.code, r.detail, r.created_at) for r in rows), key=lambda x: x.id
    )
