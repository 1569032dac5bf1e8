"""Till sales and returns: stock moves at once, exactly once per POS transaction."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from ..domain import events
from ..domain.commands import LineInput, RecordPosReturn, RecordPosSale
from ..domain.errors import AlreadyRecorded, Conflict, InsufficientStock, InvalidRequest
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
from .context import Context
from .idempotency import Idempotency, claim, remember
from .ids import uuid7
from .lookup import resolve_products, store_by_code
from .orders import UowFactory
from .ports import PosRecord, Product, StockChange, Store, StoredResponse, UnitOfWork

SALE = "sale"
RETURN = "return"


def _request_hash(kind: str, store_code: str, lines: tuple[LineInput, ...], extra: str) -> str:
    """What makes a retry the same transaction: its lines as sent (validated later)."""
    canonical = [[line.product.label, str(line.quantity), str(line.price)] for line in lines]
    text = json.dumps([kind, store_code, extra, canonical], sort_keys=True)
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


def _quantities(
    lines: tuple[LineInput, ...], products: list[Product]
) -> list[tuple[Product, Decimal, Decimal | None]]:
    result = []
    for i, (line, product) in enumerate(zip(lines, products, strict=True)):
        qty = quantity(line.quantity, product.unit, f"lines[{i}].quantity")
        price = None if line.price is None else money(line.price, f"lines[{i}].price")
        result.append((product, qty, price))
    return result


def _totals(items: list[tuple[Product, Decimal, Decimal | None]]) -> dict[int, Decimal]:
    totals: dict[int, Decimal] = defaultdict(Decimal)
    for product, qty, _ in items:
        totals[product.id] += qty
    return dict(sorted(totals.items()))


async def record_pos_sale(
    uow_factory: UowFactory,
    cmd: RecordPosSale,
    ctx: Context,
    idem: Idempotency[dict[str, Any]] | None = None,
) -> dict[str, Any] | StoredResponse:
    """Deduct at once from what is not held. In the store's `order` mode the sale also
    becomes a completed, paid order with source `offline`."""
    if not cmd.lines:
        raise InvalidRequest("a sale has at least one line", field="lines")
    request_hash = _request_hash(SALE, cmd.store_code, cmd.lines, "")

    async def write(uow: UnitOfWork, store: Store) -> dict[str, Any]:
        return await _record_sale(uow, cmd, store, ctx, request_hash)

    return await _once(
        uow_factory, cmd.store_code, cmd.pos_id, cmd.transaction_id, request_hash, write, idem
    )


async def _once(
    uow_factory: UowFactory,
    store_code: str,
    pos_id: str,
    transaction_id: str,
    request_hash: str,
    write: Callable[[UnitOfWork, Store], Awaitable[dict[str, Any]]],
    idem: Idempotency[dict[str, Any]] | None,
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
                await uow.commit()
                return result
        except AlreadyRecorded:
            # The same transaction committed by a concurrent request: read it next time.
            if attempt:
                raise
    raise AssertionError("unreachable")


async def _record_sale(
    uow: UnitOfWork, cmd: RecordPosSale, store: Store, ctx: Context, request_hash: str
) -> dict[str, Any]:
    now = ctx.clock()
    items = _quantities(
        cmd.lines, await resolve_products(uow, [x.product for x in cmd.lines], inactive=True)
    )
    document_id = f"{cmd.pos_id}:{cmd.transaction_id}"
    order_id: str | None = None
    order_number: int | None = None
    if store.pos_mode is PosMode.ORDER:
        order = _offline_order(cmd, store.id, items, now)
        order.number = order_number = await uow.next_order_number()
        order_id = order.id
    result: dict[str, Any] = {
        "kind": SALE,
        "pos_id": cmd.pos_id,
        "transaction_id": cmd.transaction_id,
        "store": store.code,
        "order_id": order_id,
        "order_number": order_number,
        "lines": [{"product_id": p.id, "sku": p.sku, "quantity": dec(q)} for p, q, _ in items],
        "replayed": False,
    }
    # The transaction row first: a concurrent retry of the same sale stops here.
    await uow.insert_pos_record(
        PosRecord(
            cmd.pos_id,
            cmd.transaction_id,
            SALE,
            store.id,
            order_id,
            None,
            request_hash,
            result,
            cmd.business_time,
        ),
        now,
    )
    if store.pos_mode is PosMode.ORDER:
        await uow.insert_order(order)
        await uow.add_event(
            events.ORDER_CREATED,
            events.AGGREGATE_ORDER,
            order.id,
            events.order_summary(order),
            now,
        )
    short = []
    for product_id, qty in _totals(items).items():
        await uow.add_sold(store.id, cmd.pos_id, cmd.transaction_id, product_id, qty)
        change = StockChange(
            product_id,
            store.id,
            qty,
            MovementReason.POS_SALE,
            "pos_sale",
            document_id,
            cmd.business_time,
            now,
        )
        if await uow.deduct_stock(change) is None:
            short.append({"product_id": product_id, "requested": dec(qty)})
    if short:
        raise InsufficientStock(
            short, "not enough free stock: the units may be held for online orders"
        )
    return result


def _offline_order(
    cmd: RecordPosSale,
    store_id: int,
    items: list[tuple[Product, Decimal, Decimal | None]],
    now: Any,
) -> Order:
    lines = [
        OrderLine(no, p.id, q, price if price is not None else (p.price or Decimal(0)), p.sku)
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
) -> dict[str, Any] | StoredResponse:
    """Put returned units back on hand, never more than the original sale sold."""
    if not cmd.lines:
        raise InvalidRequest("a return has at least one line", field="lines")
    request_hash = _request_hash(RETURN, cmd.store_code, cmd.lines, cmd.original_transaction_id)

    async def write(uow: UnitOfWork, store: Store) -> dict[str, Any]:
        return await _record_return(uow, cmd, store, ctx, request_hash)

    return await _once(
        uow_factory, cmd.store_code, cmd.pos_id, cmd.transaction_id, request_hash, write, idem
    )


async def _record_return(
    uow: UnitOfWork, cmd: RecordPosReturn, store: Store, ctx: Context, request_hash: str
) -> dict[str, Any]:
    now = ctx.clock()
    sale = await uow.find_pos_record(store.id, cmd.pos_id, cmd.original_transaction_id)
    if sale is None or sale.kind != SALE:
        raise InvalidRequest(
            f"no sale {cmd.original_transaction_id} from POS {cmd.pos_id} to return against",
            field="original_transaction_id",
        )
    items = _quantities(
        cmd.lines, await resolve_products(uow, [x.product for x in cmd.lines], inactive=True)
    )
    result: dict[str, Any] = {
        "kind": RETURN,
        "pos_id": cmd.pos_id,
        "transaction_id": cmd.transaction_id,
        "original_transaction_id": cmd.original_transaction_id,
        "order_id": sale.order_id,
        "store": store.code,
        "lines": [{"product_id": p.id, "sku": p.sku, "quantity": dec(q)} for p, q, _ in items],
        "replayed": False,
    }
    await uow.insert_pos_record(
        PosRecord(
            cmd.pos_id,
            cmd.transaction_id,
            RETURN,
            store.id,
            sale.order_id,
            cmd.original_transaction_id,
            request_hash,
            result,
            cmd.business_time,
        ),
        now,
    )
    document_id = f"{cmd.pos_id}:{cmd.transaction_id}"
    for product_id, qty in _totals(items).items():
        taken = await uow.take_returned(
            store.id, cmd.pos_id, cmd.original_transaction_id, product_id, qty
        )
        if not taken:
            raise InvalidRequest(
                "the return exceeds what the sale sold of this product",
                product_id=product_id,
                field="lines",
            )
        await uow.add_stock(
            StockChange(
                product_id,
                store.id,
                qty,
                MovementReason.POS_RETURN,
                "pos_return",
                document_id,
                cmd.business_time,
                now,
            )
        )
    return result
