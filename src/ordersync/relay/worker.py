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
import contextlib
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
        # Set by NOTIFY on PostgreSQL (see run), by this process's commits on SQLite: a quiet
        # system delivers at once instead of at the next poll. On PostgreSQL only a commit of
        # new events sets it, so it is cleared before each round and a commit during a round
        # is never missed; on SQLite the relay's own commits set it too, so it is cleared after.
        self.wake = db.committed
        self.listener: OutboxListener | None = None
        if db.engine.dialect.name == "postgresql":
            self.wake = asyncio.Event()
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
        now = utcnow()
        cursors: list[store.Cursor] = []
        async with self.db.uow() as uow:  # sequencing and leasing: one transaction
            await store.sequence(uow.conn, self.lanes, self.policy.batch * 10)
            if names:
                until = now + timedelta(seconds=self.policy.lease_seconds)
                cursors = await store.lease(
                    uow.conn, self.worker_id, names, now, until, self.policy.lanes_per_round,
                    count_to=self.policy.batch,
                )  # fmt: skip
            await uow.commit()
        # A lane with a quarter of a batch or more waiting, or being retried, is read and
        # delivered by itself (a backlog's lanes each read, deliver and advance side by side,
        # as many at once as the pool allows); the others, an event or a few each under a
        # steady load, are read at once and share requests.
        big = max(1, self.policy.batch // 4)
        alone = [c for c in cursors if c.waiting >= big or c.attempts > 0]
        shared = [c for c in cursors if c not in alone]
        self.delivered += sum(
            await asyncio.gather(self._drain_shared(shared), *(self._drain_alone(c) for c in alone))
        )
        await self._prune_now_and_then(now)
        return len(cursors)

    async def _drain_alone(self, cursor: store.Cursor) -> int:
        limit = 1 if cursor.refusals > 0 else self.policy.batch  # the refused event alone
        async with self.db.uow_read() as uow:
            stored = await store.events_after(uow.conn, cursor.lane, cursor.delivered_seq, limit)
        return await self._drain(cursor, stored)

    async def _drain_shared(self, cursors: Sequence[store.Cursor]) -> int:
        if not cursors:
            return 0
        async with self.db.uow_read() as uow:  # every lane's batch: one read
            batches = await store.events_after_lanes(
                uow.conn, [(c.lane, c.delivered_seq) for c in cursors], self.policy.batch
            )
        groups = self._groups(cursors, batches)
        return sum(await asyncio.gather(*(self._drain_group(g) for g in groups)))

    def _groups(
        self, cursors: Sequence[store.Cursor], batches: Sequence[list[store.StoredEvent]]
    ) -> list[list[tuple[store.Cursor, list[store.StoredEvent]]]]:
        """The leased lanes, grouped into deliveries. Lanes of one sink in good standing
        share one delivery of at most `batch` events (in seq order, so each lane's events
        stay in order): under a steady load most lanes hold an event or two, and one request
        for all of them costs the sink, the relay and the database far less than one each.
        A lane being retried, or one that fills a batch by itself, is delivered alone."""
        groups: list[list[tuple[store.Cursor, list[store.StoredEvent]]]] = []
        open_: dict[str, tuple[list[tuple[store.Cursor, list[store.StoredEvent]]], int]] = {}
        for cursor, stored in zip(cursors, batches, strict=True):
            if cursor.refusals > 0:
                stored = stored[:1]  # the refused event alone
            if cursor.attempts > 0 or not stored or len(stored) >= self.policy.batch:
                groups.append([(cursor, stored)])
                continue
            group, size = open_.get(cursor.sink, ([], 0))
            if size + len(stored) > self.policy.batch:
                group, size = [], 0
            if not group:
                groups.append(group)
            group.append((cursor, stored))
            open_[cursor.sink] = (group, size + len(stored))
        return groups

    async def _drain_group(self, group: list[tuple[store.Cursor, list[store.StoredEvent]]]) -> int:
        if len(group) == 1:
            return await self._drain(*group[0])
        sink = self.sinks[group[0][0].sink]
        every = sorted(
            (_Pending(s, _event(s)) for _, stored in group for s in stored),
            key=lambda p: p.stored.seq,
        )
        wanted = [p for p in every if sink.wants(p.event)]
        _, failure = await self._deliver_once(sink, [p.event for p in wanted])
        if failure is not None:
            if _refused(failure):  # each lane alone finds the event refused
                return sum(await asyncio.gather(*(self._drain(*lane) for lane in group)))
            # One request failed: every lane in it backs off, one failure is counted.
            return sum(
                await asyncio.gather(
                    *(
                        self._down_for_now(c, c.delivered_seq, [], failure, counted=i == 0)
                        for i, (c, _) in enumerate(group)
                    )
                )
            )
        now = utcnow()
        took = {p.stored.id for p in wanted}
        moves = [
            store.Advance(
                cursor,
                stored[-1].seq,
                [(now - s.created_at).total_seconds() for s in stored if s.id in took],
            )
            for cursor, stored in group
        ]  # the request is counted once, as one batch, by the first lane
        if group[0][0].sink in self._down:  # the sink is back: wake its lanes backing off
            for move in moves:
                await self._advance(move.cursor, move.seq, list(move.latencies))
        elif self.db.is_postgres:  # one statement, committed by itself
            async with self.db.connect(autocommit=True) as conn:
                await store.advance_many(conn, self.worker_id, moves, now)
        else:
            async with self.db.uow() as uow:
                await store.advance_many(uow.conn, self.worker_id, moves, now)
                await uow.commit()
        return len(took)

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
            await self._warm_up()
            await self._rounds(stop)
        finally:
            if listening is not None:
                stop.set()
                await listening

    async def _warm_up(self) -> None:
        """Prepares the round's statements on every connection of the pool (PostgreSQL), so
        the first events after a start do not wait for that; a database that is down now is
        left to the rounds, which retry."""
        if not self.db.is_postgres:
            return
        try:
            async with contextlib.AsyncExitStack() as stack:
                for _ in range(self.db.pool_size):
                    conn = await stack.enter_async_context(self.db.connect(autocommit=True))
                    await store.warm_up(conn)
        except Exception as exc:
            log.debug("relay warm-up skipped: %s", exc)

    async def _rounds(self, stop: asyncio.Event) -> None:
        database_down = False
        while not stop.is_set():
            if self.listener is not None:
                self.wake.clear()  # a NOTIFY from now on means another round
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
                if self.listener is None:
                    self.wake.clear()
                waits = [asyncio.ensure_future(e.wait()) for e in (stop, self.wake)]
                await asyncio.wait(waits, timeout=self.policy.poll_seconds,
                                   return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                for w in waits:
                    w.cancel()

    async def _drain(self, cursor: store.Cursor, stored: list[store.StoredEvent]) -> int:
        """Delivers one lane's batch `stored` (read past its cursor) and moves its cursor."""
        sink = self.sinks[cursor.sink]
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
        done, failure = await self._deliver_once(sink, events)
        if failure is None or not _refused(failure) or len(events) == 1:
            return done, failure
        half = len(events) // 2
        done, failure = await self._deliver(sink, events[:half])
        if failure is not None:
            return done, failure
        more, failure = await self._deliver(sink, events[half:])
        return done + more, failure

    async def _deliver_once(
        self, sink: Sink, events: Sequence[OutboxEvent]
    ) -> tuple[int, Exception | None]:
        """One delivery of `events`: all of them taken, or none and the failure."""
        if not events:
            return 0, None
        try:
            await asyncio.wait_for(
                sink.deliver(events), timeout=self.policy.deliver_timeout_seconds
            )
        except (DeliveryFailed, TimeoutError) as exc:
            return 0, exc
        return len(events), None

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
        self,
        cursor: store.Cursor,
        reached: int,
        latencies: list[float],
        exc: Exception,
        *,
        counted: bool = True,
    ) -> int:
        """The sink is unavailable: back off, never give up on the events. `counted`: the
        failed request is counted (once for a request that held several lanes)."""
        error = str(exc) or type(exc).__name__
        self.failures += int(counted)
        self._down.add(cursor.sink)
        now = utcnow()
        retry_after = exc.retry_after if isinstance(exc, DeliveryFailed) else None
        delay = retry_after if retry_after is not None else self.policy.backoff(cursor.attempts + 1)
        probe = max(self.policy.probe_seconds, retry_after or 0.0)
        async with self.db.uow() as uow:
            await store.postpone(uow.conn, cursor, self.worker_id, now + timedelta(seconds=delay),
                                 error, seq=reached, latencies=latencies, now=now,
                                 failures=int(counted))  # fmt: skip
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
