"""What every use case is given besides its command."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..domain.types import Channel


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class HoldPolicy:
    minutes_by_channel: dict[Channel, int] = field(
        default_factory=lambda: {Channel.ONLINE: 30, Channel.OPERATOR: 120, Channel.POS: 60}
    )

    def minutes(self, channel: Channel) -> int:
        return self.minutes_by_channel[channel]


@dataclass(frozen=True, slots=True)
class Context:
    holds: HoldPolicy = field(default_factory=HoldPolicy)
    clock: Callable[[], datetime] = utcnow
