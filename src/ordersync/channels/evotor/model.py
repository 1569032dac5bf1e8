"""The neutral shape of what happened at a till, whichever way Evotor told it: a document of
`PUT .../documents` or `GET .../documents` (documents.py) or a receipt event (receipts.py).
This is what the hub's services act on.

Money and quantities in TillLine are magnitudes: a PAYBACK's `quantity: -1.000` is a line of
quantity 1 in a document whose `stock_effect` is IN. Which way stock moves is the document's
business, never a sign on a line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from .errors import EvotorErrorItem

FREE_PRICE_COMMODITY = "390067bf-e8d3-4fcc-8c30-fbfd77a0a70d"  # "Позиция по свободной цене"


class TillDocumentKind(StrEnum):
    SALE = "sale"  # SELL
    CUSTOMER_RETURN = "customer_return"  # PAYBACK
    GOODS_RECEIPT = "goods_receipt"  # ACCEPT
    WRITE_OFF = "write_off"  # WRITE_OFF
    STOCK_COUNT = "stock_count"  # INVENTORY
    SUPPLIER_RETURN = "supplier_return"  # RETURN: goods sent back to the supplier
    IGNORED = "ignored"  # acknowledged, moves nothing: sessions, cash, reports, unknown types


class StockEffect(StrEnum):
    OUT = "out"  # on hand goes down by the line's quantity
    IN = "in"  # on hand goes up by it
    SET = "set"  # the line's quantity is the counted figure
    NONE = "none"


class Feed(StrEnum):
    """Which webhook brought the document: the same sale may come by both."""

    DOCUMENTS = "documents"
    RECEIPTS = "receipts"


STOCK_TYPES: dict[str, TillDocumentKind] = {
    "SELL": TillDocumentKind.SALE,
    "PAYBACK": TillDocumentKind.CUSTOMER_RETURN,
    "ACCEPT": TillDocumentKind.GOODS_RECEIPT,
    "WRITE_OFF": TillDocumentKind.WRITE_OFF,
    "INVENTORY": TillDocumentKind.STOCK_COUNT,
    "RETURN": TillDocumentKind.SUPPLIER_RETURN,
}
ACKNOWLEDGED_TYPES = frozenset(
    {
        "REVALUATION",
        "OPEN_TARE",
        "CASH_INCOME",
        "CASH_OUTCOME",
        "OPEN_SESSION",
        "CLOSE_SESSION",
        "FPRINT",
        "BUY",
        "BUYBACK",
    }
)
_EFFECT = {
    TillDocumentKind.SALE: StockEffect.OUT,
    TillDocumentKind.WRITE_OFF: StockEffect.OUT,
    TillDocumentKind.SUPPLIER_RETURN: StockEffect.OUT,
    TillDocumentKind.CUSTOMER_RETURN: StockEffect.IN,
    TillDocumentKind.GOODS_RECEIPT: StockEffect.IN,
    TillDocumentKind.STOCK_COUNT: StockEffect.SET,
    TillDocumentKind.IGNORED: StockEffect.NONE,
}


@dataclass(frozen=True, slots=True)
class TillLine:
    position: int  # 1, 2, ... in the order the till registered the lines
    commodity_uuid: str | None  # normalized; None on a free-price line or a shop's own code
    commodity_code: str | None
    name: str | None
    quantity: Decimal  # a magnitude, 3 places; the direction is the document's stock_effect
    price: Decimal | None = None  # per unit, before discounts
    result_price: Decimal | None = None  # per unit, after discounts
    sum: Decimal | None = None  # the line, before discounts
    result_sum: Decimal | None = None  # the line, after discounts
    discount: Decimal | None = None
    cost_price: Decimal | None = None
    barcode: str | None = None
    mark: str | None = None  # excise mark
    measure_name: str | None = None  # шт, кг, л, ...
    commodity_type: str | None = None  # NORMAL, ALCOHOL_MARKED, ALCOHOL_NOT_MARKED, SERVICE
    tax: str | None = None  # NO_VAT, VAT_10, ...
    tax_sum: Decimal | None = None
    tax_percent: Decimal | None = None
    balance_quantity: Decimal | None = None  # the till's own idea of its stock (signed)
    free_price: bool = False  # "Позиция по свободной цене": sold, but no product to move

    @property
    def moves_stock(self) -> bool:
        return not self.free_price


@dataclass(frozen=True, slots=True)
class Payment:
    payment_type: str  # CASH, CARD, ...
    amount: Decimal  # as the till signs it: received is positive, change or refund negative
    rrn: str | None = None


@dataclass(frozen=True, slots=True)
class TillDocument:
    """One thing that happened at a till. `key` (store, uuid) is what makes it once: the same
    sale sent again, or sent both as a document and as a receipt event, has the same key."""

    store_uuid: str
    uuid: str
    evotor_type: str  # as sent: SELL, PAYBACK, ..., or a type the hub does not know
    kind: TillDocumentKind
    closed_at: datetime | None  # the business time; always set on a document that moves stock
    number: int | None = None
    device_uuid: str | None = None
    device_id: str | None = None  # the terminal's IMEI
    session_uuid: str | None = None
    session_number: str | None = None
    opened_at: datetime | None = None
    opened_by: str | None = None  # employee uuid
    closed_by: str | None = None
    close_sum: Decimal | None = None  # before discounts
    close_result_sum: Decimal | None = None  # after discounts
    base_document_uuid: str | None = None  # PAYBACK: the sale it returns
    base_document_number: str | None = None
    fiscal_receipt_number: str | None = None
    fiscal_document_number: str | None = None
    payment_source: str | None = None  # receipts only: PAY_CASH, PAY_CARD, ...
    payments: tuple[Payment, ...] = ()
    lines: tuple[TillLine, ...] = ()
    feed: Feed = field(default=Feed.DOCUMENTS, compare=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.store_uuid, self.uuid)

    @property
    def stock_effect(self) -> StockEffect:
        return _EFFECT[self.kind]

    @property
    def moves_stock(self) -> bool:
        return self.kind is not TillDocumentKind.IGNORED

    @property
    def known_type(self) -> bool:
        """False for a type the documentation does not list (acknowledged all the same)."""
        return self.evotor_type in STOCK_TYPES or self.evotor_type in ACKNOWLEDGED_TYPES

    @property
    def stock_lines(self) -> tuple[TillLine, ...]:
        return tuple(line for line in self.lines if line.moves_stock)


@dataclass(frozen=True, slots=True)
class DocumentRejected:
    """One document of a batch that could not be read; the others are read all the same."""

    index: int
    uuid: str | None
    evotor_type: str | None
    errors: tuple[EvotorErrorItem, ...]


DocumentResult = TillDocument | DocumentRejected
