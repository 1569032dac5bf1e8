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
from ...services.ports import InboxDocument, InboxEntry, Product, Store
from .documents import read_document
from .errors import ErrorCode, EvotorErrorItem, EvotorRequestError
from .model import DocumentRejected, DocumentResult, Feed, TillDocument, TillDocumentKind, TillLine
from .receipts import ReceiptRejected, ReceiptResult, read_receipt_event
from .wire import dumps, loads

log = logging.getLogger("ordersync.evotor")
PULL = "pull"
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


@dataclass
class Intake:
    uow_factory: UowFactory
    stores: StoresFn
    ctx: Context

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
        received = Received()
        for result, raw in zip(results, raws, strict=True):
            if isinstance(result, DocumentRejected):
                received.errors += [e.under(f"[{result.index}]") for e in result.errors]
                entries.append(_rejected(store_uuid, feed, raw, result.evotor_type, result.errors))
            else:
                entries.append(_entry(result, feed, raw))
        return await self._store(store, entries, list(range(len(entries))), received)

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
        self, store: Store, entries: list[InboxEntry], indexes: list[int], received: Received
    ) -> Received:
        """Stored; what is pending of them is to be applied now (also those an earlier
        attempt stored, when the cloud gave up waiting for its answer)."""
        await records.store_documents(self.uow_factory, store, entries, self.ctx)
        where = {e.document_uuid: i for e, i in zip(entries, indexes, strict=True)}
        uuids = [u for u in where if u is not None]
        for inbox_id, uuid in await records.pending(self.uow_factory, store.evotor_uuid, uuids):
            received.pending[inbox_id] = where[uuid]
        return received

    # --- applying --------------------------------------------------------------------------

    async def apply_all(self, ids: Sequence[int]) -> dict[int, str]:
        """Applies each document once; by inbox id, why those refused for good were."""
        failures: dict[int, str] = {}
        for inbox_id in ids:
            error = await self.apply(inbox_id)
            if error is not None:
                failures[inbox_id] = error
        return failures

    async def apply(self, inbox_id: int) -> str | None:
        """None when applied, or held by another applier, or to be tried again later."""
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

    async def _apply(self, document: TillDocument, store: Store) -> dict[str, Any]:
        if document.kind is TillDocumentKind.IGNORED:
            return {"ignored": document.evotor_type}
        matched, unmatched = await self._match(document.stock_lines)
        if not matched and not unmatched:
            return {"stock_lines": 0}  # free-price lines only: nothing moves
        closed_at = document.closed_at
        assert closed_at is not None  # readers require it of documents that move stock
        pos_id = (document.device_uuid or document.device_id or "evotor")[:64]
        shift = document.session_uuid or document.session_number
        kept = tuple(unmatched)
        if document.kind is TillDocumentKind.SALE:
            sale = RecordPosSale(store.code, pos_id, document.uuid, _lines(matched), closed_at,
                                 True, shift, kept)  # fmt: skip
            return _dict(await pos.record_pos_sale(self.uow_factory, sale, self.ctx))
        if document.kind is TillDocumentKind.CUSTOMER_RETURN:
            back = RecordPosReturn(store.code, pos_id, document.uuid,
                                   document.base_document_uuid, _lines(matched), closed_at,
                                   True, shift, kept)  # fmt: skip
            return _dict(await pos.record_pos_return(self.uow_factory, back, self.ctx))
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


_STOCK = {
    TillDocumentKind.GOODS_RECEIPT: stock.receive,
    TillDocumentKind.WRITE_OFF: stock.write_off,
    TillDocumentKind.STOCK_COUNT: stock.count,
    TillDocumentKind.SUPPLIER_RETURN: stock.return_to_supplier,
}


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
        dumps(raw),
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
    return InboxEntry(store_uuid, None, feed, dumps(raw), evotor_type, None, "rejected", why)


def _read(document: InboxDocument) -> TillDocument:
    """The stored body read again, by the reader of the feed that brought it."""
    raw = loads(document.entry.body)
    if document.entry.feed == Feed.RECEIPTS.value:
        receipt = read_receipt_event(raw).receipt
        if receipt is None:
            raise _Refused("a receipt event without a receipt")
        return receipt
    return read_document(raw, document.entry.store_uuid)
