"""The Evotor channel's use cases over its own state (ports.EvotorRecords), one transaction
each: the inbox of till documents (stored before the cloud is answered, applied once per
store and document uuid), product matching, entities kept, products created on tills, the
catch-up watermark, linked accounts. The channel (channels/evotor/) reads Evotor's payloads
and turns documents into the commands of services/pos.py and services/stock.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from ..domain.types import Role, Unit
from .context import Context
from .orders import UowFactory
from .ports import (
    InboxDocument,
    InboxEntry,
    Product,
    ReviewItem,
    StockLevel,
    Store,
    Watermark,
)

CLAIM_SECONDS = 120  # an applier that dies lets go of its document after this
DONE = "done"
FAILED = "failed"
REJECTED = "rejected"
FAILED_DOCUMENT = "failed_document"
UNKNOWN_TILL_PRODUCT = "unknown_till_product"


def linked_store(stores: Sequence[Store], evotor_uuid: str) -> Store | None:
    return next((s for s in stores if s.active and s.evotor_uuid == evotor_uuid), None)


async def store_documents(
    uow_factory: UowFactory, store: Store | None, entries: Sequence[InboxEntry], ctx: Context
) -> list[tuple[int, str]]:
    """Stores what the cloud sent, in the request's own transaction, before it is answered:
    (inbox id, uuid) of those pending now, newly stored or stored by an earlier attempt the
    cloud gave up waiting for. Unreadable ones are kept (rejected) and listed for review."""
    now = ctx.clock()
    async with uow_factory() as uow:
        await uow.evotor.store_documents(entries, now)
        for entry in entries:
            if entry.state == REJECTED:
                await uow.add_review(_failed(store, entry, entry.error or "unreadable"), now)
        uuids = [e.document_uuid for e in entries if e.document_uuid]
        store_uuid = store.evotor_uuid if store else None
        waiting = await uow.evotor.pending(store_uuid, uuids)
        await uow.commit()
    return waiting


async def due_documents(uow_factory: UowFactory, ctx: Context, limit: int = 200) -> list[int]:
    async with uow_factory() as uow:
        return await uow.evotor.due_documents(ctx.clock(), limit)


async def claim(uow_factory: UowFactory, inbox_id: int, ctx: Context) -> InboxDocument | None:
    now = ctx.clock()
    async with uow_factory() as uow:
        found = await uow.evotor.claim_document(
            inbox_id, now, now + timedelta(seconds=CLAIM_SECONDS)
        )
        await uow.commit()
    return found


async def finish(
    uow_factory: UowFactory,
    document: InboxDocument,
    store: Store | None,
    result: dict[str, Any] | None,
    error: str | None,
    ctx: Context,
) -> None:
    """Applied (`error` None), or refused for good: kept as failed and listed for review."""
    now = ctx.clock()
    async with uow_factory() as uow:
        state = DONE if error is None else FAILED
        await uow.evotor.finish_document(document.id, state, result, error, now)
        if error is not None:
            await uow.add_review(_failed(store, document.entry, error), now)
        await uow.commit()


def _failed(store: Store | None, entry: InboxEntry, error: str) -> ReviewItem:
    return ReviewItem(
        kind=FAILED_DOCUMENT,
        store_id=store.id if store else None,
        document_type=f"evotor_{(entry.evotor_type or 'document').lower()}"[:32],
        document_id=entry.document_uuid or "(unreadable)",
        reason=error[:1000],
        detail={"store_uuid": entry.store_uuid, "feed": entry.feed},
    )


# --- products --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TillProductRef:
    """How a till names a product: the Evotor uuid (the hub's published one, or a 1C Ид),
    its code (the hub's SKU), its barcode."""

    uuid: str | None
    code: str | None
    barcode: str | None


async def match_products(
    uow_factory: UowFactory, refs: Sequence[TillProductRef]
) -> list[Product | None]:
    """By the uuid the hub published (or a till product matched before), else by 1C Ид equal
    to the uuid, else by SKU equal to the code, else by barcode."""
    uuids = sorted({r.uuid for r in refs if r.uuid})
    codes = sorted({r.code for r in refs if r.code})
    barcodes = sorted({r.barcode for r in refs if r.barcode})
    async with uow_factory() as uow:
        mapped = await uow.evotor.products_by_evotor_uuid(uuids)
        xml_ids = uuids + [u.upper() for u in uuids]
        found = await uow.products_by_refs(sorted(set(mapped.values())), codes, xml_ids)
        by_barcode = await uow.evotor.products_by_barcode(barcodes)
    by_id = {p.id: p for p in found}
    by_xml = {p.xml_id.lower(): p for p in found}
    by_sku = {p.sku: p for p in found}
    result: list[Product | None] = []
    for ref in refs:
        product = None
        if ref.uuid:
            product = by_id.get(mapped.get(ref.uuid, 0)) or by_xml.get(ref.uuid)
        if product is None and ref.code:
            product = by_sku.get(ref.code)
        if product is None and ref.barcode:
            product = by_barcode.get(ref.barcode)
        result.append(product)
    return result


def takes_quantity(product: Product, quantity: Any) -> bool:
    """A piece product takes whole pieces only (a till may weigh what the hub counts)."""
    return Unit(product.unit) is not Unit.PCS or quantity == quantity.to_integral_value()


@dataclass(frozen=True, slots=True)
class TillCreatedProduct:
    uuid: str
    name: str
    code: str | None
    barcodes: tuple[str, ...]


async def products_created_on_a_till(
    uow_factory: UowFactory,
    store: Store,
    created: Sequence[TillCreatedProduct],
    ctx: Context,
) -> tuple[list[str], list[str]]:
    """Each matched by SKU (its code) or by one of its barcodes and remembered under its
    uuid, so that its sales count; the others are listed for review. (matched, unmatched)."""
    owners: list[int] = []
    refs: list[TillProductRef] = []
    for index, product in enumerate(created):
        for barcode in product.barcodes or (None,):
            owners.append(index)
            refs.append(TillProductRef(None, product.code, barcode))
    found = await match_products(uow_factory, refs)
    hits: dict[int, Product] = {}
    for owner, hit in zip(owners, found, strict=True):
        if hit is not None:
            hits.setdefault(owner, hit)
    now = ctx.clock()
    matched, unknown = [], []
    async with uow_factory() as uow:
        for index, product in enumerate(created):
            if index in hits:
                await uow.evotor.map_till_product(
                    product.uuid, hits[index].id, store.evotor_uuid, now
                )
                matched.append(product.uuid)
                continue
            unknown.append(product.uuid)
            await uow.add_review(
                ReviewItem(
                    kind=UNKNOWN_TILL_PRODUCT,
                    store_id=store.id,
                    document_type="evotor_product",
                    document_id=product.uuid,
                    reason="created on a till; no product with this SKU or barcode",
                    commodity_uuid=product.uuid,
                    code=product.code,
                    barcode=product.barcodes[0] if product.barcodes else None,
                    name=product.name,
                ),
                now,
            )
        await uow.commit()
    return matched, unknown


async def product_by_barcode(
    uow_factory: UowFactory, barcode: str, ctx: Context
) -> tuple[Product, str] | None:
    """The product and the Evotor uuid it is published under."""
    async with uow_factory() as uow:
        found = (await uow.evotor.products_by_barcode([barcode])).get(barcode)
        if found is None:
            return None
        uuid = (await uow.evotor.evotor_uuids([found.id], ctx.clock()))[found.id]
        await uow.commit()
    return found, uuid


# --- stores, devices, employees ----------------------------------------------------------------


async def keep_entities(
    uow_factory: UowFactory,
    kind: str,
    items: Sequence[tuple[str, str | None, str | None, str]],
    ctx: Context,
) -> None:
    async with uow_factory() as uow:
        await uow.evotor.keep_entities(kind, items, ctx.clock())
        await uow.commit()


# --- the catch-up watermark ------------------------------------------------------------------


async def lease_watermark(
    uow_factory: UowFactory, store_uuid: str, start: datetime, lease: timedelta, ctx: Context
) -> Watermark | None:
    now = ctx.clock()
    async with uow_factory() as uow:
        found = await uow.evotor.lease_watermark(store_uuid, start, now, now + lease)
        await uow.commit()
    return found


async def move_watermark(
    uow_factory: UowFactory, store_uuid: str, closed_before: datetime, ctx: Context
) -> None:
    async with uow_factory() as uow:
        await uow.evotor.move_watermark(store_uuid, closed_before, ctx.clock())
        await uow.commit()


# --- accounts ----------------------------------------------------------------------------------


async def link_account(uow_factory: UowFactory, user_id: str, ctx: Context) -> str:
    """The token the cloud is to call with for this Evotor account: a new hub token of role
    evotor, remembered with the account (shown once, as every token)."""
    now = ctx.clock()
    async with uow_factory() as uow:
        token_id, token = await uow.create_token(f"evotor account {user_id}", Role.EVOTOR, now)
        await uow.evotor.link_account(user_id, token_id, now)
        await uow.commit()
    return token


async def keep_cloud_token(uow_factory: UowFactory, user_id: str, token: str, ctx: Context) -> None:
    async with uow_factory() as uow:
        await uow.evotor.keep_cloud_token(user_id, token, ctx.clock())
        await uow.commit()


async def cloud_token(uow_factory: UowFactory) -> str | None:
    async with uow_factory() as uow:
        return await uow.evotor.cloud_token()


# --- publishing to the tills ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Nomenclature:
    """A product as a linked store's tills are to know it: its Evotor uuid (the same at every
    store, for good) and the figure a till may sell, never below zero."""

    product: Product
    uuid: str
    available: Decimal


def linked_stores(stores: Sequence[Store]) -> list[Store]:
    return [s for s in stores if s.active and s.evotor_uuid]


async def nomenclature(
    uow_factory: UowFactory, store: Store, product_ids: Sequence[int], ctx: Context
) -> list[Nomenclature]:
    ids = sorted(set(product_ids))
    async with uow_factory() as uow:
        found = await uow.products_by_refs(ids, [], [])
        uuids = await uow.evotor.evotor_uuids([p.id for p in found], ctx.clock())
        levels = {r.product_id: r for r in await uow.read_stock(ids, [store.id])}
        await uow.commit()
    return [
        Nomenclature(p, uuids[p.id], _sellable(levels.get(p.id)))
        for p in sorted(found, key=lambda p: p.id)
    ]


def _sellable(level: StockLevel | None) -> Decimal:
    return max(level.on_hand - level.reserved, Decimal(0)) if level else Decimal(0)


def sellable(on_hand: Decimal, reserved: Decimal) -> Decimal:
    """What a till may sell: on hand less what orders hold, never below zero."""
    return max(on_hand - reserved, Decimal(0))


async def product_ids(uow_factory: UowFactory, after_id: int, limit: int) -> list[int]:
    async with uow_factory() as uow:
        return await uow.evotor.product_ids(after_id, limit)


async def unpublished(
    uow_factory: UowFactory, store_uuid: str, product_ids: Sequence[int]
) -> list[int]:
    async with uow_factory() as uow:
        done = await uow.evotor.published(store_uuid, product_ids)
    return sorted(set(product_ids) - done)


async def mark_published(
    uow_factory: UowFactory, store_uuid: str, product_ids: Sequence[int], ctx: Context
) -> None:
    async with uow_factory() as uow:
        await uow.evotor.mark_published(store_uuid, product_ids, ctx.clock())
        await uow.commit()


async def published_uuids(
    uow_factory: UowFactory, product_ids: Sequence[int], ctx: Context
) -> dict[int, str]:
    async with uow_factory() as uow:
        found = await uow.evotor.evotor_uuids(product_ids, ctx.clock())
        await uow.commit()
    return found
