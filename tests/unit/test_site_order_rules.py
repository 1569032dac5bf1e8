"""The pure rules site orders need: holding as much of each line as the stores have, and which
orders may be confirmed."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from ordersync.domain.allocation import Allocation, LineRequest, allocate_available
from ordersync.domain.errors import InvalidTransition
from ordersync.domain.orders import Order, needs_confirmation
from ordersync.domain.types import Channel, Fulfillment, OrderStatus, PaymentStatus, Source

D = Decimal


def test_allocate_available_takes_what_the_stores_have_in_priority_order() -> None:
    lines = [LineRequest(1, 7, D(5), "TEA"), LineRequest(2, 8, D(1), "MUG")]
    available = {(7, 10): D(2), (7, 20): D(1), (8, 10): D(1)}

    allocations, short = allocate_available(lines, [10, 20], available)

    assert allocations == [
        Allocation(1, 7, 10, D(2)),
        Allocation(1, 7, 20, D(1)),
        Allocation(2, 8, 10, D(1)),
    ]
    assert short == [{"line": 1, "product": "TEA", "requested": "5", "held": "3"}]


def test_two_lines_of_one_product_never_share_the_last_unit() -> None:
    lines = [LineRequest(1, 7, D(1), "TEA"), LineRequest(2, 7, D(1), "TEA")]

    allocations, short = allocate_available(lines, [10], {(7, 10): D(1)})

    assert allocations == [Allocation(1, 7, 10, D(1))]
    assert short == [{"line": 2, "product": "TEA", "requested": "1", "held": "0"}]


def test_nothing_negative_or_zero_is_taken() -> None:
    allocations, short = allocate_available(
        [LineRequest(1, 7, D("0.5"), "SUGAR")], [10, 20], {(7, 10): D(-2), (7, 20): D(0)}
    )
    assert allocations == []
    assert short == [{"line": 1, "product": "SUGAR", "requested": "0.5", "held": "0"}]


def order(status: OrderStatus, confirmed: bool = False) -> Order:
    now = datetime(2026, 11, 29, tzinfo=UTC)
    return Order(
        id="o1",
        channel=Channel.ONLINE,
        source=Source.ORDER,
        fulfillment=Fulfillment.DELIVERY,
        status=status,
        payment_status=PaymentStatus.UNPAID,
        store_id=None,
        lines=[],
        created_at=now,
        confirmed_at=now if confirmed else None,
    )


def test_a_placed_order_needs_confirming_once() -> None:
    assert needs_confirmation(order(OrderStatus.PLACED)) is True
    assert needs_confirmation(order(OrderStatus.PLACED, confirmed=True)) is False
    assert needs_confirmation(order(OrderStatus.SHIPPED, confirmed=True)) is False


@pytest.mark.parametrize(
    "status",
    [OrderStatus.SHIPPED, OrderStatus.COMPLETED, OrderStatus.CANCELLED, OrderStatus.EXPIRED],
)
def test_an_order_past_placement_cannot_be_confirmed(status: OrderStatus) -> None:
    with pytest.raises(InvalidTransition):
        needs_confirmation(order(status))
