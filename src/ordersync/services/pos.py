"""Till sales and returns: stock moves at once, exactly once per POS transaction.

A completed sale (the default, and every Evotor document) is recorded whatever the stock says
(services/till_sale.py); one that asks before the receipt is printed (`completed` false) is
refused when the free units do not cover it, naming the orders that hold them. A return puts
the units back at its store; linked to its sale (found across the store's tills) it is
bounded by what the sale sold, and a completed return beyond that, or with no sale the hub
knows, is recorded unlinked and listed for review.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..domain import events
from ..domain.commands import LineInput, RecordPosReturn, RecordPosSale, UnmatchedLine
from ..domain.errors import (
    AlreadyRecorded,
    Conflict,
    InsufficientStock,
    InvalidRequest,
    UnknownProduct,
)
from ..domain.events import dec
from ..domain.orders import Order, OrderLine
from ..domain.quantities import money, quantity
from ..domain.types import (
    Channel,
    Fulfillment,
    MovementReason,
    OrderStatus,
    PaymentStatus,
    PosMode,
    Source,
)
from . import till_shift
from .context import Context
from .idempotency import Idempotency, claim, remember
from .ids import uuid7
from .lookup import resolve_products, store_by_code
from .orders import UowFactory
from .ports import (
    PosRecord,
    Product,
    ReviewItem,
    SaleBatches,
    SaleForBatch,
    StockChange,
    Store,
    StoredResponse,
    UnitOfWork,
)
from .till_sale import SaleRef, holders, take_for_sale

SALE = "sale"
RETURN = "return"
UNMATCHED_LINE = "unmatched_line"
UNLINKED_RETURN = "unlinked_return"

Item = tuple[Product, Decimal, Decimal | None]
# What a channel writes in the same transaction once the sale or return is recorded (or
# found recorded): the Evotor inbox marks its document done.
Then = Callable[[UnitOfWork, dict[str, Any]], Awaitable[None]]


def _request_hash(
    kind: str,
    store_code: str,
    lines: tuple[LineInput, ...],
    extra: str,
    unmatched: tuple[UnmatchedLine, ...] = (),
) -> str:
    """What makes a retry the same transaction: its lines as sent (validated later)."""
    canonical = [[line.product.label, str(line.quantity), str(line.price)] for line in lines]
    kept = [[u.position, u.code, u.commodity_uuid, str(u.quantity)] for u in unmatched]
    text = json.dumps([kind, store_code, extra, canonical] + ([kept] if kept else []))
    return hashlib.sha256(text.encode()).hexdigest()


def _earlier(record: PosRecord, request_hash: str) -> dict[str, Any]:
    """The first result of a transaction sent again; other lines under its id are refused."""
    if record.request_hash != request_hash:
        raise Conflict(
            f"POS transaction {record.transaction_id} was already recorded with other lines",
            pos_id=record.pos_id,
            transaction_id=record.transaction_id,
        )
    return {**record.result, "replayed": True}


def _quantities(lines: tuple[LineInput, ...], products: list[Product]) -> list[Item]:
    result = []
    for i, (line, product) in enumerate(zip(lines, products, strict=True)):
        qty = quantity(line.quantity, product.unit, f"lines[{i}].quantity")
        price = None if line.price is None else money(line.price, f"lines[{i}].price")
        result.append((product, qty, price))
    return result


async def _matched(
    uow: UnitOfWork, lines: tuple[LineInput, ...], keep_unknown: bool
) -> tuple[tuple[LineInput, ...], list[Product], tuple[UnmatchedLine, ...]]:
    """The lines whose products the hub has, with those products. A completed sale or return
    happened whatever the catalog says: lines naming a product the hub does not know are
    kept aside (UnmatchedLine, for the till review queue) instead of refusing the document."""
    try:
        return lines, await resolve_products(uow, [x.product for x in lines], inactive=True), ()
    except UnknownProduct as unknown:
        if not keep_unknown:
            raise
        missing = set(unknown.details["products"])
    known = tuple(x for x in lines if x.product.label not in missing)
    kept = tuple(
        UnmatchedLine(
            position=i + 1,
            quantity=x.quantity,
            reason="no product has this id, SKU or 1C Ид",
            code=x.product.label,
            price=x.price,
        )
        for i, x in enumerate(lines)
        if x.product.label in missing
    )
    found = await resolve_products(uow, [x.product for x in known], inactive=True)
    return known, found, kept


def _totals(items: list[Item]) -> list[tuple[int, Decimal]]:
    """Units per product, in product order (the order stock rows are locked in)."""
    totals: dict[int, Decimal] = defaultdict(Decimal)
    for product, qty, _ in items:
        totals[product.id] += qty
    return sorted(totals.items())


def _price(product: Product, price: Decimal | None) -> Decimal:
    return price if price is not None else (product.price or Decimal(0))


def _shown(items: list[Item]) -> list[dict[str, Any]]:
    return [{"product_id": p.id, "sku": p.sku, "quantity": dec(q)} for p, q, _ in items]


async def record_pos_sale(
    uow_factory: UowFactory,
    cmd: RecordPosSale,
    ctx: Context,
    idem: Idempotency[dict[str, Any]] | None = None,
    then: Then | None = None,
) -> dict[str, Any] | StoredResponse:
    """Deduct at once. In the store's `order` mode the sale also becomes a completed, paid
    order with source `offline`; in `stock_only` mode it joins its till shift's order when
    1C is to receive it (ctx.shift_orders)."""
    if not cmd.lines and not cmd.unmatched:
        raise InvalidRequest("a sale has at least one line", field="lines")
    request_hash = _request_hash(SALE, cmd.store_code, cmd.lines, "", cmd.unmatched)

    async def write(uow: UnitOfWork, store: Store) -> dict[str, Any]:
        return await _record_sale(uow, cmd, store, ctx, request_hash)

    return await _once(
        uow_factory, cmd.store_code, cmd.pos_id, cmd.transaction_id, request_hash, write, idem, then
    )


async def _once(
    uow_factory: UowFactory,
    store_code: str,
    pos_id: str,
    transaction_id: str,
    request_hash: str,
    write: Callable[[UnitOfWork, Store], Awaitable[dict[str, Any]]],
    idem: Idempotency[dict[str, Any]] | None,
    then: Then | None = None,
) -> dict[str, Any] | StoredResponse:
    """Record a POS transaction exactly once per (store, till, transaction id): a retry,
    even a concurrent one, gets the first result and changes nothing. An Idempotency-Key,
    when the till sends one, is honoured on top: its first response, whichever it was."""
    for attempt in range(2):
        try:
            async with uow_factory() as uow:
                replayed = await claim(uow, idem)
                if replayed is not None:
                    return replayed
                store = await store_by_code(uow, store_code)
                record = await uow.find_pos_record(store.id, pos_id, transaction_id)
                if record is not None:
                    result = _earlier(record, request_hash)
                else:
                    result = await write(uow, store)
                await remember(uow, idem, result)
                if then is not None:
                    await then(uow, result)
                await uow.commit()
                return result
        except AlreadyRecorded:
            # The same transaction (or its shift's order) committed by a concurrent request:
            # read it next time.
            if attempt:
                raise
    raise AssertionError("unreachable")


async def _record_sale(
    uow: UnitOfWork, cmd: RecordPosSale, store: Store, ctx: Context, request_hash: str
) -> dict[str, Any]:
    now = ctx.clock()
    lines, products, unknown = await _matched(uow, cmd.lines, keep_unknown=cmd.completed)
    items = _quantities(lines, products)
    unmatched = (*cmd.unmatched, *unknown)
    shift = till_shift.shift_of(cmd.shift, cmd.business_time, ctx.zone)
    order: Order | None = None
    shift_order: Order | None = None
    if store.pos_mode is PosMode.ORDER and items:
        order = _offline_order(cmd, store.id, items, now)
        order.number = await uow.next_order_number()
    elif items and ctx.shift_orders:  # an order row, locked before any stock row
        shift_order = await till_shift.shift_order(
            uow, till_shift.SHIFT, store, cmd.pos_id, shift, cmd.business_time, now
        )
    own = order or shift_order
    result: dict[str, Any] = {
        "kind": SALE,
        "pos_id": cmd.pos_id,
        "transaction_id": cmd.transaction_id,
        "store": store.code,
        "order_id": order.id if order else None,
        "order_number": order.number if order else None,
        "lines": _shown(items),
        "replayed": False,
        "displaced": [],
        "negative": [],
        "unmatched": [_unmatched_shown(u) for u in unmatched],
    }
    if shift_order is not None:
        result["shift_order_id"] = shift_order.id
    # The transaction row first: a concurrent retry of the same sale stops here.
    await uow.insert_pos_record(
        PosRecord(
            cmd.pos_id,
            cmd.transaction_id,
            SALE,
            store.id,
            own.id if own else None,
            None,
            request_hash,
            result,
            cmd.business_time,
            shift,
        ),
        now,
    )
    if order is not None:
        await uow.insert_order(order)
        await uow.add_event(
            events.ORDER_CREATED, events.AGGREGATE_ORDER, order.id, events.order_summary(order), now
        )
    if shift_order is not None:
        priced = [(p.id, _price(p, price), q) for p, q, price in items]
        await till_shift.add_units(uow, shift_order, priced, now)
    totals = _totals(items)
    for product_id, qty in totals:
        await uow.add_sold(store.id, cmd.pos_id, cmd.transaction_id, product_id, qty)
    await _link_earlier_returns(uow, store, cmd, dict(totals), now)
    if cmd.completed:
        sale = SaleRef(store, cmd.pos_id, cmd.transaction_id, cmd.business_time)
        taken = await take_for_sale(uow, sale, totals, await uow.stores(), now)
        if taken.displaced or taken.negative:  # what a replay answers, too
            result["displaced"], result["negative"] = taken.displaced, taken.negative
            await uow.update_pos_result(store.id, cmd.pos_id, cmd.transaction_id, result)
    else:
        await _deduct_or_refuse(uow, store, cmd, totals, now)
    await _keep_unmatched(uow, store, SALE, cmd.pos_id, cmd.transaction_id, unmatched, now)
    return result


async def record_sales_in_batch(
    batches: SaleBatches,
    store: Store,
    sales: list[tuple[int, RecordPosSale]],
    known: dict[int, Product],
    ctx: Context,
) -> set[int]:
    """Completed sales of one store that free units cover, written together (with their
    inbox rows, by inbox id): the ids written. The others are left to record_pos_sale, one
    by one: those that displace holds or go below zero, those a return named first, those
    that break a rule, and all of them when the batch met a concurrent write. `known`: the
    products the sales name (by id), as the channel matched them."""
    if store.pos_mode is PosMode.STOCK_ONLY and ctx.shift_orders:
        return set()  # the till shift's order is written one sale at a time
    now = ctx.clock()
    prepared: list[SaleForBatch] = []
    for inbox_id, cmd in sales:
        try:
            prepared.append(_for_batch(inbox_id, cmd, store, known, ctx, now))
        except (InvalidRequest, KeyError):
            continue  # recorded one by one, which says what is wrong
    chosen = await batches.fitting(store.id, prepared)
    if not chosen or not await batches.record(store.id, chosen, now):
        return set()
    return {sale.inbox_id for sale in chosen}


def _for_batch(
    inbox_id: int,
    cmd: RecordPosSale,
    store: Store,
    known: dict[int, Product],
    ctx: Context,
    now: datetime,
) -> SaleForBatch:
    if not cmd.completed or cmd.unmatched or not cmd.lines:
        raise InvalidRequest("not for a batch")
    products = [known[line.product.product_id or 0] for line in cmd.lines]
    items = _quantities(cmd.lines, products)
    order = None
    if store.pos_mode is PosMode.ORDER:
        order = _offline_order(cmd, store.id, items, now)
    result: dict[str, Any] = {
        "kind": SALE,
        "pos_id": cmd.pos_id,
        "transaction_id": cmd.transaction_id,
        "store": store.code,
        "order_id": order.id if order else None,
        "order_number": None,  # given when written
        "lines": _shown(items),
        "replayed": False,
        "displaced": [],
        "negative": [],
        "unmatched": [],
    }
    return SaleForBatch(
        inbox_id,
        cmd.pos_id,
        cmd.transaction_id,
        cmd.business_time,
        till_shift.shift_of(cmd.shift, cmd.business_time, ctx.zone),
        _totals(items),
        _request_hash(SALE, cmd.store_code, cmd.lines, "", cmd.unmatched),
        result,
        order,
    )


async def _link_earlier_returns(
    uow: UnitOfWork,
    store: Store,
    cmd: RecordPosSale,
    sold: dict[int, Decimal],
    now: datetime,
) -> None:
    """Returns of this sale that reached the hub first (an offline till syncs in any order)
    were recorded unlinked: what they returned is linked now, within what the sale sold, and
    their review items are closed. (1C already has them as returns of their shift.)"""
    for earlier in await uow.returns_naming(store.id, cmd.transaction_id):
        unlinked = earlier.result.get("unlinked") or []
        still: list[dict[str, Any]] = []
        for item in unlinked:
            product_id, qty = int(item["product_id"]), Decimal(item["quantity"])
            take = Decimal(0)
            if product_id in sold:
                returnable = await uow.returnable(
                    store.id, cmd.pos_id, cmd.transaction_id, product_id
                )
                take = min(qty, returnable)
            if take > 0:
                await uow.take_returned(store.id, cmd.pos_id, cmd.transaction_id, product_id, take)
            if qty > take:
                still.append({"product_id": product_id, "quantity": dec(qty - take)})
        if still == unlinked:
            continue
        result = {**earlier.result, "unlinked": still, "linked": True}
        await uow.update_pos_result(store.id, earlier.pos_id, earlier.transaction_id, result)
        if not still:
            await uow.resolve_reviews(
                UNLINKED_RETURN,
                "pos_return",
                f"{earlier.pos_id}:{earlier.transaction_id}",
                f"linked to sale {cmd.transaction_id}, which reached the hub after it",
                now,
            )


async def _deduct_or_refuse(
    uow: UnitOfWork,
    store: Store,
    cmd: RecordPosSale,
    totals: list[tuple[int, Decimal]],
    now: datetime,
) -> None:
    """A till asking before it prints: only free units, else 409 naming who holds them."""
    short: list[tuple[int, Decimal]] = []
    for product_id, qty in totals:
        change = StockChange(
            product_id,
            store.id,
            qty,
            MovementReason.POS_SALE,
            "pos_sale",
            f"{cmd.pos_id}:{cmd.transaction_id}",
            cmd.business_time,
            now,
        )
        if await uow.deduct_stock(change) is None:
            short.append((product_id, qty))
    if short:
        held = await holders(uow, store, [p for p, _ in short])
        lines = [
            {"product_id": p, "requested": dec(q), "held_by": held.get(p, [])} for p, q in short
        ]
        raise InsufficientStock(
            lines, "not enough free stock: the units may be held for online orders"
        )


async def _keep_unmatched(
    uow: UnitOfWork,
    store: Store,
    kind: str,
    pos_id: str,
    transaction_id: str,
    unmatched: tuple[UnmatchedLine, ...],
    now: datetime,
) -> None:
    """Lines whose product could not be matched, kept with the document for review."""
    for line in unmatched:
        await uow.add_review(
            ReviewItem(
                kind=UNMATCHED_LINE,
                store_id=store.id,
                document_type=f"pos_{kind}",
                document_id=f"{pos_id}:{transaction_id}",
                reason=line.reason,
                pos_id=pos_id,
                position=line.position,
                commodity_uuid=line.commodity_uuid,
                code=line.code,
                barcode=line.barcode,
                name=line.name,
                quantity=line.quantity,
                price=line.price,
            ),
            now,
        )


def _unmatched_shown(line: UnmatchedLine) -> dict[str, Any]:
    return {
        "position": line.position,
        "code": line.code,
        "barcode": line.barcode,
        "name": line.name,
        "quantity": dec(line.quantity),
        "reason": line.reason,
    }


def _offline_order(
    cmd: RecordPosSale,
    store_id: int,
    items: list[Item],
    now: Any,
) -> Order:
    lines = [
        OrderLine(no, p.id, q, _price(p, price), p.sku)
        for no, (p, q, price) in enumerate(items, start=1)
    ]
    money(sum((x.amount for x in lines), Decimal(0)), "total")
    return Order(
        id=uuid7(),
        channel=Channel.POS,
        source=Source.OFFLINE,
        fulfillment=Fulfillment.IN_STORE,
        status=OrderStatus.COMPLETED,
        payment_status=PaymentStatus.PAID,
        store_id=store_id,
        lines=lines,
        created_at=cmd.business_time,
        pos_id=cmd.pos_id,
        pos_transaction_id=cmd.transaction_id,
        updated_at=now,
        paid_at=cmd.business_time,
        shipped_at=cmd.business_time,
        completed_at=cmd.business_time,
    )


async def record_pos_return(
    uow_factory: UowFactory,
    cmd: RecordPosReturn,
    ctx: Context,
    idem: Idempotency[dict[str, Any]] | None = None,
    then: Then | None = None,
) -> dict[str, Any] | StoredResponse:
    """Put returned units back on hand at the store of the return."""
    if not cmd.lines and not cmd.unmatched:
        raise InvalidRequest("a return has at least one line", field="lines")
    request_hash = _request_hash(
        RETURN, cmd.store_code, cmd.lines, cmd.original_transaction_id or "", cmd.unmatched
    )

    async def write(uow: UnitOfWork, store: Store) -> dict[str, Any]:
        return await _record_return(uow, cmd, store, ctx, request_hash)

    return await _once(
        uow_factory, cmd.store_code, cmd.pos_id, cmd.transaction_id, request_hash, write, idem, then
    )


async def _record_return(
    uow: UnitOfWork, cmd: RecordPosReturn, store: Store, ctx: Context, request_hash: str
) -> dict[str, Any]:
    now = ctx.clock()
    sale = None
    if cmd.original_transaction_id is not None:
        sale = await uow.find_sale(store.id, cmd.pos_id, cmd.original_transaction_id)
    if sale is None and not cmd.completed:
        raise InvalidRequest(
            f"no sale {cmd.original_transaction_id} at store {store.code} to return against",
            field="original_transaction_id",
        )
    lines, products, unknown = await _matched(uow, cmd.lines, keep_unknown=cmd.completed)
    items = _quantities(lines, products)
    unmatched = (*cmd.unmatched, *unknown)
    shift = till_shift.shift_of(cmd.shift, cmd.business_time, ctx.zone)
    order = None
    if sale is not None and sale.order_id is not None:  # its order row before stock rows
        order = await uow.get_order(sale.order_id, lock=True)
    result: dict[str, Any] = {
        "kind": RETURN,
        "pos_id": cmd.pos_id,
        "transaction_id": cmd.transaction_id,
        "original_transaction_id": cmd.original_transaction_id,
        "linked": sale is not None,
        "order_id": sale.order_id if sale else None,
        "store": store.code,
        "lines": _shown(items),
        "replayed": False,
        "unlinked": [],
        "unmatched": [_unmatched_shown(u) for u in unmatched],
    }
    await uow.insert_pos_record(
        PosRecord(
            cmd.pos_id,
            cmd.transaction_id,
            RETURN,
            store.id,
            sale.order_id if sale else None,
            cmd.original_transaction_id,
            request_hash,
            result,
            cmd.business_time,
            shift,
        ),
        now,
    )
    prices = {p.id: _price(p, price) for p, _, price in items}
    totals = _totals(items)
    unlinked: list[tuple[int, Decimal]] = []
    returned_lines: list[dict[str, Any]] = []
    for product_id, qty in totals:
        linked = await _link(uow, cmd, sale, product_id, qty)
        if order is not None and linked > 0:
            for line_no, units in await uow.return_to_order(order.id, product_id, linked):
                returned_lines.append({"line": line_no, "product_id": product_id,
                                       "quantity": dec(units)})  # fmt: skip
        if linked < qty:
            unlinked.append((product_id, qty - linked))
    if order is not None and returned_lines:
        await _returned_to_order(uow, order, cmd, returned_lines, now)
    # Order rows (the sale's, the shift's returns) are all locked before the first stock row.
    if unlinked:
        result["unlinked"] = await _unlinked(uow, cmd, store, ctx, shift, unlinked, prices, now)
        await uow.update_pos_result(store.id, cmd.pos_id, cmd.transaction_id, result)
    for product_id, qty in totals:
        await uow.add_stock(
            StockChange(
                product_id,
                store.id,
                qty,
                MovementReason.POS_RETURN,
                "pos_return",
                f"{cmd.pos_id}:{cmd.transaction_id}",
                cmd.business_time,
                now,
            )
        )
    await _keep_unmatched(uow, store, RETURN, cmd.pos_id, cmd.transaction_id, unmatched, now)
    return result


async def _link(
    uow: UnitOfWork,
    cmd: RecordPosReturn,
    sale: PosRecord | None,
    product_id: int,
    qty: Decimal,
) -> Decimal:
    """The units of this product the return takes back from its sale (bounded by what the
    sale sold and has not had back); asking first, more than that is refused."""
    if sale is None:
        return Decimal(0)
    linked = min(qty, await uow.returnable(sale.store_id, sale.pos_id, sale.transaction_id,
                                           product_id))  # fmt: skip
    if linked < qty and not cmd.completed:
        raise InvalidRequest(
            "the return exceeds what the sale sold of this product",
            product_id=product_id,
            field="lines",
        )
    if linked > 0:
        taken = await uow.take_returned(
            sale.store_id, sale.pos_id, sale.transaction_id, product_id, linked
        )
        assert taken, "the sale's row is locked: what it could return is returnable"
    return linked


async def _returned_to_order(
    uow: UnitOfWork,
    order: Order,
    cmd: RecordPosReturn,
    lines: list[dict[str, Any]],
    now: datetime,
) -> None:
    """The sale's order changes (1C receives it again with the returned quantities)."""
    fresh = await uow.get_order(order.id)
    assert fresh is not None
    await uow.set_order_fields(order.id, total=fresh.total, updated_at=now)
    await uow.add_event(
        events.ORDER_RETURNED,
        events.AGGREGATE_ORDER,
        order.id,
        {
            "order_id": order.id,
            "number": order.number,
            "lines": lines,
            "return": {"pos_id": cmd.pos_id, "transaction_id": cmd.transaction_id},
        },
        now,
    )


async def _unlinked(
    uow: UnitOfWork,
    cmd: RecordPosReturn,
    store: Store,
    ctx: Context,
    shift: str,
    unlinked: list[tuple[int, Decimal]],
    prices: dict[int, Decimal],
    now: datetime,
) -> list[dict[str, Any]]:
    """Units no known sale covers: recorded all the same, listed for review, and (for 1C)
    on the till shift's order of returns."""
    why = (
        "no original sale named"
        if cmd.original_transaction_id is None
        else f"no sale {cmd.original_transaction_id} at this store, or it sold less"
    )
    for product_id, qty in unlinked:
        await uow.add_review(
            ReviewItem(
                kind=UNLINKED_RETURN,
                store_id=store.id,
                document_type="pos_return",
                document_id=f"{cmd.pos_id}:{cmd.transaction_id}",
                reason=why,
                pos_id=cmd.pos_id,
                quantity=qty,
                price=prices[product_id],
                detail={"product_id": product_id, "original": cmd.original_transaction_id},
            ),
            now,
        )
    if ctx.shift_orders:
        returns = await till_shift.shift_order(
            uow, till_shift.RETURNS, store, cmd.pos_id, shift, cmd.business_time, now
        )
        await till_shift.add_units(uow, returns, [(p, prices[p], q) for p, q in unlinked], now)
    return [{"product_id": p, "quantity": dec(q)} for p, q in unlinked]
