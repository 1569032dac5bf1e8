"""Inside `serve`, on timers: releases the holds of unpaid orders whose time is over, and
prunes order timelines older than `ui.timeline_days`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import timedelta

from ..db import order_timeline
from ..db.unit_of_work import Database
from ..services.context import Context, utcnow
from ..services.orders import expire_unpaid_holds

log = logging.getLogger("ordersync.sweeper")


async def sweep_forever(db: Database, ctx: Context, interval: float) -> None:
    while True:
        try:
            while await expire_unpaid_holds(db.uow, ctx) > 0:
                pass  # a full batch: there may be more due right now
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("hold sweep failed")
        await asyncio.sleep(interval)


@asynccontextmanager
async def run_sweeper(
    db: Database, ctx: Context, interval: float, enabled: bool = True
) -> AsyncIterator[None]:
    task = asyncio.create_task(sweep_forever(db, ctx, interval)) if enabled else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task


TIMELINE_PRUNE_SECONDS = 3600.0


async def prune_timelines(db: Database, days: int) -> int:
    """Deletes timeline entries older than `days`, in batches; how many it deleted."""
    pruned = 0
    before = utcnow() - timedelta(days=days)
    while True:
        async with db.uow() as uow:
            count = await order_timeline.prune(uow.conn, before)
            await uow.commit()
        pruned += count
        if count == 0:
            return pruned


async def _prune_forever(db: Database, days: int) -> None:
    while True:
        try:
            await prune_timelines(db, days)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("timeline prune failed")
        await asyncio.sleep(TIMELINE_PRUNE_SECONDS)


@asynccontextmanager
async def run_timeline_pruner(db: Database, days: int, enabled: bool = True) -> AsyncIterator[None]:
    task = asyncio.create_task(_prune_forever(db, days)) if enabled else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
