"""Where a served hub worker spends its time placing orders: py-spy on `ordersync serve`.

Run from the repository root, with the package installed in .venv and py-spy available
(`.venv/bin/pip install py-spy`; it is a tool, not a dependency of the hub):

    .venv/bin/python bench/profile_orders.py [--duration 15] [--clients 32] [--case spread]

It seeds the database of bench/orders.py, serves the hub with ONE worker on port 8765, drives
it with wrk (bench/orders.lua) and samples that worker with `py-spy record --format raw` (100
samples/s, idle samples dropped, native frames off). Prints the throughput, then the top
functions by own time and by inclusive time, as shares of the worker's busy samples.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import orders as hub
from common import BenchError, interrupt, log, stop_group, venv_bin

TOP = 25


def children_of(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    ).stdout
    return [int(x) for x in out.split()]


def worker_pid(server: hub.Server) -> int:
    """`serve --workers 1` runs uvicorn in the main process; with more, a child is a worker."""
    assert server.proc is not None
    kids = children_of(server.proc.pid)
    return kids[0] if kids else server.proc.pid


def summarize(raw: Path) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f and not f.startswith("process ")]
        frames = [f for f in frames if not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    return total, own.most_common(TOP), inclusive.most_common(TOP)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--case", choices=hub.CASES, default="spread")
    parser.add_argument("--db", default=hub.DB_NAME, help="the scratch PostgreSQL database")
    return parser.parse_args(argv)


def profile(args: argparse.Namespace, workdir: Path) -> None:
    pyspy = shutil.which("py-spy") or str(venv_bin("py-spy"))
    if not Path(pyspy).exists():
        raise BenchError("py-spy is missing: .venv/bin/pip install py-spy")
    wrk = hub.ensure_wrk()
    ordersync = venv_bin("ordersync")
    hub.recreate_database()
    hub.migrate(ordersync)
    hub.seed()
    token = hub.create_token(ordersync)
    command = [str(ordersync), "serve", "--workers", "1", "--port", str(hub.HUB_PORT)]
    server = hub.Server(command, hub.HUB_PORT, workdir / "server.log", hub.app_env())
    raw = workdir / "profile.txt"
    try:
        server.start()
        hub.run_wrk(wrk, args.case, args.clients, 2, token)
        pid = worker_pid(server)
        log(f"sampling worker {pid} for {args.duration} s under wrk")
        spy = subprocess.Popen(
            [
                *(pyspy, "record", "--pid", str(pid), "--format", "raw", "--output", str(raw)),
                *("--duration", str(args.duration), "--rate", "100", "--nonblocking"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        time.sleep(0.5)
        result = hub.run_wrk(wrk, args.case, args.clients, args.duration, token)
        try:
            spy.wait(timeout=args.duration + 60)
        except subprocess.TimeoutExpired:
            stop_group(spy)
        if not raw.exists():
            raise BenchError("py-spy wrote no profile (is ptrace allowed here?)")
    finally:
        server.stop()
        hub.drop_database()
    total, own, inclusive = summarize(raw)
    print(
        f"\nhub, 1 worker, {args.case}, {args.clients} clients: "
        f"{result.orders_per_s:.0f} orders/s, p99 {result.p99_ms:.1f} ms; "
        f"{total} busy samples"
    )
    for title, rows in (("own time", own), ("inclusive time", inclusive)):
        print(f"\ntop {TOP} by {title} (% of busy samples)")
        for frame, count in rows:
            print(f"{100.0 * count / max(total, 1):6.1f}%  {frame[:150]}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    hub.use_database(args.db)
    signal.signal(signal.SIGTERM, interrupt)
    with tempfile.TemporaryDirectory(prefix="ordersync-profile-") as tmp:
        try:
            profile(args, Path(tmp))
        except BenchError as exc:
            print(f"profile failed: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
