"""Orders and the rules of their life: which status may follow which."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .errors import InvalidTransition
from .types import Channel, Fulfillment, HoldState, OrderStatus, PaymentStatus, Source

KOPECK = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class LineHold:
    """Where a line's units are held: the store, how many, and the hold's state."""

    store_id: int
    quantity: Decimal
    state: HoldState = HoldState.ACTIVE


@dataclass(frozen=True, slots=True)
class Attention:
    """Something about an order that needs a person (an open item, until resolved): `code`
    says what (`stock_taken_by_till_sale`, `site_order_short`, ...), `detail` the facts."""

    id: int
    code: str
    detail: dict[str, Any]
    at: datetime


@dataclass(slots=True)
class OrderLine:
    line_no: int
    product_id: int
    quantity: Decimal
    price: Decimal
    sku: str = ""
    holds: list[LineHold] = field(default_factory=list)
    returned: Decimal = Decimal(0)  # units a customer brought back to a till

    @property
    def kept(self) -> Decimal:
        """What the customer keeps: the quantity less what came back."""
        return self.quantity - self.returned

    @property
    def amount(self) -> Decimal:
        """Of what the customer keeps, rounded to the kopeck, half up, as a till rounds
        0.347 kg at 199.99."""
        return (self.kept * self.price).quantize(KOPECK, rounding=ROUND_HALF_UP)


@dataclass(slots=True)
class Order:
    id: str
    channel: Channel
    source: Source
    fulfillment: Fulfillment
    status: OrderStatus
    payment_status: PaymentStatus
    store_id: int | None
    lines: list[OrderLine]
    created_at: datetime
    currency: str = "RUB"
    customer: dict[str, Any] = field(default_factory=dict)
    external_id: str | None = None
    pos_id: str | None = None
    pos_transaction_id: str | None = None
    hold_expires_at: datetime | None = None
    updated_at: datetime | None = None
    paid_at: datetime | None = None
    shipped_at: datetime | None = None
    completed_at: datetime | None = None
    cancelled_at: datetime | None = None
    # Confirmed (by phone, the site's status, cash on delivery): unpaid holds keep longer.
    confirmed_at: datetime | None = None
    comment: str | None = None
    # Short and sequential, given at placement: what an operator reads out and 1C shows.
    number: int = 0
    # Goes up with every change of the order (1C's НомерВерсии).
    version: int = 1
    attention: list[Attention] = field(default_factory=list)  # open items only

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal(0))


def close_holds(order: Order, state: HoldState) -> None:
    """The order's active holds released, consumed or expired, as the database now has them."""
    for line in order.lines:
        line.holds = [
            LineHold(h.store_id, h.quantity, state) if h.state is HoldState.ACTIVE else h
            for h in line.holds
        ]


# status -> statuses that may follow it
_NEXT: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PLACED: frozenset(
        {OrderStatus.SHIPPED, OrderStatus.COMPLETED, OrderStatus.CANCELLED, OrderStatus.EXPIRED}
    ),
    OrderStatus.SHIPPED: frozenset({OrderStatus.COMPLETED}),
    OrderStatus.COMPLETED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
    OrderStatus.EXPIRED: frozenset(),
}


def needs_transition(current: OrderStatus, target: OrderStatus, order_id: str) -> bool:
    """False when the order already is in `target` (a repeated request changes nothing);
    True when the move is allowed; InvalidTransition otherwise."""
    if current is target:
        return False
    if target not in _NEXT[current]:
        raise InvalidTransition(
            f"order {order_id} is {current.value} and cannot become {target.value}",
            order_id=order_id,
            status=current.value,
            requested=target.value,
        )
    return True


def needs_payment(status: OrderStatus, payment: PaymentStatus, order_id: str) -> bool:
    if payment is PaymentStatus.PAID:
        return False
    if status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED):
        raise InvalidTransition(
            f"order {order_id} is {status.value} and cannot be paid",
            order_id=order_id,
            status=status.value,
            requested="paid",
        )
    return True


def needs_confirmation(order: Order) -> bool:
    """False when the order is confirmed already (a repeat changes nothing); True for a placed
    order; InvalidTransition for one that is shipped, completed, cancelled or expired."""
    if order.confirmed_at is not None:
        return False
    if order.status is not OrderStatus.PLACED:
        raise InvalidTransition(
            f"order {order.id} is {order.status.value} and cannot be confirmed",
            order_id=order.id,
            status=order.status.value,
            requested="confirmed",
        )
    return True


def consumes_holds(current: OrderStatus, target: OrderStatus) -> bool:
    """Shipping or completing a placed order turns its holds into deductions."""
    return current is OrderStatus.PLACED and target in (OrderStatus.SHIPPED, OrderStatus.COMPLETED)


def releases_holds(current: OrderStatus, target: OrderStatus) -> bool:
    return current is OrderStatus.PLACED and target in (
        OrderStatus.CANCELLED,
        OrderStatus.EXPIRED,
    )


def applies_safety_stock(channel: Channel) -> bool:
    """Safety stock protects the shelf from remote orders; a till sells what is there."""
    return channel is not Channel.POS
