"""What the screens behind the live stream missed: one read of the outbox, newest first, serves
every screen that joined (its page read at event `since`) or came back (Last-Event-ID) in a
round, each taking the orders changed after its own `since` (ui/live.py)."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from ..db.outbox_reader import NewEvent


@dataclass(frozen=True)
class ChangedOrders:
    """Each order changed in the events read, once, at its newest event; newest first."""

    orders: list[str]  # newest change first
    keys: list[int]  # their newest event ids, negated: rising, for bisect
    at: dict[str, int]  # order id: its newest event id
    oldest_read: int | None  # the oldest event id read, an order's or not
    full: bool  # the read stopped at its limit: older events were not read

    @classmethod
    def from_events(cls, events: Sequence[NewEvent], full: bool) -> ChangedOrders:
        """`events` newest first, as `outbox_reader.events_after(..., newest_first=True)`."""
        at: dict[str, int] = {}
        for event_id, order_id in events:
            if order_id is not None and order_id not in at:
                at[order_id] = event_id
        oldest = events[-1][0] if events else None
        return cls(list(at), [-e for e in at.values()], at, oldest, full)

    def unread_after(self, since: int) -> bool:
        """Whether events after `since` may lie beyond what was read."""
        return self.full and self.oldest_read is not None and since < self.oldest_read - 1

    def orders_after(self, since: int, limit: int) -> tuple[list[str], bool]:
        """The orders changed after event `since`, newest first, at most `limit`, and whether
        there may be more (beyond the limit or beyond what was read)."""
        count = bisect.bisect_left(self.keys, -since)  # newest events above `since`
        return self.orders[: min(count, limit)], count > limit or self.unread_after(since)

    def order_changed_after(self, order_id: str, since: int) -> bool:
        return self.at.get(order_id, since) > since
