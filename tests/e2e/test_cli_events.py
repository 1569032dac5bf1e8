"""`ordersync events pending | dead | retry | drop`, and the relay inside `serve` on SQLite."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner, Result

from ordersync.api.app import create_app
from ordersync.config import Settings
from ordersync.db.relay import dead_letters, sequence
from ordersync.db.tables import outbox_events
from ordersync.db.unit_of_work import Database
from ordersync.entrypoints.cli import app
from ordersync.relay.worker import Relay, RelayPolicy
from ordersync.services.context import utcnow
from tests import support
from tests.e2e.helpers import bearer
from tests.e2e.test_metrics_api import parse, value
from tests.e2e.test_relay_worker import BINARY, SECRET, Receiver
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


async def _events(db: Database, count: int) -> None:
    async with db.uow() as uow:
        for n in range(count):
            await uow.add_event("stock.changed", "stock", f"{n}:1", {"n": n}, utcnow())
        await uow.commit()


def pending_figures(output: str) -> tuple[int, int]:
    """(not yet ordered, waiting) from the last two lines of `events pending`."""
    *_, unordered, waiting = output.strip().splitlines()
    assert unordered.endswith("events not yet ordered by the relay"), output
    assert waiting.endswith("events waiting"), output
    return int(unordered.split()[0]), int(waiting.split()[0])


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_with_no_sink_serve_orders_the_outbox_and_metrics_agree_with_events_pending(
    database_url: str, db: Database, tmp_path: Path, backend: str
) -> None:
    """The case found in the field: /metrics said 86 unsequenced, `events pending` said 0."""
    net = await support.seed_network(db)
    settings = Settings(master="hub", database_url=database_url, seed_demo=False)
    application = create_app(settings, db=db, sweeper=True)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            await _events(db, 86)
            for _ in range(100):
                scraped = parse(
                    (await http.get("/metrics", headers=bearer(net.tokens["admin"]))).text
                )
                if value(scraped, "ordersync_outbox_unsequenced") == 0:
                    break
                await asyncio.sleep(0.02)
    config = tmp_path / "none.toml"
    config.write_text(f'master = "hub"\ndatabase_url = "{database_url}"\n')

    out = await asyncio.to_thread(ordersync, config, "events", "pending")

    assert value(scraped, "ordersync_outbox_unsequenced") == 0
    assert pending_figures(out.stdout) == (0, 0)


async def test_metrics_and_events_pending_agree_on_what_waits_per_sink(
    configured: Configured, database_url: str, db: Database
) -> None:
    net = await support.seed_network(db)
    relay = Relay(db, {"hook": Recorder("hook", always_fail=True)}, GIVE_UP_FAST)
    await _events(db, 5)
    await relay.run_once()  # ordered, and failed: waiting
    await _events(db, 3)  # not ordered yet
    settings = Settings(master="hub", database_url=database_url, seed_demo=False,
                        sinks={"hook": {"kind": "webhook", "url": configured.receiver.url,
                                        "secret": SECRET.decode()}})  # fmt: skip
    application = create_app(settings, db=db, sweeper=False)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            scraped = parse((await http.get("/metrics", headers=bearer(net.tokens["admin"]))).text)

    out = await asyncio.to_thread(ordersync, configured.path, "events", "pending")

    assert out.exit_code == 0, out.output
    assert pending_figures(out.stdout) == (3, 5)
    assert value(scraped, "ordersync_outbox_unsequenced") == 3
    assert value(scraped, "ordersync_relay_backlog", sink="hook") == 5
    assert (value(scraped, "ordersync_relay_failing_lanes", sink="hook") or 0) >= 1


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_worker_with_no_sink_orders_and_prunes_the_outbox(
    database_url: str, db: Database, tmp_path: Path, backend: str
) -> None:
    await _events(db, 20)
    config = tmp_path / "worker.toml"
    config.write_text(
        f'master = "hub"\ndatabase_url = "{database_url}"\n'
        "[relay]\nretention_hours = 0.0001\npoll_seconds = 0.05\n"
    )
    await asyncio.sleep(0.5)  # older than the retention
    worker = _start_worker(config)
    try:
        for _ in range(300):
            async with db.uow_read() as uow:
                left = await uow.conn.execute(select(func.count()).select_from(outbox_events))
                if left.scalar_one() == 0:
                    break
            await asyncio.sleep(0.05)
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=15)
    async with db.uow_read() as uow:
        assert (
            await uow.conn.execute(select(func.count()).select_from(outbox_events))
        ).scalar_one() == 0
    assert worker.returncode == 0
    assert b"no sinks configured" in err


def _start_worker(config: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERSYNC_")}
    env["ORDERSYNC_CONFIG"] = str(config)
    return subprocess.Popen([str(BINARY), "worker"], env=env, stderr=subprocess.PIPE)
