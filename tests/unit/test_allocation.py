"""Allocation: where the stock for an order comes from (pure, no database)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ordersync.domain.allocation import (
    Allocation,
    LineRequest,
    allocate,
    merge_by_stock_row,
)
from ordersync.domain.errors import Conflict, InsufficientStock

D = Decimal

APPLE = 1
PEAR = 2
SHOP_A = 10
SHOP_B = 20
WAREHOUSE = 30


def line(line_no: int, product_id: int, qty: str, label: str | None = None) -> LineRequest:
    return LineRequest(line_no, product_id, D(qty), label or f"sku-{product_id}")


def test_pickup_takes_the_whole_line_from_the_single_pickup_store() -> None:
    available = {(APPLE, SHOP_A): D("5"), (APPLE, SHOP_B): D("100")}

    plan = allocate([line(1, APPLE, "3")], [SHOP_A], available)

    assert plan == [Allocation(1, APPLE, SHOP_A, D("3"))]


def test_pickup_does_not_borrow_from_a_store_outside_the_given_list() -> None:
    available = {(APPLE, SHOP_A): D("1"), (APPLE, SHOP_B): D("100")}

    with pytest.raises(InsufficientStock):
        allocate([line(1, APPLE, "3")], [SHOP_A], available)


def test_delivery_splits_a_line_across_stores_in_priority_order() -> None:
    available = {
        (APPLE, SHOP_A): D("2"),
        (APPLE, SHOP_B): D("0"),
        (APPLE, WAREHOUSE): D("10"),
    }

    plan = allocate([line(1, APPLE, "5")], [SHOP_A, SHOP_B, WAREHOUSE], available)

    assert plan == [
        Allocation(1, APPLE, SHOP_A, D("2")),
        Allocation(1, APPLE, WAREHOUSE, D("3")),
    ]


def test_delivery_follows_the_given_priority_not_the_store_id_order() -> None:
    available = {(APPLE, SHOP_A): D("10"), (APPLE, WAREHOUSE): D("10")}

    plan = allocate([line(1, APPLE, "4")], [WAREHOUSE, SHOP_A], available)

    assert plan == [Allocation(1, APPLE, WAREHOUSE, D("4"))]


def test_delivery_stops_at_the_first_store_that_covers_the_line() -> None:
    available = {(APPLE, SHOP_A): D("5"), (APPLE, SHOP_B): D("5")}

    plan = allocate([line(1, APPLE, "5")], [SHOP_A, SHOP_B], available)

    assert [a.store_id for a in plan] == [SHOP_A]


def test_fractional_quantities_are_split_exactly() -> None:
    available = {(APPLE, SHOP_A): D("0.750"), (APPLE, SHOP_B): D("2")}

    plan = allocate([line(1, APPLE, "1.25")], [SHOP_A, SHOP_B], available)

    assert plan == [
        Allocation(1, APPLE, SHOP_A, D("0.750")),
        Allocation(1, APPLE, SHOP_B, D("0.50")),
    ]
    assert sum(a.quantity for a in plan) == D("1.25")


def test_two_lines_of_the_same_product_cannot_both_take_the_last_unit() -> None:
    available = {(APPLE, SHOP_A): D("1")}

    with pytest.raises(InsufficientStock) as caught:
        allocate([line(1, APPLE, "1"), line(2, APPLE, "1")], [SHOP_A], available)

    assert [short["line"] for short in caught.value.details["lines"]] == [2]


def test_two_lines_of_the_same_product_share_one_pool_across_stores() -> None:
    available = {(APPLE, SHOP_A): D("3"), (APPLE, SHOP_B): D("3")}

    plan = allocate([line(1, APPLE, "2"), line(2, APPLE, "3")], [SHOP_A, SHOP_B], available)

    assert plan == [
        Allocation(1, APPLE, SHOP_A, D("2")),
        Allocation(2, APPLE, SHOP_A, D("1")),
        Allocation(2, APPLE, SHOP_B, D("2")),
    ]


def test_different_products_in_the_same_store_do_not_share_a_pool() -> None:
    available = {(APPLE, SHOP_A): D("1"), (PEAR, SHOP_A): D("1")}

    plan = allocate([line(1, APPLE, "1"), line(2, PEAR, "1")], [SHOP_A], available)

    assert plan == [
        Allocation(1, APPLE, SHOP_A, D("1")),
        Allocation(2, PEAR, SHOP_A, D("1")),
    ]


def test_allocation_does_not_modify_the_callers_available_mapping() -> None:
    available = {(APPLE, SHOP_A): D("5")}

    allocate([line(1, APPLE, "3")], [SHOP_A], available)

    assert available == {(APPLE, SHOP_A): D("5")}


def test_insufficient_stock_names_exactly_the_short_lines() -> None:
    available = {
        (APPLE, SHOP_A): D("10"),
        (PEAR, SHOP_A): D("1"),
        (PEAR, SHOP_B): D("1"),
    }
    lines = [
        line(1, APPLE, "2", label="APPLE-SKU"),
        line(2, PEAR, "5", label="PEAR-SKU"),
        line(3, 99, "1", label="GHOST-SKU"),
    ]

    with pytest.raises(InsufficientStock) as caught:
        allocate(lines, [SHOP_A, SHOP_B], available)

    error = caught.value
    assert error.code == "insufficient_stock"
    assert isinstance(error, Conflict)
    assert error.details["lines"] == [
        {"line": 2, "product": "PEAR-SKU", "requested": "5", "available": "2"},
        {"line": 3, "product": "GHOST-SKU", "requested": "1", "available": "0"},
    ]


def test_a_short_line_does_not_consume_stock_needed_by_a_later_line() -> None:
    # line 1 is short (wants 5, only 3 exist); its partial take must not be kept,
    # so line 2 can still get the 3 units.
    available = {(APPLE, SHOP_A): D("3")}

    with pytest.raises(InsufficientStock) as caught:
        allocate([line(1, APPLE, "5"), line(2, APPLE, "3")], [SHOP_A], available)

    assert [short["line"] for short in caught.value.details["lines"]] == [1]


def test_an_empty_order_allocates_nothing() -> None:
    assert allocate([], [SHOP_A], {(APPLE, SHOP_A): D("1")}) == []


def test_merge_by_stock_row_sorts_by_product_then_store_and_sums() -> None:
    allocations = [
        Allocation(1, PEAR, SHOP_B, D("1")),
        Allocation(2, APPLE, WAREHOUSE, D("2")),
        Allocation(3, PEAR, SHOP_A, D("0.5")),
        Allocation(4, APPLE, SHOP_A, D("1.25")),
        Allocation(5, PEAR, SHOP_B, D("3")),
        Allocation(6, APPLE, SHOP_A, D("0.75")),
    ]

    merged = merge_by_stock_row(allocations)

    assert merged == [
        (APPLE, SHOP_A, D("2.00")),
        (APPLE, WAREHOUSE, D("2")),
        (PEAR, SHOP_A, D("0.5")),
        (PEAR, SHOP_B, D("4")),
    ]


def test_merge_by_stock_row_sorts_numerically_not_lexically() -> None:
    merged = merge_by_stock_row(
        [Allocation(1, 10, 1, D("1")), Allocation(2, 9, 1, D("1")), Allocation(3, 9, 2, D("1"))]
    )

    assert [(p, s) for p, s, _ in merged] == [(9, 1), (9, 2), (10, 1)]


def test_merge_by_stock_row_of_nothing_is_empty() -> None:
    assert merge_by_stock_row([]) == []
