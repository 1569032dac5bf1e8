"""Bitrix site orders into the hub: how soon a site order holds stock in the hub, and how fast
the catch-up poll brings in the orders placed while the hub was down.

Run from the repository root, with the package installed in .venv:

    .venv/bin/python bench/site.py [--orders 300] [--per-second 5] [--outage-orders 5000]
        [--delay-ms 20] [--postgres]

What it does, in one process (the hub's app, its site worker and the Bitrix site simulator of
the tests, tests/bitrix_sim.py, whose every REST answer is delayed by --delay-ms):

1. Live: places --orders site orders one after another (--per-second, 5); the site sends
   each ONSALEORDERSAVED to POST /bitrix/events, the hub stores it, its site worker reads the
   order (sale.order.get, one delayed call) and creates the hub order with its stock held.
   Prints p50, p99 and max of the time from the site's save to the hub's commit of the order
   holding stock.
2. Catch-up: with the hub down (no events delivered), the site takes --outage-orders orders;
   then one catch-up poll (sale.order.list pages of 50 and `batch` reads of 50 orders, each a
   delayed call) brings them in. Prints orders/s and checks every one arrived.

The database is a fresh SQLite file (the embedded default), or with --postgres the database
``ordersync_site_bench`` on 127.0.0.1:5432, recreated and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import database_urls, drop_database, log, recreate_database
from tests import support
from tests.bitrix_sim import BitrixSim, SiteLine

from ordersync.api.app import context_from, create_app
from ordersync.config import BitrixSettings, Settings
from ordersync.db.migrate import upgrade
from ordersync.db.unit_of_work import Database
from ordersync.entrypoints import site_task as site_module
from ordersync.entrypoints.site_task import SiteTask, run_site

TEA, COFFEE = 501, 502
PG_NAME = "ordersync_site_bench"


class SlowSite(httpx.AsyncBaseTransport):
    """The simulator, answering each HTTP request after `delay` seconds."""

    def __init__(self, sim: BitrixSim, delay: float) -> None:
        self.sim, self.delay = sim, delay

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        await asyncio.sleep(self.delay)
        return self.sim.handler(request)


def make_site() -> BitrixSim:
    sim = BitrixSim()
    sim.add_product(TEA, "1c-tea", 100)
    sim.add_product(COFFEE, "1c-coffee", 250)
    return sim


def site_settings(sim: BitrixSim) -> BitrixSettings:
    return BitrixSettings(
        url=sim.webhook_url,
        application_token=sim.application_token,
        poll_seconds=3600,  # the live part measures events, not the poll
        overlap_seconds=5,
    )


def place(sim: BitrixSim, n: int) -> int:
    lines = [SiteLine(TEA, 1 + n % 3, 100)]
    if n % 2:
        lines.append(SiteLine(COFFEE, 1, 250))
    return sim.place_order(lines, delivery_id=2, properties={"FIO": f"Customer {n}"})


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def live(
    settings: Settings, db: Database, sim: BitrixSim, orders: int, delay: float, rate: float
) -> list[float]:
    bitrix = site_settings(sim)
    configured = settings.model_copy(update={"bitrix": bitrix})
    saved: dict[str, float] = {}
    held: dict[str, float] = {}
    apply_order = SiteTask.apply_order

    async def timed(task: SiteTask, result: Any, inbox_id: int | None = None) -> Any:
        synced = await apply_order(task, result, inbox_id)
        if synced.outcome == "created":
            held[str(result["order"]["id"])] = time.perf_counter()
        return synced

    site_module.SiteTask.apply_order = timed  # type: ignore[method-assign]
    app = create_app(configured, db=db, sweeper=False)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=SlowSite(sim, delay)) as rest,
            run_site(bitrix, db, context_from(configured), enabled=True, client=rest) as task,
        ):
            app.state.site_task = task
            sim.outgoing_webhook("http://hub/bitrix/events", app=app)
            async with sim.event_pump(interval=0.001):
                for n in range(orders):
                    saved[str(place(sim, n))] = time.perf_counter()
                    await asyncio.sleep(1 / rate)
                for _ in range(600):
                    if len(held) == orders:
                        break
                    await asyncio.sleep(0.05)
    finally:
        site_module.SiteTask.apply_order = apply_order  # type: ignore[method-assign]
    if len(held) != orders:
        raise SystemExit(f"only {len(held)} of {orders} site orders arrived")
    return [held[k] - saved[k] for k in saved]


async def catch_up(
    settings: Settings, db: Database, sim: BitrixSim, orders: int, delay: float
) -> float:
    bitrix = site_settings(sim)
    for n in range(orders):  # the hub is down: its events are never delivered
        place(sim, n)
    sim.events.pending.clear()
    requests = sim.http_requests
    async with httpx.AsyncClient(transport=SlowSite(sim, delay)) as rest:
        task = SiteTask(db, bitrix, context_from(settings), client=rest)
        started = time.perf_counter()
        brought = await task.poll()
        elapsed = time.perf_counter() - started
        await task.close()
    if brought != orders:
        raise SystemExit(f"the poll brought {brought} of {orders} site orders")
    calls = sim.http_requests - requests
    log(f"catch-up: {brought} orders in {elapsed:.1f} s, {calls} site requests")
    return brought / elapsed


async def run(args: argparse.Namespace, url: str) -> None:
    settings = Settings(master="hub", database_url=url)
    stock = {"TEA": 10 * (args.orders + args.outage_orders), "COFFEE": 10**6}
    db = Database.from_url(url, pool_size=10, catalog_cache_seconds=2.0)
    sim = make_site()
    try:
        await support.seed_network(db, {"WH1": stock})
        log(f"live: {args.orders} site orders, each REST answer after {args.delay_ms} ms")
        latencies = await live(
            settings, db, sim, args.orders, args.delay_ms / 1000, args.per_second
        )
        log(f"catch-up: {args.outage_orders} site orders placed while the hub was down")
        rate = await catch_up(settings, db, sim, args.outage_orders, args.delay_ms / 1000)
    finally:
        await sim.aclose()
        await db.dispose()
    ms = [x * 1000 for x in latencies]
    print(f"database: {'postgresql' if args.postgres else 'sqlite'}")
    print(
        f"site event -> hub order holding stock ({len(ms)} orders, {args.per_second:g} a "
        f"second, REST {args.delay_ms:g} ms):"
    )
    print(
        f"  p50 {percentile(ms, 0.5):.1f} ms   p99 {percentile(ms, 0.99):.1f} ms   "
        f"max {max(ms):.1f} ms   mean {statistics.fmean(ms):.1f} ms"
    )
    print(f"catch-up after an outage of {args.outage_orders} orders: {rate:.0f} orders/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--outage-orders", type=int, default=5000)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--per-second", type=float, default=5.0, help="site orders placed")
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    if args.postgres:
        recreate_database(PG_NAME)
        url = database_urls(PG_NAME)[0]
        upgrade(url)
        try:
            asyncio.run(run(args, url))
        finally:
            drop_database(PG_NAME)
        return
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite+aiosqlite:///{directory}/site_bench.db"
        upgrade(url)
        asyncio.run(run(args, url))


if __name__ == "__main__":
    main()
