"""`ordersync events pending | dead | retry | drop`, and the relay inside `serve` on SQLite."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from ordersync.api.app import create_app
from ordersync.config import Settings
from ordersync.db.relay import dead_letters, sequence
from ordersync.db.unit_of_work import Database
from ordersync.entrypoints.cli import app
from ordersync.relay.worker import Relay, RelayPolicy
from ordersync.services.context import utcnow
from tests import support
from tests.e2e.test_relay_worker import SECRET, Receiver
from tests.integration.test_relay import Recorder

GIVE_UP_FAST = RelayPolicy(lanes=2, max_attempts=2, backoff_base_seconds=0,
                           backoff_cap_seconds=0, poll_seconds=0)  # fmt: skip


async def _dead_letters_for_hook(url: str) -> list[int]:
    db = Database.from_url(url, pool_size=4, catalog_cache_seconds=0)
    try:
        if db.engine.dialect.name == "postgresql":
            await support.truncate_all(db)
        async with db.uow() as uow:
            for n in range(3):
                await uow.add_event("stock.changed", "stock", f"{n}:1", {"n": n}, utcnow())
            await uow.commit()
        refused = Recorder("hook", refuse=range(1, 4))
        relay = Relay(db, {"hook": refused}, GIVE_UP_FAST)
        for _ in range(20):
            await relay.run_once()
        async with db.uow_read() as uow:
            return [row[1] for row in await dead_letters(uow.conn, "hook")]
    finally:
        await db.dispose()


def ordersync(config: Path, *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"ORDERSYNC_CONFIG": str(config)},
                              catch_exceptions=False)  # fmt: skip


@dataclass
class Configured:
    path: Path
    receiver: Receiver


@pytest.fixture
def configured(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Configured]:
    for name in list(os.environ):
        if name.startswith("ORDERSYNC_"):
            monkeypatch.delenv(name)
    receiver = Receiver()
    path = tmp_path / "ordersync.toml"
    path.write_text(
        f'master = "hub"\ndatabase_url = "{database_url}"\n'
        f'[sinks.hook]\nkind = "webhook"\nurl = "{receiver.url}"\nsecret = "{SECRET.decode()}"\n'
    )
    yield Configured(path, receiver)
    receiver.close()


def test_dead_letters_are_listed_retried_and_dropped(
    configured: Configured, database_url: str
) -> None:
    dead = support.run_in_thread(_dead_letters_for_hook(database_url))
    assert len(dead) == 3
    config, receiver = configured.path, configured.receiver

    listed = ordersync(config, "events", "dead")
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.strip().splitlines()[-1] == "3 dead letters"
    assert "hook refuses" in listed.stdout

    dropped = ordersync(config, "events", "drop", "--sink", "hook", "--event", str(dead[0]))
    assert dropped.stdout.strip() == "1 dead letters dropped"

    retried = ordersync(config, "events", "retry", "--sink", "hook")
    assert retried.exit_code == 0, retried.output
    assert retried.stdout.strip() == "2 events delivered"
    assert sorted(receiver.received) == sorted(dead[1:])
    assert ordersync(config, "events", "dead").stdout.strip() == "0 dead letters"


def test_pending_shows_what_waits_per_lane(configured: Configured, database_url: str) -> None:
    support.run_in_thread(_waiting(database_url))

    out = ordersync(configured.path, "events", "pending")

    assert out.exit_code == 0, out.output
    assert out.stdout.strip().splitlines()[-1] == "2 events waiting"


async def _waiting(url: str) -> None:
    db = Database.from_url(url, pool_size=4, catalog_cache_seconds=0)
    try:
        if db.engine.dialect.name == "postgresql":
            await support.truncate_all(db)
        relay = Relay(db, {"hook": Recorder("hook")}, GIVE_UP_FAST)
        await relay.run_once()  # the lanes' cursors exist
        async with db.uow() as uow:
            await uow.add_event("stock.changed", "stock", "1:1", {}, utcnow())
            await uow.add_event("stock.changed", "stock", "2:1", {}, utcnow())
            await uow.commit()
        async with db.uow() as uow:  # sequenced, not delivered
            await sequence(uow.conn, 1 if db.engine.dialect.name == "sqlite" else 2, 100)
            await uow.commit()
    finally:
        await db.dispose()


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_serve_on_sqlite_delivers_through_its_own_relay(
    database_url: str, db: Database, backend: str
) -> None:
    receiver = Receiver()
    try:
        settings = Settings(
            master="hub",
            database_url=database_url,
            seed_demo=False,
            sinks={"hook": {"kind": "webhook", "url": receiver.url, "secret": SECRET.decode()}},
            relay={"poll_seconds": 5},
        )
        application = create_app(settings, db=db, sweeper=True)
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://hub"):
                async with db.uow() as uow:
                    await uow.add_event("stock.changed", "stock", "1:1", {}, utcnow())
                    await uow.commit()
                for _ in range(100):
                    if receiver.received:
                        break
                    await asyncio.sleep(0.02)
        assert len(receiver.received) == 1  # woken by the commit, well before the 5 s poll
    finally:
        receiver.close()
