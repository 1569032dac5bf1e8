"""Cost as the ledger grows, on PostgreSQL: the same measurements on an empty database and on
one holding millions of movements, orders and delivered events.

Run from the repository root, with the package installed in .venv:

    .venv/bin/python bench/growth.py [--movements 10000000] [--orders 1000000]
        [--events 2000000] [--duration 10] [--rounds 3] [--requests 1000] [--db ordersync_bench]
        [--keep-db] [--reuse] [--samples DIR]

1. (Re)creates two databases as bench/orders.py does (3 stores, 10,000 products with stock):
   `--db` (default `ordersync_bench`), which stays empty, and `<db>_grown`, each with 60
   movements of the product whose movements page is read (so both pages show 50); writes into the
   second, straight in SQL, `--movements` stock movements (over the 10,000 products at WH1 and
   S01, over the last 90 days), `--orders` orders with a line each (as bench/console.py writes
   them: three channels, customers, most completed) and `--events` outbox events already
   delivered (sequenced, kept for the relay's retention); VACUUM ANALYZE, then CHECKPOINT (so
   the grown database is not measured while the checkpointer flushes the load).
2. Placement: both databases served at once by a hub each (`ordersync serve --workers 2`),
   placed into in turn, `--rounds` times each (grown, empty, empty, grown, ...; the hub not
   being measured idles): wrk, POST /orders, a random product of 10,000, 32 connections,
   `--duration` s a run: the median of the runs' orders/s, p99 and CPU per order (the hub's
   processes and the database's backends; steadier than throughput on a shared machine).
3. The reads: the same two hubs, read request by request in turn (empty, grown, grown,
   empty, ...): the orders list's first page
   (GET /orders?order=newest&limit=50) and two stock queries (a product's levels,
   GET /stock?sku=..., and its movements, GET /stock/movements?sku=...&limit=50): p50 and p99
   of `--requests` each per database, as the client sees them. In turn, because a p99 of
   requests of 2 ms is the tenth slowest of a few seconds of requests, which whatever else a
   shared machine does in those seconds decides: measured minutes apart (the grown database
   right after gigabytes were written), the same database gave p99s twice apart.
4. Prints both, the ratio grown/empty and the target of issue 12 (the grown database within
   10 % of the empty one).

`--keep-db` keeps both databases; `--reuse` measures them again without recreating or growing
them; `--samples DIR` writes each GET's wall-clock start and milliseconds to DIR, to line the
slow requests up with what the machine did at that moment.
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
READ_PORT = 8767  # the second hub, serving the grown database

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

# The measured product's movements page shows 50 rows in both databases: a page of its own
# (more than a page of movements) is written into each before one of them grows.
PAGE_OF_MOVEMENTS = """
INSERT INTO stock_movements (product_id, store_id, quantity, reason, document_type,
    document_id, business_time, recorded_at)
SELECT p.id, CASE WHEN g % 3 = 0 THEN s.s01 ELSE s.wh1 END,
    CASE WHEN g % 4 = 0 THEN 5000 ELSE -1000 END,
    CASE WHEN g % 4 = 0 THEN 'receipt' ELSE 'sale' END,
    CASE WHEN g % 4 = 0 THEN 'receipt' ELSE 'pos_sale' END,
    'page-' || g, now() - (60 - g) * interval '1 hour', now() - (60 - g) * interval '1 hour'
FROM generate_series(1, 60) AS g, (SELECT id FROM products WHERE sku = $1) AS p,
    (SELECT (SELECT id FROM stores WHERE code = 'S01') AS s01,
            (SELECT id FROM stores WHERE code = 'WH1') AS wh1) AS s
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
    placement_cpu_us: float  # the hub's and PostgreSQL's CPU per order
    first_page: tuple[float, float]
    stock: tuple[float, float]
    movements: tuple[float, float]


def p50_p99(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def timed(
    client: httpx.Client, path: str, params: dict[str, str], n: int
) -> list[tuple[float, float]]:
    """`n` requests one after another: each one's wall-clock start and milliseconds."""
    samples = []
    for _ in range(n):
        wall, started = time.time(), time.perf_counter()
        answer = client.get(path, params=params)
        samples.append((wall, (time.perf_counter() - started) * 1000))
        if answer.status_code != 200:
            raise BenchError(f"GET {path} answered {answer.status_code}: {answer.text[:300]}")
    return samples


@dataclass(frozen=True)
class Served:
    name: str  # the database
    server: hub.Server
    url: str
    token: str


def place_in_turn(
    wrk: str, served: Sequence[Served], rounds: int, duration: int
) -> dict[str, tuple[float, float, float]]:
    """Per database, the median orders/s, p99 ms and CPU µs per order of `rounds` runs, the
    databases taken in turn (the first of `served` first, then the other way round), so a
    slow spell of a shared machine falls on both alike."""
    runs: dict[str, list[tuple[float, float, float]]] = {s.name: [] for s in served}
    for n in range(rounds):
        for one in served if n % 2 == 0 else list(reversed(served)):
            hub.use_database(one.name)
            reset_placed_orders()
            hub.run_wrk(wrk, "spread", CLIENTS, 2, one.token, one.url)
            before = hub.cpu_now(one.server)
            placed = hub.run_wrk(wrk, "spread", CLIENTS, duration, one.token, one.url)
            used = hub.cpu_now(one.server).since(before)
            time.sleep(hub.SETTLE_SECONDS)
            server_us, database_us, _ = hub.per_order_us(used, placed.ok)
            runs[one.name].append((placed.orders_per_s, placed.p99_ms, server_us + database_us))
            log(
                f"placement into {one.name}: {placed.orders_per_s:.0f} orders/s, p99 "
                f"{placed.p99_ms:.1f} ms, {server_us + database_us:.0f} µs of CPU per order"
            )
    return {
        name: (
            statistics.median(r[0] for r in taken),
            statistics.median(r[1] for r in taken),
            statistics.median(r[2] for r in taken),
        )
        for name, taken in runs.items()
    }


def read_side_by_side(
    empty: httpx.Client, grown: httpx.Client, requests: int, samples: Path | None
) -> tuple[dict[str, tuple[float, float]], dict[str, tuple[float, float]]]:
    """The three reads of each database, request by request in turn (empty first, then grown
    first), so a hiccup of a shared machine lands on both databases' requests alike."""
    sku = measured_sku()
    reads = {
        "first-page": ("/orders", {"order": "newest", "limit": "50"}),
        "stock": ("/stock", {"sku": sku}),
        "movements": ("/stock/movements", {"sku": sku, "limit": "50"}),
    }
    figures: tuple[dict[str, tuple[float, float]], dict[str, tuple[float, float]]] = ({}, {})
    clients = (empty, grown)
    for name, (path, params) in reads.items():
        for client in clients:
            timed(client, path, params, 5)  # warm
        taken: tuple[list[tuple[float, float]], list[tuple[float, float]]] = ([], [])
        for n in range(requests):
            for i in (0, 1) if n % 2 == 0 else (1, 0):
                taken[i].extend(timed(clients[i], path, params, 1))
        for i, phase in enumerate(("empty", "grown")):
            figures[i][name] = p50_p99([ms for _, ms in taken[i]])
            if samples is not None:
                lines = (f"{wall:.6f},{ms:.3f}\n" for wall, ms in taken[i])
                (samples / f"{phase}-{name}.csv").write_text("".join(lines))
    return figures


def measured_sku() -> str:
    return f"SKU-{random.Random(7).randint(1, hub.PRODUCTS):05d}"


async def _page_of_movements() -> None:
    conn = await asyncpg.connect(hub.BENCH_DSN)
    try:
        await conn.execute(PAGE_OF_MOVEMENTS, measured_sku())
        await conn.execute("ANALYZE stock_movements")
    finally:
        await conn.close()


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
        ("placement CPU µs per order", empty.placement_cpu_us, grown.placement_cpu_us, False),
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
    parser.add_argument(
        "--rounds", type=int, default=3, help="placement runs per database (default 3)"
    )
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument(
        "--db",
        default=hub.DB_NAME,
        help=f"the empty scratch database, the grown one is NAME_grown (default {hub.DB_NAME})",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="measure the two databases an earlier --keep-db run left, without recreating or "
        "growing them (implies --keep-db)",
    )
    parser.add_argument(
        "--samples",
        type=Path,
        help="a directory for each GET's wall-clock start and ms (empty-*.csv, grown-*.csv)",
    )
    args = parser.parse_args(argv)
    if args.reuse:
        args.keep_db = True
    return args


def databases(args: argparse.Namespace) -> tuple[str, str]:
    return args.db, f"{args.db}_grown"


def bench(args: argparse.Namespace, workdir: Path) -> tuple[Figures, Figures]:
    wrk = hub.ensure_wrk()
    ordersync = venv_bin("ordersync")
    samples: Path | None = args.samples
    if samples is not None:
        samples.mkdir(parents=True, exist_ok=True)
    names = databases(args)
    tokens = []
    for name in names:
        hub.use_database(name)
        if not args.reuse:
            hub.recreate_database()
            hub.migrate(ordersync)
            hub.seed()
            asyncio.run(_page_of_movements())
        tokens.append(hub.create_token(ordersync))
    if not args.reuse:
        hub.use_database(names[1])
        asyncio.run(_grow(args.movements, args.orders, args.events))
    # Both served at once: placed into in turn (the grown database first), then read in turn.
    served: list[Served] = []
    try:
        for name, token, port in zip(names, tokens, (hub.HUB_PORT, READ_PORT), strict=True):
            hub.use_database(name)
            server = hub.Server.hub(ordersync, workdir / f"{name}.log", port)
            server.start()
            served.append(Served(name, server, f"http://127.0.0.1:{port}", token))
        placed = place_in_turn(wrk, served[::-1], args.rounds, args.duration)
        with _client(served[0]) as empty_client, _client(served[1]) as grown_client:
            reads = read_side_by_side(empty_client, grown_client, args.requests, samples)
    finally:
        for one in served:
            one.server.stop()
    empty, grown = (
        Figures(*p, r["first-page"], r["stock"], r["movements"])
        for p, r in zip((placed[name] for name in names), reads, strict=True)
    )
    return empty, grown


def _client(one: Served) -> httpx.Client:
    headers = {"Authorization": f"Bearer {one.token}"}
    return httpx.Client(base_url=one.url, headers=headers, timeout=30)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, interrupt)
    with tempfile.TemporaryDirectory(prefix="ordersync-growth-") as tmp:
        try:
            empty, grown = bench(args, Path(tmp))
        except BenchError as exc:
            print(f"bench failed: {exc}", file=sys.stderr)
            return 1
        finally:
            if not args.keep_db:
                for name in databases(args):
                    hub.use_database(name)
                    hub.drop_database()
    report(empty, grown, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
