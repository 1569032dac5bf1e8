"""`ordersync worker` as a process, delivering to a real signed-webhook receiver: everything
arrives in order per aggregate, and a worker killed with SIGKILL in the middle of a batch
loses nothing (its lanes are taken over when the lease runs out)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ordersync.db.unit_of_work import Database
from ordersync.sinks.signing import verify
from tests.integration.test_relay import write_events

BINARY = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "ordersync"
SECRET = b"test-secret"


class Receiver:
    """A webhook endpoint on 127.0.0.1 that checks signatures and keeps what it got."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.received: list[int] = []
        self.bad_signatures = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(receiver.delay)
                ok = verify(SECRET, self.headers["X-Ordersync-Signature"], body, time.time())
                with receiver.lock:
                    if not ok:
                        receiver.bad_signatures += 1
                    receiver.received += [e["id"] for e in json.loads(body)["events"]]
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def start_worker(database_url: str, url: str, tmp_path: Path) -> subprocess.Popen[bytes]:
    config = tmp_path / "worker.toml"
    config.write_text(
        f'master = "hub"\ndatabase_url = "{database_url}"\n'
        "[relay]\nlanes = 4\nbatch = 5\nlease_seconds = 1\npoll_seconds = 0.05\n"
        f'[sinks.hook]\nkind = "webhook"\nurl = "{url}"\nsecret = "{SECRET.decode()}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERSYNC_")}
    env["ORDERSYNC_CONFIG"] = str(config)
    return subprocess.Popen([str(BINARY), "worker"], env=env, stderr=subprocess.PIPE)


def wait_for(condition: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)


async def test_the_worker_delivers_everything_signed_and_in_order(
    db: Database, database_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    expected = await write_events(db, aggregates=6, per_aggregate=5)
    every = sorted(i for ids in expected.values() for i in ids)
    worker = start_worker(database_url, receiver.url, tmp_path)
    try:
        await support_wait(lambda: sorted(set(receiver.received)) == every, 30)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=15)
    assert sorted(set(receiver.received)) == every
    assert receiver.bad_signatures == 0
    position = {event_id: i for i, event_id in enumerate(receiver.received)}
    for ids in expected.values():
        assert [position[i] for i in ids] == sorted(position[i] for i in ids)


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_worker_killed_mid_batch_loses_nothing(
    db: Database, database_url: str, tmp_path: Path, backend: str
) -> None:
    slow = Receiver(delay=0.5)
    try:
        expected = await write_events(db, aggregates=4, per_aggregate=5)
        every = sorted(i for ids in expected.values() for i in ids)
        first = start_worker(database_url, slow.url, tmp_path)
        await support_wait(lambda: len(slow.received) > 0, 30)
        first.send_signal(signal.SIGKILL)  # in the middle of its batches
        first.wait(timeout=10)
        assert sorted(set(slow.received)) != every  # it did not finish

        second = start_worker(database_url, slow.url, tmp_path)
        try:
            await support_wait(lambda: sorted(set(slow.received)) == every, 60)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=15)
        assert sorted(set(slow.received)) == every
    finally:
        slow.close()


async def support_wait(condition: object, seconds: float) -> None:
    await asyncio.to_thread(wait_for, condition, seconds)
