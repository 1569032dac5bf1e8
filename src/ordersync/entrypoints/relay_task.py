"""The relay inside `serve` (the embedded SQLite default, so `make run` syncs out of the box,
and with no sink configured it still orders and prunes the outbox); on PostgreSQL run
`ordersync worker` processes instead."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from ..config import Settings
from ..db.unit_of_work import Database
from ..relay.configured import build_sinks, policy
from ..relay.worker import Relay


@asynccontextmanager
async def run_relay(settings: Settings, db: Database, enabled: bool) -> AsyncIterator[None]:
    if not enabled:
        yield
        return
    sinks = await build_sinks(db, settings.sinks, settings.evotor, bitrix=settings.bitrix)
    stop = asyncio.Event()
    task = asyncio.create_task(Relay(db, sinks, policy(settings.relay)).run(stop))
    try:
        yield
    finally:
        stop.set()
        with suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10)
        for sink in sinks.values():
            await sink.close()
