"""The rule that turns 1C's stock figure into the hub's on_hand (master = "1c")."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ordersync.domain.stock_from_1c import adopted_on_hand

D = Decimal


@pytest.mark.parametrize(
    ("figure", "later", "whole", "expected"),
    [
        (D(10), D(0), True, D(10)),  # nothing happened since 1C formed its file
        (D(10), D(-3), True, D(7)),  # a till sold 3 after that moment
        (D(10), D(5), True, D(15)),  # a receipt the hub booked after it
        (D(1), D(-3), True, D(0)),  # never below zero
        (D(-4), D(0), True, D(0)),  # a negative 1C balance is taken as 0
        (D(-4), D(2), True, D(2)),  # ... before the later movements are added
        (D("2.5"), D(0), True, D(2)),  # piece goods hold whole pieces: cut, never rounded up
        (D("2.5"), D("-0.25"), False, D("2.25")),  # weighed goods keep their thousandths
        (D("0.999"), D(0), True, D(0)),
    ],
)
def test_the_adopted_figure(figure: D, later: D, whole: bool, expected: D) -> None:
    assert adopted_on_hand(figure, later, whole) == expected
