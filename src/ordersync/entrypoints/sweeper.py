"""Releases the holds of unpaid orders whose time is over, on a timer, inside `serve`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from ..db.unit_of_work import Database
from ..services.context import Context
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
