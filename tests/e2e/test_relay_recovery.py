"""The relay after a webhook receiver's outage, at 100 events/s: nothing is dead-lettered,
and once the receiver is back the backlog is delivered within 10 s, however far the lanes
had backed off (one lane probes the sink every `probe_seconds`; its success wakes the rest).

The outage lasts RELAY_OUTAGE_SECONDS (8 by default, to keep the suite short) with the
backoff scaled so the lanes back off as far as they do in a 60 s outage with the default
backoff; RELAY_OUTAGE_SECONDS=60 measures the 60 s case itself with the defaults (run with
-s to see the figures).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, select

from ordersync.db.relay import backlog, dead_letters
from ordersync.db.tables import outbox_events
from ordersync.db.unit_of_work import Database
from ordersync.relay.worker import Relay, RelayPolicy
from ordersync.services.context import utcnow
from ordersync.sinks.filters import EventFilter
from ordersync.sinks.webhook import WebhookSink

OUTAGE_SECONDS = float(os.environ.get("RELAY_OUTAGE_SECONDS", "8"))
EVENTS_PER_SECOND = 100
TARGET_SECONDS = 10.0


class Receiver:
    """A webhook endpoint on a fixed port that can go away (connections refused) and come
    back on the same port."""

    def __init__(self) -> None:
        self.received: set[int] = set()
        self.lock = threading.Lock()
        self.server = self._serve(0)
        self.port = int(self.server.server_address[1])

    def _serve(self, port: int) -> ThreadingHTTPServer:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.received.update(e["id"] for e in json.loads(body)["events"])
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def go_down(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def come_back(self) -> None:
        self.server = self._serve(self.port)

    def has_all(self, up_to: int, since: int) -> bool:
        with self.lock:
            return all(i in self.received for i in range(since + 1, up_to + 1))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.go_down()


async def write_steadily(db: Database, stop: asyncio.Event) -> None:
    """100 events/s, 10 per transaction, spread over 200 aggregates (so over every lane)."""
    n, started = 0, time.monotonic()
    while not stop.is_set():
        async with db.uow() as uow:
            for _ in range(EVENTS_PER_SECOND // 10):
                await uow.add_event("stock.changed", "stock", f"{n % 200}:1", {"n": n}, utcnow())
                n += 1
            await uow.commit()
        await asyncio.sleep(max(0.0, started + n / EVENTS_PER_SECOND - time.monotonic()))


async def last_event_id(db: Database) -> int:
    async with db.uow_read() as uow:
        found = await uow.conn.execute(select(func.max(outbox_events.c.id)))
        return int(found.scalar() or 0)


async def test_after_an_outage_the_backlog_is_delivered_within_10_s_of_the_return(
    db: Database, receiver: Receiver
) -> None:
    # The backoff of a 60 s outage with the default base of 1 s, scaled to this outage.
    policy = RelayPolicy(backoff_base_seconds=60.0 / OUTAGE_SECONDS, poll_seconds=0.2)
    sink = WebhookSink("hook", receiver.url, "secret", EventFilter(), timeout_seconds=5)
    relay = Relay(db, {"hook": sink}, policy)
    stop, stop_writing = asyncio.Event(), asyncio.Event()
    tasks = [
        asyncio.create_task(relay.run(stop)),
        asyncio.create_task(write_steadily(db, stop_writing)),
    ]
    try:
        await asyncio.sleep(1)
        first = await last_event_id(db)
        receiver.go_down()
        await asyncio.sleep(OUTAGE_SECONDS)
        async with db.uow_read() as uow:
            (during,) = await backlog(uow.conn, ["hook"], utcnow())
        receiver.come_back()
        returned = time.monotonic()
        written = await last_event_id(db)
        for _ in range(1200):  # 60 s at most
            if receiver.has_all(written, first):
                break
            await asyncio.sleep(0.05)
        recovery = time.monotonic() - returned
    finally:
        stop_writing.set()
        stop.set()
        await asyncio.gather(*tasks)
        await sink.close()
    async with db.uow_read() as uow:
        dead = await dead_letters(uow.conn, "hook")

    print(
        f"\n{db.engine.dialect.name}: {OUTAGE_SECONDS:g} s outage, {written - first} events"
        f" ({during.pending} waiting, {during.failing_lanes} lanes failing at the return),"
        f" backlog delivered {recovery:.2f} s after the receiver's return"
    )
    assert during.failing_lanes >= 1 and during.pending > 0
    assert dead == []
    assert recovery < TARGET_SECONDS
