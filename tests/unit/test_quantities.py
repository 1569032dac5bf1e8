"""Quantities and money: exact decimals with fixed scales, validated against the unit."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ordersync.domain.errors import InvalidRequest
from ordersync.domain.quantities import (
    MAX_QUANTITY,
    MONEY_SCALE,
    QUANTITY_SCALE,
    from_units,
    money,
    non_negative_quantity,
    quantity,
    signed_quantity,
    to_decimal,
    to_units,
)
from ordersync.domain.types import Unit

D = Decimal


# --- pieces -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["3", 3, D("3"), "3.000"])
def test_a_whole_number_of_pieces_is_accepted(value: object) -> None:
    assert quantity(value, Unit.PCS) == D("3")


@pytest.mark.parametrize("value", ["1.5", D("0.001"), "2.1"])
def test_pieces_must_be_whole(value: object) -> None:
    with pytest.raises(InvalidRequest) as caught:
        quantity(value, Unit.PCS)
    assert caught.value.details["field"] == "quantity"


def test_the_unit_may_be_given_as_its_string_code() -> None:
    assert quantity("2", "pcs") == D("2")
    with pytest.raises(InvalidRequest):
        quantity("2.5", "pcs")
    assert quantity("2.5", "kg") == D("2.5")


# --- kilograms and other divisible units ----------------------------------------------------


@pytest.mark.parametrize("unit", [Unit.KG, Unit.L, Unit.M])
def test_divisible_units_accept_three_decimals(unit: Unit) -> None:
    assert quantity("1.234", unit) == D("1.234")
    assert quantity("0.001", unit) == D("0.001")


@pytest.mark.parametrize("unit", [Unit.KG, Unit.L, Unit.M])
def test_divisible_units_refuse_four_decimals(unit: Unit) -> None:
    with pytest.raises(InvalidRequest) as caught:
        quantity("1.2345", unit)
    assert str(QUANTITY_SCALE) in caught.value.message


def test_trailing_zeros_beyond_three_decimals_do_not_count_as_decimals() -> None:
    assert quantity("1.2500", Unit.KG) == D("1.25")


def test_a_kilogram_quantity_with_more_significant_digits_than_the_context_is_refused() -> None:
    # 29 decimals: far beyond the 3 allowed. Must not be accepted on the strength of a
    # rounded normalization (the default decimal context keeps only 28 digits).
    with pytest.raises(InvalidRequest):
        quantity("1.00000000000000000000000000001", Unit.KG)


# --- floats, strings, sign ------------------------------------------------------------------


@pytest.mark.parametrize("value", [1.0, 0.5, 2.25])
def test_floats_are_refused_even_when_exact(value: float) -> None:
    with pytest.raises(InvalidRequest) as caught:
        quantity(value, Unit.KG)
    assert "float" in caught.value.message


def test_floats_are_refused_for_money() -> None:
    with pytest.raises(InvalidRequest):
        money(10.5)


@pytest.mark.parametrize("value", [0, "0", "0.000", -1, "-0.5"])
def test_quantity_refuses_zero_and_negative_values(value: object) -> None:
    with pytest.raises(InvalidRequest) as caught:
        quantity(value, Unit.KG)
    assert "positive" in caught.value.message


def test_signed_quantity_accepts_negative_and_zero() -> None:
    assert signed_quantity("-2", Unit.PCS) == D("-2")
    assert signed_quantity("0", Unit.KG) == D("0")


def test_signed_quantity_still_checks_the_unit_on_negative_values() -> None:
    with pytest.raises(InvalidRequest):
        signed_quantity("-1.5", Unit.PCS)
    with pytest.raises(InvalidRequest):
        signed_quantity("-0.0001", Unit.KG)


def test_non_negative_quantity_accepts_zero_and_refuses_negative() -> None:
    assert non_negative_quantity("0", Unit.PCS) == D("0")
    with pytest.raises(InvalidRequest):
        non_negative_quantity("-1", Unit.PCS)


def test_quantity_above_the_maximum_is_refused() -> None:
    assert quantity(MAX_QUANTITY, Unit.PCS) == MAX_QUANTITY
    with pytest.raises(InvalidRequest):
        quantity(MAX_QUANTITY + 1, Unit.PCS)


@pytest.mark.parametrize("value", ["abc", "", "1,5", "5 kg", None, "1..2"])
def test_non_numeric_input_raises_invalid_request(value: object) -> None:
    with pytest.raises(InvalidRequest) as caught:
        quantity(value, Unit.KG, field="lines[0].quantity")
    assert caught.value.details["field"] == "lines[0].quantity"


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", D("NaN"), D("Infinity")])
def test_non_finite_numbers_raise_invalid_request(value: object) -> None:
    with pytest.raises(InvalidRequest):
        to_decimal(value, "quantity")


def test_non_numeric_money_raises_invalid_request() -> None:
    with pytest.raises(InvalidRequest) as caught:
        money("ten roubles")
    assert caught.value.details["field"] == "price"


def test_to_decimal_keeps_a_decimal_and_parses_ints_and_strings_exactly() -> None:
    value = D("1.10")
    assert to_decimal(value, "x") is value
    assert to_decimal(7, "x") == D("7")
    assert to_decimal("0.1", "x") == D("0.1")


# --- units (the database's integer representation) ------------------------------------------


@pytest.mark.parametrize(
    ("value", "scale", "units"),
    [
        (D("1.5"), QUANTITY_SCALE, 1500),
        (D("0.001"), QUANTITY_SCALE, 1),
        (D("12"), QUANTITY_SCALE, 12000),
        (D("-2.25"), QUANTITY_SCALE, -2250),
        (D("19.99"), MONEY_SCALE, 1999),
        (D("0"), MONEY_SCALE, 0),
        (D("1E+3"), QUANTITY_SCALE, 1_000_000),
    ],
)
def test_to_units_and_from_units_round_trip(value: Decimal, scale: int, units: int) -> None:
    assert to_units(value, scale) == units
    assert isinstance(to_units(value, scale), int)
    assert from_units(units, scale) == value


@pytest.mark.parametrize("units", [0, 1, 999, 1000, 123456789, -42])
def test_from_units_then_to_units_gives_back_the_same_integer(units: int) -> None:
    assert to_units(from_units(units, QUANTITY_SCALE), QUANTITY_SCALE) == units


def test_to_units_handles_the_largest_allowed_quantity_exactly() -> None:
    largest = MAX_QUANTITY - D("0.001")
    assert to_units(largest, QUANTITY_SCALE) == 999_999_999_999
    assert from_units(999_999_999_999, QUANTITY_SCALE) == largest


def test_to_units_refuses_a_value_finer_than_the_scale() -> None:
    with pytest.raises(InvalidRequest):
        to_units(D("1.2345"), QUANTITY_SCALE)
    with pytest.raises(InvalidRequest):
        to_units(D("0.001"), MONEY_SCALE)


# --- money ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "19.99", "100", 5, D("0.50")])
def test_money_accepts_up_to_two_decimals(value: object) -> None:
    assert money(value) == D(str(value))


def test_money_refuses_three_decimals() -> None:
    with pytest.raises(InvalidRequest) as caught:
        money("19.999")
    assert str(MONEY_SCALE) in caught.value.message


def test_money_ignores_trailing_zeros_when_counting_decimals() -> None:
    assert money("19.900") == D("19.9")


@pytest.mark.parametrize("value", ["-0.01", "-100", -1])
def test_money_refuses_negative_amounts(value: object) -> None:
    with pytest.raises(InvalidRequest) as caught:
        money(value, field="lines[1].price")
    assert caught.value.details["field"] == "lines[1].price"
    assert "negative" in caught.value.message


def test_money_refuses_amounts_above_the_maximum() -> None:
    with pytest.raises(InvalidRequest):
        money("10000000000000.01")


def test_money_with_more_significant_digits_than_the_context_is_refused() -> None:
    # 30 decimals must not slip through the 2-decimal rule via context rounding.
    with pytest.raises(InvalidRequest):
        money("1.000000000000000000000000000001")
