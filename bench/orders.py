"""Order placement through the HTTP API on PostgreSQL, against a naive pgbench baseline.

Run from the repository root, with the package installed in .venv:

    .venv/bin/python bench/orders.py [--duration 10] [--clients 8,32] [--keep-db] [--skip-naive]

What it does:

1. (Re)creates the database ``ordersync_bench`` on 127.0.0.1:5432 (user postgres, trust auth),
   runs ``ordersync migrate`` on it and seeds 3 stores, 10,000 products and stock in WH1 and
   S01 large enough that no order ever runs out.
2. Creates an online API token and starts ``ordersync serve --workers 2 --port 8765``.
3. For hot (every order for SKU-00001) and spread (a random SKU per order) and each client
   count: a 2 s wrk warm-up, then a wrk run of ``--duration`` seconds (bench/orders.lua), then
   the same with pgbench running bench/naive.sql, the one-statement-per-round-trip version of
   the same writes. Order tables are truncated before every run.
4. Prints a table and the target checks, stops the server and drops the database (unless
   ``--keep-db``).

Needs wrk (installed with apt-get when missing), pgbench and a PostgreSQL server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import common
from common import (
    PG_HOST,
    PG_PORT,
    PG_USER,
    BenchError,
    database_urls,
    interrupt,
    log,
    log_tail,
    run,
    stop_group,
    venv_bin,
)

DB_NAME = "ordersync_bench"
DATABASE_URL, BENCH_DSN = database_urls(DB_NAME)

HUB_PORT = 8765
HUB_WORKERS = 2
HUB_URL = f"http://127.0.0.1:{HUB_PORT}"

PRODUCTS = 10_000
ON_HAND_SCALED = 1_000_000_000 * 1000  # 1e9 units, quantities are stored *1000
PRICE_SCALED = 100_00  # 100.00, money is stored *100
WRK_THREADS = 2
PGBENCH_THREADS = 2
WARMUP_SECONDS = 2
SETTLE_SECONDS = 1.0  # lets requests still in flight when wrk stops finish
SERVER_START_TIMEOUT = 60.0

SPREAD_TARGET_CLIENTS = 32
SPREAD_TARGET_RPS = 1500.0
SPREAD_TARGET_P99_MS = 50.0

BENCH_DIR = Path(__file__).resolve().parent
LUA_SCRIPT = BENCH_DIR / "orders.lua"
NAIVE_SQL = BENCH_DIR / "naive.sql"
CASES = ("hot", "spread")


@dataclass(frozen=True)
class Seeded:
    wh1_id: int
    hot_product_id: int
    min_product_id: int
    max_product_id: int


@dataclass(frozen=True)
class WrkResult:
    requests: int
    ok: int
    non2xx: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    socket_errors: int
    statuses: str

    @property
    def orders_per_s(self) -> float:
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0


@dataclass(frozen=True)
class PgbenchResult:
    tps: float
    latency_ms: float | None
    failed: int


@dataclass
class Row:
    case: str
    clients: int
    hub: WrkResult
    stored_orders: int = 0
    naive: PgbenchResult | None = None

    @property
    def ratio(self) -> float | None:
        if self.naive is None or self.naive.tps <= 0:
            return None
        return self.hub.orders_per_s / self.naive.tps


# --------------------------------------------------------------------------- helpers


def app_env() -> dict[str, str]:
    """The environment for the ordersync CLI: ours, without stray ORDERSYNC_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERSYNC_")}
    env.update(
        ORDERSYNC_DATABASE_URL=DATABASE_URL,
        ORDERSYNC_MASTER="hub",
        ORDERSYNC_SEED_DEMO="false",
        ORDERSYNC_SWEEPER_INTERVAL_SECONDS="60",
        ORDERSYNC_UI__SECRET_KEY="bench-only-console-signing-key-0123456789",
    )
    return env


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    log("wrk not on PATH; running apt-get install -y wrk")
    try:
        proc = subprocess.run(
            ["apt-get", "install", "-y", "wrk"],
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"wrk is missing and apt-get install -y wrk could not run: {exc}") from exc
    found = shutil.which("wrk")
    if proc.returncode != 0 or not found:
        raise BenchError(
            "wrk is missing and `apt-get install -y wrk` failed "
            f"(exit {proc.returncode}); install wrk by hand.\n{proc.stderr.strip()[-2000:]}"
        )
    return found


def ensure_pgbench(skip_naive: bool) -> str | None:
    if skip_naive:
        return None
    found = shutil.which("pgbench")
    if not found:
        raise BenchError(
            "pgbench not on PATH (Debian: postgresql-client / postgresql-contrib); "
            "or run with --skip-naive"
        )
    return found


def ms(us: float) -> float:
    return us / 1000.0


# --------------------------------------------------------------------------- database


SEED_STORES = """
INSERT INTO stores (code, xml_id, name, kind, serves_online, online_priority, is_pickup_point,
                    safety_stock, pos_mode, active, created_at, updated_at)
VALUES ('WH1', 'WH1', 'Bench warehouse', 'warehouse', true, 10, false, 0, 'order', true,
        now(), now()),
       ('S01', 'S01', 'Bench shop 1', 'shop', true, 20, true, 0, 'order', true, now(), now()),
       ('S02', 'S02', 'Bench shop 2', 'shop', false, 100, true, 0, 'order', true, now(), now())
"""

SEED_PRODUCTS = """
INSERT INTO products (sku, xml_id, name, unit, price, active, created_at, updated_at)
SELECT 'SKU-' || lpad(n::text, 5, '0'), 'X-' || lpad(n::text, 5, '0'),
       'Bench product ' || lpad(n::text, 5, '0'), 'pcs', $2::bigint, true, now(), now()
FROM generate_series(1, $1::integer) AS n
ORDER BY n
"""

SEED_STOCK = """
INSERT INTO stock_levels (product_id, store_id, on_hand, reserved, updated_at)
SELECT p.id, s.id, $1::bigint, 0, now()
FROM products p CROSS JOIN stores s
WHERE s.code IN ('WH1', 'S01')
"""

TRUNCATE = "TRUNCATE orders, order_lines, holds, outbox_events, idempotency_keys CASCADE"


async def _seed() -> Seeded:
    conn = await asyncpg.connect(BENCH_DSN)
    try:
        async with conn.transaction():
            await conn.execute(SEED_STORES)
            await conn.execute(SEED_PRODUCTS, PRODUCTS, PRICE_SCALED)
            await conn.execute(SEED_STOCK, ON_HAND_SCALED)
        await conn.execute("VACUUM ANALYZE stores, products, stock_levels")
        wh1 = await conn.fetchval("SELECT id FROM stores WHERE code = 'WH1'")
        hot = await conn.fetchval("SELECT id FROM products WHERE sku = 'SKU-00001'")
        row = await conn.fetchrow(
            "SELECT min(id) AS lo, max(id) AS hi, count(*) AS n FROM products"
        )
        stock = await conn.fetchval("SELECT count(*) FROM stock_levels")
    finally:
        await conn.close()
    if row is None or wh1 is None or hot is None:
        raise BenchError("seeding left no stores or products")
    lo, hi, n = int(row["lo"]), int(row["hi"]), int(row["n"])
    if n != PRODUCTS or hi - lo + 1 != PRODUCTS:
        raise BenchError(
            f"expected {PRODUCTS} products with consecutive ids, got {n} in {lo}..{hi}"
        )
    if int(stock) != 2 * PRODUCTS:
        raise BenchError(f"expected {2 * PRODUCTS} stock rows, got {stock}")
    return Seeded(wh1_id=int(wh1), hot_product_id=int(hot), min_product_id=lo, max_product_id=hi)


async def _reset_orders() -> None:
    conn = await asyncpg.connect(BENCH_DSN)
    try:
        # Requests still in flight when wrk stops may hold row locks: wait them out.
        for attempt in range(10):
            try:
                await conn.execute(TRUNCATE)
                break
            except asyncpg.DeadlockDetectedError:
                if attempt == 9:
                    raise
                await asyncio.sleep(0.5)
        # The runs update stock rows heavily; vacuum so every run starts from the same state.
        await conn.execute("VACUUM ANALYZE stock_levels")
    finally:
        await conn.close()


async def _count_orders() -> int:
    conn = await asyncpg.connect(BENCH_DSN)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM orders"))
    finally:
        await conn.close()


def recreate_database() -> None:
    common.recreate_database(DB_NAME)


def drop_database() -> None:
    common.drop_database(DB_NAME)


def seed() -> Seeded:
    return asyncio.run(_seed())


def reset_orders() -> None:
    asyncio.run(_reset_orders())


def count_orders() -> int:
    return asyncio.run(_count_orders())


# --------------------------------------------------------------------------- the app


def migrate(ordersync: Path) -> None:
    run([ordersync, "migrate"], env=app_env(), timeout=300, what="ordersync migrate")


def create_token(ordersync: Path) -> str:
    proc = run(
        [ordersync, "token", "create", "--role", "online", "--name", "bench"],
        env=app_env(),
        timeout=120,
        what="ordersync token create",
    )
    lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    token = lines[-1] if lines else ""
    if not token.startswith("os_") or " " in token:
        raise BenchError(
            f"ordersync token create printed no token on its last line:\n{proc.stdout.strip()}"
        )
    return token


class Server:
    """`ordersync serve` in its own process group, logging to a file."""

    def __init__(self, ordersync: Path, log_path: Path) -> None:
        self.ordersync = ordersync
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if port_in_use(HUB_PORT):
            raise BenchError(f"port {HUB_PORT} is already in use; stop whatever listens there")
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    str(self.ordersync),
                    "serve",
                    "--workers",
                    str(HUB_WORKERS),
                    "--port",
                    str(HUB_PORT),
                ],
                env=app_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"ordersync serve exited with {self.proc.returncode}\n{self.log_tail()}"
                )
            if healthz_ok():
                return
            time.sleep(0.25)
        raise BenchError(
            f"{HUB_URL}/healthz did not return 200 within "
            f"{SERVER_START_TIMEOUT:.0f} s\n{self.log_tail()}"
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        stop_group(proc)


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def healthz_ok() -> bool:
    try:
        with urllib.request.urlopen(f"{HUB_URL}/healthz", timeout=2) as resp:
            return int(resp.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


# --------------------------------------------------------------------------- wrk and pgbench

WRK_LINE = re.compile(r"^BENCH (.*)$", re.MULTILINE)


def run_wrk(wrk: str, case: str, clients: int, seconds: int, token: str) -> WrkResult:
    threads = min(WRK_THREADS, clients)
    cmd = [
        wrk,
        "-t",
        str(threads),
        "-c",
        str(clients),
        "-d",
        f"{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA_SCRIPT),
        f"{HUB_URL}/orders",
        "--",
        case,
        token,
        str(PRODUCTS),
    ]
    proc = run(cmd, timeout=seconds + 60, what=f"wrk ({case}, {clients} clients)")
    match = WRK_LINE.search(proc.stdout)
    if match is None:
        raise BenchError(f"wrk printed no BENCH line:\n{proc.stdout}\n{proc.stderr}")
    fields: dict[str, str] = {}
    for part in match.group(1).split():
        key, _, value = part.partition("=")
        fields[key] = value

    def num(key: str) -> float:
        try:
            return float(fields[key])
        except (KeyError, ValueError) as exc:
            raise BenchError(f"wrk BENCH line lacks {key}: {match.group(0)}") from exc

    return WrkResult(
        requests=int(num("requests")),
        ok=int(num("ok")),
        non2xx=int(num("non2xx")),
        duration_s=num("duration_us") / 1e6,
        p50_ms=ms(num("p50_us")),
        p99_ms=ms(num("p99_us")),
        socket_errors=int(
            num("connect_errors") + num("read_errors") + num("write_errors") + num("timeouts")
        ),
        statuses=fields.get("statuses", "-"),
    )


PGBENCH_TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.MULTILINE)
PGBENCH_TPS_ANY = re.compile(r"^tps = ([0-9.]+)", re.MULTILINE)
PGBENCH_LATENCY = re.compile(r"^latency average = ([0-9.]+) ms", re.MULTILINE)
PGBENCH_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.MULTILINE)


def run_pgbench(
    pgbench: str, case: str, clients: int, seconds: int, seeded: Seeded
) -> PgbenchResult:
    if case == "hot":
        pmin = pmax = seeded.hot_product_id
    else:
        pmin, pmax = seeded.min_product_id, seeded.max_product_id
    threads = min(PGBENCH_THREADS, clients)
    cmd = [
        pgbench,
        "-h",
        PG_HOST,
        "-p",
        str(PG_PORT),
        "-U",
        PG_USER,
        "-n",
        "-M",
        "prepared",
        "-c",
        str(clients),
        "-j",
        str(threads),
        "-T",
        str(seconds),
        "-D",
        f"wh={seeded.wh1_id}",
        "-D",
        f"pmin={pmin}",
        "-D",
        f"pmax={pmax}",
        "-f",
        str(NAIVE_SQL),
        DB_NAME,
    ]
    what = f"pgbench ({case}, {clients} clients)"
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, check=False, timeout=seconds + 120
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{what} timed out") from exc
    out = proc.stdout
    failed_match = PGBENCH_FAILED.search(out)
    failed = int(failed_match.group(1)) if failed_match else 0
    if proc.returncode != 0 or "aborted" in proc.stderr:
        # Exit 2 means some clients aborted; the figures are then not trustworthy.
        raise BenchError(
            f"{what} failed (exit {proc.returncode}):\n{out.strip()}\n{proc.stderr.strip()[-3000:]}"
        )
    tps_match = PGBENCH_TPS.search(out) or PGBENCH_TPS_ANY.search(out)
    if tps_match is None:
        raise BenchError(f"{what} printed no tps:\n{out}")
    lat = PGBENCH_LATENCY.search(out)
    return PgbenchResult(
        tps=float(tps_match.group(1)),
        latency_ms=float(lat.group(1)) if lat else None,
        failed=failed,
    )


# --------------------------------------------------------------------------- report


def fmt(value: float | None, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


def print_report(rows: list[Row], duration: int, skip_naive: bool) -> None:
    print()
    print(
        f"ordersync order placement, PostgreSQL, {duration} s per run, "
        f"wrk -t {WRK_THREADS}, hub --workers {HUB_WORKERS}, {os.cpu_count()} CPUs"
    )
    header = (
        f"{'case':<7} {'clients':>7} {'hub orders/s':>12} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'non-2xx':>7} {'naive tps':>9} {'hub/naive':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        naive_tps = None if r.naive is None else r.naive.tps
        print(
            f"{r.case:<7} {r.clients:>7} {r.hub.orders_per_s:>12.0f} {r.hub.p50_ms:>7.1f} "
            f"{r.hub.p99_ms:>7.1f} {r.hub.non2xx:>7} {fmt(naive_tps):>9} "
            f"{fmt(r.ratio, '.2f'):>9}"
        )
    print()
    for r in rows:
        if r.hub.non2xx > 0:
            print(
                f"WARNING {r.case}/{r.clients}: {r.hub.non2xx} non-2xx responses "
                f"of {r.hub.requests} (status:count {r.hub.statuses})"
            )
        if r.stored_orders < r.hub.ok:
            print(
                f"WARNING {r.case}/{r.clients}: {r.hub.ok} 2xx responses "
                f"but only {r.stored_orders} orders stored"
            )
        if r.hub.socket_errors > 0:
            print(f"WARNING {r.case}/{r.clients}: {r.hub.socket_errors} socket errors/timeouts")
        if r.naive is not None and r.naive.failed > 0:
            print(
                f"WARNING {r.case}/{r.clients}: pgbench reported {r.naive.failed} "
                "failed transactions"
            )

    spread = next(
        (r for r in rows if r.case == "spread" and r.clients == SPREAD_TARGET_CLIENTS), None
    )
    target = (
        f"spread-{SPREAD_TARGET_CLIENTS} target (>= {SPREAD_TARGET_RPS:.0f} orders/s "
        f"and p99 < {SPREAD_TARGET_P99_MS:.0f} ms)"
    )
    if spread is None:
        print(f"N/A  {target}: not run (add {SPREAD_TARGET_CLIENTS} to --clients)")
    else:
        ok = (
            spread.hub.orders_per_s >= SPREAD_TARGET_RPS
            and spread.hub.p99_ms < SPREAD_TARGET_P99_MS
            and spread.hub.non2xx == 0
        )
        print(
            f"{'PASS' if ok else 'MISS'} {target}: {spread.hub.orders_per_s:.0f} orders/s, "
            f"p99 {spread.hub.p99_ms:.1f} ms, {spread.hub.non2xx} non-2xx"
        )
    for r in rows:
        if r.case != "hot":
            continue
        target = f"hot-{r.clients} target (hub >= naive)"
        if skip_naive or r.naive is None:
            print(f"N/A  {target}: naive baseline skipped")
            continue
        ok = r.hub.orders_per_s >= r.naive.tps and r.hub.non2xx == 0
        print(
            f"{'PASS' if ok else 'MISS'} {target}: hub {r.hub.orders_per_s:.0f} orders/s "
            f"vs naive {r.naive.tps:.0f} tps"
        )


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--duration", type=int, default=10, help="seconds per measured run (default 10)"
    )
    parser.add_argument(
        "--clients", default="8,32", help="comma-separated client counts (default 8,32)"
    )
    parser.add_argument(
        "--keep-db", action="store_true", help=f"keep the {DB_NAME} database afterwards"
    )
    parser.add_argument("--skip-naive", action="store_true", help="do not run the pgbench baseline")
    args = parser.parse_args(argv)
    if args.duration < 1:
        parser.error("--duration must be at least 1")
    try:
        clients = [int(c) for c in str(args.clients).split(",") if c.strip()]
    except ValueError:
        parser.error(f"--clients must be comma-separated integers, got {args.clients!r}")
    if not clients or any(c < 1 for c in clients):
        parser.error("--clients needs at least one positive integer")
    args.client_counts = clients
    return args


def bench(args: argparse.Namespace, workdir: Path) -> list[Row]:
    duration: int = args.duration
    clients: list[int] = args.client_counts
    skip_naive: bool = args.skip_naive
    for path in (LUA_SCRIPT, NAIVE_SQL):
        if not path.is_file():
            raise BenchError(f"{path} is missing (it ships with bench/orders.py)")
    wrk = ensure_wrk()
    pgbench = ensure_pgbench(skip_naive)
    ordersync = venv_bin("ordersync")

    log(f"recreating database {DB_NAME}")
    recreate_database()
    log("ordersync migrate")
    migrate(ordersync)
    log(f"seeding 3 stores, {PRODUCTS} products, {2 * PRODUCTS} stock rows")
    seeded = seed()
    token = create_token(ordersync)

    server = Server(ordersync, workdir / "server.log")
    rows: list[Row] = []
    try:
        log(f"starting ordersync serve on port {HUB_PORT}")
        server.start()
        for case in CASES:
            for n in clients:
                reset_orders()
                log(f"{case}/{n}: wrk warm-up {WARMUP_SECONDS} s")
                run_wrk(wrk, case, n, WARMUP_SECONDS, token)
                time.sleep(SETTLE_SECONDS)
                reset_orders()
                log(f"{case}/{n}: wrk {duration} s")
                hub = run_wrk(wrk, case, n, duration, token)
                time.sleep(SETTLE_SECONDS)
                if not server.alive():
                    raise BenchError(f"the server died during {case}/{n}\n{server.log_tail()}")
                row = Row(case, n, hub, stored_orders=count_orders())
                if pgbench is not None:
                    reset_orders()
                    log(f"{case}/{n}: pgbench warm-up {WARMUP_SECONDS} s")
                    run_pgbench(pgbench, case, n, WARMUP_SECONDS, seeded)
                    reset_orders()
                    log(f"{case}/{n}: pgbench {duration} s")
                    row.naive = run_pgbench(pgbench, case, n, duration, seeded)
                log(
                    f"{case}/{n}: hub {hub.orders_per_s:.0f} orders/s p99 {hub.p99_ms:.1f} ms"
                    + ("" if row.naive is None else f", naive {row.naive.tps:.0f} tps")
                )
                rows.append(row)
    finally:
        server.stop()
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, interrupt)
    rows: list[Row] = []
    code = 0
    with tempfile.TemporaryDirectory(prefix="ordersync-bench-") as tmp:
        try:
            rows = bench(args, Path(tmp))
        except BenchError as exc:
            print(f"bench failed: {exc}", file=sys.stderr)
            code = 1
        except KeyboardInterrupt:
            print("bench interrupted", file=sys.stderr)
            code = 130
        finally:
            if not args.keep_db:
                try:
                    drop_database()
                except (OSError, asyncpg.PostgresError) as exc:
                    print(f"could not drop {DB_NAME}: {exc}", file=sys.stderr)
    if rows:
        print_report(rows, args.duration, args.skip_naive)
    return code


if __name__ == "__main__":
    sys.exit(main())
