"""Till documents through `PUT /evotor/.../documents` on PostgreSQL: documents recorded per
second, the latency of a batch, and the cost of sales that displace holds.

Run from the repository root, with the package installed in .venv:

    .venv/bin/python bench/tills.py [--batches 40] [--senders 8] [--keep-db]

1. (Re)creates the database ``ordersync_tills_bench``, migrates it and seeds 10 stores linked
   to Evotor (all serving online, pickup points, `pos_mode` order), 1,000 products and stock
   at every store; for the displacement case 100 products are held in full at one store each
   (100 one-unit orders per level: 8 deliveries, which move to another store, and 92 pickups,
   which are cut back with attention), and have free stock at the others.
2. Creates an `evotor` token and serves the hub with 2 workers on port 8766.
3. Plain: `--senders` concurrent senders each PUT `--batches` batches of 50 SELL documents of
   3 lines (random products, one store per batch), as the Evotor cloud writes them. Then the
   same where 10% of the documents have a line of a product held at that store, so recording
   them displaces a hold.
4. Prints documents/s (until every document is applied), the batch latency (p50, p99), the
   displacement case's cost relative to the plain one, and runs `ordersync check`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import common
import httpx
from common import BenchError, database_urls, interrupt, log, log_tail, run, stop_group, venv_bin

DB_NAME = "ordersync_tills_bench"
DATABASE_URL, DSN = database_urls(DB_NAME)
PORT = 8766
HUB = f"http://127.0.0.1:{PORT}"
WORKERS = 2
STORES = 10
PRODUCTS = 1000
HELD_PRODUCTS = 100  # the last 100: held in full at one store each
ORDERS_PER_HELD_LEVEL = 100
DELIVERIES_PER_HELD_LEVEL = 8
BATCH = 50
LINES = 3
DISPLACING_SHARE = 0.10
NAMESPACE = uuid.UUID("6f1d8c3e-0a4b-4c2d-9e8f-7a6b5c4d3e2f")


def store_uuid(n: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"store-{n}"))


def product_uuid(n: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"product-{n}"))


# --------------------------------------------------------------------------- the database

STORES_SQL = """
INSERT INTO stores (code, xml_id, name, kind, serves_online, online_priority, is_pickup_point,
                    safety_stock, pos_mode, active, created_at, updated_at, evotor_uuid)
SELECT 'S' || lpad(n::text, 2, '0'), 'S' || lpad(n::text, 2, '0'), 'Shop ' || n, 'shop', true,
       10 * n, true, 0, 'order', true, now(), now(), ($1::text[])[n]
FROM generate_series(1, $2::integer) AS n ORDER BY n
"""

PRODUCTS_SQL = """
INSERT INTO products (sku, xml_id, name, unit, price, active, created_at, updated_at)
SELECT 'P-' || lpad(n::text, 4, '0'), ($1::text[])[n], 'Product ' || n, 'pcs', 10000, true,
       now(), now()
FROM generate_series(1, $2::integer) AS n ORDER BY n
"""

# 1,000,000 units everywhere, but the held levels: exactly what their orders hold.
STOCK_SQL = """
INSERT INTO stock_levels (product_id, store_id, on_hand, reserved, updated_at)
SELECT p.id, s.id,
       CASE WHEN p.id > $1 AND (p.id % $2) + 1 = s.id THEN $3 ELSE 1000000000 END,
       CASE WHEN p.id > $1 AND (p.id % $2) + 1 = s.id THEN $3 ELSE 0 END, now()
FROM products p CROSS JOIN stores s
"""

MOVEMENTS_SQL = """
INSERT INTO stock_movements (product_id, store_id, quantity, reason, document_type, document_id,
                             business_time, recorded_at)
SELECT product_id, store_id, on_hand, 'receipt', 'receipt', 'BENCH', now(), now()
FROM stock_levels
"""

# The held levels' orders: one unit each, unpaid, no hold time; deliveries first.
ORDERS = """
WITH held AS (
    SELECT p.id AS product_id, (p.id % $1) + 1 AS store_id, k
    FROM products p, generate_series(1, $2::integer) AS k
    WHERE p.id > $3
), made AS (
    INSERT INTO orders (id, number, channel, source, fulfillment, status, payment_status,
                        store_id, total, currency, customer, created_at, updated_at, version)
    SELECT md5(product_id || ':' || k), nextval('orders_number_seq'), 'online', 'order',
           CASE WHEN k <= $4 THEN 'delivery' ELSE 'pickup' END, 'placed', 'unpaid',
           CASE WHEN k <= $4 THEN NULL ELSE store_id END, 10000, 'RUB', '{}',
           now() - (k || ' seconds')::interval, now(), 1
    FROM held
    RETURNING id
), lines AS (
    INSERT INTO order_lines (order_id, line_no, product_id, quantity, price)
    SELECT md5(product_id || ':' || k), 1, product_id, 1000, 10000 FROM held
)
INSERT INTO holds (order_id, line_no, product_id, store_id, quantity, state, created_at)
SELECT md5(product_id || ':' || k), 1, product_id, store_id, 1000, 'active',
       now() - (k || ' seconds')::interval
FROM held;
"""


async def _seed() -> None:
    conn = await asyncpg.connect(DSN)
    try:
        async with conn.transaction():
            stores = [store_uuid(n) for n in range(1, STORES + 1)]
            products = [product_uuid(n) for n in range(1, PRODUCTS + 1)]
            await conn.execute(STORES_SQL, stores, STORES)
            await conn.execute(PRODUCTS_SQL, products, PRODUCTS)
            held = ORDERS_PER_HELD_LEVEL * 1000
            await conn.execute(STOCK_SQL, PRODUCTS - HELD_PRODUCTS, STORES, held)
            await conn.execute(MOVEMENTS_SQL)
            await conn.execute(
                ORDERS,
                STORES,
                ORDERS_PER_HELD_LEVEL,
                PRODUCTS - HELD_PRODUCTS,
                DELIVERIES_PER_HELD_LEVEL,
            )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def _scalar(sql: str) -> int:
    conn = await asyncpg.connect(DSN)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


def scalar(sql: str) -> int:
    return asyncio.run(_scalar(sql))


def app_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERSYNC_")}
    env.update(
        ORDERSYNC_DATABASE_URL=DATABASE_URL,
        ORDERSYNC_MASTER="hub",
        ORDERSYNC_SEED_DEMO="false",
        ORDERSYNC_SWEEPER_INTERVAL_SECONDS="60",
        ORDERSYNC_EVOTOR__APPLY_BUDGET_SECONDS="9",
        # The console, served with the API on PostgreSQL, refuses to start without a key.
        ORDERSYNC_UI__SECRET_KEY="bench-only-console-signing-key-0123456789",
    )
    return env


def evotor_token(ordersync: Path) -> str:
    proc = run(
        [ordersync, "token", "create", "--role", "evotor", "--name", "cloud"],
        env=app_env(),
        timeout=120,
        what="ordersync token create",
    )
    token = proc.stdout.strip().splitlines()[-1].strip()
    if not token.startswith("os_"):
        raise BenchError(f"no token printed:\n{proc.stdout}")
    return token


# --------------------------------------------------------------------------- the server


class Server:
    def __init__(self, ordersync: Path, log_path: Path) -> None:
        self.ordersync, self.log_path = ordersync, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", PORT)) == 0:
                raise BenchError(f"port {PORT} is already in use")
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(self.ordersync), "serve", "--workers", str(WORKERS), "--port", str(PORT)],
                env=app_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"serve exited\n{log_tail(self.log_path)}")
            try:
                if httpx.get(f"{HUB}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise BenchError(f"the hub did not start\n{log_tail(self.log_path)}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None


# --------------------------------------------------------------------------- the cloud


def document(store: int, till: str, number: int, products: Sequence[int], at: datetime) -> str:
    """A SELL document as the cloud writes it (V1): lines of one unit at 100.00."""
    moment = f"{at:%Y-%m-%dT%H:%M:%S}.{at.microsecond // 1000:03d}+0000"
    lines = [
        {
            "type": "REGISTER_POSITION",
            "id": str(index + 2),
            "commodityUuid": product_uuid(product),
            "commodityCode": f"P-{product:04d}",
            "commodityName": f"Product {product}",
            "quantity": 1,
            "price": 100,
            "resultPrice": 100,
            "sum": 100,
            "resultSum": 100,
            "measureName": "шт",
            "creationDate": moment,
        }
        for index, product in enumerate(products)
    ]
    total = 100 * len(products)
    body = {
        "type": "SELL",
        "uuid": str(uuid.uuid4()),
        "number": number,
        "storeUuid": store_uuid(store),
        "deviceUuid": till,
        "sessionUUID": till,
        "sessionNumber": "1",
        "openDate": moment,
        "closeDate": moment,
        "closeSum": str(total),
        "closeResultSum": str(total),
        "version": "V1",
        "extras": {},
        "transactions": [
            {"type": "DOCUMENT_OPEN", "id": "1", "creationDate": moment},
            *lines,
            {"type": "PAYMENT", "id": "9", "paymentType": "CASH", "sum": total},
            {"type": "DOCUMENT_CLOSE", "id": "10", "sum": total, "creationDate": moment},
        ],
    }
    return json.dumps(body, ensure_ascii=False)


def batches(count: int, displacing: bool, rng: random.Random) -> list[tuple[int, bytes]]:
    plain = PRODUCTS - HELD_PRODUCTS
    out = []
    now = datetime.now(UTC) - timedelta(minutes=5)
    for b in range(count):
        store = rng.randint(1, STORES)
        till = str(uuid.uuid5(NAMESPACE, f"till-{store}"))
        held = [p for p in range(plain + 1, PRODUCTS + 1) if p % STORES + 1 == store]
        docs = []
        for d in range(BATCH):
            products = rng.sample(range(1, plain + 1), LINES)
            if displacing and d < BATCH * DISPLACING_SHARE:
                products[0] = rng.choice(held)
            docs.append(document(store, till, b * BATCH + d, sorted(products), now))
        out.append((store, ("[" + ",".join(docs) + "]").encode()))
    return out


@dataclass
class Result:
    documents: int
    seconds: float
    latencies: list[float]
    failures: int

    @property
    def per_second(self) -> float:
        return self.documents / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


async def applied() -> None:
    for _ in range(6000):
        if not await _scalar("SELECT count(*) FROM evotor_inbox WHERE state = 'pending'"):
            return
        await asyncio.sleep(0.05)
    raise BenchError("documents were still pending after 5 minutes")


async def send_all(work: list[list[tuple[int, bytes]]], token: str) -> Result:
    latencies: list[float] = []
    failures = 0
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=len(work))

    async with httpx.AsyncClient(base_url=HUB, timeout=60, limits=limits) as client:

        async def sender(mine: list[tuple[int, bytes]]) -> None:
            nonlocal failures
            for store, body in mine:
                path = f"/evotor/api/v1/inventories/stores/{store_uuid(store)}/documents"
                started = time.perf_counter()
                response = await client.put(path, content=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    failures += 1
                    log(f"batch answered {response.status_code}: {response.text[:300]}")

        started = time.perf_counter()
        await asyncio.gather(*(sender(mine) for mine in work))
        await applied()  # what the hub still applies in the background counts too
        seconds = time.perf_counter() - started
    documents = sum(len(mine) for mine in work) * BATCH
    return Result(documents, seconds, latencies, failures)


def case(name: str, senders: int, count: int, displacing: bool, token: str) -> Result:
    rng = random.Random(name)
    work = [batches(count, displacing, rng) for _ in range(senders)]
    log(f"{name}: {senders} senders x {count} batches of {BATCH} documents")
    result = asyncio.run(send_all(work, token))
    log(
        f"{name}: {result.per_second:.0f} documents/s, batch p50 {result.percentile(0.5):.0f} ms,"
        f" p99 {result.percentile(0.99):.0f} ms, {result.failures} failed"
    )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=40, help="per sender and case")
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, interrupt)
    ordersync = venv_bin("ordersync")
    results: dict[str, Result] = {}
    code = 0
    with tempfile.TemporaryDirectory(prefix="ordersync-tills-") as tmp:
        server = Server(ordersync, Path(tmp) / "server.log")
        try:
            log(f"recreating {DB_NAME}")
            common.recreate_database(DB_NAME)
            run([ordersync, "migrate"], env=app_env(), timeout=300, what="ordersync migrate")
            log("seeding 10 stores, 1,000 products, 10,000 held units")
            asyncio.run(_seed())
            token = evotor_token(ordersync)
            server.start()
            case("warm-up", args.senders, 2, False, token)
            results["plain"] = case("plain", args.senders, args.batches, False, token)
            results["displacing"] = case("displacing", args.senders, args.batches, True, token)
            server.stop()
            check = run([ordersync, "check"], env=app_env(), timeout=300, what="ordersync check")
            log(check.stdout.strip().splitlines()[-1])
            displaced = scalar("SELECT count(*) FROM holds WHERE state = 'displaced'")
            attention = scalar("SELECT count(*) FROM order_attention")
            log(f"{displaced} holds displaced, {attention} orders given attention")
        except BenchError as exc:
            print(f"bench failed: {exc}", file=sys.stderr)
            code = 1
        except KeyboardInterrupt:
            code = 130
        finally:
            server.stop()
            if not args.keep_db:
                common.drop_database(DB_NAME)
    if len(results) == 2:
        plain, moving = results["plain"], results["displacing"]
        print("| case | documents | documents/s | batch p50 ms | batch p99 ms |")
        print("|---|---|---|---|---|")
        for name, r in results.items():
            print(
                f"| {name} | {r.documents} | {r.per_second:.0f} | {r.percentile(0.5):.0f} |"
                f" {r.percentile(0.99):.0f} |"
            )
        print(f"displacement costs {plain.per_second / moving.per_second:.2f}x a plain sale")
    return code


if __name__ == "__main__":
    sys.exit(main())
