"""Attention on orders: raising an item (with its `order.attention` event) and resolving it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..domain import events
from ..domain.errors import NotFound
from ..domain.orders import Attention, Order
from .context import Context
from .idempotency import Idempotency, claim, remember
from .lookup import locked_order
from .ports import StoredResponse, UnitOfWork


async def raise_attention(
    uow: UnitOfWork, order: Order, code: str, detail: dict[str, Any], now: datetime
) -> Attention:
    """Inside the caller's transaction, with the order locked: the item and its event."""
    attention_id = await uow.raise_attention(order.id, code, detail, now)
    item = Attention(attention_id, code, detail, now)
    order.attention.append(item)
    await uow.add_event(
        events.ORDER_ATTENTION,
        events.AGGREGATE_ORDER,
        order.id,
        events.order_attention(order.id, order.number, attention_id, code, detail, "open"),
        now,
    )
    return item


async def close_attention(
    uow: UnitOfWork, order: Order, ids: list[int] | None, resolution: str, now: datetime
) -> list[Attention]:
    """Inside the caller's transaction: closes the order's open items (all, or those named)
    and writes an `order.attention` event per item with state "resolved"."""
    closed = await uow.resolve_attention(order.id, ids, resolution, now)
    gone = {x.id for x in closed}
    order.attention = [x for x in order.attention if x.id not in gone]
    for item in closed:
        await uow.add_event(
            events.ORDER_ATTENTION,
            events.AGGREGATE_ORDER,
            order.id,
            events.order_attention(
                order.id, order.number, item.id, item.code, item.detail, "resolved"
            ),
            now,
        )
    return closed


async def resolve(
    uow_factory: Callable[[], UnitOfWork],
    order_id: str,
    attention_id: int,
    resolution: str,
    ctx: Context,
    idem: Idempotency[Order] | None = None,
) -> Order | StoredResponse:
    """A person says an open item is dealt with."""
    async with uow_factory() as uow:
        replayed = await claim(uow, idem)
        if replayed is not None:
            return replayed
        order = await locked_order(uow, order_id)
        if attention_id not in {x.id for x in order.attention}:
            raise NotFound(
                f"order {order_id} has no open attention item {attention_id}",
                order_id=order_id,
                attention_id=attention_id,
            )
        await close_attention(uow, order, [attention_id], resolution, ctx.clock())
        await remember(uow, idem, order)
        await uow.commit()
        return order
