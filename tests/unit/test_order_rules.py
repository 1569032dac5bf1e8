"""Order life rules and the payloads of outbox events."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from ordersync.domain import events
from ordersync.domain.errors import Conflict, InvalidTransition
from ordersync.domain.orders import (
    Order,
    OrderLine,
    applies_safety_stock,
    consumes_holds,
    needs_payment,
    needs_transition,
    releases_holds,
)
from ordersync.domain.types import (
    Channel,
    Fulfillment,
    OrderStatus,
    PaymentStatus,
    Source,
)

D = Decimal
S = OrderStatus

ALLOWED = [
    (S.PLACED, S.SHIPPED),
    (S.PLACED, S.COMPLETED),
    (S.PLACED, S.CANCELLED),
    (S.PLACED, S.EXPIRED),
    (S.SHIPPED, S.COMPLETED),
]
ALL_PAIRS = [(a, b) for a in S for b in S]
REFUSED = [(a, b) for a, b in ALL_PAIRS if a is not b and (a, b) not in ALLOWED]


# --- needs_transition -----------------------------------------------------------------------


def test_placed_order_may_be_shipped() -> None:
    assert needs_transition(S.PLACED, S.SHIPPED, "o-1") is True


@pytest.mark.parametrize(("current", "target"), ALLOWED)
def test_every_allowed_move_needs_a_transition(current: S, target: S) -> None:
    assert needs_transition(current, target, "o-1") is True


@pytest.mark.parametrize("status", list(S))
def test_asking_for_the_current_status_again_changes_nothing(status: S) -> None:
    assert needs_transition(status, status, "o-1") is False


def test_shipping_a_shipped_order_again_is_idempotent() -> None:
    assert needs_transition(S.SHIPPED, S.SHIPPED, "o-1") is False


def test_a_cancelled_order_cannot_be_shipped() -> None:
    with pytest.raises(InvalidTransition) as caught:
        needs_transition(S.CANCELLED, S.SHIPPED, "o-42")

    error = caught.value
    assert isinstance(error, Conflict)
    assert error.code == "invalid_transition"
    assert error.details == {"order_id": "o-42", "status": "cancelled", "requested": "shipped"}
    assert "o-42" in error.message


@pytest.mark.parametrize(("current", "target"), REFUSED)
def test_every_move_outside_the_lifecycle_is_refused(current: S, target: S) -> None:
    with pytest.raises(InvalidTransition):
        needs_transition(current, target, "o-1")


def test_a_shipped_order_cannot_go_back_to_placed_or_be_cancelled() -> None:
    with pytest.raises(InvalidTransition):
        needs_transition(S.SHIPPED, S.PLACED, "o-1")
    with pytest.raises(InvalidTransition):
        needs_transition(S.SHIPPED, S.CANCELLED, "o-1")


# --- needs_payment --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [S.PLACED, S.SHIPPED, S.COMPLETED])
def test_an_unpaid_live_or_finished_order_needs_payment(status: S) -> None:
    assert needs_payment(status, PaymentStatus.UNPAID, "o-1") is True


@pytest.mark.parametrize("status", list(S))
def test_paying_an_already_paid_order_changes_nothing(status: S) -> None:
    assert needs_payment(status, PaymentStatus.PAID, "o-1") is False


@pytest.mark.parametrize("status", [S.CANCELLED, S.EXPIRED])
def test_an_unpaid_cancelled_or_expired_order_cannot_be_paid(status: S) -> None:
    with pytest.raises(InvalidTransition) as caught:
        needs_payment(status, PaymentStatus.UNPAID, "o-7")
    assert caught.value.details == {
        "order_id": "o-7",
        "status": status.value,
        "requested": "paid",
    }


# --- holds ----------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [S.SHIPPED, S.COMPLETED])
def test_shipping_or_completing_a_placed_order_consumes_its_holds(target: S) -> None:
    assert consumes_holds(S.PLACED, target) is True
    assert releases_holds(S.PLACED, target) is False


@pytest.mark.parametrize("target", [S.CANCELLED, S.EXPIRED])
def test_cancelling_or_expiring_a_placed_order_releases_its_holds(target: S) -> None:
    assert releases_holds(S.PLACED, target) is True
    assert consumes_holds(S.PLACED, target) is False


def test_completing_a_shipped_order_neither_consumes_nor_releases_holds() -> None:
    assert consumes_holds(S.SHIPPED, S.COMPLETED) is False
    assert releases_holds(S.SHIPPED, S.COMPLETED) is False


@pytest.mark.parametrize("current", [S.SHIPPED, S.COMPLETED, S.CANCELLED, S.EXPIRED])
def test_only_a_placed_order_holds_stock_to_consume_or_release(current: S) -> None:
    for target in S:
        assert consumes_holds(current, target) is False
        assert releases_holds(current, target) is False


def test_staying_placed_neither_consumes_nor_releases_holds() -> None:
    assert consumes_holds(S.PLACED, S.PLACED) is False
    assert releases_holds(S.PLACED, S.PLACED) is False


# --- safety stock ---------------------------------------------------------------------------


def test_safety_stock_does_not_apply_to_the_till() -> None:
    assert applies_safety_stock(Channel.POS) is False


@pytest.mark.parametrize("channel", [Channel.ONLINE, Channel.OPERATOR])
def test_safety_stock_applies_to_remote_channels(channel: Channel) -> None:
    assert applies_safety_stock(channel) is True


# --- events.dec -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (D("5"), "5"),
        (D("5.000"), "5"),
        (D("1.25"), "1.25"),
        (D("1.250"), "1.25"),
        (D("0.001"), "0.001"),
        (D("0.0010"), "0.001"),
        (D("5000"), "5000"),
        (D("5E+3"), "5000"),
        (D("5000.000"), "5000"),
        (D("0"), "0"),
        (D("0.000"), "0"),
        (D("-2.50"), "-2.5"),
    ],
)
def test_dec_writes_decimals_without_exponent_or_trailing_zeros(value: Decimal, text: str) -> None:
    assert events.dec(value) == text


# --- events.stock_changed -------------------------------------------------------------------


def test_stock_changed_carries_the_row_its_levels_and_the_document() -> None:
    payload = events.stock_changed(
        product_id=7,
        store_id=3,
        on_hand=D("10.500"),
        reserved=D("2.250"),
        reason="sale",
        document_type="order",
        document_id="o-9",
    )

    assert set(payload) == {
        "product_id",
        "store_id",
        "on_hand",
        "reserved",
        "available",
        "reason",
        "document_type",
        "document_id",
    }
    assert payload["product_id"] == 7
    assert payload["store_id"] == 3
    assert payload["on_hand"] == "10.5"
    assert payload["reserved"] == "2.25"
    assert payload["reason"] == "sale"
    assert payload["document_type"] == "order"
    assert payload["document_id"] == "o-9"


@pytest.mark.parametrize(
    ("on_hand", "reserved", "available"),
    [
        ("10", "3", "7"),
        ("10.500", "2.250", "8.25"),
        ("5", "5", "0"),
        ("2", "3", "-1"),
        ("1000", "0", "1000"),
    ],
)
def test_stock_changed_available_is_on_hand_minus_reserved(
    on_hand: str, reserved: str, available: str
) -> None:
    payload = events.stock_changed(1, 1, D(on_hand), D(reserved), "receipt", "receipt", "r-1")
    assert payload["available"] == available


def test_stock_aggregate_id_joins_product_and_store() -> None:
    assert events.stock_aggregate_id(7, 3) == "7:3"


# --- events.order_summary / order_status_changed --------------------------------------------


def _order() -> Order:
    return Order(
        id="o-1",
        channel=Channel.ONLINE,
        source=Source.ORDER,
        fulfillment=Fulfillment.DELIVERY,
        status=S.PLACED,
        payment_status=PaymentStatus.UNPAID,
        store_id=None,
        lines=[
            OrderLine(1, 7, D("2"), D("10.50")),
            OrderLine(2, 8, D("0.250"), D("400.00")),
        ],
        created_at=datetime(2024, 1, 1, tzinfo=UTC),
        external_id="bx-100",
    )


def test_order_total_is_the_sum_of_quantity_times_price() -> None:
    assert _order().total == D("121")


def test_order_summary_uses_plain_values_and_decimal_text() -> None:
    summary = events.order_summary(_order())

    assert summary["order_id"] == "o-1"
    assert summary["channel"] == "online"
    assert summary["source"] == "order"
    assert summary["fulfillment"] == "delivery"
    assert summary["status"] == "placed"
    assert summary["payment_status"] == "unpaid"
    assert summary["total"] == "121"
    assert summary["external_id"] == "bx-100"
    assert summary["lines"] == [
        {"line_no": 1, "product_id": 7, "quantity": "2", "price": "10.5"},
        {"line_no": 2, "product_id": 8, "quantity": "0.25", "price": "400"},
    ]


def test_order_status_changed_names_from_and_to() -> None:
    assert events.order_status_changed("o-1", "placed", "shipped", "api") == {
        "order_id": "o-1",
        "from": "placed",
        "to": "shipped",
        "reason": "api",
    }
