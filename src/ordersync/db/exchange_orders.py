"""Orders as the sale exchange sees them: which 1C has yet to receive, and what 1C calls them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.orders import Order
from ..domain.types import Channel
from .orders import _lines_of, _order
from .tables import order_1c, orders, products, stores
from .upsert import upsert


@dataclass(frozen=True)
class ProductInfo:
    xml_id: str
    name: str
    unit: str


async def orders_not_in_1c(
    conn: AsyncConnection, channels: Sequence[Channel], limit: int
) -> list[Order]:
    """Orders 1C has not confirmed receiving, or that changed since, oldest change first."""
    o = orders.c
    stmt = (
        select(orders)
        .where(or_(o.exported_1c_at.is_(None), o.updated_at > o.exported_1c_at))
        .where(o.channel.in_([c.value for c in channels]))
        .order_by(o.updated_at, o.id)
        .limit(limit)
    )
    rows = (await conn.execute(stmt)).all()
    lines = await _lines_of(conn, [r.id for r in rows]) if rows else {}
    return [_order(r, lines[r.id]) for r in rows]


async def mark_in_1c(conn: AsyncConnection, sent: Sequence[tuple[str, datetime]]) -> None:
    """1C confirmed these orders as they were when sent; a later change is sent again."""
    o = orders.c
    for order_id, updated_at in sent:
        await conn.execute(
            update(orders)
            .where(o.id == order_id)
            .where(or_(o.exported_1c_at.is_(None), o.exported_1c_at < updated_at))
            .values(exported_1c_at=updated_at)
        )


async def product_info(conn: AsyncConnection, ids: Sequence[int]) -> dict[int, ProductInfo]:
    p = products.c
    rows = await conn.execute(select(p.id, p.xml_id, p.name, p.unit).where(p.id.in_(ids)))
    return {r.id: ProductInfo(r.xml_id, r.name, r.unit) for r in rows}


async def store_refs(conn: AsyncConnection) -> dict[int, tuple[str, str, str]]:
    """store id -> (code, 1C Ид, name)"""
    s = stores.c
    rows = await conn.execute(select(s.id, s.code, s.xml_id, s.name))
    return {r.id: (r.code, r.xml_id, r.name) for r in rows}


async def find_order_id(conn: AsyncConnection, ref: str) -> str | None:
    """1C names an order by our id, or by the number it gave it, or by the site's number."""
    o = orders.c
    for stmt in (
        select(o.id).where(o.id == ref),
        select(order_1c.c.order_id).where(order_1c.c.number_1c == ref),
        # The site's own number (Bitrix's ACCOUNT_NUMBER) names an online order.
        select(o.id).where(o.channel == Channel.ONLINE.value, o.external_id == ref),
    ):
        found = (await conn.execute(stmt.limit(1))).scalar()
        if found is not None:
            return str(found)
    return None


async def version_1c(conn: AsyncConnection, order_id: str) -> str | None:
    stmt = select(order_1c.c.version).where(order_1c.c.order_id == order_id)
    found = (await conn.execute(stmt)).scalar()
    return None if found is None else str(found)


async def remember_1c(
    conn: AsyncConnection, order_id: str, number: str | None, version: str | None, now: datetime
) -> None:
    await upsert(
        conn,
        order_1c,
        {"order_id": order_id, "number_1c": number, "version": version, "updated_at": now},
        ["order_id"],
    )
