"""The relay: sequences committed outbox events and delivers them, lane by lane, to each sink.

A round: sequence what is new (db/relay.py explains why), lease due lanes, and for each leased
(sink, lane) deliver the next batch and move the cursor. A failure is one of two kinds
(sinks.base):

- the sink is down or busy: the lane is postponed with exponential backoff and jitter (or the
  receiver's Retry-After), capped, for as long as it lasts; the event is never dead-lettered.
  While a sink is down one of its lanes is tried at least every `probe_seconds` (or as the
  receiver's Retry-After says), and the first delivery that succeeds wakes every lane of the
  sink that was backing off, so a backlog drains as soon as the sink is back;
- the sink refused what the batch holds: the batch is halved until the refused event is found
  (the events before it are delivered), and that event, refused `max_attempts` times in a row,
  goes to the dead letters and the lane moves on.

With no sink configured the relay still sequences and prunes: delivered means no sink needs
it, so the outbox stays bounded whatever the configuration. A worker that dies leaves its
leases to run out; another worker then delivers those batches again (at least once:
receivers deduplicate on the event id).
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..db import relay as store
from ..db.availability import is_unavailable
from ..db.unit_of_work import Database
from ..services.context import utcnow
from ..sinks.base import DeliveryFailed, OutboxEvent, Sink
from .listener import ListenPolicy, OutboxListener

log = logging.getLogger("ordersync.relay")
OUTBOX_CHANNEL = "ordersync_outbox"  # notified by a trigger on outbox_events (migration 0003)


@dataclass(frozen=True)
class RelayPolicy:
    lanes: int = 16
    batch: int = 500
    lease_seconds: float = 30.0
    lanes_per_round: int = 32
    max_attempts: int = 5  # permanent refusals of one event before it is dead-lettered
    backoff_base_seconds: float = 1.0
    backoff_cap_seconds: float = 300.0
    probe_seconds: float = 5.0  # a sink that is down is tried at least this often
    deliver_timeout_seconds: float = 20.0
    poll_seconds: float = 0.2
    retention_hours: float = 72.0
    prune_every_seconds: float = 60.0

    def backoff(self, attempts: int) -> float:
        delay: float = min(
            self.backoff_cap_seconds, self.backoff_base_seconds * 2 ** (attempts - 1)
        )
        return delay * random.uniform(0.5, 1.5)


@dataclass(frozen=True)
class _Pending:
    stored: store.StoredEvent
    event: OutboxEvent


class Relay:
    def __init__(
        self,
        db: Database,
        sinks: Mapping[str, Sink],
        policy: RelayPolicy | None = None,
        worker_id: str | None = None,
        listen_policy: ListenPolicy | None = None,
    ) -> None:
        self.db = db
        self.sinks = dict(sinks)
        self.policy = policy or RelayPolicy()
        self.worker_id = worker_id or f"relay-{uuid.uuid4().hex[:12]}"
        # Set by this process's commits (and by NOTIFY on PostgreSQL, see run): a quiet
        # system delivers at once instead of at the next poll.
        self.wake = db.committed
        self.listener: OutboxListener | None = None
        if db.engine.dialect.name == "postgresql":
            self.listener = OutboxListener(db, OUTBOX_CHANNEL, self.wake, listen_policy)
        self._ready = False
        self.delivered = 0  # events handed to sinks by this relay
        self.failures = 0
        self._pruned_at: float | None = None
        self._down: set[str] = set()  # sinks this relay saw down since their last success

    @property
    def lanes(self) -> int:
        return 1 if self.db.engine.dialect.name == "sqlite" else self.policy.lanes

    async def run_once(self) -> int:
        """One round; how many (sink, lane) batches it worked on (0: nothing was due)."""
        names = list(self.sinks)
        if not self._ready:
            if names:
                async with self.db.uow() as uow:
                    await store.ensure_cursors(uow.conn, names, self.lanes, utcnow())
                    await uow.commit()
            self._ready = True
        async with self.db.uow() as uow:
            await store.sequence(uow.conn, self.lanes, self.policy.batch * 10)
            await uow.commit()
        now = utcnow()
        cursors: list[store.Cursor] = []
        if names:
            async with self.db.uow() as uow:
                until = now + timedelta(seconds=self.policy.lease_seconds)
                cursors = await store.lease(
                    uow.conn, self.worker_id, names, now, until, self.policy.lanes_per_round
                )
                await uow.commit()
        self.delivered += sum(await asyncio.gather(*(self._drain(c) for c in cursors)))
        await self._prune_now_and_then(now)
        return len(cursors)

    async def _prune_now_and_then(self, now: datetime) -> None:
        clock = asyncio.get_running_loop().time()
        if (
            self._pruned_at is not None
            and clock - self._pruned_at < self.policy.prune_every_seconds
        ):
            return
        self._pruned_at = clock
        before = now - timedelta(hours=self.policy.retention_hours)
        async with self.db.uow() as uow:
            await store.prune(uow.conn, list(self.sinks), before, 10_000)
            await uow.commit()

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds until `stop`; between idle rounds it waits for a commit (LISTEN/NOTIFY on
        PostgreSQL, kept connected by OutboxListener; this process's own commits on SQLite)
        or the poll interval."""
        listening = None
        if self.listener is not None:
            listening = asyncio.create_task(self.listener.run(stop))
        try:
            await self._rounds(stop)
        finally:
            if listening is not None:
                stop.set()
                await listening

    async def _rounds(self, stop: asyncio.Event) -> None:
        database_down = False
        while not stop.is_set():
            try:
                done = await self.run_once()
            except Exception as exc:  # a database hiccup must not end the relay
                done = 0
                if not is_unavailable(exc):
                    log.exception("relay round failed")
                elif not database_down:  # once, not at every poll while PostgreSQL restarts
                    log.warning("relay: the database is unavailable (%s), retrying", exc)
                database_down = database_down or is_unavailable(exc)
            else:
                if database_down:
                    log.warning("relay: the database is back")
                database_down = False
            if done == 0:
                self.wake.clear()
                waits = [asyncio.ensure_future(e.wait()) for e in (stop, self.wake)]
                await asyncio.wait(waits, timeout=self.policy.poll_seconds,
                                   return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                for w in waits:
                    w.cancel()

    async def _drain(self, cursor: store.Cursor) -> int:
        sink = self.sinks[cursor.sink]
        limit = 1 if cursor.refusals > 0 else self.policy.batch  # the refused event alone
        async with self.db.uow_read() as uow:
            stored = await store.events_after(uow.conn, cursor.lane, cursor.delivered_seq, limit)
        if not stored:
            return await self._advance(cursor, cursor.delivered_seq, [])
        wanted = [p for p in (_Pending(s, _event(s)) for s in stored) if sink.wants(p.event)]
        done, failure = await self._deliver(sink, [p.event for p in wanted])
        now = utcnow()
        latencies = [(now - p.event.created_at).total_seconds() for p in wanted[:done]]
        if failure is None:
            return await self._advance(cursor, stored[-1].seq, latencies)
        # Everything before the event that failed was delivered (events the sink does not
        # want count as delivered too).
        failed = wanted[done].stored
        reached = max([s.seq for s in stored if s.seq < failed.seq], default=cursor.delivered_seq)
        if _refused(failure):
            return await self._refused(cursor, failed, reached, latencies, failure)
        return await self._down_for_now(cursor, reached, latencies, failure)

    async def _deliver(
        self, sink: Sink, events: Sequence[OutboxEvent]
    ) -> tuple[int, Exception | None]:
        """Delivers `events` in order: how many of them the sink took, and the failure that
        stopped it. A refused batch is halved until the refused event is found."""
        if not events:
            return 0, None
        try:
            await asyncio.wait_for(
                sink.deliver(events), timeout=self.policy.deliver_timeout_seconds
            )
            return len(events), None
        except (DeliveryFailed, TimeoutError) as exc:
            if not _refused(exc) or len(events) == 1:
                return 0, exc
        half = len(events) // 2
        done, failure = await self._deliver(sink, events[:half])
        if failure is not None:
            return done, failure
        more, failure = await self._deliver(sink, events[half:])
        return done + more, failure

    async def _advance(self, cursor: store.Cursor, seq: int, latencies: list[float]) -> int:
        now = utcnow()
        recovered = (cursor.attempts > 0 and cursor.refusals == 0) or cursor.sink in self._down
        async with self.db.uow() as uow:
            await store.advance(uow.conn, cursor, self.worker_id, seq, latencies, now)
            if latencies and recovered:
                woken = await store.wake_failing(uow.conn, cursor.sink, now)
                if woken:
                    log.info("sink %s is back: %s lanes retry now", cursor.sink, woken)
            await uow.commit()
        if latencies:
            self._down.discard(cursor.sink)
        return len(latencies)

    async def _down_for_now(
        self, cursor: store.Cursor, reached: int, latencies: list[float], exc: Exception
    ) -> int:
        """The sink is unavailable: back off, never give up on the events."""
        error = str(exc) or type(exc).__name__
        self.failures += 1
        self._down.add(cursor.sink)
        now = utcnow()
        retry_after = exc.retry_after if isinstance(exc, DeliveryFailed) else None
        delay = retry_after if retry_after is not None else self.policy.backoff(cursor.attempts + 1)
        probe = max(self.policy.probe_seconds, retry_after or 0.0)
        async with self.db.uow() as uow:
            await store.postpone(uow.conn, cursor, self.worker_id, now + timedelta(seconds=delay),
                                 error, seq=reached, latencies=latencies, now=now)  # fmt: skip
            await store.keep_probing(uow.conn, cursor.sink, now + timedelta(seconds=probe))
            await uow.commit()
        return len(latencies)

    async def _refused(
        self,
        cursor: store.Cursor,
        event: store.StoredEvent,
        reached: int,
        latencies: list[float],
        exc: Exception,
    ) -> int:
        """The sink refused this event: try it alone again later; after `max_attempts`
        refusals in a row it goes to the dead letters and the lane moves on."""
        error = str(exc) or type(exc).__name__
        self.failures += 1
        refusals = (cursor.refusals if reached == cursor.delivered_seq else 0) + 1
        now = utcnow()
        async with self.db.uow() as uow:
            if refusals >= self.policy.max_attempts:
                await store.bury(uow.conn, cursor.sink, [event.id], refusals, error, now)
                await store.advance(uow.conn, cursor, self.worker_id, event.seq, latencies, now,
                                    failed=True)  # fmt: skip
                log.warning("sink %s: event %s dead after %s refusals: %s",
                            cursor.sink, event.id, refusals, error)  # fmt: skip
            else:
                at = now + timedelta(seconds=self.policy.backoff(refusals))
                await store.postpone(uow.conn, cursor, self.worker_id, at, error, seq=reached,
                                     latencies=latencies, now=now, refusals=refusals)  # fmt: skip
            await uow.commit()
        return len(latencies)


def _refused(exc: Exception) -> bool:
    return isinstance(exc, DeliveryFailed) and exc.permanent


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
