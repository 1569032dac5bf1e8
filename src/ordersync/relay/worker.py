"""The relay: sequences committed outbox events and delivers them, lane by lane, to each sink.

A round: sequence what is new (db/relay.py explains why), lease due lanes, and for each leased
(sink, lane) deliver the next batch and move the cursor, or postpone the lane with exponential
backoff and jitter (or the receiver's Retry-After). After `max_attempts` a batch is first cut
to its head event, and that event, if it still fails, goes to the dead letters and the lane
moves on. A worker that dies leaves its leases to run out; another worker then delivers those
batches again (at least once: receivers deduplicate on the event id).
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..db import relay as store
from ..db.unit_of_work import Database
from ..services.context import utcnow
from ..sinks.base import DeliveryFailed, OutboxEvent, Sink

log = logging.getLogger("ordersync.relay")
OUTBOX_CHANNEL = "ordersync_outbox"  # notified by a trigger on outbox_events (migration 0003)


@dataclass(frozen=True)
class RelayPolicy:
    lanes: int = 16
    batch: int = 500
    lease_seconds: float = 30.0
    lanes_per_round: int = 32
    max_attempts: int = 8
    backoff_base_seconds: float = 1.0
    backoff_cap_seconds: float = 300.0
    deliver_timeout_seconds: float = 20.0
    poll_seconds: float = 0.2
    retention_hours: float = 72.0
    prune_every_seconds: float = 60.0

    def backoff(self, attempts: int) -> float:
        delay: float = min(
            self.backoff_cap_seconds, self.backoff_base_seconds * 2 ** (attempts - 1)
        )
        return delay * random.uniform(0.5, 1.5)


class Relay:
    def __init__(
        self,
        db: Database,
        sinks: Mapping[str, Sink],
        policy: RelayPolicy | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.db = db
        self.sinks = dict(sinks)
        self.policy = policy or RelayPolicy()
        self.worker_id = worker_id or f"relay-{uuid.uuid4().hex[:12]}"
        # Set by this process's commits (and by NOTIFY on PostgreSQL, see run): a quiet
        # system delivers at once instead of at the next poll.
        self.wake = db.committed
        self._ready = False
        self.delivered = 0  # events handed to sinks by this relay
        self.failures = 0
        self._pruned_at = 0.0

    @property
    def lanes(self) -> int:
        return 1 if self.db.engine.dialect.name == "sqlite" else self.policy.lanes

    async def run_once(self) -> int:
        """One round; how many (sink, lane) batches it worked on (0: nothing was due)."""
        if not self.sinks:
            return 0
        if not self._ready:
            async with self.db.uow() as uow:
                await store.ensure_cursors(uow.conn, list(self.sinks), self.lanes, utcnow())
                await uow.commit()
            self._ready = True
        async with self.db.uow() as uow:
            await store.sequence(uow.conn, self.lanes, self.policy.batch * 10)
            await uow.commit()
        now = utcnow()
        async with self.db.uow() as uow:
            until = now + timedelta(seconds=self.policy.lease_seconds)
            cursors = await store.lease(
                uow.conn, self.worker_id, list(self.sinks), now, until, self.policy.lanes_per_round
            )
            await uow.commit()
        self.delivered += sum(await asyncio.gather(*(self._drain(c) for c in cursors)))
        await self._prune_now_and_then(now)
        return len(cursors)

    async def _prune_now_and_then(self, now: datetime) -> None:
        clock = asyncio.get_running_loop().time()
        if clock - self._pruned_at < self.policy.prune_every_seconds:
            return
        self._pruned_at = clock
        before = now - timedelta(hours=self.policy.retention_hours)
        async with self.db.uow() as uow:
            await store.prune(uow.conn, before, 10_000)
            await uow.commit()

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds until `stop`; between idle rounds it waits for a commit (LISTEN/NOTIFY on
        PostgreSQL, this process's own commits on SQLite) or the poll interval."""
        listener = None
        if self.db.engine.dialect.name == "postgresql":
            listener = await self.db.listen(OUTBOX_CHANNEL, self.wake)
        try:
            await self._rounds(stop)
        finally:
            if listener is not None:
                await listener.close()

    async def _rounds(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                done = await self.run_once()
            except Exception:  # a database hiccup must not end the relay
                log.exception("relay round failed")
                done = 0
            if done == 0:
                self.wake.clear()
                waits = [asyncio.ensure_future(e.wait()) for e in (stop, self.wake)]
                await asyncio.wait(waits, timeout=self.policy.poll_seconds,
                                   return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                for w in waits:
                    w.cancel()

    async def _drain(self, cursor: store.Cursor) -> int:
        sink = self.sinks[cursor.sink]
        limit = 1 if cursor.attempts >= self.policy.max_attempts // 2 else self.policy.batch
        async with self.db.uow_read() as uow:
            stored = await store.events_after(uow.conn, cursor.lane, cursor.delivered_seq, limit)
        if not stored:
            return await self._advance(cursor, cursor.delivered_seq)
        events = [e for e in map(_event, stored) if sink.wants(e)]
        try:
            if events:
                await asyncio.wait_for(
                    sink.deliver(events), timeout=self.policy.deliver_timeout_seconds
                )
        except (DeliveryFailed, TimeoutError) as exc:
            return await self._failed(cursor, stored, exc)
        now = utcnow()
        latencies = [(now - e.created_at).total_seconds() for e in events]
        return await self._advance(cursor, stored[-1].seq, latencies)

    async def _advance(
        self, cursor: store.Cursor, seq: int, latencies: list[float] | None = None
    ) -> int:
        async with self.db.uow() as uow:
            await store.advance(uow.conn, cursor, self.worker_id, seq, latencies or [])
            await uow.commit()
        return len(latencies or [])

    async def _failed(
        self, cursor: store.Cursor, stored: list[store.StoredEvent], exc: Exception
    ) -> int:
        error = str(exc) or type(exc).__name__
        self.failures += 1
        attempts = cursor.attempts + 1
        now = utcnow()
        async with self.db.uow() as uow:
            if attempts >= self.policy.max_attempts and len(stored) == 1:
                await store.bury(uow.conn, cursor.sink, [stored[0].id], attempts, error, now)
                await store.advance(uow.conn, cursor, self.worker_id, stored[0].seq)
                log.warning("sink %s: event %s dead after %s attempts: %s",
                            cursor.sink, stored[0].id, attempts, error)  # fmt: skip
            else:
                retry_after = exc.retry_after if isinstance(exc, DeliveryFailed) else None
                delay = retry_after if retry_after is not None else self.policy.backoff(attempts)
                at = now + timedelta(seconds=delay)
                await store.postpone(uow.conn, cursor, self.worker_id, at, error)
            await uow.commit()
        return 0


def _event(stored: store.StoredEvent) -> OutboxEvent:
    return OutboxEvent(
        stored.id,
        stored.type,
        stored.aggregate_type,
        stored.aggregate_id,
        stored.payload,
        stored.created_at,
    )


async def redeliver_dead(db: Database, sink: Sink, event_ids: list[int]) -> int:
    """`ordersync events retry`: sends dead events again, now, and forgets those delivered."""
    async with db.uow_read() as uow:
        stored = await store.events_by_id(uow.conn, event_ids)
    await sink.deliver([_event(e) for e in stored])
    async with db.uow() as uow:
        forgotten = await store.forget_dead(uow.conn, sink.name, [e.id for e in stored])
        await uow.commit()
    return forgotten
