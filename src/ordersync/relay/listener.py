"""The relay's LISTEN connection on PostgreSQL, kept open for as long as the relay runs.

A commit NOTIFYs `ordersync_outbox`; the listener sets the relay's wake event. The connection
is lost when PostgreSQL restarts or the session is terminated: asyncpg's termination listener
says so at once, and a periodic check catches a connection that died without a word (a
network that dropped it). Then it connects and LISTENs again, with backoff while the server
refuses, and wakes the relay, since notifications sent meanwhile were lost. Until then the
relay still delivers at its poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import asyncpg

from ..db.unit_of_work import Database

log = logging.getLogger("ordersync.relay")


@dataclass(frozen=True)
class ListenPolicy:
    backoff_base_seconds: float = 0.5  # between attempts to connect again, doubling up to:
    backoff_cap_seconds: float = 30.0
    check_seconds: float = 15.0  # how often a quiet connection is asked whether it lives
    check_timeout_seconds: float = 5.0


class OutboxListener:
    def __init__(
        self, db: Database, channel: str, wake: asyncio.Event, policy: ListenPolicy | None = None
    ) -> None:
        self.db = db
        self.channel = channel
        self.wake = wake
        self.policy = policy or ListenPolicy()
        self.connected = asyncio.Event()  # set while LISTENing
        self.connections = 0  # how many times it connected (the first time included)
        self._connection: asyncpg.Connection | None = None

    @property
    def server_pid(self) -> int | None:
        """The backend's process id while connected (for operators and tests)."""
        if self._connection is None or self._connection.is_closed():
            return None
        pid: int = self._connection.get_server_pid()
        return pid

    async def run(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            lost = asyncio.Event()
            try:
                self._connection = await self.db.listen(self.channel, self.wake, lost.set)
            except Exception as exc:  # refused, shutting down, unreachable: try again later
                failures += 1
                delay = min(
                    self.policy.backoff_cap_seconds,
                    self.policy.backoff_base_seconds * 2 ** (failures - 1),
                )
                log.warning("relay cannot LISTEN (%s), trying again in %.1fs", exc, delay)
                await _wait(stop, delay)
                continue
            if self.connections:
                log.warning("relay LISTENs again after losing its connection")
            failures = 0
            self.connections += 1
            self.connected.set()
            self.wake.set()  # commits notified while it was away were not heard
            try:
                await self._until_lost(stop, lost)
            finally:
                self.connected.clear()
                connection, self._connection = self._connection, None
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(connection.close(), self.policy.check_timeout_seconds)
            if not stop.is_set():
                log.warning("relay lost its LISTEN connection; connecting again")

    async def _until_lost(self, stop: asyncio.Event, lost: asyncio.Event) -> None:
        connection = self._connection
        assert connection is not None
        while not stop.is_set() and not lost.is_set() and not connection.is_closed():
            await _wait_any((stop, lost), self.policy.check_seconds)
            if stop.is_set() or lost.is_set() or connection.is_closed():
                return
            try:
                await connection.fetchval("SELECT 1", timeout=self.policy.check_timeout_seconds)
            except Exception:
                return


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    await _wait_any((stop,), seconds)


async def _wait_any(events: tuple[asyncio.Event, ...], seconds: float) -> None:
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
