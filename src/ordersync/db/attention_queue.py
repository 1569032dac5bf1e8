"""The console's attention screen: everything that needs a person, one named query each.

- open attention items of orders (an order short after a late till sale, a short site
  order, ...), newest first, served by ix_order_attention_open;
- levels with more held or sold than on hand: console_stock.short_levels;
- till lines that matched no product, and returns linked to no sale: written by the till
  intake (issue 9) and read here once it lands; until then these answer nothing;
- dead letters: relay.dead_letters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.orders import Attention
from ..domain.types import Channel, OrderStatus
from .tables import holds, order_attention, orders


@dataclass(frozen=True, slots=True)
class OrderAttention:
    order_id: str
    number: int
    channel: Channel
    status: OrderStatus
    item: Attention


async def open_items(
    conn: AsyncConnection, store_ids: Sequence[int] | None, limit: int = 200
) -> list[OrderAttention]:
    a, o = order_attention.c, orders.c
    stmt = (
        select(
            a.id,
            a.code,
            a.detail,
            a.created_at,
            o.id.label("order_id"),
            o.number,
            o.channel,
            o.status,
        )
        .join(orders, o.id == a.order_id)
        .where(a.resolved_at.is_(None))
        .order_by(a.created_at.desc(), a.id.desc())
        .limit(limit)
    )
    if store_ids is not None:
        held_there = (
            select(holds.c.id)
            .where(holds.c.order_id == o.id, holds.c.store_id.in_(list(store_ids)))
            .exists()
        )
        stmt = stmt.where(or_(o.store_id.in_(list(store_ids)), held_there))
    return [
        OrderAttention(
            r.order_id,
            r.number,
            Channel(r.channel),
            OrderStatus(r.status),
            Attention(r.id, r.code, r.detail, r.created_at),
        )
        for r in await conn.execute(stmt)
    ]


@dataclass(frozen=True, slots=True)
class TillProblem:
    """A till line or return the till intake could not place (issue 9's records)."""

    store_id: int
    kind: str  # "unmatched_line" or "unlinked_return"
    detail: dict[str, Any]
    at: datetime


async def till_problems(
    conn: AsyncConnection, store_ids: Sequence[int] | None, limit: int = 200
) -> list[TillProblem]:
    """Unmatched till lines and unlinked returns, newest first. The seam for the till intake
    (issue 9): it records them; until it does there are none."""
    del conn, store_ids, limit
    return []
