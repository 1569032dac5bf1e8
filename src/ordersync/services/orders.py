"""Order use cases: place, pay, cancel, ship, complete, and expiring unpaid holds."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from ..domain import events
from ..domain.allocation import Allocation, LineRequest, allocate, merge_by_stock_row
from ..domain.commands import LineInput, PlaceOrder
from ..domain.errors import (
    AlreadyRecorded,
    InsufficientStock,
    InvalidRequest,
    NotFound,
    OrdersyncError,
    StockRace,
    UnknownStore,
)
from ..domain.orders import (
    LineHold,
    Order,
    OrderLine,
    applies_safety_stock,
    close_holds,
    consumes_holds,
    needs_confirmation,
    needs_payment,
    needs_transition,
    releases_holds,
)
from ..domain.quantities import money, quantity
from ..domain.types import (
    Channel,
    Fulfillment,
    HoldReason,
    HoldState,
    MovementReason,
    OrderStatus,
    PaymentStatus,
    Source,
    Unit,
)
from .attention import close_attention
from .context import Context
from .idempotency import Idempotency, claim, remember, replay
from .ids import uuid7
from .lookup import locked_order, resolve_products_with_stock
from .ports import (
    Hold,
    IdempotencyRecord,
    Product,
    StockChange,
    StockLevel,
    Store,
    StoredResponse,
    UnitOfWork,
)

UowFactory = Callable[[], UnitOfWork]
log = logging.getLogger("ordersync.holds")
PLACEMENT_ATTEMPTS = 5


def candidate_stores(cmd: PlaceOrder, stores: list[Store]) -> list[Store]:
    """Pickup: the pickup store only. Delivery: the stores serving online, by priority."""
    if cmd.fulfillment is Fulfillment.DELIVERY:
        serving = [s for s in stores if s.active and s.serves_online]
        return sorted(serving, key=lambda s: (s.online_priority, s.id))
    if cmd.fulfillment is Fulfillment.IN_STORE and cmd.channel is not Channel.POS:
        raise InvalidRequest("only a till takes in-store orders", field="fulfillment")
    if cmd.store_code is None:
        raise InvalidRequest("a pickup order names its store", field="store")
    by_code = {s.code: s for s in stores if s.active}
    store = by_code.get(cmd.store_code)
    if store is None:
        raise UnknownStore([cmd.store_code])
    if cmd.fulfillment is Fulfillment.PICKUP and not store.is_pickup_point:
        raise InvalidRequest(f"store {store.code} is not a pickup point", store=store.code)
    return [store]


def _new_order(cmd: PlaceOrder, now: datetime, ctx: Context) -> Order:
    """The order as placed, without its lines (nor its number)."""
    return Order(
        id=uuid7(),
        channel=cmd.channel,
        source=Source.ORDER,
        fulfillment=cmd.fulfillment,
        status=OrderStatus.PLACED,
        payment_status=PaymentStatus.UNPAID,
        store_id=None,  # set below for pickup
        lines=[],
        created_at=now,
        currency=cmd.currency,
        customer=dict(cmd.customer),
        external_id=cmd.external_id,
        comment=cmd.comment,
        hold_expires_at=now + timedelta(minutes=ctx.holds.minutes(cmd.channel)),
        updated_at=now,
    )


def _build_order(cmd: PlaceOrder, products: list[Product], now: datetime, ctx: Context) -> Order:
    lines: list[OrderLine] = []
    for no, (line, product) in enumerate(zip(cmd.lines, products, strict=True), start=1):
        qty = quantity(line.quantity, product.unit, f"lines[{no - 1}].quantity")
        if line.price is not None:
            price = money(line.price, f"lines[{no - 1}].price")
        elif product.price is not None:
            price = product.price
        else:
            raise InvalidRequest(
                f"product {product.sku} has no price; give one", field=f"lines[{no - 1}].price"
            )
        lines.append(OrderLine(no, product.id, qty, price, product.sku))
    money(sum((x.amount for x in lines), Decimal(0)), "total")
    order = _new_order(cmd, now, ctx)
    order.lines = lines
    return order


async def place_order(
    uow_factory: UowFactory,
    cmd: PlaceOrder,
    ctx: Context,
    idem: Idempotency[Order] | None = None,
) -> Order | StoredResponse:
    """Hold stock for every line, or for none, and record the order."""
    if idem is None:
        placed = await _place_at_first_store(uow_factory, cmd, ctx)
        if placed is not None:
            return placed
    try:
        async with uow_factory() as uow:
            earlier = await _earlier_result(uow, cmd, idem)
            if earlier is not None:
                return earlier
            if not cmd.lines:
                raise InvalidRequest("an order has at least one line", field="lines")
            candidates = candidate_stores(cmd, await uow.stores())
            products, stock = await resolve_products_with_stock(
                uow, [line.product for line in cmd.lines], [s.id for s in candidates]
            )
            order = _build_order(cmd, products, ctx.clock(), ctx)
            order.number = await uow.next_order_number()
            if cmd.fulfillment is not Fulfillment.DELIVERY:
                order.store_id = candidates[0].id
            await _hold_and_write(uow, order, candidates, stock, idem)
            await uow.commit()
            return order
    except AlreadyRecorded:
        return await _first_result(uow_factory, cmd, idem)
    except InsufficientStock as short:
        # A retry racing its own first attempt loses the stock to it: answer with that order.
        if cmd.external_id is None and idem is None:
            raise
        try:
            return await _first_result(uow_factory, cmd, idem)
        except StockRace:
            raise short from None


def _checked_lines(cmd: PlaceOrder) -> tuple[LineInput, ...] | None:
    """The lines with what can be checked before the catalog is read (a positive quantity
    with at most 3 decimals, a price in range); None when one fails."""
    try:
        return tuple(
            LineInput(
                x.product,
                quantity(x.quantity, Unit.KG, f"lines[{no}].quantity"),
                None if x.price is None else money(x.price, f"lines[{no}].price"),
            )
            for no, x in enumerate(cmd.lines)
        )
    except InvalidRequest:
        return None


async def _place_at_first_store(
    uow_factory: UowFactory, cmd: PlaceOrder, ctx: Context
) -> Order | None:
    """The common order in one write: every line held at the first candidate store. That is
    the plan `allocate` makes whenever that store covers every line, and the write's
    conditional update holds only then, so the order is the one the full path would place.
    None when the storage has no such write or wrote nothing (a line the catalog refuses, too
    little stock there, an external id taken...): the full path then plans from a read, or
    answers with the earlier order, or refuses with its own error."""
    lines = _checked_lines(cmd)
    uow = uow_factory()
    if not lines or not uow.places_at_store:
        return None
    async with uow:
        try:
            candidates = candidate_stores(cmd, await uow.stores())
        except OrdersyncError:
            return None
        if not candidates:
            return None
        store = candidates[0]
        safety = store.safety_stock if applies_safety_stock(cmd.channel) else Decimal(0)
        order = _new_order(cmd, ctx.clock(), ctx)
        if cmd.fulfillment is not Fulfillment.DELIVERY:
            order.store_id = store.id
        placed = await uow.place_at_store(order, lines, store.id, safety)
        if placed is None:
            return None
        order.number, products = placed
        order.lines = [
            OrderLine(
                no,
                product.product_id,
                line.quantity,
                product.price if line.price is None else line.price,
                product.sku,
                [LineHold(store.id, line.quantity)],
            )
            for no, (line, product) in enumerate(zip(lines, products, strict=True), start=1)
        ]
        await uow.commit()
        return order


async def _hold_and_write(
    uow: UnitOfWork,
    order: Order,
    candidates: list[Store],
    stock: list[StockLevel],
    idem: Idempotency[Order] | None,
) -> None:
    """Plan from the stock read, then write; the conditional updates have the last word.
    When a concurrent order took the planned units first, plan again from a fresh read.
    The stored response is rendered from each plan: it shows where the stock is held."""
    store_ids = [s.id for s in candidates]
    safe = applies_safety_stock(order.channel)
    safety = {s.id: s.safety_stock if safe else Decimal(0) for s in candidates}
    requests = [LineRequest(x.line_no, x.product_id, x.quantity, x.sku) for x in order.lines]
    for attempt in range(PLACEMENT_ATTEMPTS):
        if attempt:
            stock = await uow.read_stock(sorted({x.product_id for x in order.lines}), store_ids)
        available = {(r.product_id, r.store_id): r.available - safety[r.store_id] for r in stock}
        allocations = allocate(requests, store_ids, available)
        _show_holds(order, allocations)
        response: IdempotencyRecord | None = None
        if idem is not None:
            response = (idem.principal, idem.key, idem.request_hash, idem.render(order))
        try:
            await uow.place_order(order, allocations, safety, response)
            return
        except StockRace:
            continue
    raise InsufficientStock(
        [{"line": r.line_no, "product": r.label, "requested": str(r.quantity)} for r in requests],
        "the stock for these lines was taken by concurrent orders",
    )


def _show_holds(order: Order, allocations: list[Allocation]) -> None:
    for line in order.lines:
        line.holds = [
            LineHold(a.store_id, a.quantity) for a in allocations if a.line_no == line.line_no
        ]


async def _earlier_result(
    uow: UnitOfWork, cmd: PlaceOrder, idem: Idempotency[Order] | None
) -> Order | StoredResponse | None:
    """What an earlier request with the same Idempotency-Key or external id got, if any."""
    replayed = await replay(uow, idem)
    if replayed is not None:
        return replayed
    if cmd.external_id is not None:
        return await uow.find_order_by_external_id(cmd.channel, cmd.external_id)
    return None


async def _first_result(
    uow_factory: UowFactory, cmd: PlaceOrder, idem: Idempotency[Order] | None
) -> Order | StoredResponse:
    async with uow_factory() as uow:
        earlier = await _earlier_result(uow, cmd, idem)
    if earlier is None:
        raise StockRace("a unique key was taken but its first result is not visible yet")
    return earlier


async def _release(uow: UnitOfWork, order: Order, state: HoldState, now: datetime) -> None:
    reason = HoldReason.EXPIRE if state is HoldState.EXPIRED else HoldReason.RELEASE
    for product_id, store_id, qty in _hold_totals(await uow.active_holds(order.id)):
        change = StockChange(product_id, store_id, qty, reason, "order", order.id, now, now)
        if await uow.release_hold(change) is None:
            raise AssertionError(f"reserved below the holds of order {order.id}")
    await uow.close_holds(order.id, state, now)
    close_holds(order, state)


async def _consume(uow: UnitOfWork, order: Order, now: datetime) -> None:
    short: list[dict[str, Any]] = []
    for product_id, store_id, qty in _hold_totals(await uow.active_holds(order.id)):
        change = StockChange(
            product_id, store_id, qty, MovementReason.SHIPMENT, "order", order.id, now, now
        )
        if await uow.consume_hold(change) is None:
            short.append({"product_id": product_id, "store_id": store_id, "quantity": str(qty)})
    if short:
        raise InsufficientStock(short, "on hand is below what the order holds (after a count?)")
    await uow.close_holds(order.id, HoldState.CONSUMED, now)
    close_holds(order, HoldState.CONSUMED)


def _hold_totals(holds: list[Hold]) -> list[tuple[int, int, Decimal]]:
    return merge_by_stock_row(
        [Allocation(h.line_no, h.product_id, h.store_id, h.quantity) for h in holds]
    )


_STAMP = {
    OrderStatus.SHIPPED: "shipped_at",
    OrderStatus.COMPLETED: "completed_at",
    OrderStatus.CANCELLED: "cancelled_at",
    OrderStatus.EXPIRED: "cancelled_at",
}


async def _transition(
    uow: UnitOfWork, order: Order, target: OrderStatus, now: datetime, reason: str
) -> None:
    if not needs_transition(order.status, target, order.id):
        return
    if consumes_holds(order.status, target):
        await _consume(uow, order, now)
    elif releases_holds(order.status, target):
        state = HoldState.EXPIRED if target is OrderStatus.EXPIRED else HoldState.RELEASED
        await _release(uow, order, state, now)
    old = order.status
    fields: dict[str, Any] = {
        "status": target.value,
        "updated_at": now,
        _STAMP[target]: now,
        "hold_expires_at": None,
    }
    if target in (OrderStatus.SHIPPED, OrderStatus.COMPLETED) and order.shipped_at is None:
        fields["shipped_at"] = now
    await uow.set_order_fields(order.id, **fields)
    order.version += 1
    if target in (OrderStatus.CANCELLED, OrderStatus.EXPIRED) and order.attention:
        await close_attention(uow, order, None, f"order {target.value}", now)
    order.status = target
    order.updated_at = now
    order.hold_expires_at = None
    for name, value in fields.items():
        if name.endswith("_at") and name != "updated_at":
            setattr(order, name, value)
    await uow.add_event(
        events.ORDER_STATUS_CHANGED,
        events.AGGREGATE_ORDER,
        order.id,
        events.order_status_changed(order.id, old.value, target.value, reason),
        now,
    )


async def change_status(
    uow_factory: UowFactory,
    order_id: str,
    target: OrderStatus,
    ctx: Context,
    idem: Idempotency[Order] | None = None,
    reason: str = "api",
) -> Order | StoredResponse:
    """Cancel, ship or complete: one transaction, idempotent (a repeat changes nothing)."""
    async with uow_factory() as uow:
        replayed = await claim(uow, idem)
        if replayed is not None:
            return replayed
        order = await locked_order(uow, order_id)
        await _transition(uow, order, target, ctx.clock(), reason)
        await remember(uow, idem, order)
        await uow.commit()
        return order


async def pay_order(
    uow_factory: UowFactory,
    order_id: str,
    ctx: Context,
    idem: Idempotency[Order] | None = None,
) -> Order | StoredResponse:
    """Mark paid; the holds stop expiring. Paying twice changes nothing."""
    async with uow_factory() as uow:
        replayed = await claim(uow, idem)
        if replayed is not None:
            return replayed
        order = await locked_order(uow, order_id)
        await mark_paid(uow, order, ctx.clock())
        await remember(uow, idem, order)
        await uow.commit()
        return order


async def mark_paid(uow: UnitOfWork, order: Order, now: datetime) -> bool:
    """Inside the caller's transaction, the order locked: paid, its holds kept for good.
    False when it was paid already."""
    if not needs_payment(order.status, order.payment_status, order.id):
        return False
    order.payment_status = PaymentStatus.PAID
    order.paid_at = order.updated_at = now
    order.hold_expires_at = None
    await uow.set_order_fields(
        order.id,
        payment_status=PaymentStatus.PAID.value,
        paid_at=now,
        updated_at=now,
        hold_expires_at=None,
    )
    order.version += 1
    await uow.keep_holds(order.id)
    await uow.add_event(
        events.ORDER_PAID,
        events.AGGREGATE_ORDER,
        order.id,
        {"order_id": order.id, "paid_at": now.isoformat()},
        now,
    )
    return True


async def confirm_order(
    uow_factory: UowFactory,
    order_id: str,
    ctx: Context,
    idem: Idempotency[Order] | None = None,
    by: str = "api",
) -> Order | StoredResponse:
    """An operator confirmed the order (by phone): unpaid, it keeps its stock for the
    channel's confirmed limit instead of the short one. Confirming twice changes nothing; an
    order that is no longer placed cannot be confirmed (409)."""
    async with uow_factory() as uow:
        replayed = await claim(uow, idem)
        if replayed is not None:
            return replayed
        order = await locked_order(uow, order_id)
        await mark_confirmed(uow, order, ctx, by)
        await remember(uow, idem, order)
        await uow.commit()
        return order


async def mark_confirmed(uow: UnitOfWork, order: Order, ctx: Context, by: str) -> bool:
    """Inside the caller's transaction, the order locked. False when confirmed already."""
    if not needs_confirmation(order):
        return False
    now = ctx.clock()
    fields: dict[str, Any] = {"confirmed_at": now, "updated_at": now}
    if order.payment_status is PaymentStatus.UNPAID:
        until = now + timedelta(minutes=ctx.holds.confirmed_minutes(order.channel))
        if order.hold_expires_at is None or order.hold_expires_at < until:
            fields["hold_expires_at"] = until
            await uow.extend_holds(order.id, until)
    await uow.set_order_fields(order.id, **fields)
    order.version += 1
    for name, value in fields.items():
        setattr(order, name, value)
    await uow.add_event(
        events.ORDER_CONFIRMED,
        events.AGGREGATE_ORDER,
        order.id,
        {
            "order_id": order.id,
            "number": order.number,
            "confirmed_at": now.isoformat(),
            "by": by,
            "hold_expires_at": None
            if order.hold_expires_at is None
            else order.hold_expires_at.isoformat(),
        },
        now,
    )
    return True


async def transition(
    uow: UnitOfWork, order: Order, target: OrderStatus, now: datetime, reason: str
) -> None:
    """Inside the caller's transaction, the order locked: ship, complete, cancel or expire."""
    await _transition(uow, order, target, now, reason)


async def release_all(uow: UnitOfWork, order: Order, now: datetime) -> None:
    """Inside the caller's transaction: every active hold of the order released."""
    await _release(uow, order, HoldState.RELEASED, now)


async def get_order(uow_factory: UowFactory, order_id: str) -> Order:
    async with uow_factory() as uow:
        order = await uow.get_order(order_id)
    if order is None:
        raise NotFound(f"order {order_id} not found", order_id=order_id)
    return order


async def expire_unpaid_holds(uow_factory: UowFactory, ctx: Context, limit: int = 200) -> int:
    """Release the stock of unpaid orders whose hold time is over. Returns how many expired.

    Each order is its own transaction and is re-checked under its lock, so a payment that
    arrives at the same moment either wins or finds the order expired."""
    async with uow_factory() as uow:
        due = await uow.orders_with_expired_holds(ctx.clock(), limit)
    expired = 0
    for order_id in due:
        try:
            expired += await _expire_one(uow_factory, order_id, ctx)
        except Exception:
            log.exception("could not expire the holds of order %s", order_id)
    return expired


async def _expire_one(uow_factory: UowFactory, order_id: str, ctx: Context) -> int:
    async with uow_factory() as uow:
        order = await locked_order(uow, order_id)
        now = ctx.clock()
        if (
            order.status is OrderStatus.PLACED
            and order.payment_status is PaymentStatus.UNPAID
            and order.hold_expires_at is not None
            and order.hold_expires_at <= now
        ):
            await _transition(uow, order, OrderStatus.EXPIRED, now, "hold_expired")
            await uow.commit()
            return 1
    return 0
