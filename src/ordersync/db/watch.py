"""Figures an operator watches, read for /metrics: when 1C last exchanged successfully, how
long the oldest order change has waited for 1C to confirm it, and the inbound events of the
Bitrix site and the Evotor cloud that wait or that failed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Table, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.types import Channel
from .tables import bitrix_inbox, evotor_inbox, exchange_files, exchange_sessions, orders

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


INBOX_STATES = ("pending", "failed", "rejected")


async def inbox_states(conn: AsyncConnection) -> dict[tuple[str, str], int]:
    """Per (channel, state) of INBOX_STATES, how many inbound events are in it: `bitrix` (the
    site's order events) and `evotor` (till documents). Each count is served by a partial
    index (ix_*_inbox_pending, ix_*_inbox_unapplied); applied events are not counted."""
    found = {(channel, state): 0 for channel in ("bitrix", "evotor") for state in INBOX_STATES}
    tables: list[tuple[str, Table]] = [("bitrix", bitrix_inbox), ("evotor", evotor_inbox)]
    for channel, table in tables:
        state = table.c.state
        pending = select(func.count()).select_from(table).where(state == "pending")
        found[channel, "pending"] = int((await conn.execute(pending)).scalar_one())
        unapplied = (
            select(state, func.count()).where(state.in_(["failed", "rejected"])).group_by(state)
        )
        for name, count in (await conn.execute(unapplied)).all():
            found[channel, str(name)] = int(count)
    return found
