"""The till review queue: what about a till's documents needs a person (read model for the
console's attention screen), newest first by id, the open ones served by ix_till_review_open."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..services.ports import ReviewItem
from .tables import till_review


@dataclass(frozen=True, slots=True)
class StoredReview:
    id: int
    item: ReviewItem
    created_at: datetime
    resolved_at: datetime | None
    resolution: str | None


async def add(conn: AsyncConnection, item: ReviewItem, now: datetime) -> int:
    result = await conn.execute(
        insert(till_review)
        .values(
            kind=item.kind,
            store_id=item.store_id,
            document_type=item.document_type,
            document_id=item.document_id[:160],
            pos_id=item.pos_id,
            position=item.position,
            commodity_uuid=item.commodity_uuid,
            code=_cut(item.code, 128),
            barcode=_cut(item.barcode, 128),
            name=_cut(item.name, 255),
            quantity=item.quantity,
            price=item.price,
            reason=item.reason,
            detail=item.detail,
            created_at=now,
        )
        .returning(till_review.c.id)
    )
    return int(result.scalar_one())


def _cut(text: str | None, length: int) -> str | None:
    return None if text is None else text[:length]


async def listing(
    conn: AsyncConnection,
    *,
    open_only: bool,
    kind: str | None,
    store_id: int | None,
    before_id: int | None,
    limit: int,
) -> list[StoredReview]:
    r = till_review.c
    stmt = select(till_review).order_by(r.id.desc()).limit(limit)
    if open_only:
        stmt = stmt.where(r.resolved_at.is_(None))
    if kind is not None:
        stmt = stmt.where(r.kind == kind)
    if store_id is not None:
        stmt = stmt.where(r.store_id == store_id)
    if before_id is not None:
        stmt = stmt.where(r.id < before_id)
    return [_stored(row) for row in (await conn.execute(stmt)).all()]


async def resolve(
    conn: AsyncConnection, item_id: int, resolution: str, now: datetime
) -> StoredReview | None:
    """Closes an open item; None when there is no open item with this id."""
    r = till_review.c
    row = (
        await conn.execute(
            update(till_review)
            .where(r.id == item_id, r.resolved_at.is_(None))
            .values(resolved_at=now, resolution=resolution[:255])
            .returning(till_review)
        )
    ).first()
    return None if row is None else _stored(row)


def _stored(row: Any) -> StoredReview:
    item = ReviewItem(
        kind=row.kind,
        store_id=row.store_id,
        document_type=row.document_type,
        document_id=row.document_id,
        reason=row.reason,
        pos_id=row.pos_id,
        position=row.position,
        commodity_uuid=row.commodity_uuid,
        code=row.code,
        barcode=row.barcode,
        name=row.name,
        quantity=None if row.quantity is None else Decimal(row.quantity),
        price=None if row.price is None else Decimal(row.price),
        detail=row.detail,
    )
    return StoredReview(row.id, item, row.created_at, row.resolved_at, row.resolution)


async def resolve_document(
    conn: AsyncConnection,
    kind: str,
    document_type: str,
    document_id: str,
    resolution: str,
    now: datetime,
) -> int:
    """Closes the open items of this kind about one document (ix_till_review_document)."""
    r = till_review.c
    result = await conn.execute(
        update(till_review)
        .where(r.document_type == document_type, r.document_id == document_id[:160])
        .where(r.kind == kind, r.resolved_at.is_(None))
        .values(resolved_at=now, resolution=resolution[:255])
    )
    return int(result.rowcount or 0)
