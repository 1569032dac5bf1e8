"""master = "hub": how far 1C's stock figures are from the hub's, and adopting them on request.

Each import from 1C stores, per stock level, 1C's figure and what the hub had at the same
moment (its on_hand less its own movements that 1C could not know yet). Adopting a figure is
an inventory count: on_hand becomes 1C's figure plus those later movements, recorded as a
`count` movement with its outbox event; holds are untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.stock_from_1c import MAX_AHEAD, adopted_on_hand
from ..domain.types import MovementReason
from ..services.ports import StockChange
from . import stock_ops
from .tables import products, stock_1c_figures, stock_levels, stock_movements, stores

DOCUMENT_TYPE = "reconcile_1c"


@dataclass(frozen=True)
class FigureDrift:
    product_id: int
    store_id: int
    sku: str
    store: str
    figure_1c: Decimal
    hub: Decimal  # the hub's on_hand at the moment 1C formed its file
    formed_at: datetime

    @property
    def drift(self) -> Decimal:
        return self.hub - self.figure_1c


async def drifts(
    conn: AsyncConnection, store_code: str | None = None, limit: int | None = None
) -> list[FigureDrift]:
    f = stock_1c_figures.c
    stmt = (
        select(
            f.product_id,
            f.store_id,
            products.c.sku,
            stores.c.code,
            f.quantity,
            f.hub_on_hand,
            f.formed_at,
        )
        .join(products, products.c.id == f.product_id)
        .join(stores, stores.c.id == f.store_id)
        .where(f.quantity != f.hub_on_hand)
        .order_by(stores.c.code, products.c.sku)
    )
    if store_code is not None:
        stmt = stmt.where(stores.c.code == store_code)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [FigureDrift(*row) for row in (await conn.execute(stmt)).all()]


async def any_figures(conn: AsyncConnection) -> bool:
    """Whether 1C ever sent a stock figure (an offers or rests file, imported as master hub)."""
    found = await conn.execute(select(stock_1c_figures.c.product_id).limit(1))
    return found.first() is not None


async def late_movements(
    conn: AsyncConnection, product_id: int, store_id: int, formed_at: datetime
) -> Decimal:
    """The hub's own movements that 1C's figure formed at `formed_at` cannot contain."""
    m = stock_movements.c
    stmt = select(func.coalesce(func.sum(m.quantity), 0)).where(
        m.product_id == product_id,
        m.store_id == store_id,
        m.reason != MovementReason.EXCHANGE_1C.value,
        m.recorded_at > formed_at - MAX_AHEAD,
        (m.business_time > formed_at) | (m.recorded_at > formed_at),
    )
    total = (await conn.execute(stmt)).scalar_one()  # in units: the column type converts it
    return Decimal(total)


async def adopt(conn: AsyncConnection, drift: FigureDrift, now: datetime) -> Decimal:
    """On_hand := 1C's figure + later movements; returns the change recorded."""
    await stock_ops.ensure_stock_level(conn, drift.product_id, drift.store_id, now)
    # Lock first, then sum: a sale committing meanwhile is either counted or waits for us.
    await conn.execute(
        select(stock_levels.c.on_hand)
        .where(
            stock_levels.c.product_id == drift.product_id,
            stock_levels.c.store_id == drift.store_id,
        )
        .with_for_update()
    )
    f = stock_1c_figures.c
    # 1C's figure as it is now, under the lock: an import may have brought a newer one.
    figure, formed_at = (
        await conn.execute(
            select(f.quantity, f.formed_at).where(
                f.product_id == drift.product_id, f.store_id == drift.store_id
            )
        )
    ).one()
    late = await late_movements(conn, drift.product_id, drift.store_id, formed_at)
    target = adopted_on_hand(figure, late, whole_pieces=False)  # stored figures are whole
    change = StockChange(
        drift.product_id,
        drift.store_id,
        target,
        MovementReason.COUNT,
        DOCUMENT_TYPE,
        formed_at.isoformat(),
        now,
        now,
    )
    _, delta = await stock_ops.set_on_hand(conn, change)
    await conn.execute(
        update(stock_1c_figures)
        .where(f.product_id == drift.product_id, f.store_id == drift.store_id)
        .values(hub_on_hand=figure)
    )
    return delta
