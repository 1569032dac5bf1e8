"""A store's stock, product by product: the read model behind GET /stock?store=..., paged by
product id (the index on stock_levels (store_id, product_id) serves it) and searchable."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..services.ports import Product, StockLevel
from .catalog import product_from_row
from .search import product_matches
from .tables import products, stock_levels


async def store_stock(
    conn: AsyncConnection, store_id: int, after_id: int, limit: int, query: str | None = None
) -> list[tuple[Product, StockLevel]]:
    sl = stock_levels.c
    stmt = (
        select(products, sl.store_id, sl.on_hand, sl.reserved)
        .join(stock_levels, sl.product_id == products.c.id)
        .where(sl.store_id == store_id, sl.product_id > after_id)
        .order_by(sl.product_id)
        .limit(limit)
    )
    if query:
        stmt = stmt.where(product_matches(query))
    return [
        (product_from_row(r), StockLevel(r.id, r.store_id, r.on_hand, r.reserved))
        for r in (await conn.execute(stmt)).all()
    ]
