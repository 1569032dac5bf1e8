"""Orders as the sale exchange sees them: which 1C has yet to receive, and what 1C calls them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import and_, or_, select, update
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


async def orders_by_id(conn: AsyncConnection, ref: str) -> list[str]:
    """1C's Ид of a document: the hub's order id (1C kept what the hub sent), else 1C's own
    document id or number remembered from an earlier document of the same order."""
    o, x = orders.c, order_1c.c
    for stmt in (
        select(o.id).where(o.id == ref),
        select(x.order_id).where(x.id_1c == ref),
        select(x.order_id).where(x.number_1c == ref),
    ):
        found = [str(r) for r in (await conn.execute(stmt.limit(2))).scalars()]
        if found:
            return found
    return []


async def orders_by_number(conn: AsyncConnection, number: str) -> list[tuple[str, Decimal]]:
    """(order id, total) of every order 1C's Номер may name: the hub's number, the site's
    number of an online order (its external id), the number 1C gave it."""
    o, x = orders.c, order_1c.c
    conditions = [
        and_(o.channel == Channel.ONLINE.value, o.external_id == number),
        o.id.in_(select(x.order_id).where(x.number_1c == number)),
    ]
    if number.isdigit() and len(number) < 19:
        conditions.append(o.number == int(number))
    rows = await conn.execute(select(o.id, o.total).where(or_(*conditions)).limit(10))
    return [(r.id, r.total) for r in rows]


async def version_1c(conn: AsyncConnection, order_id: str) -> str | None:
    stmt = select(order_1c.c.version).where(order_1c.c.order_id == order_id)
    found = (await conn.execute(stmt)).scalar()
    return None if found is None else str(found)


async def remember_1c(
    conn: AsyncConnection,
    order_id: str,
    number: str | None,
    version: str | None,
    now: datetime,
    id_1c: str | None = None,
) -> None:
    values = {"order_id": order_id, "number_1c": number, "version": version, "updated_at": now}
    if id_1c is not None:
        values["id_1c"] = id_1c
    await upsert(conn, order_1c, values, ["order_id"])
