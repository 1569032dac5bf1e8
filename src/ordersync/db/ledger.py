"""Reading the ledger: movements, and the check that stored totals match their history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.types import HoldState
from .tables import holds, products, stock_levels, stock_movements, stores


@dataclass(frozen=True, slots=True)
class Movement:
    id: int
    store_id: int
    quantity: Decimal
    reason: str
    document_type: str
    document_id: str
    business_time: datetime
    recorded_at: datetime


async def movements(
    conn: AsyncConnection,
    product_id: int,
    store_id: int | None,
    before_id: int | None,
    limit: int,
) -> list[Movement]:
    m = stock_movements.c
    stmt = select(stock_movements).where(m.product_id == product_id).order_by(m.id.desc())
    if store_id is not None:
        stmt = stmt.where(m.store_id == store_id)
    if before_id is not None:
        stmt = stmt.where(m.id < before_id)
    rows = (await conn.execute(stmt.limit(limit))).all()
    return [
        Movement(
            r.id,
            r.store_id,
            r.quantity,
            r.reason,
            r.document_type,
            r.document_id,
            r.business_time,
            r.recorded_at,
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class Drift:
    sku: str
    store: str
    on_hand: Decimal
    movements: Decimal
    reserved: Decimal
    active_holds: Decimal

    @property
    def on_hand_drift(self) -> Decimal:
        return self.on_hand - self.movements

    @property
    def reserved_drift(self) -> Decimal:
        return self.reserved - self.active_holds


async def drift(conn: AsyncConnection) -> tuple[int, list[Drift]]:
    """(stock levels checked, those whose on_hand differs from the sum of their movements or
    whose reserved differs from the sum of their active holds, or whose product or store does
    not exist: levels carry no foreign keys, see db/tables.py)."""
    moved = (
        select(
            stock_movements.c.product_id,
            stock_movements.c.store_id,
            func.sum(stock_movements.c.quantity).label("total"),
        )
        .group_by(stock_movements.c.product_id, stock_movements.c.store_id)
        .subquery()
    )
    held = (
        select(holds.c.product_id, holds.c.store_id, func.sum(holds.c.quantity).label("total"))
        .where(holds.c.state == HoldState.ACTIVE.value)
        .group_by(holds.c.product_id, holds.c.store_id)
        .subquery()
    )
    sl = stock_levels.c
    stmt = (
        select(
            sl.product_id,
            sl.store_id,
            products.c.sku,
            stores.c.code,
            sl.on_hand,
            sl.reserved,
            func.coalesce(moved.c.total, 0).label("moved"),
            func.coalesce(held.c.total, 0).label("held"),
        )
        .outerjoin(products, products.c.id == sl.product_id)
        .outerjoin(stores, stores.c.id == sl.store_id)
        .outerjoin(moved, (moved.c.product_id == sl.product_id) & (moved.c.store_id == sl.store_id))
        .outerjoin(held, (held.c.product_id == sl.product_id) & (held.c.store_id == sl.store_id))
        .order_by(products.c.sku, stores.c.code)
    )
    checked = 0
    found: list[Drift] = []
    # The sums keep the column type, so they come back as exact decimals like the totals.
    for r in (await conn.execute(stmt)).all():
        checked += 1
        moved_total, held_total = Decimal(r.moved), Decimal(r.held)
        missing = r.sku is None or r.code is None
        if moved_total != r.on_hand or held_total != r.reserved or missing:
            sku = r.sku or f"(missing product #{r.product_id})"
            code = r.code or f"(missing store #{r.store_id})"
            found.append(Drift(sku, code, r.on_hand, moved_total, r.reserved, held_total))
    # Movements for a (product, store) that has no stock level at all are drift too.
    orphan = (
        select(products.c.sku, stores.c.code, moved.c.total)
        .select_from(moved)
        .join(products, products.c.id == moved.c.product_id)
        .join(stores, stores.c.id == moved.c.store_id)
        .outerjoin(
            stock_levels,
            (sl.product_id == moved.c.product_id) & (sl.store_id == moved.c.store_id),
        )
        .where(sl.product_id.is_(None))
    )
    for o in (await conn.execute(orphan)).all():
        found.append(Drift(o.sku, o.code, Decimal(0), Decimal(o.total), Decimal(0), Decimal(0)))
    return checked, found
