"""The Alembic migrations build exactly the schema that ordersync.db.tables describes."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import BigInteger, DateTime, inspect, text
from sqlalchemy.engine import Connection

from ordersync.db.migrate import alembic_config, upgrade
from ordersync.db.tables import metadata
from ordersync.db.types import ScaledDecimal, UtcDateTime
from ordersync.db.unit_of_work import Database
from tests import support


def _is_custom_type_only(diff: Any) -> bool:
    """A type difference that is only a TypeDecorator against its own impl
    (ScaledDecimal stored as BIGINT, UtcDateTime as TIMESTAMP WITH TIME ZONE)."""
    if not (isinstance(diff, tuple) and diff and diff[0] == "modify_type"):
        return False
    reflected, wanted = diff[-2], diff[-1]
    if isinstance(wanted, ScaledDecimal):
        return isinstance(reflected, BigInteger)
    if isinstance(wanted, UtcDateTime):
        return isinstance(reflected, DateTime)
    return False


def _flatten(diffs: list[Any]) -> list[Any]:
    # Column modifications come grouped in a list per column.
    flat: list[Any] = []
    for diff in diffs:
        flat.extend(diff if isinstance(diff, list) else [diff])
    return flat


def _compare(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(
        conn, opts={"compare_type": True, "compare_server_default": True}
    )
    return [d for d in _flatten(compare_metadata(context, metadata)) if not _is_custom_type_only(d)]


async def _differences(db: Database) -> list[Any]:
    async with db.engine.connect() as conn:
        return await conn.run_sync(_compare)


async def test_the_migrated_schema_matches_the_table_definitions(db: Database) -> None:
    differences = await _differences(db)

    assert differences == []


async def test_the_migrations_are_at_their_single_head(db: Database) -> None:
    async with db.engine.connect() as conn:
        versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()

    head = ScriptDirectory.from_config(alembic_config("unused")).get_current_head()
    assert head == "0006"
    assert [v[0] for v in versions] == [head]


async def test_every_table_of_the_metadata_exists_after_upgrade(db: Database) -> None:
    def names(conn: Connection) -> set[str]:
        return set(inspect(conn).get_table_names())

    async with db.engine.connect() as conn:
        found = await conn.run_sync(names)

    assert {t.name for t in metadata.sorted_tables} <= found


async def test_the_postgres_migration_creates_the_assert_function(postgres_url: str) -> None:
    db = Database.from_url(postgres_url, pool_size=1)
    try:
        async with db.engine.connect() as conn:
            count = await conn.scalar(
                text("SELECT count(*) FROM pg_proc WHERE proname = 'ordersync_assert'")
            )
            with pytest.raises(Exception, match="stock_race"):
                await conn.execute(text("SELECT ordersync_assert(false, 'stock_race')"))
    finally:
        await db.dispose()

    assert count == 1


# A migrated database of our own, so that downgrading does not disturb the shared one.


@pytest.fixture
async def scratch_url(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"
        return
    request.getfixturevalue("postgres_url")  # reachable, or skipped/failed as conftest says
    name = f"ordersync_migrations_{os.getpid()}"
    url = await support.create_postgres_database(name)  # migrated to head
    try:
        yield url
    finally:
        await support.drop_postgres_database(name)


async def test_downgrade_to_base_and_upgrade_again_rebuilds_the_same_schema(
    scratch_url: str,
) -> None:
    await asyncio.to_thread(upgrade, scratch_url)
    await asyncio.to_thread(_downgrade, scratch_url)

    db = Database.from_url(scratch_url, pool_size=2)
    try:

        def remaining(conn: Connection) -> set[str]:
            return set(inspect(conn).get_table_names()) - {"alembic_version"}

        async with db.engine.connect() as conn:
            assert await conn.run_sync(remaining) == set()

        await asyncio.to_thread(upgrade, scratch_url)
        assert await _differences(db) == []
    finally:
        await db.dispose()


def _downgrade(url: str) -> None:
    command.downgrade(alembic_config(url), "base")
