"""What the Bitrix sink reads at delivery time: the sellable figure of (product, store) pairs
and the orders it mirrors or whose status it pushes (services/site_out.py names both); and
the `stock.changed` events a new safety stock writes, since it moves the sellable figure of
every product of its store."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import and_, func, insert, not_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain import events
from ..domain.types import Channel, HoldState, PaymentStatus
from ..services.site_out import HubLine, HubOrder, sellable
from .tables import holds, order_lines, orders, outbox_events, products, stock_levels, stores

SAFETY_STOCK = "safety_stock"  # the reason of the stock.changed a new safety stock writes

Pair = tuple[int, int]  # (product_id, store_id)


async def sellable_figures(conn: AsyncConnection, pairs: Iterable[Pair]) -> dict[Pair, Decimal]:
    """The sellable figure of each pair that has a stock level: on_hand minus the active holds
    of orders that are not the site's, minus the store's safety stock, at least zero."""
    wanted = set(pairs)
    if not wanted:
        return {}
    product_ids = sorted({p for p, _ in wanted})
    store_ids = sorted({s for _, s in wanted})
    sl, h, o = stock_levels.c, holds.c, orders.c
    levels = await conn.execute(
        select(sl.product_id, sl.store_id, sl.on_hand, stores.c.safety_stock)
        .join(stores, stores.c.id == sl.store_id)
        .where(sl.product_id.in_(product_ids), sl.store_id.in_(store_ids))
    )
    site_order = and_(o.channel == Channel.ONLINE.value, o.external_id.is_not(None))
    held_rows = await conn.execute(
        select(h.product_id, h.store_id, func.sum(h.quantity).label("held"))
        .join(orders, o.id == h.order_id)
        .where(
            h.state == HoldState.ACTIVE.value,
            h.product_id.in_(product_ids),
            h.store_id.in_(store_ids),
            not_(site_order),
        )
        .group_by(h.product_id, h.store_id)
    )
    held = {(r.product_id, r.store_id): Decimal(r.held or 0) for r in held_rows}
    return {
        (r.product_id, r.store_id): sellable(
            Decimal(r.on_hand),
            held.get((r.product_id, r.store_id), Decimal(0)),
            Decimal(r.safety_stock or 0),
        )
        for r in levels
        if (r.product_id, r.store_id) in wanted
    }


async def hub_orders(conn: AsyncConnection, order_ids: Sequence[str]) -> dict[str, HubOrder]:
    """The orders as they are now, with their lines (products by their 1C Ид)."""
    if not order_ids:
        return {}
    o, ol, p = orders.c, order_lines.c, products.c
    rows = await conn.execute(
        select(orders, stores.c.code.label("store_code"))
        .outerjoin(stores, stores.c.id == o.store_id)
        .where(o.id.in_(order_ids))
    )
    found = {r.id: r for r in rows}
    lines: dict[str, list[HubLine]] = {}
    for r in await conn.execute(
        select(ol.order_id, ol.line_no, ol.quantity, ol.price, p.xml_id, p.name)
        .join(products, p.id == ol.product_id)
        .where(ol.order_id.in_(list(found)))
        .order_by(ol.order_id, ol.line_no)
    ):
        lines.setdefault(r.order_id, []).append(
            HubLine(r.line_no, r.xml_id, r.name, Decimal(r.quantity), Decimal(r.price))
        )
    return {
        r.id: HubOrder(
            id=r.id,
            number=int(r.number),
            channel=r.channel,
            source=r.source,
            status=r.status,
            paid=r.payment_status == PaymentStatus.PAID.value,
            store_code=r.store_code,
            total=Decimal(r.total),
            currency=r.currency,
            external_id=r.external_id,
            pos_transaction_id=r.pos_transaction_id,
            lines=tuple(lines.get(r.id, ())),
            created_at=r.created_at,
        )
        for r in found.values()
    }


async def announce_store_levels(
    conn: AsyncConnection, store_id: int, store_code: str, now: datetime
) -> int:
    """A `stock.changed` per stock level of the store (nothing moved: on_hand and reserved as
    they are, reason "safety_stock"), inside the caller's transaction; how many."""
    sl = stock_levels.c
    rows = (
        await conn.execute(
            select(sl.product_id, sl.on_hand, sl.reserved)
            .where(sl.store_id == store_id)
            .order_by(sl.product_id)
        )
    ).all()
    values = [
        {
            "type": events.STOCK_CHANGED,
            "aggregate_type": events.AGGREGATE_STOCK,
            "aggregate_id": events.stock_aggregate_id(r.product_id, store_id),
            "payload": events.stock_changed(
                r.product_id, store_id, Decimal(r.on_hand), Decimal(r.reserved),
                SAFETY_STOCK, "store", f"store:{store_code}",
            ),
            "created_at": now,
        }
        for r in rows
    ]  # fmt: skip
    for start in range(0, len(values), 1000):
        await conn.execute(insert(outbox_events), values[start : start + 1000])
    return len(values)
