"""Site orders in: bring the hub's order in line with a Bitrix site order (channels/bitrix maps
`sale.order.get` to a SyncSiteOrder), one transaction each, once per (site order, site version).

- A new site order is created (channel online, external id = the site order id, its account
  number kept on the link). It exists on the site, so it is recorded even when it cannot be
  held in full: what can be held is held, and the order gets attention `site_order_short`
  with the lines (the bitrix sink moves the site order to `short_status`). Lines or a pickup
  store the hub cannot map are recorded as attention `site_order_unmapped`.
- A later version applies what changed: the basket (holds re-planned atomically: the order's
  holds released and the new basket held in the same transaction, under the same conditional
  updates, so nothing is oversold), paid, confirmed, cancelled, shipped, completed.
- The hub's own orders mirrored to the site (xmlId = a hub order id) are recognised and left
  alone; a deleted site order cancels its hub order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

from ..channels.bitrix.mapping import StatusAction, SyncSiteOrder, looks_like_hub_order_id
from ..domain.allocation import Allocation, LineRequest, allocate_available, merge_by_stock_row
from ..domain.errors import AlreadyRecorded, InvalidTransition, StockRace
from ..domain.events import dec
from ..domain.orders import LineHold, Order, OrderLine, applies_safety_stock
from ..domain.quantities import money
from ..domain.types import (
    Channel,
    Fulfillment,
    HoldReason,
    OrderStatus,
    PaymentStatus,
    Source,
)
from .attention import close_attention, raise_attention
from .context import Context
from .ids import uuid7
from .lookup import locked_order
from .orders import (
    PLACEMENT_ATTEMPTS,
    UowFactory,
    mark_confirmed,
    mark_paid,
    release_all,
    transition,
)
from .ports import OrderLineRow, Product, SiteLink, StockChange, Store, UnitOfWork

SHORT = "site_order_short"
UNMAPPED = "site_order_unmapped"
CONFLICT = "site_order_conflict"
LINKED, OWN, DELETED = "linked", "own", "deleted"
SYNC_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Synced:
    """What syncing a site order did: created, updated, unchanged, own, deleted."""

    outcome: str
    order_id: str | None = None


async def is_applied(uow_factory: UowFactory, site_order_id: str, version: int) -> bool:
    """Whether the hub has applied this version of the site order already."""
    async with uow_factory() as uow:
        link = await uow.bitrix.link(site_order_id)
    return link is not None and link.site_version >= version


async def applied_versions(
    uow_factory: UowFactory, site_order_ids: Sequence[str]
) -> dict[str, int]:
    async with uow_factory() as uow:
        return await uow.bitrix.applied_versions(site_order_ids)


async def sync_site_order(
    uow_factory: UowFactory, sync: SyncSiteOrder, ctx: Context, inbox_id: int | None = None
) -> Synced:
    """Creates the hub order or applies the change; a version the hub has applied already
    (the same event twice, an event and the poll) changes nothing. The inbox event that
    brought it, if any, is marked done in the same transaction."""
    for _ in range(SYNC_ATTEMPTS):
        try:
            return await _sync_once(uow_factory, sync, ctx, inbox_id)
        except (AlreadyRecorded, StockRace):
            continue  # a concurrent worker created it first, or took the stock planned
    raise StockRace(f"site order {sync.external_id}: could not be recorded, try again")


async def _sync_once(
    uow_factory: UowFactory, sync: SyncSiteOrder, ctx: Context, inbox_id: int | None
) -> Synced:
    async with uow_factory() as uow:
        now = ctx.clock()
        if inbox_id is not None:
            await uow.bitrix.finish_event(inbox_id, "done", None, now)
        link = await uow.bitrix.link(sync.external_id, lock=True)
        if link is not None and link.site_version >= sync.version:
            if inbox_id is not None:
                await uow.commit()
            return Synced("unchanged", link.order_id)
        if link is None or link.order_id is None:
            synced = await _first_sight(uow, sync, link, ctx)
        else:
            order = await locked_order(uow, link.order_id)
            await _apply_changes(uow, order, sync, ctx)
            synced = Synced("updated", order.id)
        state = LINKED if synced.order_id is not None else synced.outcome
        await uow.bitrix.save_link(
            SiteLink(
                sync.external_id,
                synced.order_id,
                sync.version,
                state,
                sync.account_number,
                sync.date_update,
            ),
            now,
        )
        await uow.commit()
        return synced


async def _first_sight(
    uow: UnitOfWork, sync: SyncSiteOrder, link: SiteLink | None, ctx: Context
) -> Synced:
    if link is not None:  # the hub's own order, or one deleted first: stays so
        return Synced(link.state)
    if looks_like_hub_order_id(sync.xml_id):
        assert sync.xml_id is not None
        if await uow.get_order(sync.xml_id) is not None:
            return Synced(OWN)
    order = await _create(uow, sync, ctx)
    return Synced("created", order.id)


# --- creating ---------------------------------------------------------------------------------


async def _create(uow: UnitOfWork, sync: SyncSiteOrder, ctx: Context) -> Order:
    now = ctx.clock()
    stores = await uow.stores()
    candidates, store = _candidates(sync, stores)
    if sync.cancelled:  # cancelled before the hub saw it: recorded, nothing held
        candidates = []
    products, missing = await _products(uow, sync)
    order = Order(
        id=uuid7(),
        channel=Channel.ONLINE,
        source=Source.ORDER,
        fulfillment=sync.fulfillment,
        status=OrderStatus.PLACED,
        payment_status=PaymentStatus.UNPAID,
        store_id=store.id if store is not None else None,
        lines=_lines(sync, products),
        created_at=now,
        currency=sync.currency,
        customer=dict(sync.customer),
        external_id=sync.external_id,
        comment=_comment(sync),
        hold_expires_at=now + timedelta(minutes=ctx.holds.minutes(Channel.ONLINE)),
        updated_at=now,
    )
    order.number = await uow.next_order_number()
    short = await _place(uow, order, candidates)
    unmapped = [{"code": p.code, **p.detail} for p in sync.problems] + missing
    if unmapped:
        await raise_attention(uow, order, UNMAPPED, {"problems": unmapped}, now)
    if short and not sync.cancelled:
        await raise_attention(uow, order, SHORT, _short_detail(sync, short), now)
    await _apply_flags(uow, order, sync, ctx)
    return order


def _candidates(sync: SyncSiteOrder, stores: list[Store]) -> tuple[list[Store], Store | None]:
    if sync.fulfillment is Fulfillment.DELIVERY:
        serving = [s for s in stores if s.active and s.serves_online]
        return sorted(serving, key=lambda s: (s.online_priority, s.id)), None
    store = next((s for s in stores if s.active and s.code == sync.store_code), None)
    return ([store] if store is not None else []), store


async def _products(
    uow: UnitOfWork, sync: SyncSiteOrder
) -> tuple[list[Product | None], list[dict[str, str]]]:
    """The hub product of each mapped line (inactive ones too: the site sold it)."""
    xml_ids = sorted({x.product.xml_id for x in sync.lines if x.product.xml_id})
    found = {p.xml_id: p for p in await uow.products_by_refs([], [], xml_ids)}
    products = [found.get(x.product.xml_id or "") for x in sync.lines]
    missing = [
        {"code": "unknown_product", "product_xml_id": x.product.xml_id or ""}
        for x, p in zip(sync.lines, products, strict=True)
        if p is None
    ]
    return products, missing


def _lines(sync: SyncSiteOrder, products: Sequence[Product | None]) -> list[OrderLine]:
    lines: list[OrderLine] = []
    for line, product in zip(sync.lines, products, strict=True):
        if product is None:
            continue
        price = line.price if line.price is not None else (product.price or Decimal(0))
        lines.append(
            OrderLine(len(lines) + 1, product.id, line.quantity, money(price, "price"), product.sku)
        )
    return lines


def _comment(sync: SyncSiteOrder) -> str:
    note = f"site order {sync.external_id} (account number {sync.account_number})"
    return f"{note}: {sync.comment}" if sync.comment else note


async def _place(uow: UnitOfWork, order: Order, candidates: list[Store]) -> list[dict[str, Any]]:
    """Writes the order with as much held as the stores have; the lines held short."""
    store_ids = [s.id for s in candidates]
    safe = applies_safety_stock(order.channel)
    safety = {s.id: s.safety_stock if safe else Decimal(0) for s in candidates}
    for _ in range(PLACEMENT_ATTEMPTS):
        allocations, short = await _plan(uow, order, store_ids, safety)
        _show_holds(order, allocations)
        try:
            await uow.place_order(order, allocations, safety, None)
            return short
        except StockRace:
            continue
    raise StockRace(f"order {order.id}: the stock kept changing while it was held")


async def _plan(
    uow: UnitOfWork, order: Order, store_ids: list[int], safety: dict[int, Decimal]
) -> tuple[list[Allocation], list[dict[str, Any]]]:
    requests = [LineRequest(x.line_no, x.product_id, x.quantity, x.sku) for x in order.lines]
    if not requests or not store_ids:
        return [], [_unheld(r) for r in requests]
    stock = await uow.read_stock(sorted({x.product_id for x in order.lines}), store_ids)
    available = {(r.product_id, r.store_id): r.available - safety[r.store_id] for r in stock}
    allocations, short = allocate_available(requests, store_ids, available)
    return allocations, [dict(x) for x in short]


def _unheld(request: LineRequest) -> dict[str, Any]:
    return {
        "line": request.line_no,
        "product": request.label,
        "requested": dec(request.quantity),
        "held": "0",
    }


def _show_holds(order: Order, allocations: list[Allocation]) -> None:
    for line in order.lines:
        line.holds = [
            LineHold(a.store_id, a.quantity) for a in allocations if a.line_no == line.line_no
        ]


def _short_detail(sync: SyncSiteOrder, short: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "site_order_id": sync.external_id,
        "account_number": sync.account_number,
        "lines": short,
    }


# --- changes of a known order -----------------------------------------------------------------


async def _apply_changes(uow: UnitOfWork, order: Order, sync: SyncSiteOrder, ctx: Context) -> None:
    if order.status is OrderStatus.PLACED and not sync.cancelled:
        products, missing = await _products(uow, sync)
        wanted = _lines(sync, products)
        if _basket_of(wanted) != _basket_of(order.lines):
            await _replan(uow, order, sync, wanted, missing, ctx)
    await _apply_flags(uow, order, sync, ctx)


def _over_the_lines_it_had(had: Sequence[OrderLine], wanted: list[OrderLine]) -> list[OrderLine]:
    """The edited basket numbered over the order's lines: a product the order had keeps its
    line (its first ones, in order), a product it did not have takes the next free number,
    so a line's product never changes and the holds of its history stay under it."""
    lines_of: dict[int, list[int]] = {}
    for line in had:
        lines_of.setdefault(line.product_id, []).append(line.line_no)
    next_no = max((x.line_no for x in had), default=0) + 1
    numbered: list[OrderLine] = []
    for line in wanted:
        free = lines_of.get(line.product_id)
        if free:
            line_no = free.pop(0)
        else:
            line_no, next_no = next_no, next_no + 1
        numbered.append(replace(line, line_no=line_no, holds=[]))
    return sorted(numbered, key=lambda x: x.line_no)


def _basket_of(lines: Sequence[OrderLine]) -> list[tuple[int, Decimal, Decimal]]:
    """What the customer is buying: lines dropped by an earlier edit (quantity 0) left out."""
    return sorted((x.product_id, x.quantity, x.price) for x in lines if x.quantity > 0)


async def _replan(
    uow: UnitOfWork,
    order: Order,
    sync: SyncSiteOrder,
    wanted: list[OrderLine],
    missing: list[dict[str, str]],
    ctx: Context,
) -> None:
    """The basket was edited on the site: the order's holds are released and the new basket
    held, in this one transaction (the conditional updates keep every unit counted)."""
    now = ctx.clock()
    wanted = _over_the_lines_it_had(order.lines, wanted)
    await release_all(uow, order, now)
    await uow.bitrix.replace_lines(
        order.id, [OrderLineRow(x.line_no, x.product_id, x.quantity, x.price) for x in wanted]
    )
    order.lines = wanted
    candidates, _ = _candidates(sync, await uow.stores())
    safe = applies_safety_stock(order.channel)
    safety = {s.id: s.safety_stock if safe else Decimal(0) for s in candidates}
    allocations, short = await _plan(uow, order, [s.id for s in candidates], safety)
    held: list[Allocation] = []
    for product_id, store_id, qty in merge_by_stock_row(allocations):
        change = StockChange(
            product_id, store_id, qty, HoldReason.HOLD, "order", order.id, now, now
        )
        if await uow.hold_stock(change, safety[store_id]) is None:
            raise StockRace("a planned store no longer has the units")  # the worker retries
        held.extend(a for a in allocations if (a.product_id, a.store_id) == (product_id, store_id))
    expires = order.hold_expires_at if order.payment_status is PaymentStatus.UNPAID else None
    await uow.bitrix.insert_holds(order.id, held, now, expires)
    _show_holds(order, held)
    total = sum((x.amount for x in wanted), Decimal(0))
    await uow.set_order_fields(order.id, total=total, updated_at=now)
    order.version += 1
    stale = [x.id for x in order.attention if x.code in (SHORT, UNMAPPED)]
    if stale:
        await close_attention(uow, order, stale, "the basket was edited on the site", now)
    problems = [{"code": p.code, **p.detail} for p in sync.problems] + missing
    if problems:
        await raise_attention(uow, order, UNMAPPED, {"problems": problems}, now)
    if short:
        await raise_attention(uow, order, SHORT, _short_detail(sync, short), now)


async def _apply_flags(uow: UnitOfWork, order: Order, sync: SyncSiteOrder, ctx: Context) -> None:
    """Paid, confirmed, cancelled, shipped, completed, as the site now says; a change the hub
    cannot make (paying an expired order) is recorded as attention, not refused."""
    now = ctx.clock()
    steps: list[tuple[str, Any]] = []
    if sync.paid and order.payment_status is PaymentStatus.UNPAID:
        steps.append(("paid", lambda: mark_paid(uow, order, now)))
    if sync.confirmed and order.confirmed_at is None and order.status is OrderStatus.PLACED:
        steps.append(("confirmed", lambda: mark_confirmed(uow, order, ctx, "site")))
    target = _target(sync)
    if target is not None and target is not order.status:
        steps.append((target.value, lambda: transition(uow, order, target, now, "site")))
    for name, step in steps:
        try:
            await step()
        except InvalidTransition as refused:
            detail = {"site_order_id": sync.external_id, "site": name, **refused.details}
            await raise_attention(uow, order, CONFLICT, detail, now)


def _target(sync: SyncSiteOrder) -> OrderStatus | None:
    if sync.cancelled:
        return OrderStatus.CANCELLED
    return {
        StatusAction.SHIPPED: OrderStatus.SHIPPED,
        StatusAction.COMPLETED: OrderStatus.COMPLETED,
    }.get(sync.status_action)  # type: ignore[arg-type]


# --- a deleted site order ---------------------------------------------------------------------


async def site_order_deleted(uow_factory: UowFactory, site_order_id: str, ctx: Context) -> Synced:
    """The site order is gone (it cannot be read any more): its hub order is cancelled."""
    async with uow_factory() as uow:
        now = ctx.clock()
        link = await uow.bitrix.link(site_order_id, lock=True)
        if link is None or link.order_id is None:
            version = link.site_version if link is not None else 0
            await uow.bitrix.save_link(SiteLink(site_order_id, None, version, DELETED), now)
            await uow.commit()
            return Synced(DELETED)
        order = await locked_order(uow, link.order_id)
        if order.status is OrderStatus.PLACED:
            await transition(uow, order, OrderStatus.CANCELLED, now, "site:deleted")
        elif order.status is not OrderStatus.CANCELLED and order.status is not OrderStatus.EXPIRED:
            detail = {
                "site_order_id": site_order_id,
                "site": "deleted",
                "status": order.status.value,
            }
            await raise_attention(uow, order, CONFLICT, detail, now)
        await uow.bitrix.save_link(
            SiteLink(
                site_order_id,
                order.id,
                link.site_version,
                DELETED,
                link.account_number,
                link.date_update,
            ),
            now,
        )
        await uow.commit()
        return Synced(DELETED, order.id)
