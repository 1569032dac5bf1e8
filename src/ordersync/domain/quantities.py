"""Quantities and money: exact decimals with fixed scales, validated against the unit."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation, localcontext

from .errors import InvalidRequest
from .types import Unit

QUANTITY_SCALE = 3  # thousandths: grams, millilitres, millimetres
MONEY_SCALE = 2
MAX_QUANTITY = Decimal("1000000000")
MAX_MONEY = Decimal("10000000000000")


def to_decimal(value: object, field: str) -> Decimal:
    if isinstance(value, float):
        raise InvalidRequest(f"{field} must be a decimal, not a float", field=field)
    try:
        result = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except InvalidOperation as exc:
        raise InvalidRequest(f"{field} is not a number", field=field) from exc
    if not result.is_finite():
        raise InvalidRequest(f"{field} is not a finite number", field=field)
    return result


def _decimals(value: Decimal) -> int:
    """Places after the point, trailing zeros aside; exact (normalize() would round to the
    context's 28 digits and hide a 29th decimal)."""
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    places = -exponent
    index = len(digits) - 1
    while places > 0 and index >= 0 and digits[index] == 0:
        places -= 1
        index -= 1
    return max(0, places)


def quantity(value: object, unit: Unit | str, field: str = "quantity") -> Decimal:
    """A positive quantity valid for the unit: whole for pieces, at most 3 decimals otherwise."""
    qty = signed_quantity(value, unit, field)
    if qty <= 0:
        raise InvalidRequest(f"{field} must be positive", field=field, value=str(qty))
    return qty


def signed_quantity(value: object, unit: Unit | str, field: str = "quantity") -> Decimal:
    qty = to_decimal(value, field)
    if abs(qty) > MAX_QUANTITY:
        raise InvalidRequest(f"{field} is too large", field=field, value=str(qty))
    if Unit(unit) is Unit.PCS and qty != qty.to_integral_value():
        raise InvalidRequest(
            f"{field} must be a whole number of pieces", field=field, value=str(qty)
        )
    if _decimals(qty) > QUANTITY_SCALE:
        raise InvalidRequest(
            f"{field} has more than {QUANTITY_SCALE} decimals", field=field, value=str(qty)
        )
    return qty


def non_negative_quantity(value: object, unit: Unit | str, field: str = "quantity") -> Decimal:
    qty = signed_quantity(value, unit, field)
    if qty < 0:
        raise InvalidRequest(f"{field} must not be negative", field=field, value=str(qty))
    return qty


def money(value: object, field: str = "price") -> Decimal:
    amount = to_decimal(value, field)
    if amount < 0:
        raise InvalidRequest(f"{field} must not be negative", field=field)
    if amount > MAX_MONEY:
        raise InvalidRequest(f"{field} is too large", field=field)
    if _decimals(amount) > MONEY_SCALE:
        raise InvalidRequest(f"{field} has more than {MONEY_SCALE} decimals", field=field)
    return amount


def to_units(value: Decimal, scale: int) -> int:
    """An exact decimal as an integer count of 10**-scale (how the database stores it)."""
    with localcontext() as exact:
        exact.prec = 60  # enough for every accepted value: no rounding here
        scaled = value.scaleb(scale)
    if scaled != scaled.to_integral_value():
        raise InvalidRequest(f"{value} has more than {scale} decimals")
    return int(scaled)


def from_units(units: int, scale: int) -> Decimal:
    return Decimal(units).scaleb(-scale)
