"""The Evotor channel's background work, inside `ordersync worker` (and `serve` on SQLite):

- the catch-up: webhooks can be lost (the hub down longer than the cloud retries), so every
  `evotor.poll_minutes` each linked store's documents are pulled by close time, from a stored
  watermark set back by `evotor.overlap_hours` (an offline till syncs documents closed long
  ago), in windows of at most a month, and go through the same inbox: what was seen already
  is stored and applied once, never twice. One worker at a time pulls a store (a lease on its
  watermark).
- documents left pending in the inbox (a request the cloud stopped waiting for, a crash) are
  applied every few seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import timedelta

import httpx

from ..channels.evotor.cloud import EvotorCloud
from ..channels.evotor.cloud_errors import CloudError
from ..channels.evotor.intake import PULL, Intake
from ..channels.evotor.model import STOCK_TYPES
from ..config import EvotorSettings
from ..db.availability import is_unavailable
from ..db.unit_of_work import Database
from ..services import evotor as records
from ..services.context import Context
from ..services.ports import Store

log = logging.getLogger("ordersync.evotor")
APPLY_SECONDS = 2.0
LEASE = timedelta(minutes=15)


class CatchUp:
    def __init__(
        self,
        db: Database,
        settings: EvotorSettings,
        ctx: Context,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.db, self.settings, self.ctx = db, settings, ctx
        self._client = client or httpx.AsyncClient(timeout=settings.timeout_seconds)
        self._own_client = client is None
        self.intake = Intake(db.uow, db.fresh_stores, ctx)
        self._warned = False

    async def close(self) -> None:
        if self._own_client:
            await self._client.aclose()

    async def apply_due(self) -> int:
        """Inbox documents nobody is applying; how many were tried."""
        due = await records.due_documents(self.db.uow, self.ctx)
        await self.intake.apply_all(due)
        return len(due)

    async def pull_all(self) -> int:
        """Every linked store's documents since its watermark; how many were new."""
        stores = records.linked_stores(await self.db.fresh_stores())
        if not stores:
            return 0
        token = self.settings.token or await records.cloud_token(self.db.uow)
        if not token:
            if not self._warned:
                log.warning("evotor: no cloud token ([evotor] token or /user/token): no catch-up")
                self._warned = True
            return 0
        cloud = EvotorCloud(
            token,
            self.settings.base_url,
            client=self._client,
            documents_path=self.settings.documents_path,
        )
        return sum([await self.pull(cloud, store) for store in stores])

    async def pull(self, cloud: EvotorCloud, store: Store) -> int:
        assert store.evotor_uuid is not None
        uuid, now = store.evotor_uuid, self.ctx.clock()
        start = now - timedelta(days=self.settings.first_pull_days)
        mark = await records.lease_watermark(self.db.uow, uuid, start, LEASE, self.ctx)
        if mark is None:
            return 0  # another worker is pulling this store
        since = mark.closed_before - timedelta(hours=self.settings.overlap_hours)
        reached, new = mark.closed_before, 0
        try:
            async for window in cloud.documents(uuid, since, now, types=sorted(STOCK_TYPES)):
                received = await self.intake.receive_documents(
                    store, uuid, window.results, window.raws, PULL
                )
                await self.intake.apply_all(sorted(received.pending))
                new += len(received.pending)
                reached = max(reached, window.until)
        except CloudError as exc:
            log.warning("evotor: pulling store %s stopped: %s", store.code, exc)
        finally:
            await records.move_watermark(self.db.uow, uuid, reached, self.ctx)
        return new


async def work_forever(task: CatchUp, poll_minutes: float, stop: asyncio.Event) -> None:
    pulled_at: float | None = None
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        try:
            if pulled_at is None or loop.time() - pulled_at >= poll_minutes * 60:
                pulled_at = loop.time()
                await task.pull_all()
            await task.apply_due()
        except Exception as exc:  # a database hiccup must not end the channel's work
            if not is_unavailable(exc):
                log.exception("evotor catch-up failed")
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=APPLY_SECONDS)


@asynccontextmanager
async def run_evotor(
    settings: EvotorSettings, db: Database, ctx: Context, enabled: bool
) -> AsyncIterator[CatchUp | None]:
    if not (enabled and settings.enabled):
        yield None
        return
    task = CatchUp(db, settings, ctx)
    stop = asyncio.Event()
    running = asyncio.create_task(work_forever(task, settings.poll_minutes, stop))
    try:
        yield task
    finally:
        stop.set()
        with suppress(asyncio.CancelledError):
            await asyncio.wait_for(running, timeout=10)
        await task.close()
