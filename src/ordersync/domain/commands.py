"""Commands: what a caller asks the hub to do, already parsed but not yet checked
against the catalog (quantities are checked against the product's unit then)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from .types import Channel, Fulfillment


@dataclass(frozen=True, slots=True)
class ProductRef:
    """One of: the hub's id, the SKU, or the 1C Ид."""

    product_id: int | None = None
    sku: str | None = None
    xml_id: str | None = None

    @property
    def label(self) -> str:
        if self.sku is not None:
            return self.sku
        if self.xml_id is not None:
            return self.xml_id
        return f"#{self.product_id}"


@dataclass(frozen=True, slots=True)
class LineInput:
    product: ProductRef
    quantity: Decimal
    price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    channel: Channel
    fulfillment: Fulfillment
    lines: tuple[LineInput, ...]
    store_code: str | None = None  # the pickup store, or the till's store
    customer: dict[str, Any] = field(default_factory=dict)
    external_id: str | None = None
    currency: str = "RUB"
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class RecordPosSale:
    store_code: str
    pos_id: str
    transaction_id: str
    lines: tuple[LineInput, ...]
    business_time: datetime


@dataclass(frozen=True, slots=True)
class RecordPosReturn:
    store_code: str
    pos_id: str
    transaction_id: str
    original_transaction_id: str
    lines: tuple[LineInput, ...]
    business_time: datetime


@dataclass(frozen=True, slots=True)
class StockLine:
    product: ProductRef
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class StockDocument:
    """A receipt, a write-off or an inventory count at one store."""

    store_code: str
    document_id: str
    lines: tuple[StockLine, ...]
    business_time: datetime | None = None
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class Transfer:
    from_store: str
    to_store: str
    document_id: str
    lines: tuple[StockLine, ...]
    business_time: datetime | None = None
