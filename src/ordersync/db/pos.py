"""POS transactions and how much of each sale has come back."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..services.ports import PosRecord
from .tables import pos_returned, pos_transactions
from .types import Quantity


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
    if row is None:
        return None
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
    )


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
        )
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
