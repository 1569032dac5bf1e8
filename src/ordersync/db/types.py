"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect
from sqlalchemy.types import TypeDecorator

from ..domain.quantities import MONEY_SCALE, QUANTITY_SCALE, from_units, to_units


class ScaledDecimal(TypeDecorator[Decimal]):
    """An exact decimal stored as an integer count of 10**-scale.

    SQLite has no exact decimal type, and the stock conditions (`on_hand - reserved >= n`)
    must compare exactly on both databases, so quantities and money are integers inside.
    """

    impl = BigInteger
    cache_ok = True

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> int | None:
        return None if value is None else to_units(Decimal(value), self.scale)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else from_units(int(value), self.scale)


def Quantity() -> ScaledDecimal:
    return ScaledDecimal(QUANTITY_SCALE)


def Money() -> ScaledDecimal:
    return ScaledDecimal(MONEY_SCALE)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on both databases."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
