"""The database a CLI command works on, opened from the settings and always disposed of."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ..config import Settings
from ..db.unit_of_work import Database


def database(settings: Settings, pool_size: int = 2) -> Database:
    return Database.from_url(
        settings.database_url,
        pool_size,
        settings.catalog_cache_seconds,
        settings.db_timeout_seconds,
    )


@asynccontextmanager
async def opened(settings: Settings, pool_size: int = 2) -> AsyncIterator[Database]:
    db = database(settings, pool_size)
    try:
        yield db
    finally:
        await db.dispose()
