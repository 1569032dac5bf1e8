"""What every sink is: something that takes a batch of outbox events, in order, and either
acknowledges all of it or raises DeliveryFailed.

A failure is one of two kinds, and the relay treats them apart:
- the sink is down, busy or misconfigured (refused or timed-out connections, 5xx, 408, 429,
  a rate limit, the 401/403/404 every event would get alike): the batch is retried with
  capped backoff for as long as that lasts, never dead-lettered;
- the sink refused the batch for what it holds (`permanent=True`: a 4xx that judges the
  content, see sinks.http_post.NOT_REFUSALS; a Bitrix error about the event's data): the
  relay narrows the batch down to the event refused, and that event, refused
  `relay.max_attempts` times, goes to the dead letters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class OutboxEvent:
    id: int  # stable: receivers deduplicate on it (delivery is at least once)
    type: str  # stock.changed, stock.levels_changed, order.created, order.status_changed, ...
    aggregate_type: str  # stock or order
    aggregate_id: str  # "<product_id>:<store_id>", "<product_id>" (levels) or the order id
    payload: dict[str, Any]
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "aggregate_type": self.aggregate_type,
            "aggregate_id": self.aggregate_id,
            "payload": self.payload,
            "created_at": self.created_at.isoformat(),
        }


class DeliveryFailed(Exception):
    """The batch was not (wholly) acknowledged. `retry_after` when the receiver said when to
    come back (a 503 with Retry-After, Bitrix's QUERY_LIMIT_EXCEEDED); `permanent` when the
    receiver refused what the batch holds rather than being unavailable."""

    def __init__(
        self, message: str, retry_after: float | None = None, *, permanent: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent


class Sink(Protocol):
    name: str

    def wants(self, event: OutboxEvent) -> bool:
        """The sink's filter (event types, stores), from its configuration."""
        ...

    async def deliver(self, events: Sequence[OutboxEvent]) -> None:
        """Delivers the batch in the given order; returns only once every event is
        acknowledged, else raises DeliveryFailed."""
        ...

    async def close(self) -> None: ...
