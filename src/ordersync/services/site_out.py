"""What the hub tells the online store (the Bitrix site), named here so that the database
adapter reads it and the Bitrix sink sends it.

- Which orders are the site's own: channel `online` with an external id (the site's order id,
  as the site intake records it). Their holds are the site's reservations too, so the site
  subtracts them itself; every other order's holds (phone, pickup, till, API orders) it
  cannot know of, and the hub subtracts them from what it sends.
- The sellable figure of a (product, store): on_hand minus the active holds of orders that are
  not the site's, minus the store's safety stock, never below zero.
- A mirrored order: a till or operator order, as sale.order.add records it on the site.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from ..domain.types import Channel, Source


def is_site_order(channel: str, external_id: str | None) -> bool:
    return channel == Channel.ONLINE.value and external_id is not None


def sellable(on_hand: Decimal, held_by_others: Decimal, safety_stock: Decimal) -> Decimal:
    return max(on_hand - held_by_others - safety_stock, Decimal(0))


@dataclass(frozen=True)
class HubLine:
    line_no: int
    product_xml_id: str
    name: str
    quantity: Decimal
    price: Decimal


@dataclass(frozen=True)
class HubOrder:
    """An order as the site hears of it, read when the sink delivers."""

    id: str
    number: int
    channel: str
    source: str
    status: str
    paid: bool
    store_code: str | None
    total: Decimal
    currency: str
    external_id: str | None
    pos_transaction_id: str | None
    lines: tuple[HubLine, ...]
    created_at: datetime | None = None  # when it was placed (a till sale: at the till)

    @property
    def from_site(self) -> bool:
        return is_site_order(self.channel, self.external_id)

    def mirrored(self, channels: frozenset[str]) -> bool:
        """Till sales recorded as orders (stores in `order` mode: one order per transaction,
        never a shift's order) and operator orders, for the channels configured."""
        if self.channel not in channels:
            return False
        if self.channel == Channel.POS.value:
            return self.source == Source.OFFLINE.value and self.pos_transaction_id is not None
        return self.channel == Channel.OPERATOR.value
