"""What every use case is given besides its command."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from ..domain.types import Channel


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class HoldPolicy:
    minutes_by_channel: dict[Channel, int] = field(
        default_factory=lambda: {Channel.ONLINE: 30, Channel.OPERATOR: 120, Channel.POS: 60}
    )

    # A confirmed, unpaid order (cash on delivery) keeps its holds this long instead.
    confirmed_minutes_by_channel: dict[Channel, int] = field(
        default_factory=lambda: {
            Channel.ONLINE: 72 * 60,
            Channel.OPERATOR: 72 * 60,
            Channel.POS: 24 * 60,
        }
    )

    def minutes(self, channel: Channel) -> int:
        return self.minutes_by_channel[channel]

    def confirmed_minutes(self, channel: Channel) -> int:
        return self.confirmed_minutes_by_channel[channel]


@dataclass(frozen=True, slots=True)
class Context:
    holds: HoldPolicy = field(default_factory=HoldPolicy)
    clock: Callable[[], datetime] = utcnow
    # master = "hub": 1C learns of every till sale and return through the order exchange, so
    # stock-only sales and returns no known sale covers become orders of their till shift.
    shift_orders: bool = False
    zone: tzinfo = UTC  # the shops' local time (exchange.timezone): a till shift's default date
