"""The console's stock screens: a store's levels, lowest available first (negative levels,
then low ones, then the rest), paged by an (available, product id) keyset and searchable as
the catalog is; and the levels where more is held or sold than is on hand."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import ColumnElement, and_, or_, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncConnection

from ..services.ports import Product, StockLevel
from .catalog import product_from_row
from .search import product_matches
from .tables import products, stock_levels
from .types import Quantity


@dataclass(frozen=True, slots=True)
class LevelRow:
    product: Product
    level: StockLevel

    @property
    def available(self) -> Decimal:
        return self.level.available


def _available() -> ColumnElement[Decimal]:
    return type_coerce(stock_levels.c.on_hand - stock_levels.c.reserved, Quantity())


async def store_levels(
    conn: AsyncConnection,
    store_id: int,
    query: str | None,
    after: tuple[Decimal, int] | None,
    limit: int,
) -> list[LevelRow]:
    """A store's levels, lowest available first; `after` is the last row's (available, product
    id). A store's rows are found by ix_stock_levels_store_product and sorted."""
    sl = stock_levels.c
    available = _available()
    stmt = (
        select(products, sl.store_id, sl.on_hand, sl.reserved)
        .join(stock_levels, sl.product_id == products.c.id)
        .where(sl.store_id == store_id)
        .order_by(available, sl.product_id)
        .limit(limit)
    )
    if query:
        stmt = stmt.where(product_matches(query))
    if after is not None:
        at, product_id = after
        stmt = stmt.where(or_(available > at, and_(available == at, sl.product_id > product_id)))
    return [
        LevelRow(product_from_row(r), StockLevel(r.id, r.store_id, r.on_hand, r.reserved))
        for r in (await conn.execute(stmt)).all()
    ]


async def short_levels(
    conn: AsyncConnection, store_ids: Sequence[int] | None, limit: int = 200
) -> list[LevelRow]:
    """Levels whose available is below zero (more held, or sold at a till, than is on hand),
    lowest first. A scan of the stock levels: the attention screen reads it, not the hot path
    (an index on it would cost every hold an index update)."""
    sl = stock_levels.c
    available = _available()
    stmt = (
        select(products, sl.store_id, sl.on_hand, sl.reserved)
        .join(stock_levels, sl.product_id == products.c.id)
        .where(sl.on_hand < sl.reserved)
        .order_by(available, sl.product_id, sl.store_id)
        .limit(limit)
    )
    if store_ids is not None:
        stmt = stmt.where(sl.store_id.in_(list(store_ids)))
    return [
        LevelRow(product_from_row(r), StockLevel(r.id, r.store_id, r.on_hand, r.reserved))
        for r in (await conn.execute(stmt)).all()
    ]
