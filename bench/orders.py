"""Order placement through the HTTP API on PostgreSQL, beside a bare reference of the same writes.

Run from the repository root, with the package installed in .venv:

    .venv/bin/python bench/orders.py [--duration 10] [--clients 8,32] [--keep-db] [--naive]

What it does:

1. (Re)creates the database ``ordersync_bench`` on 127.0.0.1:5432 (user postgres, trust auth),
   runs ``ordersync migrate`` on it and seeds 3 stores, 10,000 products and stock in WH1 and
   S01 large enough that no order ever runs out.
2. Creates an online API token and starts ``ordersync serve --workers 2 --port 8765``.
3. Starts the bare reference (bench/bare_app.py: a raw ASGI app with no framework, no auth,
   no validation that writes the same rows in one statement) under the same server, uvicorn
   with httptools and uvloop and the same worker count, on port 8766.
4. For hot (every order for SKU-00001) and spread (a random SKU per order) and each client
   count: a 2 s wrk warm-up, then a wrk run of ``--duration`` seconds (bench/orders.lua)
   against the hub, then the same against the bare app; with ``--naive``, also pgbench
   running bench/naive.sql, the one-statement-per-round-trip version of the same writes.
   Order tables are truncated before every run.
5. Prints a table, the hub/bare ratios and p99s, the CPU each measured run cost per order
   (the server's processes, the database's backends and wrk, read from /proc and getrusage
   around the run: where a gap in throughput comes from) and the target checks of issue 12
   (at 32 clients: hub/bare >= 0.9 hot and >= 0.8 spread, hub p99 <= 1.5x bare p99), stops
   the servers and drops the database (unless ``--keep-db``).

Needs wrk (installed with apt-get when missing), a PostgreSQL server, and pgbench for --naive.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
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
    backend_cpu,
    cpu_since,
    database_urls,
    group_cpu_seconds,
    interrupt,
    log,
    log_tail,
    run,
    stop_group,
    venv_bin,
)

DB_NAME = "ordersync_bench"  # --db names another (use_database)
DATABASE_URL, BENCH_DSN = database_urls(DB_NAME)

HUB_PORT = 8765
HUB_WORKERS = 2
HUB_URL = f"http://127.0.0.1:{HUB_PORT}"
BARE_PORT = 8766
BARE_URL = f"http://127.0.0.1:{BARE_PORT}"

PRODUCTS = 10_000
ON_HAND_SCALED = 1_000_000_000 * 1000  # 1e9 units, quantities are stored *1000
PRICE_SCALED = 100_00  # 100.00, money is stored *100
WRK_THREADS = 2
PGBENCH_THREADS = 2
WARMUP_SECONDS = 2
SETTLE_SECONDS = 1.0  # lets requests still in flight when wrk stops finish
SERVER_START_TIMEOUT = 60.0

TARGET_CLIENTS = 32
TARGET_RATIO = {"hot": 0.9, "spread": 0.8}  # hub orders/s over bare orders/s
TARGET_P99_FACTOR = 1.5  # hub p99 at most this times the bare p99

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


Spent = tuple[float, float, float]  # CPU seconds of the server, the database's backends, wrk


@dataclass(frozen=True)
class Cpu:
    """CPU seconds so far (user + system) of the server's processes, of each of the
    database's backends and of wrk: two readings around a run give what it cost each."""

    server_s: float
    backends: dict[int, float]
    client_s: float

    def since(self, before: Cpu) -> Spent:
        return (
            self.server_s - before.server_s,
            cpu_since(before.backends, self.backends),
            self.client_s - before.client_s,
        )


def per_order_us(spent: Spent, orders: int) -> Spent:
    n = max(orders, 1)
    return (spent[0] * 1e6 / n, spent[1] * 1e6 / n, spent[2] * 1e6 / n)


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
    bare: WrkResult | None = None
    bare_stored: int = 0
    naive: PgbenchResult | None = None
    hub_cpu: Spent | None = None
    bare_cpu: Spent | None = None

    @property
    def ratio(self) -> float | None:
        if self.bare is None or self.bare.orders_per_s <= 0:
            return None
        return self.hub.orders_per_s / self.bare.orders_per_s

    @property
    def p99_factor(self) -> float | None:
        if self.bare is None or self.bare.p99_ms <= 0:
            return None
        return self.hub.p99_ms / self.bare.p99_ms


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


def ensure_pgbench(naive: bool) -> str | None:
    if not naive:
        return None
    found = shutil.which("pgbench")
    if not found:
        raise BenchError(
            "pgbench not on PATH (Debian: postgresql-client / postgresql-contrib); "
            "or run without --naive"
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


def use_database(name: str) -> None:
    """Points every helper here (and the served hub) at the scratch database `name`."""
    global DB_NAME, DATABASE_URL, BENCH_DSN
    DB_NAME = name
    DATABASE_URL, BENCH_DSN = database_urls(name)


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
    """A server (the hub, or the bare reference) in its own process group, logging to a file."""

    def __init__(self, command: list[str], port: int, log_path: Path, env: dict[str, str]) -> None:
        self.command = command
        self.port = port
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def hub(cls, ordersync: Path, log_path: Path, port: int = HUB_PORT) -> Server:
        command = [str(ordersync), "serve", "--workers", str(HUB_WORKERS), "--port"]
        return cls([*command, str(port)], port, log_path, app_env())

    @classmethod
    def bare(cls, log_path: Path) -> Server:
        command = [
            str(venv_bin("uvicorn")),
            "bare_app:app",
            "--app-dir",
            str(BENCH_DIR),
            "--workers",
            str(HUB_WORKERS),
            "--port",
            str(BARE_PORT),
            "--http",
            "httptools",
            "--loop",
            "uvloop",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERSYNC_")}
        env["ORDERSYNC_BARE_DSN"] = BENCH_DSN
        return cls(command, BARE_PORT, log_path, env)

    def start(self) -> None:
        if port_in_use(self.port):
            raise BenchError(f"port {self.port} is already in use; stop whatever listens there")
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                self.command,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"{self.command[0]} exited with {self.proc.returncode}\n{self.log_tail()}"
                )
            if answers(self.port):
                return
            time.sleep(0.25)
        raise BenchError(
            f"port {self.port} did not answer HTTP within "
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


def answers(port: int) -> bool:
    """The server is up: /healthz answers 200 (the hub) or anything at all (the bare app)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return int(resp.status) == 200
    except urllib.error.HTTPError:
        return port == BARE_PORT
    except (urllib.error.URLError, OSError, ValueError):
        return False


def cpu_now(server: Server) -> Cpu:
    """The CPU used so far by the server's process group (it runs in a session of its own),
    by the bench database's backends and by this script's finished children (wrk)."""
    assert server.proc is not None, "start the server first"
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Cpu(
        group_cpu_seconds(server.proc.pid),
        backend_cpu(DB_NAME),
        children.ru_utime + children.ru_stime,
    )


# --------------------------------------------------------------------------- wrk and pgbench

WRK_LINE = re.compile(r"^BENCH (.*)$", re.MULTILINE)


def run_wrk(
    wrk: str, case: str, clients: int, seconds: int, token: str, url: str = HUB_URL
) -> WrkResult:
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
        f"{url}/orders",
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


def print_report(rows: list[Row], duration: int) -> None:
    print()
    print(
        f"ordersync order placement, PostgreSQL, {duration} s per run, "
        f"wrk -t {WRK_THREADS}, hub and bare app --workers {HUB_WORKERS}, {os.cpu_count()} CPUs"
    )
    header = (
        f"{'case':<7} {'clients':>7} {'hub o/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'bare o/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'hub/bare':>8} {'p99 x':>6} "
        f"{'naive tps':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        bare = r.bare
        bare_rate = None if bare is None else bare.orders_per_s
        bare_p50 = None if bare is None else bare.p50_ms
        bare_p99 = None if bare is None else bare.p99_ms
        naive_tps = None if r.naive is None else r.naive.tps
        print(
            f"{r.case:<7} {r.clients:>7} {r.hub.orders_per_s:>8.0f} {r.hub.p50_ms:>7.1f} "
            f"{r.hub.p99_ms:>7.1f} {fmt(bare_rate):>8} "
            f"{fmt(bare_p50, '.1f'):>7} {fmt(bare_p99, '.1f'):>7} "
            f"{fmt(r.ratio, '.2f'):>8} {fmt(r.p99_factor, '.2f'):>6} "
            f"{fmt(naive_tps):>9}"
        )
    print()
    print("CPU per order, µs (user + system): server, PostgreSQL backends, wrk")
    for r in rows:
        if r.hub_cpu is None or r.bare_cpu is None or r.bare is None:
            continue
        hub_us = per_order_us(r.hub_cpu, r.hub.ok)
        bare_us = per_order_us(r.bare_cpu, r.bare.ok)
        figures = " / ".join(
            f"{who} {a:.0f}, {b:.0f}, {c:.0f}"
            for who, (a, b, c) in (("hub", hub_us), ("bare", bare_us))
        )
        print(f"  {r.case}-{r.clients}: {figures}; hub - bare {sum(hub_us) - sum(bare_us):+.0f}")
    print()
    for r in rows:
        runs = (("hub", r.hub, r.stored_orders), ("bare", r.bare, r.bare_stored))
        for who, result, stored in runs:
            if result is None:
                continue
            if result.non2xx > 0:
                print(
                    f"WARNING {r.case}/{r.clients} {who}: {result.non2xx} non-2xx responses "
                    f"of {result.requests} (status:count {result.statuses})"
                )
            if stored < result.ok:
                print(
                    f"WARNING {r.case}/{r.clients} {who}: {result.ok} 2xx responses "
                    f"but only {stored} orders stored"
                )
            if result.socket_errors > 0:
                print(f"WARNING {r.case}/{r.clients} {who}: {result.socket_errors} socket errors")
    for r in rows:
        if r.clients != TARGET_CLIENTS or r.ratio is None or r.p99_factor is None:
            continue
        want = TARGET_RATIO[r.case]
        ok = r.ratio >= want and r.hub.non2xx == 0
        print(f"{'PASS' if ok else 'MISS'} {r.case}-{r.clients} hub/bare >= {want}: {r.ratio:.2f}")
        ok = r.p99_factor <= TARGET_P99_FACTOR
        print(
            f"{'PASS' if ok else 'MISS'} {r.case}-{r.clients} hub p99 <= "
            f"{TARGET_P99_FACTOR}x bare: {r.p99_factor:.2f}x"
        )
    if not any(r.clients == TARGET_CLIENTS for r in rows):
        print(f"N/A  targets: not run (add {TARGET_CLIENTS} to --clients)")


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
        "--db", default=DB_NAME, help=f"the scratch PostgreSQL database (default {DB_NAME})"
    )
    parser.add_argument("--keep-db", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--naive", action="store_true", help="also run the pgbench baseline (bench/naive.sql)"
    )
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
    for path in (LUA_SCRIPT, NAIVE_SQL, BENCH_DIR / "bare_app.py"):
        if not path.is_file():
            raise BenchError(f"{path} is missing (it ships with bench/orders.py)")
    wrk = ensure_wrk()
    pgbench = ensure_pgbench(args.naive)
    ordersync = venv_bin("ordersync")

    log(f"recreating database {DB_NAME}")
    recreate_database()
    log("ordersync migrate")
    migrate(ordersync)
    log(f"seeding 3 stores, {PRODUCTS} products, {2 * PRODUCTS} stock rows")
    seeded = seed()
    token = create_token(ordersync)

    server = Server.hub(ordersync, workdir / "server.log")
    bare = Server.bare(workdir / "bare.log")
    rows: list[Row] = []
    try:
        log(f"starting ordersync serve on port {HUB_PORT}, the bare app on {BARE_PORT}")
        server.start()
        bare.start()
        for case in CASES:
            for n in clients:
                reset_orders()
                log(f"{case}/{n}: wrk warm-up {WARMUP_SECONDS} s")
                run_wrk(wrk, case, n, WARMUP_SECONDS, token)
                time.sleep(SETTLE_SECONDS)
                reset_orders()
                log(f"{case}/{n}: wrk {duration} s")
                before = cpu_now(server)
                hub = run_wrk(wrk, case, n, duration, token)
                hub_cpu = cpu_now(server).since(before)
                time.sleep(SETTLE_SECONDS)
                if not server.alive():
                    raise BenchError(f"the server died during {case}/{n}\n{server.log_tail()}")
                row = Row(case, n, hub, stored_orders=count_orders(), hub_cpu=hub_cpu)
                reset_orders()
                log(f"{case}/{n}: bare app warm-up {WARMUP_SECONDS} s")
                run_wrk(wrk, case, n, WARMUP_SECONDS, token, BARE_URL)
                time.sleep(SETTLE_SECONDS)
                reset_orders()
                log(f"{case}/{n}: bare app {duration} s")
                before = cpu_now(bare)
                row.bare = run_wrk(wrk, case, n, duration, token, BARE_URL)
                row.bare_cpu = cpu_now(bare).since(before)
                time.sleep(SETTLE_SECONDS)
                if not bare.alive():
                    raise BenchError(f"the bare app died during {case}/{n}\n{bare.log_tail()}")
                row.bare_stored = count_orders()
                if pgbench is not None:
                    reset_orders()
                    log(f"{case}/{n}: pgbench warm-up {WARMUP_SECONDS} s")
                    run_pgbench(pgbench, case, n, WARMUP_SECONDS, seeded)
                    reset_orders()
                    log(f"{case}/{n}: pgbench {duration} s")
                    row.naive = run_pgbench(pgbench, case, n, duration, seeded)
                log(
                    f"{case}/{n}: hub {hub.orders_per_s:.0f} orders/s p99 {hub.p99_ms:.1f} ms, "
                    f"bare {row.bare.orders_per_s:.0f} orders/s p99 {row.bare.p99_ms:.1f} ms"
                    + ("" if row.naive is None else f", naive {row.naive.tps:.0f} tps")
                )
                rows.append(row)
    finally:
        server.stop()
        bare.stop()
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    use_database(args.db)
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
        print_report(rows, args.duration)
    return code


if __name__ == "__main__":
    sys.exit(main())
