"""What the use cases need from storage. The db adapter implements it (SqlUnitOfWork)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, Self

from ..domain.allocation import Allocation
from ..domain.commands import LineInput
from ..domain.orders import Attention, Order
from ..domain.types import Channel, Fulfillment, HoldState, PosMode, Role, StoreKind, Unit


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    body: Any


# (principal, key, request hash, response): what placement stores with the order.
IdempotencyRecord = tuple[str, str, str, StoredResponse]


@dataclass(frozen=True, slots=True)
class Store:
    id: int
    code: str
    xml_id: str
    name: str
    kind: StoreKind
    serves_online: bool
    online_priority: int
    is_pickup_point: bool
    safety_stock: Decimal
    pos_mode: PosMode
    active: bool
    evotor_uuid: str | None = None  # the store in the Evotor cloud, when linked


@dataclass(frozen=True, slots=True)
class Product:
    id: int
    sku: str
    xml_id: str
    name: str
    unit: Unit
    barcode: str | None
    price: Decimal | None
    active: bool


@dataclass(frozen=True, slots=True)
class PlacedLine:
    """A line placed whole at one store: its product, the SKU and the price it was placed at
    (the one given, or the catalog's)."""

    product_id: int
    sku: str
    price: Decimal


@dataclass(frozen=True, slots=True)
class StockLevel:
    product_id: int
    store_id: int
    on_hand: Decimal
    reserved: Decimal

    @property
    def available(self) -> Decimal:
        return self.on_hand - self.reserved


@dataclass(frozen=True, slots=True)
class Hold:
    id: int
    line_no: int
    product_id: int
    store_id: int
    quantity: Decimal
    state: HoldState
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class StockChange:
    product_id: int
    store_id: int
    quantity: Decimal  # always positive; the operation gives the sign
    reason: str  # a MovementReason, or a HoldReason for changes of `reserved` only
    document_type: str
    document_id: str
    business_time: datetime
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class PosRecord:
    pos_id: str
    transaction_id: str
    kind: str
    store_id: int
    order_id: str | None
    original_transaction_id: str | None
    request_hash: str
    result: dict[str, Any]
    business_time: datetime
    shift: str | None = None


@dataclass(frozen=True, slots=True)
class StoreHold:
    """An active hold at a store, with its order's fulfillment, channel, payment and age: what
    a completed till sale needs to choose the holds it displaces."""

    hold_id: int
    order_id: str
    number: int
    line_no: int
    product_id: int
    sku: str
    store_id: int
    quantity: Decimal
    expires_at: datetime | None
    fulfillment: Fulfillment
    channel: Channel
    paid: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """Something about a till's document for a person to look at (the till review queue):
    `unmatched_line`, `unlinked_return`, `unknown_till_product` or `failed_document`."""

    kind: str
    store_id: int | None
    document_type: str
    document_id: str
    reason: str
    pos_id: str | None = None
    position: int | None = None
    commodity_uuid: str | None = None
    code: str | None = None
    barcode: str | None = None
    name: str | None = None
    quantity: Decimal | None = None
    price: Decimal | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """A till document as the channel stored it: `document_uuid` None when it was unreadable
    (kept, `rejected`)."""

    store_uuid: str
    document_uuid: str | None
    feed: str
    body: str
    evotor_type: str | None = None
    closed_at: datetime | None = None
    state: str = "pending"
    error: str | None = None


@dataclass(frozen=True, slots=True)
class InboxDocument:
    id: int
    entry: InboxEntry
    attempts: int


@dataclass(frozen=True, slots=True)
class Watermark:
    store_uuid: str
    closed_before: datetime


class EvotorRecords(Protocol):
    """The Evotor channel's own state (db/evotor.py), in the unit of work's transaction."""

    # the inbox: each (store, document uuid) once
    async def store_documents(self, entries: Sequence[InboxEntry], now: datetime) -> list[int]:
        """Inbox ids of the entries newly stored (pending ones only), in order."""

    async def pending(
        self, store_uuid: str | None, document_uuids: Sequence[str]
    ) -> list[tuple[int, str]]:
        """(inbox id, document uuid) of those still pending."""

    async def due_documents(self, now: datetime, limit: int) -> list[int]: ...
    async def claim_document(
        self, inbox_id: int, now: datetime, until: datetime
    ) -> InboxDocument | None:
        """The pending document, held for this applier until `until`; None when it is done
        or another applier holds it."""

    async def finish_document(
        self,
        inbox_id: int,
        state: str,
        result: dict[str, Any] | None,
        error: str | None,
        now: datetime,
    ) -> None: ...
    async def documents_by_state(self, state: str, limit: int) -> list[InboxDocument]: ...

    # stores, devices, employees as the cloud sent them
    async def keep_entities(
        self, kind: str, items: Sequence[tuple[str, str | None, str | None, str]], now: datetime
    ) -> None:
        """(uuid, name, store uuid, the item as JSON) per item."""

    # products: the uuid the hub publishes for each, those created on tills
    async def products_by_evotor_uuid(self, uuids: Sequence[str]) -> dict[str, int]: ...
    async def products_by_barcode(self, barcodes: Sequence[str]) -> dict[str, Product]: ...
    async def evotor_uuids(self, product_ids: Sequence[int], now: datetime) -> dict[int, str]:
        """The uuid published for each product, made (and kept for good) when it has none."""

    async def map_till_product(
        self, evotor_uuid: str, product_id: int, store_uuid: str | None, now: datetime
    ) -> None: ...
    async def product_ids(self, after_id: int, limit: int) -> list[int]:
        """Every product, a page at a time (a store newly linked gets the whole catalog)."""

    async def published(self, store_uuid: str, product_ids: Sequence[int]) -> set[int]: ...
    async def mark_published(
        self, store_uuid: str, product_ids: Sequence[int], now: datetime
    ) -> None: ...

    # the catch-up pull
    async def lease_watermark(
        self, store_uuid: str, start: datetime, now: datetime, until: datetime
    ) -> Watermark | None:
        """The store's watermark (made at `start` the first time), held until `until`; None
        when another worker holds it."""

    async def move_watermark(self, store_uuid: str, closed_before: datetime, now: datetime) -> None:
        """Also ends the lease."""

    # linked Evotor accounts
    async def link_account(self, user_id: str, token_id: int | None, now: datetime) -> None: ...
    async def account_token(self, user_id: str) -> int | None: ...
    async def keep_cloud_token(self, user_id: str, token: str, now: datetime) -> None: ...
    async def cloud_token(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class SiteEvent:
    """An outgoing event of the Bitrix site as the inbox keeps it."""

    id: int
    event: str
    site_order_id: str | None
    xml_id: str | None
    attempts: int


@dataclass(frozen=True, slots=True)
class SiteLink:
    """A site order the hub has seen: its hub order (None: not a hub order of the site, see
    `state`) and the site version last applied."""

    site_order_id: str
    order_id: str | None
    site_version: int
    state: str  # linked, own (the hub's own order mirrored to the site), deleted
    account_number: str | None = None
    date_update: datetime | None = None


class SiteRecords(Protocol):
    """The Bitrix site channel's own state (db/bitrix.py), in the unit of work's transaction."""

    async def store_event(
        self, event: str, site_order_id: str | None, xml_id: str | None, body: str, now: datetime
    ) -> int: ...
    async def due_events(self, now: datetime, limit: int) -> list[int]: ...
    async def claim_event(self, event_id: int, now: datetime, until: datetime) -> SiteEvent | None:
        """The pending event, held until `until` (attempts + 1); None when done or held."""

    async def finish_event(
        self, event_id: int, state: str, error: str | None, now: datetime
    ) -> None: ...

    async def prune_events(self, applied_before: datetime, limit: int) -> int: ...
    async def retry_event(self, event_id: int, error: str, at: datetime) -> None:
        """Left pending, tried again at `at`."""

    async def link(self, site_order_id: str, lock: bool = False) -> SiteLink | None: ...
    async def save_link(self, link: SiteLink, now: datetime) -> None: ...
    async def applied_versions(self, site_order_ids: Sequence[str]) -> dict[str, int]: ...
    async def lease_watermark(
        self, name: str, now: datetime, until: datetime
    ) -> tuple[bool, datetime | None]:
        """(leased, the watermark); not leased when another worker holds it."""

    async def move_watermark(self, name: str, date_update: datetime | None, now: datetime) -> None:
        """Also ends the lease."""

    async def replace_lines(self, order_id: str, lines: Sequence[OrderLineRow]) -> None:
        """The order's lines become these (its holds, all closed by now, go with the old)."""

    async def insert_holds(
        self,
        order_id: str,
        allocations: Sequence[Allocation],
        now: datetime,
        expires_at: datetime | None,
    ) -> None:
        """Hold rows of stock the caller has just held (hold_stock)."""


@dataclass(frozen=True, slots=True)
class OrderLineRow:
    line_no: int
    product_id: int
    quantity: Decimal
    price: Decimal


@dataclass(frozen=True, slots=True)
class SaleForBatch:
    """A completed till sale, checked and priced, with what a replay of it answers: one of
    a batch written together (db/pg_till_batch.py)."""

    inbox_id: int
    pos_id: str
    transaction_id: str
    business_time: datetime
    shift: str
    totals: list[tuple[int, Decimal]]  # units per product, in product order
    request_hash: str
    result: dict[str, Any]
    order: Order | None  # order mode: the completed, paid order (numbered when written)


class SaleBatches(Protocol):
    """Completed sales of one store written together, where the database can (PostgreSQL)."""

    async def fitting(self, store_id: int, sales: Sequence[SaleForBatch]) -> list[SaleForBatch]:
        """Those that free units cover, in order, that no earlier return names."""

    async def record(self, store_id: int, sales: Sequence[SaleForBatch], now: datetime) -> bool:
        """All of them, with their inbox rows marked done, or none (False)."""


class Savepoint(Protocol):
    async def rollback(self) -> None: ...
    async def commit(self) -> None: ...


class UnitOfWork(Protocol):
    """One transaction. Leaving the block without commit() rolls back."""

    @property
    def evotor(self) -> EvotorRecords: ...
    @property
    def bitrix(self) -> SiteRecords: ...

    async def __aenter__(self) -> Self: ...
    async def __aexit__(self, *exc: object) -> None: ...
    async def commit(self) -> None: ...

    # catalog
    async def stores(self) -> list[Store]: ...
    async def products_by_refs(
        self, ids: Sequence[int], skus: Sequence[str], xml_ids: Sequence[str]
    ) -> list[Product]: ...

    async def products_with_stock(
        self,
        ids: Sequence[int],
        skus: Sequence[str],
        xml_ids: Sequence[str],
        store_ids: Sequence[int],
    ) -> tuple[list[Product], list[StockLevel]]: ...

    # stock: each conditional; None means the condition did not hold and nothing changed
    async def read_stock(
        self, product_ids: Sequence[int], store_ids: Sequence[int] | None = None
    ) -> list[StockLevel]: ...
    async def hold_stock(self, change: StockChange, safety: Decimal) -> StockLevel | None: ...
    async def release_hold(self, change: StockChange) -> StockLevel | None: ...
    async def consume_hold(self, change: StockChange) -> StockLevel | None: ...
    async def deduct_stock(self, change: StockChange) -> StockLevel | None: ...
    async def add_stock(self, change: StockChange) -> StockLevel: ...
    async def set_on_hand(self, change: StockChange) -> tuple[StockLevel, Decimal]: ...
    async def take_sold(self, change: StockChange) -> StockLevel:
        """on_hand -= n unconditionally: a completed till sale (may go below zero)."""

    async def lock_levels(
        self, product_id: int, store_ids: Sequence[int]
    ) -> dict[int, StockLevel]: ...
    async def savepoint(self) -> Savepoint: ...

    # holds a completed till sale may displace
    async def holds_at(self, store_id: int, product_ids: Sequence[int]) -> list[StoreHold]: ...
    async def lock_orders(self, order_ids: Sequence[str], wait: bool = True) -> bool:
        """Order rows locked in id order; with wait=False, False if one is taken."""

    async def close_hold(self, hold_id: int, state: HoldState, now: datetime) -> None: ...
    async def carry_hold(
        self, replaced: StoreHold, store_id: int, quantity: Decimal, now: datetime
    ) -> None: ...
    async def add_hold(
        self,
        order_id: str,
        line_no: int,
        product_id: int,
        store_id: int,
        quantity: Decimal,
        expires_at: datetime | None,
        now: datetime,
    ) -> None:
        """A new active hold row; the caller took the stock with hold_stock."""

    async def set_line_quantity(self, order_id: str, line_no: int, quantity: Decimal) -> None: ...

    # orders
    async def place_order(
        self,
        order: Order,
        allocations: Sequence[Allocation],
        safety_by_store: dict[int, Decimal],
        response: IdempotencyRecord | None,
    ) -> None:
        """Write the order, its lines and holds and take the stock, atomically, or raise
        StockRace (a planned store no longer has it) or AlreadyRecorded."""

    @property
    def places_at_store(self) -> bool:
        """Whether `place_at_store` can write (else it always answers None)."""
        ...

    async def place_at_store(
        self, order: Order, lines: Sequence[LineInput], store_id: int, safety: Decimal
    ) -> tuple[int, list[PlacedLine]] | None:
        """In one write where the storage can (else None at once): the order, every line
        held at `store_id`, where `on_hand - reserved - safety` covers it. Returns the order's
        number and its lines, or None when nothing was written: a line the catalog refuses
        (unknown, inactive, unpriced, not whole pieces), too large a total, too little stock
        at the store, or the external id taken. The caller then takes the full path."""

    async def next_order_number(self) -> int: ...
    async def insert_order(self, order: Order) -> None: ...
    async def get_order(self, order_id: str, lock: bool = False) -> Order | None: ...
    async def find_order_by_external_id(
        self, channel: Channel, external_id: str
    ) -> Order | None: ...
    async def set_order_fields(self, order_id: str, **values: Any) -> None: ...
    async def active_holds(self, order_id: str) -> list[Hold]: ...
    async def close_holds(self, order_id: str, state: HoldState, now: datetime) -> None: ...
    async def keep_holds(self, order_id: str) -> None: ...
    async def extend_holds(self, order_id: str, until: datetime) -> None:
        """The order's active holds expire at `until` (a confirmed order)."""

    async def orders_with_expired_holds(self, now: datetime, limit: int) -> list[str]: ...

    # attention: what about an order needs a person
    async def raise_attention(
        self, order_id: str, code: str, detail: dict[str, Any], now: datetime
    ) -> int: ...
    async def resolve_attention(
        self, order_id: str, attention_ids: Sequence[int] | None, resolution: str, now: datetime
    ) -> list[Attention]: ...

    # POS transactions
    async def find_pos_record(
        self, store_id: int, pos_id: str, transaction_id: str
    ) -> PosRecord | None: ...
    async def insert_pos_record(self, record: PosRecord, now: datetime) -> None: ...
    async def update_pos_result(
        self, store_id: int, pos_id: str, transaction_id: str, result: dict[str, Any]
    ) -> None:
        """What a replay of the transaction answers, once its writing showed more."""

    async def add_sold(
        self,
        store_id: int,
        pos_id: str,
        transaction_id: str,
        product_id: int,
        quantity: Decimal,
    ) -> None: ...
    async def take_returned(
        self,
        store_id: int,
        pos_id: str,
        transaction_id: str,
        product_id: int,
        quantity: Decimal,
    ) -> bool:
        """returned += n where it stays within what the sale sold; False otherwise."""

    async def find_sale(self, store_id: int, pos_id: str, transaction_id: str) -> PosRecord | None:
        """The sale with this transaction id at the store: from this till first, else from
        any of the store's tills (Evotor's document uuids are unique)."""

    async def returns_naming(self, store_id: int, transaction_id: str) -> list[PosRecord]:
        """Returns at the store that name this sale as their original."""

    async def returnable(
        self, store_id: int, pos_id: str, transaction_id: str, product_id: int
    ) -> Decimal:
        """What of this product the sale sold and has not had back yet (row locked)."""

    async def return_to_order(
        self, order_id: str, product_id: int, quantity: Decimal
    ) -> list[tuple[int, Decimal]]:
        """Marks units of the order's lines of this product returned, first lines first;
        (line_no, units) per line touched."""

    async def add_to_order_line(
        self, order_id: str, product_id: int, price: Decimal, quantity: Decimal
    ) -> None:
        """A till shift's order: the line of this product at this price grows, or is added."""

    async def add_review(self, item: ReviewItem, now: datetime) -> int: ...
    async def resolve_reviews(
        self, kind: str, document_type: str, document_id: str, resolution: str, now: datetime
    ) -> int:
        """Closes the open items of this kind about this document; how many."""

    # stock documents
    async def find_document(
        self, document_type: str, store_id: int, document_id: str
    ) -> tuple[str, dict[str, Any]] | None: ...
    async def record_document(
        self,
        document_type: str,
        store_id: int,
        document_id: str,
        request_hash: str,
        result: dict[str, Any],
        now: datetime,
    ) -> None: ...

    async def create_token(self, name: str, role: Role, now: datetime) -> tuple[int, str]:
        """A new API token (not scoped to stores): (id, the token, shown only now)."""

    # outbox and idempotency
    async def add_event(
        self,
        type_: str,
        aggregate_type: str,
        aggregate_id: str,
        payload: dict[str, Any],
        now: datetime,
    ) -> None: ...
    async def claim_key(self, principal: str, key: str, request_hash: str) -> StoredResponse | None:
        """Hold an Idempotency-Key for this transaction, or return the response stored
        under it (waiting for a concurrent transaction that holds it)."""

    async def find_response(
        self, principal: str, key: str, request_hash: str
    ) -> StoredResponse | None: ...
    async def save_response(
        self, principal: str, key: str, request_hash: str, response: StoredResponse
    ) -> None: ...
