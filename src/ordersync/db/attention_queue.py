"""The console's attention screen: everything that needs a person, one named query each.

- open attention items of orders (an order short after a late till sale, a short site
  order, ...), newest first, served by ix_order_attention_open;
- levels with more held or sold than on hand: console_stock.short_levels;
- the till review queue: till lines that matched no product, returns linked to no sale,
  till documents the hub could not apply (db/till_review.py);
- dead letters: relay.dead_letters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.events import dec
from ..domain.orders import Attention
from ..domain.types import Channel, OrderStatus
from .tables import bitrix_inbox, holds, order_attention, orders, till_review


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
    """An open item of the till review queue (db/till_review.py): a till line that matched no
    product, a return linked to no sale, a product created on a till the hub could not match,
    a till document that could not be applied."""

    id: int
    store_id: int | None
    kind: str  # unmatched_line, unlinked_return, unknown_till_product, failed_document
    detail: dict[str, Any]
    at: datetime


async def till_problems(
    conn: AsyncConnection, store_ids: Sequence[int] | None, limit: int = 200
) -> list[TillProblem]:
    """The open items of the till review queue, newest first (ix_till_review_open)."""
    r = till_review.c
    stmt = (
        select(
            r.id, r.store_id, r.kind, r.document_type, r.document_id, r.pos_id, r.code,
            r.barcode, r.name, r.quantity, r.reason, r.created_at,
        )
        .where(r.resolved_at.is_(None))
        .order_by(r.id.desc())
        .limit(limit)
    )  # fmt: skip
    if store_ids is not None:
        stmt = stmt.where(r.store_id.in_(list(store_ids)))
    found: list[TillProblem] = []
    for row in await conn.execute(stmt):
        detail: dict[str, Any] = {
            "document": f"{row.document_type} {row.document_id}",
            "till": row.pos_id,
            "code": row.code,
            "barcode": row.barcode,
            "name": row.name,
            "quantity": None if row.quantity is None else dec(row.quantity),
            "reason": row.reason,
        }
        kept = {k: v for k, v in detail.items() if v not in (None, "")}
        found.append(TillProblem(row.id, row.store_id, row.kind, kept, row.created_at))
    return found


@dataclass(frozen=True, slots=True)
class SiteProblem:
    """An event of the Bitrix site the site worker refused for good (kept, with its error)."""

    id: int
    event: str
    site_order_id: str | None
    error: str
    at: datetime


async def site_problems(conn: AsyncConnection, limit: int = 100) -> list[SiteProblem]:
    """Failed site events, newest first."""
    i = bitrix_inbox.c
    rows = await conn.execute(
        select(i.id, i.event, i.site_order_id, i.error, i.received_at)
        .where(i.state == "failed")
        .order_by(i.id.desc())
        .limit(limit)
    )
    return [SiteProblem(r.id, r.event, r.site_order_id, r.error or "", r.received_at) for r in rows]
