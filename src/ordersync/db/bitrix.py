"""The Bitrix site channel's own state (services/ports.SiteRecords): the inbox of the site's
outgoing events, the site orders seen with the site version applied, the catch-up watermark,
and a site order's lines replaced after an edit of its basket on the site."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.allocation import Allocation
from ..services.ports import OrderLineRow, SiteEvent, SiteLink
from . import orders
from .tables import bitrix_inbox, bitrix_orders, bitrix_watermarks, order_lines
from .upsert import upsert

PENDING = "pending"


class BitrixSql:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    # --- the inbox -------------------------------------------------------------------------

    async def store_event(
        self, event: str, site_order_id: str | None, xml_id: str | None, body: str, now: datetime
    ) -> int:
        values = {
            "event": event[:64],
            "site_order_id": site_order_id,
            "xml_id": None if xml_id is None else xml_id[:128],
            "body": body,
            "state": PENDING,
            "received_at": now,
        }
        stmt = insert(bitrix_inbox).values(values).returning(bitrix_inbox.c.id)
        return int((await self.conn.execute(stmt)).scalar_one())

    async def due_events(self, now: datetime, limit: int) -> list[int]:
        """Pending events no worker holds and not waiting for a retry (ix_bitrix_inbox_pending),
        oldest first."""
        i = bitrix_inbox.c
        stmt = (
            select(i.id)
            .where(i.state == PENDING)
            .where(or_(i.next_attempt_at.is_(None), i.next_attempt_at <= now))
            .order_by(i.id)
            .limit(limit)
        )
        return [int(x) for x in (await self.conn.execute(stmt)).scalars()]

    async def claim_event(self, event_id: int, now: datetime, until: datetime) -> SiteEvent | None:
        i = bitrix_inbox.c
        row = (
            await self.conn.execute(
                update(bitrix_inbox)
                .where(i.id == event_id, i.state == PENDING)
                .where(or_(i.next_attempt_at.is_(None), i.next_attempt_at <= now))
                .values(next_attempt_at=until, attempts=i.attempts + 1)
                .returning(i.id, i.event, i.site_order_id, i.xml_id, i.attempts)
            )
        ).first()
        if row is None:
            return None
        return SiteEvent(row.id, row.event, row.site_order_id, row.xml_id, row.attempts)

    async def finish_event(
        self, event_id: int, state: str, error: str | None, now: datetime
    ) -> None:
        await self.conn.execute(
            update(bitrix_inbox)
            .where(bitrix_inbox.c.id == event_id)
            .values(state=state, error=error, applied_at=now, next_attempt_at=None)
        )

    async def retry_event(self, event_id: int, error: str, at: datetime) -> None:
        await self.conn.execute(
            update(bitrix_inbox)
            .where(bitrix_inbox.c.id == event_id)
            .values(error=error, next_attempt_at=at)
        )

    async def prune_events(self, applied_before: datetime, limit: int) -> int:
        """Applied events older than `applied_before`, the oldest first (failed ones stay for a
        person). Served by the primary key: applied events are the old ones."""
        i = bitrix_inbox.c
        oldest = (
            select(i.id)
            .where(i.state == "done", i.applied_at < applied_before)
            .order_by(i.id)
            .limit(limit)
        )
        gone = await self.conn.execute(delete(bitrix_inbox).where(i.id.in_(oldest)))
        return int(gone.rowcount or 0)

    # --- site orders seen ------------------------------------------------------------------

    async def link(self, site_order_id: str, lock: bool = False) -> SiteLink | None:
        o = bitrix_orders.c
        stmt = select(bitrix_orders).where(o.site_order_id == site_order_id)
        if lock and self.conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        row = (await self.conn.execute(stmt)).first()
        if row is None:
            return None
        return SiteLink(
            row.site_order_id,
            row.order_id,
            row.site_version,
            row.state,
            row.account_number,
            row.date_update,
        )

    async def save_link(self, link: SiteLink, now: datetime) -> None:
        values = {
            "site_order_id": link.site_order_id,
            "order_id": link.order_id,
            "site_version": link.site_version,
            "account_number": link.account_number,
            "date_update": link.date_update,
            "state": link.state,
            "updated_at": now,
        }
        await upsert(self.conn, bitrix_orders, values, ["site_order_id"])

    async def applied_versions(self, site_order_ids: Sequence[str]) -> dict[str, int]:
        if not site_order_ids:
            return {}
        o = bitrix_orders.c
        rows = await self.conn.execute(
            select(o.site_order_id, o.site_version).where(o.site_order_id.in_(site_order_ids))
        )
        return {r.site_order_id: int(r.site_version) for r in rows}

    # --- the catch-up watermark ------------------------------------------------------------

    async def lease_watermark(
        self, name: str, now: datetime, until: datetime
    ) -> tuple[bool, datetime | None]:
        w = bitrix_watermarks.c
        dialect_insert = pg_insert if self.conn.dialect.name == "postgresql" else sqlite_insert
        await self.conn.execute(
            dialect_insert(bitrix_watermarks).values(name=name).on_conflict_do_nothing()
        )
        row = (
            await self.conn.execute(
                update(bitrix_watermarks)
                .where(w.name == name)
                .where(or_(w.lease_until.is_(None), w.lease_until < now))
                .values(lease_until=until)
                .returning(w.date_update)
            )
        ).first()
        return (False, None) if row is None else (True, row.date_update)

    async def move_watermark(self, name: str, date_update: datetime | None, now: datetime) -> None:
        w = bitrix_watermarks.c
        await self.conn.execute(
            update(bitrix_watermarks)
            .where(w.name == name)
            .values(date_update=date_update, polled_at=now, lease_until=None)
        )

    # --- a basket edited on the site -------------------------------------------------------

    async def replace_lines(self, order_id: str, lines: Sequence[OrderLineRow]) -> None:
        """The basket as the site now has it, over the lines the order had: a line number of
        the new basket takes its product, quantity and price, and a line the new basket lacks
        stays with quantity 0 (dropped). Nothing is deleted, so the holds released for the old
        basket keep their lines and the order's history stays whole."""
        ol = order_lines.c
        await self.conn.execute(
            update(order_lines)
            .where(ol.order_id == order_id, ol.line_no.not_in([x.line_no for x in lines]))
            .values(quantity=0)
        )
        for x in lines:
            await upsert(
                self.conn,
                order_lines,
                {
                    "order_id": order_id,
                    "line_no": x.line_no,
                    "product_id": x.product_id,
                    "quantity": x.quantity,
                    "price": x.price,
                },
                ["order_id", "line_no"],
            )

    async def insert_holds(
        self,
        order_id: str,
        allocations: Sequence[Allocation],
        now: datetime,
        expires_at: datetime | None,
    ) -> None:
        await orders.insert_holds(self.conn, order_id, allocations, now, expires_at)
