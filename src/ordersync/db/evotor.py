"""The Evotor channel's own state (services/ports.EvotorRecords): the inbox of till documents,
stores, devices and employees, product uuids, what each store was published, the catch-up
watermarks, linked accounts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, or_, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ..services.ports import InboxDocument, InboxEntry, Product, Watermark
from .catalog import product_from_row
from .tables import (
    evotor_accounts,
    evotor_entities,
    evotor_inbox,
    evotor_products,
    evotor_published,
    evotor_watermarks,
    products,
)
from .types import UtcDateTime
from .upsert import upsert

PENDING = "pending"
_STORE_PG = """
INSERT INTO evotor_inbox (store_uuid, document_uuid, feed, evotor_type, closed_at, body, state,
    error, received_at)
SELECT * , :received_at FROM unnest(
    CAST(:store_uuid AS text[]), CAST(:document_uuid AS text[]), CAST(:feed AS text[]),
    CAST(:evotor_type AS text[]), :closed_at, CAST(:body AS text[]), CAST(:state AS text[]),
    CAST(:error AS text[]))
ON CONFLICT (store_uuid, document_uuid) DO NOTHING
RETURNING id, state
"""
HUB = "hub"
TILL = "till"


class EvotorSql:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    def _insert(self) -> Any:
        return pg_insert if self.conn.dialect.name == "postgresql" else sqlite_insert

    # --- the inbox -------------------------------------------------------------------------

    async def store_documents(self, entries: Sequence[InboxEntry], now: datetime) -> list[int]:
        """One statement; a document already there (the same store and uuid, whichever feed
        brought it) is left as it is. Unreadable ones (no uuid) are kept, rejected."""
        if not entries:
            return []
        rows = [
            {
                "store_uuid": e.store_uuid,
                "document_uuid": e.document_uuid,
                "feed": e.feed,
                "evotor_type": (e.evotor_type or "")[:32] or None,
                "closed_at": e.closed_at,
                "body": e.body,
                "state": e.state,
                "error": e.error,
                "received_at": now,
            }
            for e in entries
        ]
        i = evotor_inbox.c
        if self.conn.dialect.name == "postgresql":
            return await self._store_pg(rows)
        stmt = (
            self._insert()(evotor_inbox)
            .values(rows)
            .on_conflict_do_nothing(index_elements=[i.store_uuid, i.document_uuid])
            .returning(i.id, i.state)
        )
        return sorted(r.id for r in (await self.conn.execute(stmt)).all() if r.state == PENDING)

    async def _store_pg(self, rows: list[dict[str, Any]]) -> list[int]:
        """One statement of arrays: a batch of 50 documents costs one round trip."""
        columns = {name: [r[name] for r in rows] for name in rows[0]}
        stmt = text(_STORE_PG).bindparams(
            bindparam("received_at", type_=UtcDateTime()),
            bindparam("closed_at", type_=ARRAY(UtcDateTime())),
        )
        result = await self.conn.execute(
            stmt,
            {
                "store_uuid": columns["store_uuid"],
                "document_uuid": columns["document_uuid"],
                "feed": columns["feed"],
                "evotor_type": columns["evotor_type"],
                "closed_at": columns["closed_at"],
                "body": columns["body"],
                "state": columns["state"],
                "error": columns["error"],
                "received_at": rows[0]["received_at"],
            },
        )
        return sorted(int(r.id) for r in result.all() if r.state == PENDING)

    async def pending(
        self, store_uuid: str | None, document_uuids: Sequence[str]
    ) -> list[tuple[int, str]]:
        if not document_uuids:
            return []
        i = evotor_inbox.c
        stmt = select(i.id, i.document_uuid).where(
            i.document_uuid.in_(document_uuids), i.state == PENDING
        )
        if store_uuid is not None:
            stmt = stmt.where(i.store_uuid == store_uuid)
        return [(r.id, r.document_uuid) for r in await self.conn.execute(stmt.order_by(i.id))]

    async def due_documents(self, now: datetime, limit: int) -> list[int]:
        """Pending documents no applier holds (ix_evotor_inbox_pending), oldest first."""
        i = evotor_inbox.c
        stmt = (
            select(i.id)
            .where(i.state == PENDING)
            .where(or_(i.claimed_until.is_(None), i.claimed_until < now))
            .order_by(i.id)
            .limit(limit)
        )
        return [int(x) for x in (await self.conn.execute(stmt)).scalars()]

    async def claim_document(
        self, inbox_id: int, now: datetime, until: datetime
    ) -> InboxDocument | None:
        i = evotor_inbox.c
        row = (
            await self.conn.execute(
                update(evotor_inbox)
                .where(i.id == inbox_id, i.state == PENDING)
                .where(or_(i.claimed_until.is_(None), i.claimed_until < now))
                .values(claimed_until=until, attempts=i.attempts + 1)
                .returning(evotor_inbox)
            )
        ).first()
        return None if row is None else _document(row)

    async def finish_document(
        self,
        inbox_id: int,
        state: str,
        result: dict[str, Any] | None,
        error: str | None,
        now: datetime,
    ) -> None:
        await self.conn.execute(
            update(evotor_inbox)
            .where(evotor_inbox.c.id == inbox_id)
            .values(state=state, result=result, error=error, applied_at=now, claimed_until=None)
        )

    async def documents_by_state(self, state: str, limit: int) -> list[InboxDocument]:
        i = evotor_inbox.c
        stmt = select(evotor_inbox).where(i.state == state).order_by(i.id.desc()).limit(limit)
        return [_document(r) for r in (await self.conn.execute(stmt)).all()]

    # --- stores, devices, employees --------------------------------------------------------

    async def keep_entities(
        self, kind: str, items: Sequence[tuple[str, str | None, str | None, str]], now: datetime
    ) -> None:
        for uuid_, name, store_uuid, data in items:
            values = {
                "kind": kind,
                "uuid": uuid_,
                "name": None if name is None else name[:255],
                "store_uuid": store_uuid,
                "data": data,
                "updated_at": now,
            }
            await upsert(self.conn, evotor_entities, values, ["kind", "uuid"])

    # --- products --------------------------------------------------------------------------

    async def products_by_evotor_uuid(self, uuids: Sequence[str]) -> dict[str, int]:
        if not uuids:
            return {}
        p = evotor_products.c
        rows = await self.conn.execute(
            select(p.evotor_uuid, p.product_id).where(p.evotor_uuid.in_(uuids))
        )
        return {r.evotor_uuid: r.product_id for r in rows}

    async def products_by_barcode(self, barcodes: Sequence[str]) -> dict[str, Product]:
        if not barcodes:
            return {}
        rows = await self.conn.execute(
            select(products).where(products.c.barcode.in_(barcodes)).order_by(products.c.id)
        )
        found: dict[str, Product] = {}
        for row in rows:
            found.setdefault(row.barcode, product_from_row(row))
        return found

    async def evotor_uuids(self, product_ids: Sequence[int], now: datetime) -> dict[int, str]:
        wanted = sorted(set(product_ids))
        found = await self._published_uuids(wanted)
        missing = [pid for pid in wanted if pid not in found]
        if missing:
            rows = [
                {
                    "evotor_uuid": str(uuid.uuid4()),
                    "product_id": pid,
                    "origin": HUB,
                    "store_uuid": None,
                    "created_at": now,
                }
                for pid in missing
            ]
            # A concurrent worker may publish the same product: the first uuid stays.
            stmt = self._insert()(evotor_products).values(rows).on_conflict_do_nothing()
            await self.conn.execute(stmt)
            found |= await self._published_uuids(missing)
        return found

    async def _published_uuids(self, product_ids: Sequence[int]) -> dict[int, str]:
        if not product_ids:
            return {}
        p = evotor_products.c
        rows = await self.conn.execute(
            select(p.product_id, p.evotor_uuid).where(
                p.product_id.in_(product_ids), p.origin == HUB
            )
        )
        return {r.product_id: r.evotor_uuid for r in rows}

    async def map_till_product(
        self, evotor_uuid: str, product_id: int, store_uuid: str | None, now: datetime
    ) -> None:
        stmt = (
            self._insert()(evotor_products)
            .values(
                evotor_uuid=evotor_uuid,
                product_id=product_id,
                origin=TILL,
                store_uuid=store_uuid,
                created_at=now,
            )
            .on_conflict_do_nothing()
        )
        await self.conn.execute(stmt)

    async def product_ids(self, after_id: int, limit: int) -> list[int]:
        p = products.c
        stmt = select(p.id).where(p.id > after_id).order_by(p.id).limit(limit)
        return [int(x) for x in (await self.conn.execute(stmt)).scalars()]

    async def published(self, store_uuid: str, product_ids: Sequence[int]) -> set[int]:
        if not product_ids:
            return set()
        p = evotor_published.c
        rows = await self.conn.execute(
            select(p.product_id).where(p.store_uuid == store_uuid, p.product_id.in_(product_ids))
        )
        return {int(x) for x in rows.scalars()}

    async def mark_published(
        self, store_uuid: str, product_ids: Sequence[int], now: datetime
    ) -> None:
        if not product_ids:
            return
        base = self._insert()(evotor_published).values(
            [{"store_uuid": store_uuid, "product_id": p, "published_at": now} for p in product_ids]
        )
        stmt = base.on_conflict_do_update(
            index_elements=[evotor_published.c.store_uuid, evotor_published.c.product_id],
            set_={"published_at": base.excluded.published_at},
        )
        await self.conn.execute(stmt)

    # --- the catch-up pull -----------------------------------------------------------------

    async def lease_watermark(
        self, store_uuid: str, start: datetime, now: datetime, until: datetime
    ) -> Watermark | None:
        w = evotor_watermarks.c
        await self.conn.execute(
            self._insert()(evotor_watermarks)
            .values(store_uuid=store_uuid, closed_before=start)
            .on_conflict_do_nothing()
        )
        row = (
            await self.conn.execute(
                update(evotor_watermarks)
                .where(w.store_uuid == store_uuid)
                .where(or_(w.lease_until.is_(None), w.lease_until < now))
                .values(lease_until=until)
                .returning(w.store_uuid, w.closed_before)
            )
        ).first()
        return None if row is None else Watermark(row.store_uuid, row.closed_before)

    async def move_watermark(self, store_uuid: str, closed_before: datetime, now: datetime) -> None:
        w = evotor_watermarks.c
        await self.conn.execute(
            update(evotor_watermarks)
            .where(w.store_uuid == store_uuid)
            .values(closed_before=closed_before, polled_at=now, lease_until=None)
        )

    # --- accounts --------------------------------------------------------------------------

    async def link_account(self, user_id: str, token_id: int | None, now: datetime) -> None:
        values = {"user_id": user_id, "token_id": token_id, "created_at": now, "updated_at": now}
        await upsert(self.conn, evotor_accounts, values, ["user_id"])

    async def account_token(self, user_id: str) -> int | None:
        a = evotor_accounts.c
        found = (await self.conn.execute(select(a.token_id).where(a.user_id == user_id))).scalar()
        return None if found is None else int(found)

    async def keep_cloud_token(self, user_id: str, token: str, now: datetime) -> None:
        a = evotor_accounts.c
        changed = await self.conn.execute(
            update(evotor_accounts)
            .where(a.user_id == user_id)
            .values(cloud_token=token, updated_at=now)
        )
        if not changed.rowcount:
            await self.conn.execute(
                self._insert()(evotor_accounts).values(
                    user_id=user_id, cloud_token=token, created_at=now, updated_at=now
                )
            )

    async def cloud_token(self) -> str | None:
        """The token the cloud handed over most recently."""
        a = evotor_accounts.c
        stmt = (
            select(a.cloud_token)
            .where(a.cloud_token.is_not(None))
            .order_by(a.updated_at.desc())
            .limit(1)
        )
        found = (await self.conn.execute(stmt)).scalar()
        return None if found is None else str(found)


def _document(row: Any) -> InboxDocument:
    entry = InboxEntry(
        row.store_uuid,
        row.document_uuid,
        row.feed,
        row.body,
        row.evotor_type,
        row.closed_at,
        row.state,
        row.error,
    )
    return InboxDocument(row.id, entry, row.attempts)
