"""What an operator does with a line that is short (a till sale took its units, a site order
came in for more than there was): hold the whole line at one store, or cancel the line.

Both lock the order first and then its stock rows in store order, as every use case does, and
take stock only through the conditional update (`hold_stock`): a move that does not fit changes
nothing. Closing the line's shortage attention items is part of the same transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..domain import events
from ..domain.errors import Conflict, InsufficientStock, NotFound, UnknownStore
from ..domain.events import dec
from ..domain.orders import LineHold, Order, OrderLine, applies_safety_stock
from ..domain.types import Fulfillment, HoldReason, HoldState, OrderStatus
from .attention import close_attention
from .context import Context
from .idempotency import Idempotency, claim, remember
from .lookup import locked_order
from .ports import Hold, StockChange, Store, StoredResponse, UnitOfWork

UowFactory = Callable[[], UnitOfWork]

# Attention codes that say a line is short of stock; moving or cancelling the line resolves them.
SHORTAGE_CODES = frozenset({"stock_taken_by_till_sale", "site_order_short"})


# What a change of a line did: its event's type and details, the words that close the line's
# shortage items, and the order's fields to write beside updated_at.
Changed = tuple[str, dict[str, Any], str, dict[str, Any]]
LineChange = Callable[[UnitOfWork, Order, OrderLine, datetime], Awaitable[Changed]]


async def hold_line_at(
    uow_factory: UowFactory,
    order_id: str,
    line_no: int,
    store_code: str,
    ctx: Context,
    idem: Idempotency[Order] | None = None,
) -> Order | StoredResponse:
    """The whole line held at `store_code`: its holds at other stores are released and what it
    lacks there is held (InsufficientStock, and nothing changed, when the store has not got
    it). A pickup order's lines stay at its pickup store: there this re-holds a line cut short
    once the units are back. Raises NotFound, UnknownStore, Conflict (the order is not placed)."""

    async def move(uow: UnitOfWork, order: Order, line: OrderLine, now: datetime) -> Changed:
        store = _store(await uow.stores(), store_code)
        if order.fulfillment is not Fulfillment.DELIVERY and store.id != order.store_id:
            raise Conflict(
                "a pickup order is held at its pickup store: hold the line there, or cancel "
                "the line or the order",
                order_id=order.id,
            )
        holds = [h for h in await uow.active_holds(order.id) if h.line_no == line.line_no]
        need = line.kept - sum((h.quantity for h in holds if h.store_id == store.id), Decimal(0))
        released = await _move(uow, order, line, store, holds, need, now)
        line.holds = await _line_holds(uow, order.id, line.line_no)
        detail = {
            "store": store.code,
            "held": dec(max(need, Decimal(0))),
            "released": released,
            "by": "operator",
        }
        return events.ORDER_HOLDS_MOVED, detail, f"line {line.line_no} held at {store.code}", {}

    return await _change_line(uow_factory, order_id, line_no, ctx, idem, move)


async def cancel_line(
    uow_factory: UowFactory,
    order_id: str,
    line_no: int,
    ctx: Context,
    idem: Idempotency[Order] | None = None,
) -> Order | StoredResponse:
    """The line is dropped from the order: its holds released, its quantity brought down to
    what was returned (nothing is kept), the order's total with it. An order keeps at least
    one line: cancel the order instead. Raises NotFound, Conflict."""

    async def drop(uow: UnitOfWork, order: Order, line: OrderLine, now: datetime) -> Changed:
        if not any(x.kept > 0 for x in order.lines if x.line_no != line.line_no):
            raise Conflict("this is the order's last line: cancel the order", order_id=order.id)
        holds = sorted(
            (h for h in await uow.active_holds(order.id) if h.line_no == line.line_no),
            key=lambda h: h.store_id,
        )
        for hold in holds:
            await _release(uow, order, hold, now)
        cancelled = line.kept
        line.quantity = line.returned
        line.holds = [LineHold(h.store_id, h.quantity, HoldState.RELEASED) for h in holds]
        await uow.set_line_quantity(order.id, line.line_no, line.quantity)
        detail = {"quantity": dec(cancelled), "total": dec(order.total)}
        resolution = f"line {line.line_no} cancelled"
        return events.ORDER_LINE_CANCELLED, detail, resolution, {"total": order.total}

    return await _change_line(uow_factory, order_id, line_no, ctx, idem, drop)


async def _change_line(
    uow_factory: UowFactory,
    order_id: str,
    line_no: int,
    ctx: Context,
    idem: Idempotency[Order] | None,
    change: LineChange,
) -> Order | StoredResponse:
    """One transaction: the order locked, its line changed, the order's version raised, the
    event written and the line's shortage items closed."""
    async with uow_factory() as uow:
        replayed = await claim(uow, idem)
        if replayed is not None:
            return replayed
        order = await locked_order(uow, order_id)
        line = _open_line(order, line_no)
        now = ctx.clock()
        event_type, detail, resolution, fields = await change(uow, order, line, now)
        await uow.set_order_fields(order.id, updated_at=now, **fields)
        order.version += 1
        order.updated_at = now
        payload = {
            "order_id": order.id,
            "number": order.number,
            "line": line_no,
            "product_id": line.product_id,
            "sku": line.sku,
            **detail,
        }
        await uow.add_event(event_type, events.AGGREGATE_ORDER, order.id, payload, now)
        await _close_shortage(uow, order, line_no, resolution, now)
        await remember(uow, idem, order)
        await uow.commit()
        return order


def _open_line(order: Order, line_no: int) -> OrderLine:
    if order.status is not OrderStatus.PLACED:
        raise Conflict(
            f"order {order.id} is {order.status.value}: only a placed order's lines change",
            order_id=order.id,
        )
    line = next((x for x in order.lines if x.line_no == line_no), None)
    if line is None:
        raise NotFound(f"order {order.id} has no line {line_no}", order_id=order.id)
    if line.kept <= 0:
        raise Conflict(f"line {line_no} has nothing left to hold", order_id=order.id)
    return line


def _store(stores: list[Store], code: str) -> Store:
    store = next((s for s in stores if s.code == code and s.active), None)
    if store is None:
        raise UnknownStore([code])
    return store


async def _move(
    uow: UnitOfWork,
    order: Order,
    line: OrderLine,
    store: Store,
    holds: list[Hold],
    need: Decimal,
    now: datetime,
) -> list[dict[str, Any]]:
    """Stock rows touched in store order; returns what was released where."""
    released: list[dict[str, Any]] = []
    elsewhere = [h for h in holds if h.store_id != store.id]
    expires = order.hold_expires_at
    for store_id in sorted({store.id, *(h.store_id for h in elsewhere)}):
        if store_id == store.id:
            if need <= 0:
                continue
            safety = store.safety_stock if applies_safety_stock(order.channel) else Decimal(0)
            change = StockChange(
                line.product_id, store.id, need, HoldReason.HOLD, "order", order.id, now, now
            )
            if await uow.hold_stock(change, safety) is None:
                short = {"line": line.line_no, "sku": line.sku, "store": store.code}
                raise InsufficientStock(
                    [{**short, "quantity": dec(need)}],
                    f"{store.code} has not got {dec(need)} of {line.sku} free",
                )
            await uow.add_hold(
                order.id, line.line_no, line.product_id, store.id, need, expires, now
            )
            continue
        for hold in (h for h in elsewhere if h.store_id == store_id):
            await _release(uow, order, hold, now)
            released.append({"store_id": store_id, "quantity": dec(hold.quantity)})
    return released


async def _release(uow: UnitOfWork, order: Order, hold: Hold, now: datetime) -> None:
    change = StockChange(
        hold.product_id,
        hold.store_id,
        hold.quantity,
        HoldReason.RELEASE,
        "order",
        order.id,
        now,
        now,
    )
    if await uow.release_hold(change) is None:
        raise AssertionError(f"reserved below the holds of order {order.id}")
    await uow.close_hold(hold.id, HoldState.RELEASED, now)


async def _line_holds(uow: UnitOfWork, order_id: str, line_no: int) -> list[LineHold]:
    return [
        LineHold(h.store_id, h.quantity)
        for h in await uow.active_holds(order_id)
        if h.line_no == line_no
    ]


async def _close_shortage(
    uow: UnitOfWork, order: Order, line_no: int, resolution: str, now: datetime
) -> None:
    """The line's shortage items; all of them once no line is short any more."""
    holds = await uow.active_holds(order.id)
    held = {x.line_no: Decimal(0) for x in order.lines}
    for h in holds:
        held[h.line_no] = held.get(h.line_no, Decimal(0)) + h.quantity
    whole = all(held.get(x.line_no, Decimal(0)) >= x.kept for x in order.lines)
    ids = [
        item.id
        for item in order.attention
        if item.code in SHORTAGE_CODES and (whole or names_line(item.detail, line_no))
    ]
    if ids:
        await close_attention(uow, order, ids, resolution, now)


def names_line(detail: dict[str, Any], line_no: int) -> bool:
    """An attention item's detail names the line: `line`, or `lines` as numbers or objects."""
    if detail.get("line") == line_no:
        return True
    lines = detail.get("lines")
    return isinstance(lines, list) and any(
        x == line_no or (isinstance(x, dict) and x.get("line") == line_no) for x in lines
    )
