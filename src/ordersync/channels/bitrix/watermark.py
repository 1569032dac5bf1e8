"""Catch-up polling of `sale.order.list` from a stored watermark: pure rules, no I/O.

Events are hints (Bitrix never retries one), so the hub also lists the orders changed since the
last `dateUpdate` it saw, with the filter key as the documentation spells it, `">=dateUpdate"`
(bitrix24/b24restdocs api-reference/sale/order/sale-order-list.md: prefixes `>=`, `>`, ...;
`order` asc/desc; pages of 50 rows by `start` = (N-1) * 50).

Two things make a plain "newer than the watermark" miss orders: many orders share one
`dateUpdate` second, and an order may commit a second late, appearing in the list after orders
with a later `dateUpdate`. So a poll starts an `overlap` before the watermark, and the caller
drops what it has already applied by (order id, version).

Within one poll, paging by offset alone would skip a row whenever an earlier row changes while
the poll runs (it moves to the end and everything after it moves up). So pages are keyed:
sorted by (dateUpdate, id), each next page starts at the last row's `dateUpdate` (re-reading the
rows of that second, which the caller drops by version), and only when a whole page shares one
second does `start` step by 50 within it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .orders import OrderStamp

PAGE_SIZE = 50  # sale.order.list pages are always 50 rows
DEFAULT_OVERLAP = timedelta(seconds=60)
SELECT = ("id", "version", "dateUpdate", "xmlId")
ORDER = {"dateUpdate": "asc", "id": "asc"}


@dataclass(frozen=True, slots=True)
class OrderListPage:
    """One `sale.order.list` call of a poll."""

    since: datetime | None  # None: from the beginning (no watermark yet)
    start: int = 0

    def params(self, select: Sequence[str] = SELECT) -> dict[str, Any]:
        params: dict[str, Any] = {
            "select": list(select),
            "filter": {},
            "order": dict(ORDER),
            "start": self.start,
        }
        if self.since is not None:
            params["filter"][">=dateUpdate"] = self.since.isoformat(timespec="seconds")
        return params


def first_page(watermark: datetime | None, overlap: timedelta = DEFAULT_OVERLAP) -> OrderListPage:
    """The first page of a poll: orders changed since `overlap` before the watermark."""
    if overlap < timedelta(0):
        raise ValueError("the overlap cannot be negative")
    if watermark is None:
        return OrderListPage(None)
    if watermark.tzinfo is None:
        raise ValueError("the watermark must carry the site's UTC offset")
    return OrderListPage(watermark - overlap)


def next_page(page: OrderListPage, rows: Sequence[OrderStamp]) -> OrderListPage | None:
    """The page after `page`, given its rows in the order asked for; None when the poll is done
    (a page shorter than 50 rows is the last one)."""
    if len(rows) < PAGE_SIZE:
        return None
    last = rows[-1].date_update
    if page.since is None or last > page.since:
        return OrderListPage(last)
    # a whole page within one second: step through that second by offset
    return OrderListPage(page.since, page.start + PAGE_SIZE)


def next_watermark(watermark: datetime | None, seen: Iterable[OrderStamp]) -> datetime | None:
    """The watermark after a complete poll: the latest dateUpdate seen, never moving back."""
    latest = watermark
    for stamp in seen:
        if latest is None or stamp.date_update > latest:
            latest = stamp.date_update
    return latest


def is_new(stamp: OrderStamp, applied_version: int | None) -> bool:
    """Whether a listed order still needs to be read: the hub has not applied this version."""
    return applied_version is None or stamp.version > applied_version
