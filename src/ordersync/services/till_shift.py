"""Orders of a till shift, so that 1C hears of every till sale and return (master = "hub"):

- `shift`: the sales of a stock-only store (which make no order of their own), one order per
  store, till and shift, its lines growing with each sale (product and price);
- `returns`: units customers brought back that no sale the hub knows covers (an unknown or
  missing original, or more than the sale sold), one order per store, till and shift, with
  source `return`: 1C receives it as a return of goods (exchange/sale_document.py).

Each is found by its external id (channel pos); its row is locked before any stock row.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from decimal import Decimal

from ..domain import events
from ..domain.orders import Order
from ..domain.types import Channel, Fulfillment, OrderStatus, PaymentStatus, Source
from .ids import uuid7
from .ports import Store, UnitOfWork

SHIFT = "shift"
RETURNS = "returns"
MAX_SHIFT = 40


def shift_of(shift: str | None, business_time: datetime, zone: tzinfo) -> str:
    """The till's shift as given, else the business date in the shops' time zone."""
    return (shift or business_time.astimezone(zone).date().isoformat())[:MAX_SHIFT]


async def shift_order(
    uow: UnitOfWork,
    kind: str,
    store: Store,
    pos_id: str,
    shift: str,
    business_time: datetime,
    now: datetime,
) -> Order:
    """The shift's order of this kind, locked; made (with its order.created event) if new."""
    external_id = f"{kind}:{store.id}:{pos_id}:{shift}"
    found = await uow.find_order_by_external_id(Channel.POS, external_id)
    if found is not None:
        locked = await uow.get_order(found.id, lock=True)
        assert locked is not None
        return locked
    order = Order(
        id=uuid7(),
        channel=Channel.POS,
        source=Source.RETURN if kind == RETURNS else Source.OFFLINE,
        fulfillment=Fulfillment.IN_STORE,
        status=OrderStatus.COMPLETED,
        payment_status=PaymentStatus.PAID,
        store_id=store.id,
        lines=[],
        created_at=business_time,
        external_id=external_id,
        pos_id=pos_id,
        updated_at=now,
        paid_at=business_time,
        shipped_at=business_time,
        completed_at=business_time,
        comment=f"till {pos_id}, shift {shift}",
    )
    order.number = await uow.next_order_number()
    await uow.insert_order(order)  # a concurrent sale of the same shift: AlreadyRecorded
    await uow.add_event(
        events.ORDER_CREATED, events.AGGREGATE_ORDER, order.id, events.order_summary(order), now
    )
    return order


async def add_units(
    uow: UnitOfWork,
    order: Order,
    items: list[tuple[int, Decimal, Decimal]],
    now: datetime,
) -> None:
    """(product, price, units) onto the shift's order; its total and version follow."""
    for product_id, price, qty in items:
        await uow.add_to_order_line(order.id, product_id, price, qty)
    changed = await uow.get_order(order.id)
    assert changed is not None
    await uow.set_order_fields(order.id, total=changed.total, updated_at=now)
