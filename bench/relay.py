"""The outbox relay on PostgreSQL: commit-to-delivery latency at a steady rate, and the most
events per second it delivers to a local signed webhook.

Run from the repository root, with the package installed in .venv:

    .venv/bin/python bench/relay.py [--rate 500] [--seconds 10] [--backlog 50000] [--workers 2]
    .venv/bin/python bench/relay.py --api [--rate 500] [--runs 5] [--detail]

1. (Re)creates the database ``ordersync_relay_bench`` on 127.0.0.1:5432 and migrates it.
2. Starts a webhook receiver (a threaded HTTP server in a process of its own, so that the
   bench's client never delays its arrival times) that verifies each batch's signature and
   records, per event, the time from its commit to its arrival.
3. Latency: starts ``--workers`` ``ordersync worker`` processes, then commits ``--rate``
   events a second for ``--seconds`` (one transaction each, as a till sale or an order would,
   the commit time in the payload) and prints p50/p95/p99 of commit-to-acknowledged.
4. Throughput: stops the workers, commits a backlog of ``--backlog`` events, starts the
   workers again and times how long they take to deliver all of it.

Events are written straight into the outbox (not through the HTTP API), so the figures are
the relay's own, without the order placement's cost on the same two cores.

``--api`` serves the hub (``ordersync serve --workers 2``) and places ``--rate``/2 orders a
second through ``POST /orders`` (each writes two events) for ``--seconds``, from a plain
HTTP/1.1 client on 32 keep-alive connections, and prints each run's p50/p95/p99 from the
events' ``created_at`` (taken by the hub before its write: a little before the commit) to
their arrival, how long the orders took to place and the client's own CPU. ``--detail``
adds the latency per half second of commits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import asyncpg
import orders as hub  # its seeding and serving of the hub, for --api
from common import database_urls, recreate_database, run, venv_bin

DB_NAME = "ordersync_relay_bench"
URL, DSN = database_urls(DB_NAME)
BINARY = venv_bin("ordersync")
SECRET = "bench-secret"


def committed_at(event: dict[str, object]) -> float:
    """The bench's own events carry their commit time; the API's have created_at, the time of
    the transaction that wrote them (a few milliseconds before its commit)."""
    payload = event["payload"]
    if isinstance(payload, dict) and "t" in payload:
        return float(payload["t"])
    return datetime.fromisoformat(str(event["created_at"])).timestamp()


def _receive(url_out: Connection, commands: Connection) -> None:
    """The receiver's process: a threaded HTTP server answering the relay's webhook, run apart
    from the bench's client so that neither waits for the other's interpreter lock (its
    arrival times are taken when a request arrives, not when the client lets it run)."""
    from ordersync.sinks.signing import verify

    latencies: list[float] = []
    committed: list[float] = []
    ids: set[int] = set()
    counts = {"requests": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            now = time.time()
            if not verify(SECRET.encode(), self.headers["X-Ordersync-Signature"], body, now):
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            events = json.loads(body)["events"]
            with lock:
                counts["requests"] += 1
                for event in events:
                    if event["id"] not in ids:
                        ids.add(event["id"])
                        committed.append(committed_at(event))
                        latencies.append(now - committed[-1])
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url_out.send(f"http://127.0.0.1:{server.server_address[1]}/hook")
    while (command := commands.recv()) != "stop":
        with lock:
            if command == "count":
                commands.send(len(ids))
            elif command == "results":
                commands.send((list(latencies), counts["requests"]))
            elif command == "timeline":
                commands.send(list(zip(committed, latencies, strict=True)))
            elif command == "reset":
                latencies.clear()
                committed.clear()
                counts["requests"] = 0
                commands.send(None)
    server.shutdown()


class Receiver:
    """The webhook receiver (in a process of its own): verifies each batch's signature and
    records, per event, the time from its commit to its arrival."""

    def __init__(self) -> None:
        url_in, url_out = multiprocessing.Pipe(duplex=False)
        self._commands, theirs = multiprocessing.Pipe()
        self._process = multiprocessing.Process(target=_receive, args=(url_out, theirs))
        self._process.start()
        self.url: str = url_in.recv()

    def _ask(self, command: str) -> Any:
        self._commands.send(command)
        return self._commands.recv()

    def count(self) -> int:
        """How many distinct events arrived."""
        return int(self._ask("count"))

    def results(self) -> tuple[list[float], int]:
        """Latencies (seconds, per distinct event) and webhook requests since the last reset."""
        latencies, requests = self._ask("results")
        return latencies, requests

    def timeline(self) -> list[tuple[float, float]]:
        """(commit time, latency) per distinct event since the last reset."""
        return list(self._ask("timeline"))

    def reset(self) -> None:
        self._ask("reset")

    def close(self) -> None:
        self._commands.send("stop")
        self._process.join(timeout=10)


def recreate_and_migrate() -> None:
    recreate_database(DB_NAME)
    env = {**os.environ, "ORDERSYNC_MASTER": "hub", "ORDERSYNC_DATABASE_URL": URL}
    run([BINARY, "migrate"], env=env, what="ordersync migrate")


def start_workers(count: int, config: Path) -> list[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERSYNC_")}
    env["ORDERSYNC_CONFIG"] = str(config)
    return [subprocess.Popen([str(BINARY), "worker"], env=env) for _ in range(count)]


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for w in workers:
        w.send_signal(signal.SIGTERM)
    for w in workers:
        w.wait(timeout=30)


async def steady(rate: int, seconds: float, products: int) -> int:
    """One event per transaction at `rate` a second, each stamped with its commit time."""
    pool = await asyncpg.create_pool(DSN, min_size=4, max_size=4)
    sent = 0
    start = time.perf_counter()

    async def one(n: int) -> None:
        async with pool.acquire() as conn, conn.transaction():
            payload = json.dumps({"t": time.time(), "n": n})
            await conn.execute(
                "INSERT INTO outbox_events (type, aggregate_type, aggregate_id, payload,"
                " created_at) VALUES ('stock.changed', 'stock', $1, $2::json, now())",
                f"{n % products}:1",
                payload,
            )

    tasks = []
    while (elapsed := time.perf_counter() - start) < seconds:
        due = int(elapsed * rate)
        while sent < due:
            tasks.append(asyncio.create_task(one(sent)))
            sent += 1
        await asyncio.sleep(0.002)
    await asyncio.gather(*tasks)
    await pool.close()
    return sent


async def backlog(count: int, products: int) -> None:
    conn = await asyncpg.connect(DSN)
    now = time.time()
    await conn.execute(
        "INSERT INTO outbox_events (type, aggregate_type, aggregate_id, payload, created_at)"
        " SELECT 'stock.changed', 'stock', (g % $2) || ':1',"
        " json_build_object('t', $3::float8, 'n', g), now() FROM generate_series(1, $1) g",
        count,
        products,
        now,
    )
    await conn.close()


CLIENT_CONNECTIONS = 32


async def place_orders(
    rate: float, seconds: float, token: str, url: str, products: int
) -> tuple[int, float]:
    """Orders through the HTTP API at a steady rate (each writes two events): how many, and
    the seconds from the first request sent to the last answer. A plain HTTP/1.1 client on
    keep-alive connections: it costs a fraction of a general-purpose client's CPU, which
    would otherwise be taken from the hub and the relay on the same cores."""
    host, port = url.removeprefix("http://").split(":")
    head = (
        f"POST /orders HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode()
    due: asyncio.Queue[int | None] = asyncio.Queue()

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        while (n := await due.get()) is not None:
            body = json.dumps({"fulfillment": "delivery",
                               "lines": [{"sku": f"SKU-{n % products + 1:05d}",
                                          "quantity": "1"}]}).encode()  # fmt: skip
            writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            answer = await reader.readexactly(length)
            if not 200 <= status < 300:
                raise RuntimeError(f"POST /orders answered {status}: {answer[:500]!r}")
        writer.close()

    clients = [asyncio.create_task(connection()) for _ in range(CLIENT_CONNECTIONS)]
    sent = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        while sent < int(elapsed * rate):
            due.put_nowait(sent)
            sent += 1
        await asyncio.sleep(0.002)
    for _ in clients:
        due.put_nowait(None)
    await asyncio.gather(*clients)
    return sent, time.perf_counter() - start


def through_the_api(args: argparse.Namespace) -> float:
    """Latency with the hub's API placing orders (orders.py seeds and serves the hub)."""
    ordersync = venv_bin("ordersync")
    hub.recreate_database()
    hub.migrate(ordersync)
    hub.seed()
    token = hub.create_token(ordersync)
    receiver = Receiver()
    server = subprocess.Popen(
        [str(ordersync), "serve", "--workers", "2", "--port", str(hub.HUB_PORT)],
        env=hub.app_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "relay.toml"
        config.write_text(
            f'master = "hub"\ndatabase_url = "{hub.DATABASE_URL}"\n'
            "[relay]\nlanes = 16\nbatch = 500\npoll_seconds = 0.5\n"
            f'[sinks.bench]\nkind = "webhook"\nurl = "{receiver.url}"\nsecret = "{SECRET}"\n'
        )
        workers = start_workers(args.workers, config)
        try:
            while not hub.answers(hub.HUB_PORT):
                time.sleep(0.2)
            orders_rate = args.rate / 2  # an order writes order.created and stock.changed
            cpu_before = time.process_time()
            placed, placing = asyncio.run(
                place_orders(orders_rate, args.seconds, token, hub.HUB_URL, hub.PRODUCTS)
            )
            client_cpu = time.process_time() - cpu_before
            wait_for(receiver, 2 * placed, 60)
        finally:
            stop_workers(workers)
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    lat, requests = receiver.results()
    p50, p95, p99 = (percentile(lat, p) for p in (50, 95, 99))
    print(f"through the API: {placed} orders at {orders_rate:g}/s = {args.rate} events/s over "
          f"{args.seconds:g} s (all answered {placing:.2f} s after the first was sent; the "
          f"client used {client_cpu:.1f} s of CPU); {len(lat)} events delivered, "
          f"{requests} webhook requests")  # fmt: skip
    print(f"commit-to-acknowledged latency: p50 {p50:.1f} ms, p95 {p95:.1f} ms, "
          f"p99 {p99:.1f} ms")  # fmt: skip
    print(f"{'met' if p99 <= 200 else 'not met':8} p99 <= 200 ms at {args.rate} events/s "
          f"(orders through the API): {p99:.1f} ms")  # fmt: skip
    if args.detail:
        print_timeline(receiver.timeline())
    receiver.close()
    hub.drop_database()
    return p99


SLICES = 2  # per second, for --detail


def print_timeline(timeline: list[tuple[float, float]]) -> None:
    """Per half second of commits: events, p50 and the slowest (ms): where the tail is."""
    first = min(t for t, _ in timeline)
    slices: dict[int, list[float]] = {}
    for t, latency in timeline:
        slices.setdefault(int((t - first) * SLICES), []).append(latency)
    for k in sorted(slices):
        got = slices[k]
        print(f"  {k / SLICES:5.2f} s: {len(got):4} events, p50 {percentile(got, 50):6.1f} ms, "
              f"max {max(got) * 1000:6.1f} ms")  # fmt: skip


def wait_for(receiver: Receiver, total: int, timeout: float) -> float:
    start = time.perf_counter()
    while receiver.count() < total and time.perf_counter() - start < timeout:
        time.sleep(0.01)
    return time.perf_counter() - start


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--backlog", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--products", type=int, default=1000)
    parser.add_argument(
        "--api", action="store_true", help="place orders through the HTTP API instead"
    )
    parser.add_argument("--runs", type=int, default=5, help="with --api: runs, each printed")
    parser.add_argument(
        "--detail", action="store_true", help="with --api: latency per half second of the run"
    )
    args = parser.parse_args()
    if args.api:
        p99s = []
        for run in range(1, args.runs + 1):
            print(f"--- run {run} of {args.runs}")
            p99s.append(through_the_api(args))
        met = sum(1 for p in p99s if p <= 200)
        print()
        print(f"{'met' if met == len(p99s) else 'not met':8} p99 <= 200 ms at {args.rate} "
              f"events/s in {met} of {len(p99s)} runs: "
              + ", ".join(f"{p:.0f}" for p in p99s) + " ms")  # fmt: skip
        return

    recreate_and_migrate()
    receiver = Receiver()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "relay.toml"
        config.write_text(
            f'master = "hub"\ndatabase_url = "{URL}"\n'
            "[relay]\nlanes = 16\nbatch = 500\npoll_seconds = 0.5\n"
            f'[sinks.bench]\nkind = "webhook"\nurl = "{receiver.url}"\nsecret = "{SECRET}"\n'
        )
        workers = start_workers(args.workers, config)
        time.sleep(2)
        sent = asyncio.run(steady(args.rate, args.seconds, args.products))
        wait_for(receiver, sent, 30)
        lat, requests = receiver.results()
        stop_workers(workers)
        print(f"steady: {sent} events at {args.rate}/s over {args.seconds:g} s, "
              f"{len(lat)} delivered, {requests} webhook requests")  # fmt: skip
        p50, p95, p99 = (percentile(lat, p) for p in (50, 95, 99))
        print(f"commit-to-acknowledged latency: p50 {p50:.1f} ms, p95 {p95:.1f} ms, "
              f"p99 {p99:.1f} ms")  # fmt: skip

        receiver.reset()
        already = receiver.count()
        asyncio.run(backlog(args.backlog, args.products))
        workers = start_workers(args.workers, config)
        took = wait_for(receiver, already + args.backlog, 600)
        stop_workers(workers)
        done = receiver.count() - already
        _, requests = receiver.results()
        print(f"backlog: {done} of {args.backlog} events delivered in {took:.2f} s = "
              f"{done / took:,.0f} events/s ({args.workers} workers, "
              f"{requests} webhook requests)")  # fmt: skip
        print()
        print(f"{'met' if p99 <= 200 else 'not met':8} p99 <= 200 ms at {args.rate} events/s: "
              f"{p99:.1f} ms")  # fmt: skip
        rate = done / took
        print(f"{'met' if rate >= 5000 else 'not met':8} >= 5,000 events/s: {rate:,.0f}")
    receiver.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
