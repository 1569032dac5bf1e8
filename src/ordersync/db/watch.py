"""Figures an operator watches, read for /metrics: when 1C last exchanged successfully, and
how long the oldest order change has waited for 1C to confirm it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.types import Channel
from .tables import exchange_files, exchange_sessions, orders

# Files of the sale exchange (1C's order changes) and archives are not catalog files.
_NOT_CATALOG = ("orders", "zip")


async def last_exchange_success(conn: AsyncConnection) -> dict[str, datetime]:
    """Per exchange type, when it last succeeded: `catalog` when a file of 1C's catalog was
    applied in full; `sale` when 1C confirmed the orders of a query (`success`) or a file of
    its order changes was applied. Both are kept as long as their exchange session
    (exchange.session_hours after its last call): a type absent here has not succeeded
    within that time."""
    f, s = exchange_files.c, exchange_sessions.c
    done = f.status == "done"
    catalog = select(func.max(f.updated_at)).where(done, f.kind.not_in(_NOT_CATALOG))
    sale_file = select(func.max(f.updated_at)).where(done, f.kind == "orders")
    confirmed = select(func.max(s.confirmed_at))
    found: dict[str, datetime] = {}
    at = (await conn.execute(catalog)).scalar()
    if at is not None:
        found["catalog"] = at
    sale = [x for x in [(await conn.execute(q)).scalar() for q in (sale_file, confirmed)] if x]
    if sale:
        found["sale"] = max(sale)
    return found


async def oldest_unconfirmed_order(
    conn: AsyncConnection, channels: Sequence[Channel]
) -> datetime | None:
    """The oldest change (updated_at) of an order of the exported channels that 1C has not
    confirmed receiving (served by ix_orders_not_in_1c)."""
    o = orders.c
    stmt = select(func.min(o.updated_at)).where(
        or_(o.exported_1c_at.is_(None), o.updated_at > o.exported_1c_at),
        o.channel.in_([c.value for c in channels]),
    )
    oldest: datetime | None = (await conn.execute(stmt)).scalar()
    return oldest
