"""Which outbox events a sink wants: a filter by event type and by store, from its config.

Store filtering looks at the payload's ``store_id``:

* ``stock.changed`` always carries one; ``stock.levels_changed`` carries one per level (it
  passes when any of its levels is at one of the stores, and carries all of them);
* ``order.created`` carries the order's store (``None`` for orders not tied to a store, such
  as delivery orders allocated across the network);
* ``order.status_changed`` and ``order.paid`` carry no ``store_id`` at all.

A type filter that lists ``stock.changed`` also passes ``stock.levels_changed``: the same
figures, several levels of one product in one event (the 1C import writes them so), and a
sink that asked for stock changes must not miss those.

An event without a store (no ``store_id`` key, or ``store_id: null``) **passes** the store
filter: a store-scoped sink still hears about orders it cannot be proven not to care about.
The consequence the integrator should know: a sink filtered to stores {1, 2} receives the
status changes and payments of *every* order, including other stores' orders, because
those payloads do not say which store the order belongs to. Restrict such a sink by type
(e.g. only ``stock.changed``) if that matters, or add ``store_id`` to those payloads.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..domain.events import STOCK_CHANGED, STOCK_LEVELS_CHANGED
from .base import OutboxEvent


@dataclass(frozen=True)
class EventFilter:
    types: frozenset[str] | None = None  # None: every event type
    stores: frozenset[int] | None = None  # store ids; None: every store

    def matches(self, event: OutboxEvent) -> bool:
        if self.types is not None and not self._typed(event.type, self.types):
            return False
        if self.stores is None:
            return True
        levels = event.payload.get("levels")
        if event.type == STOCK_LEVELS_CHANGED and isinstance(levels, list):
            return any(level.get("store_id") in self.stores for level in levels)
        store_id = event.payload.get("store_id")
        if store_id is None:
            return True  # an event without a store passes (see the module docstring)
        return isinstance(store_id, int) and store_id in self.stores

    @staticmethod
    def _typed(event_type: str, types: frozenset[str]) -> bool:
        """Listing stock.changed means the stock figures, whichever shape carries them."""
        if event_type == STOCK_LEVELS_CHANGED and STOCK_CHANGED in types:
            return True
        return event_type in types
