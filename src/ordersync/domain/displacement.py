"""Which holds a completed till sale takes its units from, when the free units at its store do
not cover it (the customer has left with the goods: the sale is recorded whatever happens).

In this order:
1. Delivery holds first: a delivery order does not care which store ships it, so its hold
   moves to another store that serves online and has the units (by online priority, split
   over stores if need be; the same no-oversell rule as placement); unpaid before paid,
   newest first.
2. Then what cannot move (pickup holds at this store, and delivery holds no other store can
   take) is cut back, unpaid before paid, newest first. The order keeps its lines and gets
   attention; the hub never cancels it.
Units still missing after that make `on_hand` go below zero (a receipt not recorded yet, a
miscount): the sale is recorded in full all the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class HeldUnits:
    """One active hold at the sale's store, with what decides its turn."""

    hold_id: int
    order_id: str
    line_no: int
    quantity: Decimal
    movable: bool  # a delivery order's hold: another store may ship it
    paid: bool
    created_at: datetime
    safety: bool = True  # the order's channel keeps the safety stock (online, operator)


@dataclass(frozen=True, slots=True)
class OtherStore:
    """A store a delivery hold may move to: what it has free (on_hand - reserved) and the
    safety stock online and operator orders leave there."""

    store_id: int
    free: Decimal
    safety: Decimal = Decimal(0)


@dataclass(slots=True)
class Displacement:
    hold: HeldUnits
    moved: list[tuple[int, Decimal]] = field(default_factory=list)  # (store, units)
    cut: Decimal = Decimal(0)

    @property
    def taken(self) -> Decimal:
        return sum((q for _, q in self.moved), Decimal(0)) + self.cut

    @property
    def kept(self) -> Decimal:
        """What the hold still has at the sale's store."""
        return self.hold.quantity - self.taken


def turn(hold: HeldUnits) -> tuple[bool, float, int]:
    """Unpaid before paid, then newest first."""
    return (hold.paid, -hold.created_at.timestamp(), -hold.hold_id)


def units_to_displace(on_hand: Decimal, reserved: Decimal, sold: Decimal) -> Decimal:
    """After the sale no more may stay held than is on hand: free units go first, then holds
    are displaced (even holds that were already beyond what was on hand, after a count)."""
    return max(Decimal(0), reserved - max(on_hand - sold, Decimal(0)))


def plan(
    need: Decimal, holds: Sequence[HeldUnits], others: Sequence[OtherStore]
) -> list[Displacement]:
    """The holds touched, each with where its units moved and how many were cut; `others` in
    online priority order. Takes at most `need` units, and only from these holds."""
    remaining = need
    free = {o.store_id: o.free for o in others}
    by_hold: dict[int, Displacement] = {}
    for hold in sorted((h for h in holds if h.movable), key=turn):
        if remaining <= 0:
            break
        want = min(hold.quantity, remaining)
        for other in others:
            room = free[other.store_id] - (other.safety if hold.safety else Decimal(0))
            take = min(want, room)
            if take <= 0:
                continue
            by_hold.setdefault(hold.hold_id, Displacement(hold)).moved.append(
                (other.store_id, take)
            )
            free[other.store_id] -= take
            want -= take
            remaining -= take
            if want <= 0:
                break
    for hold in sorted(holds, key=turn):
        if remaining <= 0:
            break
        entry = by_hold.get(hold.hold_id) or Displacement(hold)
        cut = min(entry.kept, remaining)
        if cut > 0:
            entry.cut = cut
            by_hold[hold.hold_id] = entry
            remaining -= cut
    return sorted(by_hold.values(), key=lambda d: turn(d.hold))
