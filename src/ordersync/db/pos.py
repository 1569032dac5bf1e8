"""POS transactions and how much of each sale has come back."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, bindparam, case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..services.ports import PosRecord
from .tables import order_lines, pos_returned, pos_transactions
from .types import Quantity


def _record(row: Row[Any]) -> PosRecord:
    return PosRecord(
        row.pos_id,
        row.transaction_id,
        row.kind,
        row.store_id,
        row.order_id,
        row.original_transaction_id,
        row.request_hash,
        row.result,
        row.business_time,
        row.shift,
    )


async def find_pos_record(
    conn: AsyncConnection, store_id: int, pos_id: str, transaction_id: str
) -> PosRecord | None:
    row = (
        await conn.execute(
            select(pos_transactions).where(
                pos_transactions.c.store_id == store_id,
                pos_transactions.c.pos_id == pos_id,
                pos_transactions.c.transaction_id == transaction_id,
            )
        )
    ).first()
    return None if row is None else _record(row)


async def find_sale(
    conn: AsyncConnection, store_id: int, pos_id: str, transaction_id: str
) -> PosRecord | None:
    """By (store, transaction id), this till's sale first (ix_pos_transactions_store_transaction
    serves it)."""
    pt = pos_transactions.c
    row = (
        await conn.execute(
            select(pos_transactions)
            .where(pt.store_id == store_id, pt.transaction_id == transaction_id, pt.kind == "sale")
            .order_by(case((pt.pos_id == pos_id, 0), else_=1), pt.pos_id)
            .limit(1)
        )
    ).first()
    return None if row is None else _record(row)


async def insert_pos_record(conn: AsyncConnection, record: PosRecord, now: datetime) -> None:
    await conn.execute(
        insert(pos_transactions).values(
            pos_id=record.pos_id,
            transaction_id=record.transaction_id,
            kind=record.kind,
            store_id=record.store_id,
            order_id=record.order_id,
            original_transaction_id=record.original_transaction_id,
            request_hash=record.request_hash,
            result=record.result,
            business_time=record.business_time,
            recorded_at=now,
            shift=record.shift,
        )
    )


async def returns_naming(
    conn: AsyncConnection, store_id: int, transaction_id: str
) -> list[PosRecord]:
    """Served by ix_pos_transactions_store_original."""
    pt = pos_transactions.c
    rows = await conn.execute(
        select(pos_transactions)
        .where(pt.store_id == store_id, pt.original_transaction_id == transaction_id)
        .where(pt.kind == "return")
        .order_by(pt.recorded_at)
    )
    return [_record(r) for r in rows]


async def update_result(
    conn: AsyncConnection, store_id: int, pos_id: str, transaction_id: str, result: dict[str, Any]
) -> None:
    pt = pos_transactions.c
    await conn.execute(
        update(pos_transactions)
        .where(pt.store_id == store_id, pt.pos_id == pos_id, pt.transaction_id == transaction_id)
        .values(result=result)
    )


async def add_sold(
    conn: AsyncConnection,
    store_id: int,
    pos_id: str,
    transaction_id: str,
    product_id: int,
    quantity: Decimal,
) -> None:
    await conn.execute(
        insert(pos_returned).values(
            store_id=store_id,
            pos_id=pos_id,
            transaction_id=transaction_id,
            product_id=product_id,
            sold=quantity,
            returned=Decimal(0),
        )
    )


async def take_returned(
    conn: AsyncConnection,
    store_id: int,
    pos_id: str,
    transaction_id: str,
    product_id: int,
    quantity: Decimal,
) -> bool:
    """returned += n where returned + n <= sold."""
    pr = pos_returned.c
    result = await conn.execute(
        update(pos_returned)
        .where(
            pr.store_id == store_id,
            pr.pos_id == pos_id,
            pr.transaction_id == transaction_id,
            pr.product_id == product_id,
        )
        .where(pr.returned + bindparam(None, quantity, type_=Quantity()) <= pr.sold)
        .values(returned=pr.returned + bindparam(None, quantity, type_=Quantity()))
    )
    return bool(result.rowcount)


async def returnable(
    conn: AsyncConnection, store_id: int, pos_id: str, transaction_id: str, product_id: int
) -> Decimal:
    """sold - returned of the sale's product, its row locked; 0 when the sale had none."""
    pr = pos_returned.c
    row = (
        await conn.execute(
            select(pr.sold, pr.returned)
            .where(
                pr.store_id == store_id,
                pr.pos_id == pos_id,
                pr.transaction_id == transaction_id,
                pr.product_id == product_id,
            )
            .with_for_update()
        )
    ).first()
    return Decimal(0) if row is None else row.sold - row.returned


async def return_to_order(
    conn: AsyncConnection, order_id: str, product_id: int, quantity: Decimal
) -> list[tuple[int, Decimal]]:
    """returned += units on the order's lines of this product, first lines first, never past
    a line's quantity. The caller holds the order's lock."""
    ol = order_lines.c
    rows = (
        await conn.execute(
            select(ol.line_no, ol.quantity, ol.returned)
            .where(ol.order_id == order_id, ol.product_id == product_id)
            .order_by(ol.line_no)
        )
    ).all()
    touched: list[tuple[int, Decimal]] = []
    left = quantity
    for row in rows:
        take = min(left, row.quantity - row.returned)
        if take <= 0:
            continue
        await conn.execute(
            update(order_lines)
            .where(ol.order_id == order_id, ol.line_no == row.line_no)
            .values(returned=ol.returned + bindparam(None, take, type_=Quantity()))
        )
        touched.append((row.line_no, take))
        left -= take
        if left <= 0:
            break
    return touched


async def add_to_order_line(
    conn: AsyncConnection, order_id: str, product_id: int, price: Decimal, quantity: Decimal
) -> None:
    """A till shift's order: its line of the product at this price grows, or a line is added
    after the last one. The caller holds the order's lock."""
    ol = order_lines.c
    grown = await conn.execute(
        update(order_lines)
        .where(ol.order_id == order_id, ol.product_id == product_id, ol.price == price)
        .values(quantity=ol.quantity + bindparam(None, quantity, type_=Quantity()))
    )
    if grown.rowcount:
        return
    last = (
        await conn.execute(select(func.max(ol.line_no)).where(ol.order_id == order_id))
    ).scalar()
    await conn.execute(
        insert(order_lines).values(
            order_id=order_id,
            line_no=int(last or 0) + 1,
            product_id=product_id,
            quantity=quantity,
            price=price,
        )
    )
