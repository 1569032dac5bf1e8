"""The Bitrix site's orders in, inside `ordersync worker` (and `serve` on SQLite), when
`[bitrix] url` and `application_token` are set:

- the inbox: each event POST /bitrix/events stored is applied: a saved order is read with
  `sale.order.get`, mapped (channels/bitrix/mapping.py) and brought in line by
  services/site_orders.py; a deleted one cancels its hub order by the id the event carries.
  A site call that fails leaves the event pending, tried again with backoff.
- the catch-up: every `poll_seconds`, `sale.order.list` with `>=dateUpdate` from the stored
  watermark less `overlap_seconds`, keyed pages (channels/bitrix/watermark.py); every order not
  yet at its site version is read (`batch` of up to 50 `sale.order.get`) and goes the same way.
  The watermark moves only after a complete poll; one worker at a time polls (a lease).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from datetime import timedelta
from typing import Any

import httpx

from ..channels.bitrix import (
    HubCatalog,
    MappingConfig,
    OrderStamp,
    SyncSiteOrder,
    first_page,
    is_new,
    looks_like_hub_order_id,
    map_site_order,
    next_page,
    next_watermark,
    read_order,
    read_order_list,
)
from ..channels.bitrix.values import BadSitePayload
from ..config import BitrixSettings
from ..db import catalog as catalog_rows
from ..db.availability import is_unavailable
from ..db.unit_of_work import Database
from ..domain.errors import OrdersyncError
from ..services import site_inbox, site_orders
from ..services.context import Context
from ..sinks.bitrix_rest import BATCH_LIMIT, BitrixBatchError, BitrixError, BitrixRest

log = logging.getLogger("ordersync.bitrix")
IDLE_SECONDS = 1.0
# Events applied side by side: their sale.order.get calls overlap (each a round trip to the
# site); the same site order twice is safe (one version acts once, under its row lock).
APPLY_AT_ONCE = 4
LEASE = timedelta(minutes=15)
SAVED = "ONSALEORDERSAVED"
# sale.order.get of a deleted order (sale-order-get.md: its example and its table disagree)
ORDER_GONE = frozenset({"200540400001", "201240400001"})


class SiteTask:
    def __init__(
        self,
        db: Database,
        settings: BitrixSettings,
        ctx: Context,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        assert settings.url, "the site is connected by [bitrix] url"
        self.db, self.settings, self.ctx = db, settings, ctx
        self.rest = BitrixRest(settings.url, client=client, timeout=settings.timeout_seconds)
        self.mapping = MappingConfig.build(
            pickup_deliveries=settings.pickup_deliveries,
            pickup_stores=_keyed(settings.pickup_stores),
            store_map=_keyed(settings.store_map),
            property_codes=settings.property_codes,
            status_map=settings.status_map,
            cod_pay_systems=settings.cod_pay_systems,
        )
        self._catalog: HubCatalog | None = None
        self._site_stores: dict[str, str] | None = None
        self._wake = asyncio.Event()
        # SQLite has one writer: side by side, writers only wait on each other's lock.
        self._writers = asyncio.Semaphore(APPLY_AT_ONCE if db.is_postgres else 1)

    def wake(self) -> None:
        """An event was stored: apply it now rather than at the next idle tick."""
        self._wake.set()

    async def close(self) -> None:
        await self.rest.close()

    # --- the inbox -------------------------------------------------------------------------

    async def apply_due(self) -> int:
        """Events nobody is applying; how many were tried."""
        due = await site_inbox.due_events(self.db.uow, self.ctx)
        gate = asyncio.Semaphore(APPLY_AT_ONCE)

        async def one(event_id: int) -> None:
            async with gate:
                await self.apply_event(event_id)

        await asyncio.gather(*(one(x) for x in due))
        return len(due)

    async def apply_event(self, event_id: int) -> None:
        event = await site_inbox.claim(self.db.uow, event_id, self.ctx)
        if event is None or event.site_order_id is None:
            return
        try:
            if event.event == SAVED:
                if not await self._own(event.xml_id):
                    await self.bring_in(event.site_order_id, event.id)
                    return  # marked done with the order, in its transaction
            else:
                await site_orders.site_order_deleted(self.db.uow, event.site_order_id, self.ctx)
        except (BadSitePayload, BitrixError) as exc:
            if isinstance(exc, BitrixError) and not exc.refuses_data:
                await site_inbox.retry_later(self.db.uow, event, str(exc), self.ctx)
                return
            if isinstance(exc, BitrixError) and str(exc.code) in ORDER_GONE:
                await site_inbox.finish(self.db.uow, event.id, None, self.ctx)
                return  # deleted since: its delete event cancels it
            log.warning("bitrix: event %s refused: %s", event.id, exc)
            await site_inbox.finish(self.db.uow, event.id, str(exc)[:2000], self.ctx)
            return
        except Exception as exc:  # the database, a stock race: the event stays pending
            if not is_unavailable(exc) and not isinstance(exc, OrdersyncError):
                log.exception("bitrix: event %s failed", event.id)
            await _quietly(site_inbox.retry_later(self.db.uow, event, repr(exc), self.ctx))
            return
        await site_inbox.finish(self.db.uow, event.id, None, self.ctx)

    async def bring_in(self, site_order_id: str, inbox_id: int | None = None) -> site_orders.Synced:
        result = await self.rest.call("sale.order.get", {"id": int(site_order_id)})
        return await self.apply_order(result, inbox_id)

    async def apply_order(self, result: Any, inbox_id: int | None = None) -> site_orders.Synced:
        order = read_order(result)
        sync = await self.map(order)
        async with self._writers:
            return await site_orders.sync_site_order(self.db.uow, sync, self.ctx, inbox_id)

    async def map(self, order: Any) -> SyncSiteOrder:
        sync = map_site_order(order, self.mapping, await self.catalog())
        if any(p.code in ("unknown_product", "unknown_store") for p in sync.problems):
            self._catalog = None  # the catalog may have grown since it was read: once more
            sync = map_site_order(order, self.mapping, await self.catalog())
        return sync

    async def catalog(self) -> HubCatalog:
        if self._catalog is None:
            async with self.db.connect(autocommit=True) as conn:
                xml_ids = await catalog_rows.product_xml_ids(conn)
            stores = await self.db.fresh_stores()
            known = {s.xml_id: s.code for s in stores} | {s.code: s.code for s in stores}
            self._catalog = HubCatalog(xml_ids, known, await self.site_stores())
        return self._catalog

    async def site_stores(self) -> dict[str, str]:
        """Site store id -> its xmlId (catalog.store.list), read once."""
        if self._site_stores is None:
            try:
                result = await self.rest.call(
                    "catalog.store.list", {"select": ["id", "xmlId"], "start": 0}
                )
            except BitrixError as exc:
                log.warning("bitrix: catalog.store.list failed (%s): stores by store_map", exc)
                return {}
            rows = result.get("stores", []) if isinstance(result, dict) else []
            self._site_stores = {
                str(r.get("id")): str(r.get("xmlId")) for r in rows if r.get("xmlId")
            }
        return self._site_stores

    async def _own(self, xml_id: str | None) -> bool:
        """The hub's own order mirrored to the site: never imported."""
        if not looks_like_hub_order_id(xml_id):
            return False
        assert xml_id is not None
        async with self.db.uow_read() as uow:
            return await uow.get_order(xml_id) is not None

    # --- the catch-up poll -----------------------------------------------------------------

    async def poll(self) -> int:
        """Orders changed since the watermark (less the overlap) brought in; how many."""
        leased, mark = await site_inbox.lease_watermark(self.db.uow, LEASE, self.ctx)
        if not leased:
            return 0  # another worker is polling
        overlap = timedelta(seconds=self.settings.overlap_seconds)
        page: Any = first_page(mark, overlap)
        reached, brought, complete = mark, 0, False
        try:
            while page is not None:
                result = await self.rest.call("sale.order.list", page.params())
                stamps = read_order_list(result)
                brought += await self._bring_listed(stamps)
                reached = next_watermark(reached, stamps)
                page = next_page(page, stamps)
            complete = True
        except (BitrixError, BadSitePayload, httpx.HTTPError, OrdersyncError) as exc:
            log.warning("bitrix: the catch-up poll stopped: %s", exc)
        finally:
            await site_inbox.move_watermark(self.db.uow, reached if complete else mark, self.ctx)
        return brought

    async def _bring_listed(self, stamps: Sequence[OrderStamp]) -> int:
        versions = await site_orders.applied_versions(self.db.uow, [s.id for s in stamps])
        wanted = [s for s in stamps if is_new(s, versions.get(s.id))]
        wanted = [s for s in wanted if not await self._own(s.xml_id)]
        brought = 0
        for start in range(0, len(wanted), BATCH_LIMIT):
            chunk = wanted[start : start + BATCH_LIMIT]
            commands = {f"o{s.id}": ("sale.order.get", {"id": int(s.id)}) for s in chunk}
            try:
                results = await self.rest.batch(commands)
            except BitrixBatchError as exc:
                if exc.retry_later:
                    raise
                results = exc.results  # the others were deleted meanwhile: their events say so
            found = [results[key] for key in commands if key in results]
            outcomes = await asyncio.gather(
                *(self.apply_order(x) for x in found), return_exceptions=True
            )  # writers gated
            failed = [x for x in outcomes if isinstance(x, BaseException)]
            for refused in [x for x in failed if isinstance(x, BadSitePayload)]:
                log.warning("bitrix: a listed order cannot be read: %s", refused)
            brought += len(found) - len(failed)
            transient = [x for x in failed if not isinstance(x, BadSitePayload)]
            if transient:  # the watermark stays: the next poll tries them again
                raise transient[0]
        return brought


def _keyed(values: dict[str, str]) -> dict[str | int, str]:
    return {key: value for key, value in values.items()}


async def _quietly(step: Any) -> None:
    with suppress(Exception):
        await step


async def work_forever(task: SiteTask, poll_seconds: float, stop: asyncio.Event) -> None:
    polled_at: float | None = None
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        task._wake.clear()
        try:
            if polled_at is None or loop.time() - polled_at >= poll_seconds:
                polled_at = loop.time()
                await task.poll()
                await site_inbox.prune(task.db.uow, task.ctx)
            await task.apply_due()
        except Exception as exc:  # a database hiccup must not end the channel's work
            if not is_unavailable(exc):
                log.exception("bitrix: the site worker failed")
        if task._wake.is_set():
            continue
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(task._wake.wait())]
        with suppress(TimeoutError):
            await asyncio.wait(waits, timeout=IDLE_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        for waiting in waits:
            waiting.cancel()


def site_connected(settings: BitrixSettings) -> bool:
    return bool(settings.url and settings.application_token)


@asynccontextmanager
async def run_site(
    settings: BitrixSettings,
    db: Database,
    ctx: Context,
    enabled: bool,
    client: httpx.AsyncClient | None = None,
) -> AsyncIterator[SiteTask | None]:
    """The site worker, while the block runs (nothing when the site is not connected)."""
    if not (enabled and site_connected(settings)):
        yield None
        return
    task = SiteTask(db, settings, ctx, client)
    stop = asyncio.Event()
    running = asyncio.create_task(work_forever(task, settings.poll_seconds, stop))
    try:
        yield task
    finally:
        stop.set()
        task.wake()
        with suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(running, timeout=10)
        await task.close()
