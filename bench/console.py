"""The console at scale, on PostgreSQL: the orders screen at a million orders, and order
placement with 50 dashboards on the live stream against none.

Run from the repository root, with the package installed in .venv:

    .venv/bin/python bench/console.py [--orders 1000000] [--requests 100] [--duration 8]

1. (Re)creates `ordersync_bench` (as bench/orders.py does: 3 stores, 10,000 products with
   stock), then writes `--orders` orders straight in SQL, spread over the last weeks, from
   the three channels, with customers (Russian names, phones) and their search keys as
   placement writes them, a site number on the site's orders, and open attention items on
   a few; ANALYZE.
2. Serves the hub (`ordersync serve --workers 2`) and logs an operator in to the console.
3. Server time (the Server-Timing header every console page carries) of the orders screen's
   first page, its second page, and searches by number, full phone, phone prefix, a common
   first name, a full name and a site number: p50 and p99 of `--requests` each.
4. Placement throughput (wrk, POST /orders, random products, 16 connections) for
   `--duration` seconds with no dashboard, then with 50 dashboards logged in and following
   the live stream, `--rounds` times each, alternating (the machine's other load moves the
   figures between runs); the dashboards count what they receive.
5. Prints the figures and the targets (under 100 ms; at most 10 % lower with 50 dashboards).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import asyncpg
import httpx
import orders as hub
from common import BenchError, group_cpu_seconds, log, venv_bin

USER, PASSWORD = "bench-operator", "bench-password-0123"
DASHBOARDS = 50
WRK_CLIENTS = 16

GENERATE = """
INSERT INTO orders (id, number, channel, source, fulfillment, status, payment_status, store_id,
    total, currency, customer, external_id, created_at, updated_at, version, customer_phone,
    customer_name)
SELECT
    'bench-' || lpad(g::text, 12, '0'),
    g,
    ch,
    CASE WHEN ch = 'pos' THEN 'offline' ELSE 'order' END,
    CASE WHEN ch = 'pos' THEN 'in_store' WHEN g % 4 = 0 THEN 'pickup' ELSE 'delivery' END,
    CASE WHEN g > $1 - 2000 THEN 'placed' WHEN g % 17 = 0 THEN 'cancelled' ELSE 'completed' END,
    CASE WHEN g % 5 = 0 AND g > $1 - 2000 THEN 'unpaid' ELSE 'paid' END,
    CASE WHEN ch = 'pos' OR g % 4 = 0 THEN s01 END,
    (100 + g % 9000) * 100,
    'RUB',
    CASE WHEN ch = 'pos' THEN '{}'::json
         ELSE json_build_object('name', first || ' ' || last, 'phone', '+' || phone) END,
    CASE WHEN ch = 'online' THEN 'B-' || g END,
    now() - ($1 - g) * interval '2 seconds',
    now() - ($1 - g) * interval '2 seconds',
    1,
    CASE WHEN ch <> 'pos' THEN phone END,
    CASE WHEN ch <> 'pos' THEN lower(first || ' ' || last) END
FROM generate_series(1, $1::integer) AS g,
LATERAL (SELECT (ARRAY['online', 'operator', 'pos'])[1 + g % 3] AS ch,
                (ARRAY['Анна', 'Иван', 'Мария', 'Сергей', 'Ольга', 'Дмитрий', 'Елена', 'Павел',
                       'Наталья', 'Алексей', 'Татьяна', 'Михаил', 'Юлия', 'Андрей',
                       'Ирина'])[1 + g % 15] AS first,
                (ARRAY['Иванов', 'Петров', 'Смирнов', 'Кузнецов', 'Соколов', 'Попов',
                       'Лебедев', 'Козлов', 'Новиков', 'Морозов', 'Волков',
                       'Павлов'])[1 + (g / 15) % 12] AS last,
                '79' || lpad(((g::bigint * 7919) % 1000000000)::text, 9, '0') AS phone,
                (SELECT id FROM stores WHERE code = 'S01') AS s01) AS x
"""

ATTENTION = """
INSERT INTO order_attention (order_id, code, detail, created_at)
SELECT 'bench-' || lpad(g::text, 12, '0'), 'site_order_short', '{}'::json, now()
FROM generate_series($1 - 1999, $1, 20) AS g
"""


async def generate(count: int) -> None:
    conn = await asyncpg.connect(hub.BENCH_DSN)
    try:
        started = time.monotonic()
        await conn.execute(GENERATE, count)
        await conn.execute(ATTENTION, count)
        await conn.execute("SELECT setval('orders_number_seq', $1::bigint + 1, false)", count)
        await conn.execute("VACUUM ANALYZE orders, order_attention")
        log(f"{count:,} orders written in {time.monotonic() - started:.0f} s")
    finally:
        await conn.close()


def create_user(ordersync: Path) -> None:
    import subprocess

    done = subprocess.run(
        [str(ordersync), "user", "create", USER, "--role", "operator", "--password-stdin"],
        input=PASSWORD + "\n", env=hub.app_env(), capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise BenchError(f"ordersync user create failed: {done.stderr}")


def logged_in() -> httpx.Client:
    client = httpx.Client(base_url=hub.HUB_URL, timeout=30)
    page = client.get("/ui/")
    token = re.search(r'name="csrftoken" value="([^"]+)"', page.text)
    if token is None:
        raise BenchError("the login page has no CSRF token")
    answer = client.post(
        "/ui/login", data={"csrftoken": token.group(1), "username": USER, "password": PASSWORD}
    )
    if answer.status_code != 303:
        raise BenchError(f"login failed: {answer.status_code}")
    return client


def server_ms(client: httpx.Client, path: str, params: dict[str, str], n: int) -> list[float]:
    took = []
    for _ in range(n):
        answer = client.get(path, params=params)
        if answer.status_code != 200:
            raise BenchError(f"{path} {params}: {answer.status_code}")
        match = re.search(r"app;dur=([0-9.]+)", answer.headers.get("server-timing", ""))
        if match is None:
            raise BenchError("no Server-Timing header")
        took.append(float(match.group(1)))
    return took


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def screen_times(count: int, n: int) -> list[tuple[str, float, float, int]]:
    client = logged_in()
    first = client.get("/ui/orders")
    cursor = re.search(r'href="/ui/orders\?([^"]+)" rel="next"', first.text)
    second = dict(httpx.QueryParams(cursor.group(1).replace("&amp;", "&"))) if cursor else {}
    number = (count - 12345) // 3 * 3 + 1  # an operator's order, with a phone
    phone = "79" + str((number * 7919) % 1_000_000_000).zfill(9)
    cases = [
        ("orders, first page", {}),
        ("orders, second page (cursor)", second),
        ("search: order number", {"q": str(number)}),
        ("search: full phone", {"q": f"+7 {phone[1:4]} {phone[4:7]}-{phone[7:9]}-{phone[9:]}"}),
        ("search: phone prefix", {"q": phone[:7]}),
        ("search: a common first name", {"q": "анна"}),
        ("search: a full name", {"q": "Иван Смирнов"}),
        ("search: site order number", {"q": f"B-{(count - 3) // 3 * 3}"}),
    ]
    results = []
    for name, params in cases:
        server_ms(client, "/ui/orders", params, 3)  # warm up
        took = server_ms(client, "/ui/orders", params, n)
        page = client.get("/ui/orders", params=params).text
        rows = len(re.findall(r'data-number="', page))
        results.append((name, statistics.median(took), pct(took, 99), rows))
    return results


class Dashboards:
    """Logged-in screens following the live stream, counting the messages they receive."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.messages = 0
        self.connected = 0
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Future[list[None]] | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 60
        while self.connected < self.count and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.connected < self.count:
            raise BenchError(f"only {self.connected} of {self.count} dashboards connected")

    def stop(self) -> None:
        """Closes every stream now (a quiet stream would otherwise wait for its next ping)."""
        self._stop.set()
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(timeout=20)

    async def _run(self) -> None:
        cookies = [dict(logged_in().cookies) for _ in range(self.count)]
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.gather(*(self._follow(c) for c in cookies))
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _follow(self, cookies: dict[str, str]) -> None:
        async with (
            httpx.AsyncClient(base_url=hub.HUB_URL, cookies=cookies, timeout=None) as http,
            http.stream("GET", "/ui/live", params={"view": "orders"}) as stream,
        ):
            self.connected += 1
            async for chunk in stream.aiter_raw():  # as cheap as a reader can be
                self.messages += chunk.count(b"event: orders")
                if self._stop.is_set():
                    return


Rate = tuple[str, float, float, int]  # (case, orders/s, hub CPU ms per order, messages)


def measured(wrk: str, token: str, seconds: int, group: int) -> tuple[float, float]:
    cpu = group_cpu_seconds(group)
    result = hub.run_wrk(wrk, "spread", WRK_CLIENTS, seconds, token)
    used = group_cpu_seconds(group) - cpu
    return result.orders_per_s, used * 1000 / max(result.ok, 1)


def throughput(wrk: str, token: str, seconds: int, rounds: int, group: int) -> list[Rate]:
    results: list[Rate] = []
    for round_ in range(rounds):
        none, none_cpu = measured(wrk, token, seconds, group)
        results.append(("no dashboard", none, none_cpu, 0))
        dashboards = Dashboards(DASHBOARDS)
        dashboards.start()
        try:
            fifty, fifty_cpu = measured(wrk, token, seconds, group)
        finally:
            time.sleep(1)
            received = dashboards.messages
            dashboards.stop()
        results.append((f"{DASHBOARDS} dashboards", fifty, fifty_cpu, received))
        log(f"round {round_ + 1}: {none:.0f} vs {fifty:.0f} orders/s, "
            f"{none_cpu:.2f} vs {fifty_cpu:.2f} hub CPU ms per order")  # fmt: skip
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="of none, then 50 dashboards")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args(argv)
    ordersync = venv_bin("ordersync")
    wrk = hub.ensure_wrk()
    server = hub.Server.hub(ordersync, Path(tempfile.mkdtemp()) / "serve.log")
    try:
        hub.recreate_database()
        hub.migrate(ordersync)
        hub.seed()
        asyncio.run(generate(args.orders))
        token = hub.create_token(ordersync)
        create_user(ordersync)
        server.start()
        times = screen_times(args.orders, args.requests)
        assert server.proc is not None
        rates = throughput(wrk, token, args.duration, args.rounds, server.proc.pid)
    finally:
        server.stop()
        if not args.keep_db:
            hub.drop_database()
    print(f"\nThe orders screen at {args.orders:,} orders (PostgreSQL), server time, "
          f"{args.requests} requests each:")  # fmt: skip
    print(f"  {'':34} {'p50 ms':>8} {'p99 ms':>8} {'rows':>5}")
    for name, p50, p99, rows in times:
        print(f"  {name:34} {p50:8.1f} {p99:8.1f} {rows:5}")
    print(f"\nOrder placement (wrk, {WRK_CLIENTS} connections, {args.duration} s a run):")
    print(f"  {'':16} {'orders/s':>9} {'hub CPU ms/order':>17}")
    for name, rate, cpu, received in rates:
        extra = f"  ({received} live messages received)" if received else ""
        print(f"  {name:16} {rate:9.0f} {cpu:17.2f}{extra}")
    none = statistics.median(r for n, r, _, _ in rates if n == "no dashboard")
    fifty = statistics.median(r for n, r, _, _ in rates if n != "no dashboard")
    none_cpu = statistics.median(c for n, _, c, _ in rates if n == "no dashboard")
    fifty_cpu = statistics.median(c for n, _, c, _ in rates if n != "no dashboard")
    change = (fifty - none) / none * 100 if none else 0.0
    cpu_change = (fifty_cpu - none_cpu) / none_cpu * 100 if none_cpu else 0.0
    worst = max(p99 for _, _, p99, _ in times)
    print(f"\n  target: every p99 under 100 ms: {'met' if worst < 100 else 'NOT met'} "
          f"(worst {worst:.1f} ms)")  # fmt: skip
    print(f"  target: at most 10 % lower with {DASHBOARDS} dashboards (medians): "
          f"{'met' if change >= -10 else 'NOT met'} ({change:+.1f} % orders/s; hub CPU per "
          f"order {cpu_change:+.1f} %)")  # fmt: skip
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        log(f"failed: {exc}")
        sys.exit(1)
