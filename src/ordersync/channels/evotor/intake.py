"""Till documents from the Evotor cloud into the hub.

Whatever brings a document (`PUT .../documents`, a receipt event, the catch-up pull), it is
first stored in the inbox, one row per (store, document uuid) whichever feed came first, in
the transaction of the request that brought it; only then is it applied, once: SELL and
PAYBACK as completed till sales and returns, ACCEPT, WRITE_OFF, INVENTORY and RETURN as
stock documents, the rest acknowledged and ignored. Applying goes through the same services
as the API (each idempotent by the document's uuid), so a document applied twice after a
crash changes nothing the second time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ...db.availability import is_unavailable
from ...domain.commands import (
    LineInput,
    ProductRef,
    RecordPosReturn,
    RecordPosSale,
    StockDocument,
    StockLine,
    UnmatchedLine,
)
from ...domain.errors import OrdersyncError, StockRace
from ...services import evotor as records
from ...services import pos, stock
from ...services.context import Context
from ...services.orders import UowFactory
from ...services.ports import InboxDocument, InboxEntry, Product, SaleBatches, Store
from .documents import read_document
from .errors import ErrorCode, EvotorErrorItem, EvotorRequestError
from .model import DocumentRejected, DocumentResult, Feed, TillDocument, TillDocumentKind, TillLine
from .receipts import ReceiptRejected, ReceiptResult, read_receipt_event
from .wire import loads, stored

log = logging.getLogger("ordersync.evotor")
PULL = "pull"
APPLIED_AT_ONCE = 4
NO_PRODUCT = "no product with this Evotor uuid, 1C Ид, SKU (code) or barcode"
NOT_WHOLE = "a fractional quantity of a product the hub counts in pieces"
UNLINKED = "not a store linked to the hub (set evotor_uuid on the store)"

StoresFn = Callable[[], Awaitable[list[Store]]]


@dataclass
class Received:
    """What a request stored: the inbox ids newly pending, by the index of the document in
    the request, and the problems of the documents that could not be taken at all."""

    pending: dict[int, int] = field(default_factory=dict)  # inbox id -> index
    errors: list[EvotorErrorItem] = field(default_factory=list)
    documents: dict[int, TillDocument] = field(default_factory=dict)  # inbox id -> document
    store: Store | None = None  # a PUT .../documents is one store's


@dataclass
class Intake:
    uow_factory: UowFactory
    stores: StoresFn
    ctx: Context
    batches: SaleBatches | None = None  # PostgreSQL: sales written a batch at a time
    # lines matched already (by the batch), so a sale left to be recorded alone is not
    # matched twice
    _matched: dict[int, Product] = field(default_factory=dict)

    # --- storing ---------------------------------------------------------------------------

    async def receive_documents(
        self,
        store: Store,
        store_uuid: str,
        results: list[DocumentResult],
        raws: list[Any],
        feed: str,
    ) -> Received:
        """A `PUT .../documents` body (or a pulled window), read document by document."""
        entries: list[InboxEntry] = []
        received = Received(store=store)
        for result, raw in zip(results, raws, strict=True):
            if isinstance(result, DocumentRejected):
                received.errors += [e.under(f"[{result.index}]") for e in result.errors]
                entries.append(_rejected(store_uuid, feed, raw, result.evotor_type, result.errors))
            else:
                entries.append(_entry(result, feed, raw))
        documents = {r.uuid: r for r in results if isinstance(r, TillDocument)}
        indexes = list(range(len(entries)))
        return await self._store(store, entries, indexes, received, documents)

    async def receive_receipts(self, results: list[ReceiptResult], raws: list[Any]) -> Received:
        """`POST /api/v2/receipts`: one event or the deprecated array; each receipt goes under
        its own store, and the same sale sent as a document too is applied once."""
        stores = await self.stores()
        received = Received()
        by_store: dict[str, tuple[Store, list[InboxEntry], list[int]]] = {}
        for index, (result, raw) in enumerate(zip(results, raws, strict=True)):
            prefix = f"[{index}]" if len(results) > 1 else ""
            if isinstance(result, ReceiptRejected):
                received.errors += [e.under(prefix) if prefix else e for e in result.errors]
                continue
            document = result.receipt
            if document is None:  # an event the hub does not act on: acknowledged
                continue
            store = records.linked_store(stores, document.store_uuid)
            if store is None:
                item = EvotorErrorItem(ErrorCode.INCORRECT, UNLINKED, "data.storeId")
                received.errors.append(item.under(prefix) if prefix else item)
                continue
            group = by_store.setdefault(document.store_uuid, (store, [], []))
            group[1].append(_entry(document, Feed.RECEIPTS.value, raw))
            group[2].append(index)
        for store, entries, indexes in by_store.values():
            await self._store(store, entries, indexes, received)
        return received

    async def _store(
        self,
        store: Store,
        entries: list[InboxEntry],
        indexes: list[int],
        received: Received,
        documents: dict[str, TillDocument] | None = None,
    ) -> Received:
        """Stored; what is pending of them is to be applied now (also those an earlier
        attempt stored, when the cloud gave up waiting for its answer)."""
        documents = documents or {}
        waiting = await records.store_documents(self.uow_factory, store, entries, self.ctx)
        where = {e.document_uuid: i for e, i in zip(entries, indexes, strict=True)}
        for inbox_id, uuid in waiting:
            received.pending[inbox_id] = where[uuid]
            if uuid in documents:
                received.documents[inbox_id] = documents[uuid]
        return received

    # --- applying --------------------------------------------------------------------------

    async def apply_all(
        self, ids: Sequence[int], received: Received | None = None
    ) -> dict[int, str]:
        """Applies each document once; by inbox id, why those refused for good were. The sales
        of one request that free units cover are written together where the database can."""
        failures: dict[int, str] = {}
        if received is not None and received.store is not None and self.batches is not None:
            done = await self._in_batch(received.store, ids, received.documents)
            ids = [i for i in ids if i not in done]
        documents = received.documents if received is not None else {}
        # What is left is applied in order; when it is sales only (which do not depend on
        # each other's order, as a count or a return does), a few at a time: each is its own
        # transaction, and those on one shelf wait for its stock row, never deadlock.
        kinds = {documents[i].kind if i in documents else None for i in ids}
        together = APPLIED_AT_ONCE if kinds == {TillDocumentKind.SALE} else 1
        gate = asyncio.Semaphore(together)

        async def one(inbox_id: int) -> None:
            async with gate:
                error = await self.apply(inbox_id, documents.get(inbox_id))
            if error is not None:
                failures[inbox_id] = error

        try:
            await asyncio.gather(*(one(i) for i in ids))
        finally:
            self._matched.clear()  # keyed by the lines of these documents only
        return failures

    async def apply(self, inbox_id: int, known: TillDocument | None = None) -> str | None:
        """None when applied, or held by another applier, or to be tried again later."""
        if known is not None and known.kind in _MARKED_WITH_THE_WRITE:
            return await self._apply_marking(inbox_id, known)
        document = await records.claim(self.uow_factory, inbox_id, self.ctx)
        if document is None:
            return None
        stores = await self.stores()
        store = records.linked_store(stores, document.entry.store_uuid)
        try:
            till = _read(document)
            if store is None:
                raise _Refused(UNLINKED)
            result = await self._apply(till, store)
        except (_Refused, OrdersyncError, EvotorRequestError) as exc:
            if isinstance(exc, StockRace):
                log.warning("evotor document %s: %s; tried again later", inbox_id, exc)
                return None
            error = str(exc.message if isinstance(exc, OrdersyncError) else exc)
            await records.finish(self.uow_factory, document, store, None, error, self.ctx)
            return error
        except Exception as exc:  # the database away, a bug: the document stays pending
            if not is_unavailable(exc):
                log.exception("evotor document %s could not be applied", inbox_id)
            return None
        await records.finish(self.uow_factory, document, store, result, None, self.ctx)
        return None

    async def _apply_marking(self, inbox_id: int, document: TillDocument) -> str | None:
        """A sale or return read in this request: recorded with its inbox row marked done in
        the same transaction (each is recorded once by its transaction id, so two appliers
        at once cannot both record it)."""
        store = records.linked_store(await self.stores(), document.store_uuid)
        now = self.ctx.clock()

        async def mark(uow: Any, result: dict[str, Any]) -> None:
            await uow.evotor.finish_document(inbox_id, records.DONE, result, None, now)

        try:
            if store is None:
                raise _Refused(UNLINKED)
            await self._apply(document, store, mark)
        except (_Refused, OrdersyncError) as exc:
            if isinstance(exc, StockRace):
                return None
            error = str(exc.message if isinstance(exc, OrdersyncError) else exc)
            entry = InboxEntry(
                document.store_uuid, document.uuid, document.feed.value, "", document.evotor_type
            )
            held = InboxDocument(inbox_id, entry, 0)
            await records.finish(self.uow_factory, held, store, None, error, self.ctx)
            return error
        except Exception as exc:
            if not is_unavailable(exc):
                log.exception("evotor document %s could not be applied", inbox_id)
            return None
        return None

    async def _in_batch(
        self, store: Store, ids: Sequence[int], documents: dict[int, TillDocument]
    ) -> set[int]:
        assert self.batches is not None
        sales = [(i, documents[i]) for i in ids
                 if i in documents and documents[i].kind is TillDocumentKind.SALE]  # fmt: skip
        if len(sales) < 2:
            return set()
        lines = [line for _, doc in sales for line in doc.stock_lines]
        matched, _ = await self._match(lines)
        found = {id(line): product for line, product in matched}
        self._matched.update(found)
        commands: list[tuple[int, RecordPosSale]] = []
        for inbox_id, doc in sales:
            if any(id(line) not in found for line in doc.stock_lines) or not doc.stock_lines:
                continue  # kept lines, or nothing to move: one by one
            assert doc.closed_at is not None
            mine = [(line, found[id(line)]) for line in doc.stock_lines]
            commands.append((inbox_id, RecordPosSale(store.code, _pos_id(doc), doc.uuid,
                             _lines(mine), doc.closed_at, True, _shift(doc))))  # fmt: skip
        known = {product.id: product for _, product in matched}
        return await pos.record_sales_in_batch(self.batches, store, commands, known, self.ctx)

    async def _apply(
        self, document: TillDocument, store: Store, then: pos.Then | None = None
    ) -> dict[str, Any]:
        if document.kind is TillDocumentKind.IGNORED:
            return {"ignored": document.evotor_type}
        matched, unmatched = await self._match(document.stock_lines)
        if not matched and not unmatched:
            return {"stock_lines": 0}  # free-price lines only: nothing moves
        closed_at = document.closed_at
        assert closed_at is not None  # readers require it of documents that move stock
        pos_id, shift = _pos_id(document), _shift(document)
        kept = tuple(unmatched)
        if document.kind is TillDocumentKind.SALE:
            sale = RecordPosSale(store.code, pos_id, document.uuid, _lines(matched), closed_at,
                                 True, shift, kept)  # fmt: skip
            return _dict(await pos.record_pos_sale(self.uow_factory, sale, self.ctx, None, then))
        if document.kind is TillDocumentKind.CUSTOMER_RETURN:
            back = RecordPosReturn(store.code, pos_id, document.uuid,
                                   document.base_document_uuid, _lines(matched), closed_at,
                                   True, shift, kept)  # fmt: skip
            return _dict(await pos.record_pos_return(self.uow_factory, back, self.ctx, None, then))
        stock_lines = tuple(StockLine(ProductRef(product_id=p.id), line.quantity)
                            for line, p in matched)  # fmt: skip
        doc = StockDocument(store.code, document.uuid, stock_lines, closed_at, None, kept)
        apply = _STOCK[document.kind]
        return _dict(await apply(self.uow_factory, doc, self.ctx, None))

    async def _match(
        self, lines: Sequence[TillLine]
    ) -> tuple[list[tuple[TillLine, Product]], list[UnmatchedLine]]:
        refs = [
            records.TillProductRef(line.commodity_uuid, line.commodity_code, line.barcode)
            for line in lines
        ]
        found: list[Product | None]
        if all(id(line) in self._matched for line in lines):
            found = [self._matched[id(line)] for line in lines]
        else:
            found = await records.match_products(self.uow_factory, refs) if refs else []
        matched: list[tuple[TillLine, Product]] = []
        unmatched: list[UnmatchedLine] = []
        for line, product in zip(lines, found, strict=True):
            if product is not None and records.takes_quantity(product, line.quantity):
                matched.append((line, product))
            else:
                unmatched.append(_unmatched(line, NO_PRODUCT if product is None else NOT_WHOLE))
        return matched, unmatched


class _Refused(Exception):
    pass


_MARKED_WITH_THE_WRITE = frozenset({TillDocumentKind.SALE, TillDocumentKind.CUSTOMER_RETURN})


_STOCK = {
    TillDocumentKind.GOODS_RECEIPT: stock.receive,
    TillDocumentKind.WRITE_OFF: stock.write_off,
    TillDocumentKind.STOCK_COUNT: stock.count,
    TillDocumentKind.SUPPLIER_RETURN: stock.return_to_supplier,
}


def _pos_id(document: TillDocument) -> str:
    """The till: its uuid in the cloud (its IMEI when a document has no uuid)."""
    return (document.device_uuid or document.device_id or "evotor")[:64]


def _shift(document: TillDocument) -> str | None:
    return document.session_uuid or document.session_number


def _lines(matched: list[tuple[TillLine, Product]]) -> tuple[LineInput, ...]:
    return tuple(
        LineInput(ProductRef(product_id=p.id), line.quantity, _price(line)) for line, p in matched
    )


def _price(line: TillLine) -> Decimal | None:
    """Per unit, after discounts, as the customer paid it."""
    return line.result_price if line.result_price is not None else line.price


def _unmatched(line: TillLine, reason: str) -> UnmatchedLine:
    return UnmatchedLine(
        line.position,
        line.quantity,
        reason,
        line.commodity_uuid,
        line.commodity_code,
        line.barcode,
        line.name,
        _price(line),
    )


def _dict(result: Any) -> dict[str, Any]:
    assert isinstance(result, dict), "no Idempotency-Key is used by the channel"
    return result


def _entry(document: TillDocument, feed: str, raw: Any) -> InboxEntry:
    return InboxEntry(
        document.store_uuid,
        document.uuid,
        feed,
        stored(raw),
        document.evotor_type,
        document.closed_at,
    )


def _rejected(
    store_uuid: str,
    feed: str,
    raw: Any,
    evotor_type: str | None,
    errors: Sequence[EvotorErrorItem],
) -> InboxEntry:
    why = "; ".join(f"{e.subject or 'document'}: {e.reason}" for e in errors)
    return InboxEntry(store_uuid, None, feed, stored(raw), evotor_type, None, "rejected", why)


def _read(document: InboxDocument) -> TillDocument:
    """The stored body read again, by the reader of the feed that brought it."""
    raw = loads(document.entry.body)
    if document.entry.feed == Feed.RECEIPTS.value:
        receipt = read_receipt_event(raw).receipt
        if receipt is None:
            raise _Refused("a receipt event without a receipt")
        return receipt
    return read_document(raw, document.entry.store_uuid)
