"""INSERT ... ON CONFLICT DO UPDATE, which both databases speak with the same words."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection


async def upsert(
    conn: AsyncConnection, table: Table, values: Mapping[str, Any], keys: Sequence[str]
) -> None:
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = dialect_insert(table).values(**values)
    changes = {k: stmt.excluded[k] for k in values if k not in keys}
    await conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=changes))
