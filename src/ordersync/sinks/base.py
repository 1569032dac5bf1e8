"""What every sink is: something that takes a batch of outbox events, in order, and either
acknowledges all of it or raises DeliveryFailed (the relay then retries the batch later)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class OutboxEvent:
    id: int  # stable: receivers deduplicate on it (delivery is at least once)
    type: str  # stock.changed, order.created, order.status_changed, order.paid
    aggregate_type: str  # stock or order
    aggregate_id: str  # "<product_id>:<store_id>" or the order id
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
    come back (a 503 with Retry-After, Bitrix's QUERY_LIMIT_EXCEEDED)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


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
