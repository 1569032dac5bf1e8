"""Where the stock for an order comes from.

Pickup takes everything from the pickup store. Delivery walks the stores allowed to serve
online in priority order and splits a line across stores when one does not have it all.
The plan is only a proposal: the database's conditional update has the last word.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from .errors import InsufficientStock
from .events import dec


@dataclass(frozen=True, slots=True)
class LineRequest:
    line_no: int
    product_id: int
    quantity: Decimal
    label: str  # how the caller named the product, for error messages


@dataclass(frozen=True, slots=True)
class Allocation:
    line_no: int
    product_id: int
    store_id: int
    quantity: Decimal


StockKey = tuple[int, int]  # (product_id, store_id)


def allocate(
    lines: Sequence[LineRequest],
    stores_by_priority: Sequence[int],
    available: Mapping[StockKey, Decimal],
) -> list[Allocation]:
    """Cover every line from the stores in order, or raise InsufficientStock naming the lines.

    `available` is what each (product, store) can still give to this kind of order. Lines of
    the same product draw from the same pool, so two lines cannot both take the last unit.
    """
    remaining: dict[StockKey, Decimal] = defaultdict(Decimal)
    remaining.update(available)
    allocations: list[Allocation] = []
    short: list[dict[str, object]] = []
    for line in lines:
        need = line.quantity
        taken: list[Allocation] = []
        for store_id in stores_by_priority:
            if need <= 0:
                break
            free = remaining[(line.product_id, store_id)]
            if free <= 0:
                continue
            take = min(free, need)
            taken.append(Allocation(line.line_no, line.product_id, store_id, take))
            need -= take
        if need > 0:
            short.append(
                {
                    "line": line.line_no,
                    "product": line.label,
                    "requested": dec(line.quantity),
                    "available": dec(line.quantity - need),
                }
            )
            continue
        for alloc in taken:
            remaining[(alloc.product_id, alloc.store_id)] -= alloc.quantity
        allocations.extend(taken)
    if short:
        raise InsufficientStock(short)
    return allocations


def allocate_available(
    lines: Sequence[LineRequest],
    stores_by_priority: Sequence[int],
    available: Mapping[StockKey, Decimal],
) -> tuple[list[Allocation], list[dict[str, object]]]:
    """As much of every line as the stores have, in order: for an order that exists already
    (a site order the customer was told is placed) and is recorded short rather than refused.
    Returns the allocations and the lines not covered in full (requested, held)."""
    remaining: dict[StockKey, Decimal] = defaultdict(Decimal)
    remaining.update(available)
    allocations: list[Allocation] = []
    short: list[dict[str, object]] = []
    for line in lines:
        need = line.quantity
        for store_id in stores_by_priority:
            if need <= 0:
                break
            free = remaining[(line.product_id, store_id)]
            if free <= 0:
                continue
            take = min(free, need)
            allocations.append(Allocation(line.line_no, line.product_id, store_id, take))
            remaining[(line.product_id, store_id)] -= take
            need -= take
        if need > 0:
            short.append(
                {
                    "line": line.line_no,
                    "product": line.label,
                    "requested": dec(line.quantity),
                    "held": dec(line.quantity - need),
                }
            )
    return allocations, short


def merge_by_stock_row(allocations: Sequence[Allocation]) -> list[tuple[int, int, Decimal]]:
    """Total quantity per (product, store), in the one fixed order in which rows are locked."""
    totals: dict[StockKey, Decimal] = defaultdict(Decimal)
    for alloc in allocations:
        totals[(alloc.product_id, alloc.store_id)] += alloc.quantity
    return [(p, s, q) for (p, s), q in sorted(totals.items())]
