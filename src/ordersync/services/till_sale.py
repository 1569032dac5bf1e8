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
from ..domain.orders import applies_safety_stock
from ..domain.types import Fulfillment, HoldReason, HoldState, MovementReason
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
        locked |= {h.order_id for h in held}
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
            await _lock_strangers(uow, holds, locked)
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
            await self._displace(uow, {h.hold_id: h for h in holds}, chosen, taken, now)
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
        order = await uow.get_order(hold.order_id)
        assert order is not None
        await uow.set_order_fields(order.id, updated_at=now)
        moved = [{"store": self._code(s), "quantity": dec(q)} for s, q in d.moved]
        summary: dict[str, Any] = {
            "order_id": order.id,
            "number": order.number,
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
                order.id,
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
            await raise_attention(uow, order, STOCK_TAKEN, detail, now)
        return summary


async def _lock_strangers(uow: UnitOfWork, holds: list[StoreHold], locked: set[str]) -> None:
    """Orders whose holds appeared after the orders were locked: locked without waiting, or
    the sale starts again (StockRace names them, to be locked first next time)."""
    strangers = sorted({h.order_id for h in holds} - locked)
    if not strangers:
        return
    if not await uow.lock_orders(strangers, wait=False):
        raise StockRace("an order holding units here is busy", orders=strangers)
    locked.update(strangers)


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
