"""What the Bitrix sink needs to name things as the site does: 1C Ид of products and stores
(the site imports the same 1C catalog), and the site's own number of its orders."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.types import Channel
from .tables import orders, products, stores


async def xml_ids(
    conn: AsyncConnection, product_ids: Sequence[int], store_ids: Sequence[int]
) -> tuple[dict[int, str], dict[int, str]]:
    found_products = {
        r.id: r.xml_id
        for r in await conn.execute(
            select(products.c.id, products.c.xml_id).where(products.c.id.in_(product_ids))
        )
    }
    found_stores = {
        r.id: r.xml_id
        for r in await conn.execute(
            select(stores.c.id, stores.c.xml_id).where(stores.c.id.in_(store_ids))
        )
    }
    return found_products, found_stores


async def site_order_numbers(conn: AsyncConnection, order_ids: Sequence[str]) -> dict[str, int]:
    """Online orders placed by the site carry its order id as their external id."""
    o = orders.c
    rows = await conn.execute(
        select(o.id, o.external_id).where(
            o.id.in_(order_ids), o.channel == Channel.ONLINE.value, o.external_id.is_not(None)
        )
    )
    return {r.id: int(r.external_id) for r in rows if str(r.external_id).isdigit()}
