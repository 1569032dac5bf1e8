"""Stock documents already applied, with the result each one got."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.errors import AlreadyRecorded
from .tables import stock_documents


async def find_document(
    conn: AsyncConnection, document_type: str, store_id: int, document_id: str
) -> tuple[str, dict[str, Any]] | None:
    """(request hash, result) of the document, if it was applied."""
    d = stock_documents.c
    row = (
        await conn.execute(
            select(d.request_hash, d.result).where(
                d.document_type == document_type,
                d.store_id == store_id,
                d.document_id == document_id,
            )
        )
    ).first()
    return None if row is None else (row.request_hash, row.result)


async def record_document(
    conn: AsyncConnection,
    document_type: str,
    store_id: int,
    document_id: str,
    request_hash: str,
    result: dict[str, Any],
    now: datetime,
) -> None:
    try:
        await conn.execute(
            insert(stock_documents).values(
                document_type=document_type,
                store_id=store_id,
                document_id=document_id,
                request_hash=request_hash,
                result=result,
                recorded_at=now,
            )
        )
    except IntegrityError as exc:
        raise AlreadyRecorded(f"{document_type} {document_id} was recorded concurrently") from exc
