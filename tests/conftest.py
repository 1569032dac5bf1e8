"""Fixtures shared by every tier. Integration and end-to-end tests run once per database:
SQLite always, PostgreSQL at ORDERSYNC_TEST_POSTGRES_URL (default 127.0.0.1:5432/test).
Outside CI an unreachable PostgreSQL skips its half; in CI (CI=true) it fails."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from ordersync.api.app import create_app
from ordersync.config import Settings
from ordersync.db.unit_of_work import Database
from tests import support

BACKENDS = ["sqlite", "postgres"]

# `make test` runs with the demo's ORDERSYNC_CONFIG (the Makefile exports it for `make run`);
# the tests build their own settings, which that file must not reach into.
os.environ.pop("ORDERSYNC_CONFIG", None)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return support.migrated_sqlite_template(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    if not support.run_in_thread(support.postgres_reachable()):
        message = f"PostgreSQL is not reachable at {support.postgres_admin_url()}"
        if support.in_ci():
            pytest.fail(message + " (CI runs every test on PostgreSQL)")
        pytest.skip(message)
    name = f"ordersync_test_{os.getpid()}"
    url = support.run_in_thread(support.create_postgres_database(name))
    yield url
    support.run_in_thread(support.drop_postgres_database(name))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(
    backend: str, request: pytest.FixtureRequest, sqlite_template: Path, tmp_path: Path
) -> str:
    if backend == "sqlite":
        return support.fresh_sqlite_url(sqlite_template, tmp_path, "ordersync")
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def db(database_url: str, backend: str) -> AsyncIterator[Database]:
    database = Database.from_url(database_url, pool_size=40, catalog_cache_seconds=0)
    if backend == "postgres":
        await support.truncate_all(database)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def clock() -> support.Clock:
    return support.Clock()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        master="hub",
        database_url=database_url,
        seed_demo=False,
        catalog_cache_seconds=0,
        auth_cache_seconds=0,
        max_body_bytes=65536,
    )


@pytest.fixture
async def client(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the ASGI app in-process, lifespan included."""
    app = create_app(settings, db=db, sweeper=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            yield http
