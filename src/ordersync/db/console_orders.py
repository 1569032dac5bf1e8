"""The console's orders screen: summary rows of orders, newest first, filtered, searched and
paged by a (created_at, id) keyset, and the same rows by id for the live stream.

Indexes that serve it at a million orders: ix_orders_created_at (the plain list, backwards),
ix_orders_channel_created_at and ix_orders_status_created_at (filters), ix_order_attention_open
(orders with open items), and for search ix_orders_number, ix_orders_customer_phone and
ix_orders_customer_name (prefixes of the keys written at placement, domain/customers.py) and
uq_orders_channel_external_id. A search runs one indexed branch per reading of the text (an
order number, a phone, a name, an external id), each newest first and limited, then merges.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, exists, or_, select, union
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.customers import name_key, phone_prefix, prefix_bounds
from ..domain.types import Channel, Fulfillment, OrderStatus, PaymentStatus
from .tables import holds, order_attention, orders

_NUMBER = re.compile(r"#?\s*([0-9]{1,15})")
_PHONE_CHARS = re.compile(r"[0-9\s()+\-.]+")
# Digits alone are an order number; as a phone they start with +, 7, 8 or carry its marks,
# or are long enough to be no order number.
_PHONE_LIKE = re.compile(r"^\s*(\+|[78]|.*[\s()\-.])")
MAX_NUMBER = 2**62


@dataclass(frozen=True, slots=True)
class OrderRow:
    id: str
    number: int
    version: int
    channel: Channel
    fulfillment: Fulfillment
    status: OrderStatus
    payment_status: PaymentStatus
    store_id: int | None
    total: Decimal
    currency: str
    customer: dict[str, Any]
    external_id: str | None
    created_at: datetime
    updated_at: datetime
    attention: bool
    held_at: frozenset[int] = field(default_factory=frozenset)  # stores holding its stock

    @property
    def stores(self) -> frozenset[int]:
        """Every store the order concerns: its own, and those holding (or that held) stock."""
        own = frozenset() if self.store_id is None else frozenset({self.store_id})
        return own | self.held_at


@dataclass(frozen=True, slots=True)
class OrderQuery:
    visible_stores: frozenset[int] | None = None  # None: every order
    channel: Channel | None = None
    store_id: int | None = None
    status: OrderStatus | None = None
    attention: bool = False
    created_from: datetime | None = None
    created_to: datetime | None = None
    search: str | None = None
    before: tuple[datetime, str] | None = None  # the keyset cursor: (created_at, id)
    limit: int = 50


def _at_stores(store_ids: Sequence[int]) -> ColumnElement[bool]:
    held_there = (
        select(holds.c.id)
        .where(holds.c.order_id == orders.c.id, holds.c.store_id.in_(store_ids))
        .exists()
    )
    return or_(orders.c.store_id.in_(store_ids), held_there)


def _open_attention() -> ColumnElement[bool]:
    a = order_attention.c
    return exists().where(a.order_id == orders.c.id, a.resolved_at.is_(None))


def _filters(q: OrderQuery) -> list[ColumnElement[bool]]:
    o = orders.c
    found: list[ColumnElement[bool]] = []
    if q.visible_stores is not None:
        found.append(_at_stores(sorted(q.visible_stores)))
    if q.channel is not None:
        found.append(o.channel == q.channel.value)
    if q.store_id is not None:
        found.append(_at_stores([q.store_id]))
    if q.status is not None:
        found.append(o.status == q.status.value)
    if q.attention:
        a = order_attention.c
        found.append(o.id.in_(select(a.order_id).where(a.resolved_at.is_(None))))
    if q.created_from is not None:
        found.append(o.created_at >= q.created_from)
    if q.created_to is not None:
        found.append(o.created_at < q.created_to)
    if q.before is not None:
        at, oid = q.before
        found.append(or_(o.created_at < at, and_(o.created_at == at, o.id < oid)))
    return found


def search_branches(text: str) -> list[ColumnElement[bool]]:
    """One condition per way the text can name orders, each served by its own index."""
    o = orders.c
    text = text.strip()
    branches: list[ColumnElement[bool]] = []
    if not text:
        return branches
    number = _NUMBER.fullmatch(text)
    if number and int(number.group(1)) <= MAX_NUMBER:
        branches.append(o.number == int(number.group(1)))
    if _PHONE_CHARS.fullmatch(text) and (_PHONE_LIKE.match(text) or len(text) >= 10):
        phone = phone_prefix(text)
        if phone is not None:
            low, high = prefix_bounds(phone)
            branches.append(and_(o.customer_phone >= low, o.customer_phone < high))
    if any(ch.isalpha() for ch in text):
        name = name_key(text)
        if name is not None and len(name) >= 2:
            low, high = prefix_bounds(name)
            branches.append(and_(o.customer_name >= low, o.customer_name < high))
    if len(text) <= 128:
        # The leading channel lets the unique (channel, external_id) index serve it.
        branches.append(and_(o.channel.in_([c.value for c in Channel]), o.external_id == text))
    return branches


def _newest_first() -> list[Any]:
    return [orders.c.created_at.desc(), orders.c.id.desc()]


async def order_page(conn: AsyncConnection, q: OrderQuery) -> list[OrderRow]:
    """Up to `q.limit` orders, newest first, after the cursor."""
    conditions = _filters(q)
    stmt = select(orders, _open_attention().label("attention"))
    if q.search is not None and q.search.strip():
        branches = search_branches(q.search)
        ids = [
            select(orders.c.id)
            .where(*conditions, branch)
            .order_by(*_newest_first())
            .limit(q.limit)
            .subquery()
            for branch in branches
        ]
        matched = union(*(select(s.c.id) for s in ids)).subquery()
        stmt = stmt.where(orders.c.id.in_(select(matched.c.id)))
    else:
        stmt = stmt.where(*conditions)
    rows = (await conn.execute(stmt.order_by(*_newest_first()).limit(q.limit))).all()
    return await _with_holds(conn, rows)


async def rows_by_ids(conn: AsyncConnection, order_ids: Sequence[str]) -> list[OrderRow]:
    """The same rows for the orders named (the live stream's changed orders), newest first."""
    if not order_ids:
        return []
    stmt = (
        select(orders, _open_attention().label("attention"))
        .where(orders.c.id.in_(list(order_ids)))
        .order_by(*_newest_first())
    )
    return await _with_holds(conn, (await conn.execute(stmt)).all())


async def _with_holds(conn: AsyncConnection, rows: Sequence[Row[Any]]) -> list[OrderRow]:
    if not rows:
        return []
    held: dict[str, set[int]] = {}
    found = await conn.execute(
        select(holds.c.order_id, holds.c.store_id)
        .where(holds.c.order_id.in_([r.id for r in rows]))
        .distinct()
    )
    for order_id, store_id in found:
        held.setdefault(order_id, set()).add(store_id)
    return [
        OrderRow(
            r.id,
            r.number,
            r.version,
            Channel(r.channel),
            Fulfillment(r.fulfillment),
            OrderStatus(r.status),
            PaymentStatus(r.payment_status),
            r.store_id,
            r.total,
            r.currency,
            r.customer if isinstance(r.customer, dict) else {},
            r.external_id,
            r.created_at,
            r.updated_at,
            bool(r.attention),
            frozenset(held.get(r.id, ())),
        )
        for r in rows
    ]


async def order_id_by_number(conn: AsyncConnection, number: int) -> str | None:
    if not 0 < number <= MAX_NUMBER:
        return None
    found: str | None = (
        await conn.execute(select(orders.c.id).where(orders.c.number == number))
    ).scalar()
    return found
