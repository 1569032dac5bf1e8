"""Cost as the ledger grows, on PostgreSQL: the same measurements on an empty database and on
one holding millions of movements, orders and delivered events.

Run from the repository root, with the package installed in .venv:

    .venv/bin/python bench/growth.py [--movements 10000000] [--orders 1000000]
        [--events 2000000] [--duration 10] [--requests 1000] [--db ordersync_bench]
        [--keep-db] [--grown-only] [--samples DIR]

`--grown-only` measures again a database an earlier `--keep-db` run grew, without recreating
or growing it (for investigating; the benchmark's figure is a normal run, which compares the
two); `--samples DIR` writes each GET's wall-clock start and milliseconds to DIR, to line the
slow requests up with what the machine did at that moment.

1. (Re)creates `ordersync_bench` as bench/orders.py does (3 stores, 10,000 products with stock)
   and serves the hub (`ordersync serve --workers 2`).
2. Measures, on the empty database: placement (wrk, POST /orders, a random product of 10,000,
   32 connections, `--duration` s): orders/s and p99; the orders list's first page
   (GET /orders?order=newest&limit=50) and two stock queries (a product's levels,
   GET /stock?sku=..., and its movements, GET /stock/movements?sku=...&limit=50): p50 and p99 of
   `--requests` each, as the client sees them (1,000 by default: the p99 of 200 is the second
   slowest request, which one hiccup of a shared machine decides).
3. Stops the hub and writes, straight in SQL, `--movements` stock movements (over the 10,000
   products at WH1 and S01, over the last 90 days), `--orders` orders with a line each (as
   bench/console.py writes them: three channels, customers, most completed) and `--events`
   outbox events already delivered (sequenced, kept for the relay's retention); VACUUM ANALYZE, then
   CHECKPOINT (so the grown database is not measured while the checkpointer flushes the load).
4. Serves the hub again and measures the same; prints both, the ratio grown/empty and the
   target of issue 12 (the grown database within 10 % of the empty one).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import console
import httpx
import orders as hub
from common import BenchError, interrupt, log, venv_bin

CLIENTS = 32
TOLERANCE = 0.10

MOVEMENTS = """
INSERT INTO stock_movements (product_id, store_id, quantity, reason, document_type,
    document_id, business_time, recorded_at)
SELECT p.lo + (g::bigint * 7919) % p.n, CASE WHEN g % 3 = 0 THEN p.s01 ELSE p.wh1 END,
    CASE WHEN g % 4 = 0 THEN 5000 ELSE -1000 END,
    CASE WHEN g % 4 = 0 THEN 'receipt' ELSE 'sale' END,
    CASE WHEN g % 4 = 0 THEN 'receipt' ELSE 'pos_sale' END,
    'growth-' || g,
    now() - ($1 - g) * (interval '90 days' / $1),
    now() - ($1 - g) * (interval '90 days' / $1)
FROM generate_series(1, $1::integer) AS g,
    (SELECT min(id) AS lo, count(*) AS n,
            (SELECT id FROM stores WHERE code = 'S01') AS s01,
            (SELECT id FROM stores WHERE code = 'WH1') AS wh1 FROM products) AS p
"""

LINES = """
INSERT INTO order_lines (order_id, line_no, product_id, quantity, price)
SELECT o.id, 1, p.lo + (o.number * 31) % p.n, 1000, o.total
FROM orders o, (SELECT min(id) AS lo, count(*) AS n FROM products) AS p
WHERE o.id LIKE 'bench-%'
"""

EVENTS = """
INSERT INTO outbox_events (type, aggregate_type, aggregate_id, payload, created_at, seq, lane)
SELECT 'stock.changed', 'stock', (g % 10000) || ':1',
    json_build_object('product_id', g % 10000, 'store_id', 1, 'on_hand', '5',
                      'reserved', '0', 'available', '5', 'reason', 'hold'),
    now() - ($1 - g) * (interval '48 hours' / $1), g, g % 16
FROM generate_series(1, $1::integer) AS g
"""

LAST_SEQ = """
INSERT INTO relay_state (name, value) VALUES ('last_seq', $1)
ON CONFLICT (name) DO UPDATE SET value = greatest(relay_state.value, EXCLUDED.value)
"""


# Orders the runs placed go before each run; the generated ones ('bench-...') stay.
RESET = [
    f"DELETE FROM {table} WHERE order_id NOT LIKE 'bench-%'"
    for table in ("order_timeline", "holds", "order_lines", "order_attention")
] + [
    "DELETE FROM orders WHERE id NOT LIKE 'bench-%'",
    "DELETE FROM outbox_events WHERE seq IS NULL",
    "TRUNCATE idempotency_keys",
    "UPDATE stock_levels SET reserved = 0 WHERE reserved <> 0",
]


def reset_placed_orders() -> None:
    async def run() -> None:
        conn = await asyncpg.connect(hub.BENCH_DSN)
        try:
            for sql in RESET:
                await conn.execute(sql)
            await conn.execute("VACUUM ANALYZE stock_levels, orders, outbox_events")
        finally:
            await conn.close()

    asyncio.run(run())


@dataclass
class Figures:
    orders_per_s: float
    placement_p99_ms: float
    first_page: tuple[float, float]
    stock: tuple[float, float]
    movements: tuple[float, float]


def p50_p99(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def timed(
    client: httpx.Client, path: str, params: dict[str, str], n: int, log_to: Path | None = None
) -> tuple[float, float]:
    """p50 and p99 of `n` requests; with `log_to`, each request's wall-clock start and ms
    are written there (to line the slow ones up with what the server and PostgreSQL did)."""
    samples = []
    starts = []
    for _ in range(n):
        starts.append(time.time())
        started = time.perf_counter()
        answer = client.get(path, params=params)
        samples.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise BenchError(f"GET {path} answered {answer.status_code}: {answer.text[:300]}")
    if log_to is not None:
        lines = (f"{t:.6f},{ms:.3f}\n" for t, ms in zip(starts, samples, strict=True))
        log_to.write_text("".join(lines))
    return p50_p99(samples)


def measure(
    wrk: str, token: str, duration: int, requests: int, samples: Path | None = None
) -> Figures:
    """`samples`: a directory (and a file name prefix) for each GET's timings, or None."""
    reset_placed_orders()
    hub.run_wrk(wrk, "spread", CLIENTS, 2, token)
    placed = hub.run_wrk(wrk, "spread", CLIENTS, duration, token)
    time.sleep(hub.SETTLE_SECONDS)
    rng = random.Random(7)
    headers = {"Authorization": f"Bearer {token}"}

    def to(name: str) -> Path | None:
        return None if samples is None else samples.with_name(f"{samples.name}-{name}.csv")

    with httpx.Client(base_url=hub.HUB_URL, headers=headers, timeout=30) as client:
        params = {"order": "newest", "limit": "50"}
        timed(client, "/orders", params, 5)  # warm
        first_page = timed(client, "/orders", params, requests, to("first-page"))
        sku = f"SKU-{rng.randint(1, hub.PRODUCTS):05d}"
        stock = timed(client, "/stock", {"sku": sku}, requests, to("stock"))
        movements = timed(
            client, "/stock/movements", {"sku": sku, "limit": "50"}, requests, to("movements")
        )
    return Figures(placed.orders_per_s, placed.p99_ms, first_page, stock, movements)


async def _grow(movements: int, orders: int, events: int) -> None:
    conn = await asyncpg.connect(hub.BENCH_DSN)
    try:
        await conn.execute("SET synchronous_commit = off")
        for what, sql, count in (
            ("movements", MOVEMENTS, movements),
            ("orders", console.GENERATE, orders),
            ("delivered events", EVENTS, events),
        ):
            if count <= 0:
                continue
            started = time.monotonic()
            await conn.execute(sql, count)
            if sql is console.GENERATE:
                await conn.execute(LINES)
                await conn.execute(
                    "SELECT setval('orders_number_seq', $1::bigint + 1, false)", count
                )
            if sql is EVENTS:
                await conn.execute(LAST_SEQ, count)
            log(f"{count:,} {what} written in {time.monotonic() - started:.0f} s")
        await conn.execute(
            "VACUUM ANALYZE stock_movements, orders, order_lines, outbox_events, relay_state"
        )
        # The gigabytes just written would otherwise be flushed by the checkpointer while the
        # grown database is measured: a system that grew over months is not in that state.
        started = time.monotonic()
        await conn.execute("CHECKPOINT")
        log(f"checkpoint in {time.monotonic() - started:.0f} s")
    finally:
        await conn.close()


def ratio(grown: float, empty: float) -> float:
    return grown / empty if empty else float("nan")


def report(empty: Figures, grown: Figures, args: argparse.Namespace) -> None:
    print(
        f"\nordersync as the ledger grows, PostgreSQL, hub --workers {hub.HUB_WORKERS}: empty, "
        f"then {args.movements:,} movements, {args.orders:,} orders, {args.events:,} "
        f"delivered events"
    )
    rows = [
        ("placement orders/s", empty.orders_per_s, grown.orders_per_s, True),
        ("placement p99 ms", empty.placement_p99_ms, grown.placement_p99_ms, False),
        ("orders first page p50 ms", *_pair(empty.first_page, grown.first_page, 0), False),
        ("orders first page p99 ms", *_pair(empty.first_page, grown.first_page, 1), False),
        ("stock of a product p50 ms", *_pair(empty.stock, grown.stock, 0), False),
        ("stock of a product p99 ms", *_pair(empty.stock, grown.stock, 1), False),
        ("movements page p50 ms", *_pair(empty.movements, grown.movements, 0), False),
        ("movements page p99 ms", *_pair(empty.movements, grown.movements, 1), False),
    ]
    print(f"{'figure':<28} {'empty':>9} {'grown':>9} {'grown/empty':>11}  within 10 %")
    for name, a, b, higher_is_better in rows:
        r = ratio(b, a)
        ok = r >= 1 - TOLERANCE if higher_is_better else r <= 1 + TOLERANCE
        print(f"{name:<28} {a:>9.1f} {b:>9.1f} {r:>11.2f}  {'PASS' if ok else 'MISS'}")


def _pair(a: tuple[float, float], b: tuple[float, float], i: int) -> tuple[float, float]:
    return a[i], b[i]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--movements", type=int, default=10_000_000)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument(
        "--db", default=hub.DB_NAME, help=f"the scratch database (default {hub.DB_NAME})"
    )
    parser.add_argument(
        "--grown-only",
        action="store_true",
        help="measure the grown database an earlier --keep-db run left, without recreating or "
        "growing it (implies --keep-db; not the benchmark's figure, which compares both)",
    )
    parser.add_argument(
        "--samples",
        type=Path,
        help="a directory for each GET's wall-clock start and ms (empty-*.csv, grown-*.csv)",
    )
    args = parser.parse_args(argv)
    if args.grown_only:
        args.keep_db = True
    return args


def bench(args: argparse.Namespace, workdir: Path) -> tuple[Figures | None, Figures]:
    wrk = hub.ensure_wrk()
    ordersync = venv_bin("ordersync")
    samples: Path | None = args.samples
    if samples is not None:
        samples.mkdir(parents=True, exist_ok=True)
    empty = None
    if not args.grown_only:
        hub.recreate_database()
        hub.migrate(ordersync)
        hub.seed()
    token = hub.create_token(ordersync)
    if not args.grown_only:
        server = hub.Server.hub(ordersync, workdir / "empty.log")
        try:
            server.start()
            empty = measure(wrk, token, args.duration, args.requests, _in(samples, "empty"))
        finally:
            server.stop()
        reset_placed_orders()
        asyncio.run(_grow(args.movements, args.orders, args.events))
    server = hub.Server.hub(ordersync, workdir / "grown.log")
    try:
        server.start()
        grown = measure(wrk, token, args.duration, args.requests, _in(samples, "grown"))
    finally:
        server.stop()
    return empty, grown


def _in(directory: Path | None, prefix: str) -> Path | None:
    return None if directory is None else directory / prefix


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    hub.use_database(args.db)
    signal.signal(signal.SIGTERM, interrupt)
    with tempfile.TemporaryDirectory(prefix="ordersync-growth-") as tmp:
        try:
            empty, grown = bench(args, Path(tmp))
        except BenchError as exc:
            print(f"bench failed: {exc}", file=sys.stderr)
            return 1
        finally:
            if not args.keep_db:
                hub.drop_database()
    if empty is None:
        print(f"\nthe grown database {args.db} alone:")
        report(grown, grown, args)
    else:
        report(empty, grown, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
