"""The stock of a completed till sale: the customer has left with the goods, so the sale is
recorded in full, whatever the ledger says (domain/displacement.py says in which order).

1. Free units first: one conditional deduct per line (`on_hand - reserved >= n`), the usual
   case, inside a savepoint.
2. When a line is short, the savepoint is rolled back (on PostgreSQL that also lets go of the
   stock rows it locked) and the sale is taken again, displacing holds at its store: a
   delivery order's hold moves to another store that serves online and has the units, what
   cannot move is cut back and its order gets attention `stock_taken_by_till_sale`. What is
   still missing takes `on_hand` below zero.

Locks: an order row before any stock row, as everywhere. The holds at the store are read
first, their orders locked in id order, then each line's stock rows in (product, store)
order. A hold that shows up under the stock lock for an order not locked yet (a new order
placed meanwhile) is locked with NOWAIT; if that order is busy, the sale rolls back to its
savepoint and starts again knowing it. So a till sale never waits for an order while it
holds a stock row (a cancel holds its order and waits for the stock row): no deadlock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..domain import events
from ..domain.displacement import (
    Displacement,
    HeldUnits,
    OtherStore,
    plan,
    units_to_displace,
)
from ..domain.errors import StockRace
from ..domain.events import dec
from ..domain.orders import Order, applies_safety_stock
from ..domain.types import (
    Fulfillment,
    HoldReason,
    HoldState,
    MovementReason,
    OrderStatus,
    PaymentStatus,
    Source,
)
from .attention import raise_attention
from .ports import StockChange, Store, StoreHold, UnitOfWork

STOCK_TAKEN = "stock_taken_by_till_sale"
ATTEMPTS = 8


@dataclass(frozen=True, slots=True)
class SaleRef:
    """The sale as the holds it displaces and the orders' attention name it."""

    store: Store
    pos_id: str
    transaction_id: str
    business_time: datetime

    @property
    def document_id(self) -> str:
        return f"{self.pos_id}:{self.transaction_id}"

    def detail(self) -> dict[str, Any]:
        return {
            "store": self.store.code,
            "pos_id": self.pos_id,
            "transaction_id": self.transaction_id,
            "business_time": self.business_time.isoformat(),
        }


@dataclass(slots=True)
class Taken:
    """What recording the sale did besides taking free units."""

    displaced: list[dict[str, Any]] = field(default_factory=list)
    negative: list[dict[str, Any]] = field(default_factory=list)


async def take_for_sale(
    uow: UnitOfWork,
    sale: SaleRef,
    totals: list[tuple[int, Decimal]],
    stores: list[Store],
    now: datetime,
) -> Taken:
    """`totals`: (product, units) in product order. Never refuses for stock."""
    changes = [_sold(sale, product_id, qty, now) for product_id, qty in totals]
    levels = {
        r.product_id: r
        for r in await uow.read_stock([c.product_id for c in changes], [sale.store.id])
    }
    if any(
        (lv := levels.get(c.product_id)) is None or lv.on_hand - lv.reserved < c.quantity
        for c in changes
    ):  # short already when read: no need to try the free units first
        return await _displacing(uow, sale, changes, stores, now)
    savepoint = await uow.savepoint()
    for change in changes:
        if await uow.deduct_stock(change) is None:
            await savepoint.rollback()
            return await _displacing(uow, sale, changes, stores, now)
    await savepoint.commit()
    return Taken()


def _sold(sale: SaleRef, product_id: int, qty: Decimal, now: datetime) -> StockChange:
    return StockChange(
        product_id,
        sale.store.id,
        qty,
        MovementReason.POS_SALE,
        "pos_sale",
        sale.document_id,
        sale.business_time,
        now,
    )


def _other_stores(sale: SaleRef, stores: list[Store]) -> list[Store]:
    """Where a delivery hold may move: the other stores that serve online, by priority."""
    serving = [s for s in stores if s.active and s.serves_online and s.id != sale.store.id]
    return sorted(serving, key=lambda s: (s.online_priority, s.id))


async def _displacing(
    uow: UnitOfWork,
    sale: SaleRef,
    changes: list[StockChange],
    stores: list[Store],
    now: datetime,
) -> Taken:
    others = _other_stores(sale, stores)
    locked: set[str] = set()
    for _ in range(ATTEMPTS):
        held = await uow.holds_at(sale.store.id, [c.product_id for c in changes])
        locked |= await _likely_displaced(uow, sale, changes, held, others)
        savepoint = await uow.savepoint()
        try:
            await uow.lock_orders(sorted(locked))
            taken = Taken()
            for change in changes:
                movable = any(
                    h.product_id == change.product_id and h.fulfillment is Fulfillment.DELIVERY
                    for h in held
                )
                line = _Line(sale, change, others, movable, stores)
                await line.take(uow, locked, taken, now)
            await savepoint.commit()
            return taken
        except StockRace as race:
            await savepoint.rollback()
            locked |= set(race.details.get("orders", ()))
    raise StockRace(
        "holds at the store kept changing while the till sale was recorded; try again",
        store=sale.store.code,
    )


@dataclass
class _Line:
    sale: SaleRef
    change: StockChange
    others: list[Store]
    movable: bool  # delivery holds were seen: the other stores' rows are locked too
    stores: list[Store]

    async def take(self, uow: UnitOfWork, locked: set[str], taken: Taken, now: datetime) -> None:
        here = self.sale.store.id
        reachable = self.others if self.movable else []
        levels = await uow.lock_levels(
            self.change.product_id, sorted({here, *(s.id for s in reachable)})
        )
        level = levels.get(here)
        on_hand = level.on_hand if level else Decimal(0)
        reserved = level.reserved if level else Decimal(0)
        need = units_to_displace(on_hand, reserved, self.change.quantity)
        if need > 0:
            holds = await uow.holds_at(here, [self.change.product_id])
            delivery = any(h.fulfillment is Fulfillment.DELIVERY for h in holds)
            if self.others and not self.movable and delivery:
                # A delivery hold appeared: the other stores' rows must be locked first.
                raise StockRace("a delivery hold appeared", orders=[])
            free = [
                OtherStore(s.id, lv.on_hand - lv.reserved, s.safety_stock)
                for s in reachable
                if (lv := levels.get(s.id)) is not None
            ]
            chosen = plan(need, [_held(h) for h in holds], free)
            by_id = {h.hold_id: h for h in holds}
            await _lock_strangers(uow, [by_id[d.hold.hold_id] for d in chosen], locked)
            await self._displace(uow, by_id, chosen, taken, now)
        row = await uow.take_sold(self.change)
        if row.on_hand < 0:
            taken.negative.append({"product_id": row.product_id, "on_hand": dec(row.on_hand)})

    async def _displace(
        self,
        uow: UnitOfWork,
        holds: dict[int, StoreHold],
        chosen: list[Displacement],
        taken: Taken,
        now: datetime,
    ) -> None:
        product_id, here = self.change.product_id, self.sale.store.id
        for d in chosen:
            for store_id, qty in d.moved:
                safety = self._safety(store_id) if d.hold.safety else Decimal(0)
                change = StockChange(
                    product_id, store_id, qty, HoldReason.HOLD, "order", d.hold.order_id, now, now
                )
                if await uow.hold_stock(change, safety) is None:
                    raise StockRace("a store the plan moved a hold to lost the units", orders=[])
        released = sum((d.taken for d in chosen), Decimal(0))
        change = StockChange(
            product_id,
            here,
            released,
            HoldReason.DISPLACE,
            "pos_sale",
            self.sale.document_id,
            now,
            now,
        )
        if released > 0 and await uow.release_hold(change) is None:
            raise AssertionError("reserved is below the holds displaced")
        for d in chosen:
            hold = holds[d.hold.hold_id]
            await uow.close_hold(hold.hold_id, HoldState.DISPLACED, now)
            for store_id, qty in d.moved:
                await uow.carry_hold(hold, store_id, qty, now)
            if d.kept > 0:
                await uow.carry_hold(hold, here, d.kept, now)
            taken.displaced.append(await self._tell_the_order(uow, hold, d, now))

    def _safety(self, store_id: int) -> Decimal:
        return next(s.safety_stock for s in self.stores if s.id == store_id)

    def _code(self, store_id: int) -> str:
        return next((s.code for s in self.stores if s.id == store_id), str(store_id))

    async def _tell_the_order(
        self, uow: UnitOfWork, hold: StoreHold, d: Displacement, now: datetime
    ) -> dict[str, Any]:
        """The order's version goes up (where its stock is changed); a move is an event, a
        cut is attention."""
        await uow.set_order_fields(hold.order_id, updated_at=now)
        moved = [{"store": self._code(s), "quantity": dec(q)} for s, q in d.moved]
        summary: dict[str, Any] = {
            "order_id": hold.order_id,
            "number": hold.number,
            "line": hold.line_no,
            "product_id": hold.product_id,
            "sku": hold.sku,
            "store": self.sale.store.code,
            "moved": moved,
            "cut": dec(d.cut),
        }
        if moved:
            await uow.add_event(
                events.ORDER_HOLDS_MOVED,
                events.AGGREGATE_ORDER,
                hold.order_id,
                {**summary, "sale": self.sale.detail()},
                now,
            )
        if d.cut > 0:
            detail = {
                "line": hold.line_no,
                "product": hold.product_id,
                "sku": hold.sku,
                "store": self.sale.store.code,
                "quantity": dec(d.cut),
                "sale": self.sale.detail(),
            }
            await raise_attention(uow, _named(hold), STOCK_TAKEN, detail, now)
        return summary


async def _likely_displaced(
    uow: UnitOfWork,
    sale: SaleRef,
    changes: list[StockChange],
    held: list[StoreHold],
    others: list[Store],
) -> set[str]:
    """The orders the sale will most likely take units from, planned on a read without
    locks: they are locked first. (Locking every order holding units at the store would
    make till sales on a busy shelf wait for each other.)"""
    products = [c.product_id for c in changes]
    levels = {
        (r.product_id, r.store_id): r
        for r in await uow.read_stock(products, [sale.store.id, *(s.id for s in others)])
    }
    likely: set[str] = set()
    for change in changes:
        here = levels.get((change.product_id, sale.store.id))
        if here is None:
            continue
        need = units_to_displace(here.on_hand, here.reserved, change.quantity)
        if need <= 0:
            continue
        mine = [h for h in held if h.product_id == change.product_id]
        free = [
            OtherStore(s.id, lv.on_hand - lv.reserved, s.safety_stock)
            for s in others
            if (lv := levels.get((change.product_id, s.id))) is not None
        ]
        likely |= {d.hold.order_id for d in plan(need, [_held(h) for h in mine], free)}
    return likely


async def _lock_strangers(uow: UnitOfWork, holds: list[StoreHold], locked: set[str]) -> None:
    """Orders of the holds chosen that are not locked yet (the plan under the stock lock
    differs from the one made before it): locked without waiting, or the sale starts again
    (StockRace names them, to be locked first next time)."""
    strangers = sorted({h.order_id for h in holds} - locked)
    if not strangers:
        return
    if not await uow.lock_orders(strangers, wait=False):
        raise StockRace("an order holding units here is busy", orders=strangers)
    locked.update(strangers)


def _named(hold: StoreHold) -> Order:
    """The order as attention needs it (its id and number; it is locked already)."""
    return Order(
        hold.order_id,
        hold.channel,
        Source.ORDER,
        hold.fulfillment,
        OrderStatus.PLACED,
        PaymentStatus.PAID if hold.paid else PaymentStatus.UNPAID,
        None,
        [],
        hold.created_at,
        number=hold.number,
    )


def _held(hold: StoreHold) -> HeldUnits:
    return HeldUnits(
        hold.hold_id,
        hold.order_id,
        hold.line_no,
        hold.quantity,
        movable=hold.fulfillment is Fulfillment.DELIVERY,
        paid=hold.paid,
        created_at=hold.created_at,
        safety=applies_safety_stock(hold.channel),
    )


async def holders(
    uow: UnitOfWork, store: Store, product_ids: list[int]
) -> dict[int, list[dict[str, Any]]]:
    """For a refusal: by product, the orders holding its units at the store."""
    found: dict[int, list[dict[str, Any]]] = {}
    for hold in await uow.holds_at(store.id, product_ids):
        found.setdefault(hold.product_id, []).append(
            {"order_id": hold.order_id, "number": hold.number, "quantity": dec(hold.quantity)}
        )
    return found
