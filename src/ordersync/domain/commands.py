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
class UnmatchedLine:
    """A line of a till document whose product the hub could not find (or could not take in
    its unit): kept as the till sent it, with the rest of the document, for a person to see."""

    position: int
    quantity: Decimal
    reason: str
    commodity_uuid: str | None = None
    code: str | None = None
    barcode: str | None = None
    name: str | None = None
    price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class RecordPosSale:
    """`completed`: the receipt is printed and the customer gone with the goods, so the sale
    is recorded whatever the stock says; otherwise the till asks first and may be refused.
    `shift`: the till's shift (Evotor's session), which groups stock-only sales for 1C."""

    store_code: str
    pos_id: str
    transaction_id: str
    lines: tuple[LineInput, ...]
    business_time: datetime
    completed: bool = True
    shift: str | None = None
    unmatched: tuple[UnmatchedLine, ...] = ()


@dataclass(frozen=True, slots=True)
class RecordPosReturn:
    """`original_transaction_id`: the sale it returns, looked up across the store's tills;
    None or unknown makes a completed return unlinked (recorded, and listed for review)."""

    store_code: str
    pos_id: str
    transaction_id: str
    original_transaction_id: str | None
    lines: tuple[LineInput, ...]
    business_time: datetime
    completed: bool = True
    shift: str | None = None
    unmatched: tuple[UnmatchedLine, ...] = ()


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
    unmatched: tuple[UnmatchedLine, ...] = ()  # a till's document: lines kept for review


@dataclass(frozen=True, slots=True)
class Transfer:
    from_store: str
    to_store: str
    document_id: str
    lines: tuple[StockLine, ...]
    business_time: datetime | None = None
