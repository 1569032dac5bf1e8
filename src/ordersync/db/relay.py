"""The outbox relay's storage: sequencing committed events, leasing lanes, moving cursors.

Event ids are not commit order: a transaction can take id 10 and commit after another took
id 11, so a reader that moved past 11 would never see 10. Within one aggregate, though, id
order is commit order (every writer holds the stock or order row's lock while it inserts the
event). So one sequencer at a time (an advisory lock) numbers the events it can see, in id
order, with a gap-free `seq`, and gives each a lane (a hash of its aggregate). Delivery then
runs per (sink, lane) from a cursor over `seq`: a lane is leased by one worker at a time, so
each aggregate's events reach each sink in commit order, however many workers run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import TextClause, bindparam, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from .tables import outbox_events, relay_cursors, relay_dead
from .types import UtcDateTime

_SEQUENCER_LOCK = 73_310_001  # pg_advisory_xact_lock key of the sequencer
# Delivery latency histogram (commit to acknowledged), cumulative buckets in seconds.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _bucket_column(le: float) -> str:
    return "latency_le_" + f"{le:g}".replace(".", "_")


BUCKET_COLUMNS = tuple(_bucket_column(le) for le in LATENCY_BUCKETS)
COUNTERS = ("delivered_total", "batches_total", "failures_total", "latency_sum", *BUCKET_COLUMNS)


@dataclass(frozen=True)
class Cursor:
    sink: str
    lane: int
    delivered_seq: int
    attempts: int


@dataclass(frozen=True)
class StoredEvent:
    id: int
    seq: int
    type: str
    aggregate_type: str
    aggregate_id: str
    payload: dict[str, Any]
    created_at: datetime


def _timed(sql: str) -> TextClause:
    names = [n for n in ("now", "until") if f":{n}" in sql]
    return text(sql).bindparams(*(bindparam(n, type_=UtcDateTime()) for n in names))


async def sequence(conn: AsyncConnection, lanes: int, limit: int) -> int:
    """Numbers up to `limit` committed, unnumbered events; 0 when another process is the
    sequencer right now."""
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        got = await conn.execute(text(f"SELECT pg_try_advisory_xact_lock({_SEQUENCER_LOCK})"))
        if not got.scalar_one():
            return 0
    # The counter row is made by the migration; should it be lost, it restarts above any seq.
    await conn.execute(
        text(
            "INSERT INTO relay_state (name, value) "
            "SELECT 'last_seq', COALESCE(MAX(seq), 0) FROM outbox_events WHERE true "
            "ON CONFLICT (name) DO NOTHING"
        )
    )
    base = (
        await conn.execute(text("SELECT value FROM relay_state WHERE name = 'last_seq'"))
    ).scalar_one()
    lane = "mod(abs(hashtext(e.aggregate_id)), :lanes)" if postgres else "0"
    result = await conn.execute(
        text(
            f"""
            UPDATE outbox_events AS e SET seq = :base + n.rn, lane = {lane}
            FROM (
                SELECT id, row_number() OVER (ORDER BY id) AS rn FROM (
                    SELECT id FROM outbox_events WHERE seq IS NULL ORDER BY id LIMIT :limit
                ) AS batch
            ) AS n
            WHERE e.id = n.id
            """
        ),
        {"base": int(base), "limit": limit, "lanes": lanes},
    )
    count = int(result.rowcount or 0)
    if count:
        await conn.execute(
            text("UPDATE relay_state SET value = value + :n WHERE name = 'last_seq'"), {"n": count}
        )
    return count


async def ensure_cursors(
    conn: AsyncConnection, sinks: list[str], lanes: int, now: datetime
) -> None:
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    zeros = {c: 0 for c in COUNTERS}
    rows = [
        {"sink": s, "lane": lane, "delivered_seq": 0, "attempts": 0, "next_attempt_at": now} | zeros
        for s in sinks
        for lane in range(lanes)
    ]
    if rows:
        await conn.execute(dialect_insert(relay_cursors).values(rows).on_conflict_do_nothing())


async def lease(
    conn: AsyncConnection,
    worker: str,
    sinks: list[str],
    now: datetime,
    until: datetime,
    limit: int,
) -> list[Cursor]:
    """Lanes with events past their cursor, free or whose lease ran out (a worker that died),
    and due (not waiting out a retry). Other workers skip the rows this one is taking."""
    lock = "FOR UPDATE SKIP LOCKED" if conn.dialect.name == "postgresql" else ""
    result = await conn.execute(
        _timed(
            f"""
            UPDATE relay_cursors SET lease_owner = :worker, lease_until = :until
            WHERE (sink, lane) IN (
                SELECT c.sink, c.lane FROM relay_cursors c
                WHERE c.sink IN :sinks
                  AND (c.lease_until IS NULL OR c.lease_until < :now)
                  AND c.next_attempt_at <= :now
                  AND EXISTS (SELECT 1 FROM outbox_events e
                              WHERE e.lane = c.lane AND e.seq > c.delivered_seq)
                ORDER BY c.next_attempt_at
                LIMIT :limit
                {lock}
            )
            RETURNING sink, lane, delivered_seq, attempts
            """
        ).bindparams(bindparam("sinks", expanding=True)),
        {"worker": worker, "sinks": sinks, "now": now, "until": until, "limit": limit},
    )
    return [Cursor(r.sink, r.lane, int(r.delivered_seq), int(r.attempts)) for r in result]


async def events_after(conn: AsyncConnection, lane: int, seq: int, limit: int) -> list[StoredEvent]:
    e = outbox_events.c
    rows = await conn.execute(
        select(e.id, e.seq, e.type, e.aggregate_type, e.aggregate_id, e.payload, e.created_at)
        .where(e.lane == lane, e.seq > seq)
        .order_by(e.seq)
        .limit(limit)
    )
    return [StoredEvent(*row) for row in rows]


async def advance(
    conn: AsyncConnection,
    cursor: Cursor,
    worker: str,
    seq: int,
    latencies: Sequence[float] = (),
) -> bool:
    """The lane delivered up to `seq` (`latencies`: commit to acknowledged, per event handed to
    the sink); False when the lease was lost meanwhile (another worker took the lane over and
    delivers it again: at least once)."""
    c = relay_cursors.c
    counters: dict[str, Any] = {
        "delivered_total": c.delivered_total + len(latencies),
        "batches_total": c.batches_total + (1 if latencies else 0),
        "latency_sum": c.latency_sum + float(sum(latencies)),
    }
    for le in LATENCY_BUCKETS:
        column = _bucket_column(le)
        counters[column] = c[column] + sum(1 for x in latencies if x <= le)
    result = await conn.execute(
        update(relay_cursors)
        .where(c.sink == cursor.sink, c.lane == cursor.lane, c.lease_owner == worker)
        .values(
            delivered_seq=seq,
            attempts=0,
            last_error=None,
            lease_owner=None,
            lease_until=None,
            **counters,
        )
    )
    return bool(result.rowcount)


async def postpone(
    conn: AsyncConnection, cursor: Cursor, worker: str, at: datetime, error: str
) -> None:
    c = relay_cursors.c
    await conn.execute(
        update(relay_cursors)
        .where(c.sink == cursor.sink, c.lane == cursor.lane, c.lease_owner == worker)
        .values(
            attempts=cursor.attempts + 1,
            failures_total=c.failures_total + 1,
            next_attempt_at=at,
            last_error=error[:2000],
            lease_owner=None,
            lease_until=None,
        )
    )


async def bury(
    conn: AsyncConnection, sink: str, event_ids: list[int], attempts: int, error: str, now: datetime
) -> None:
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    rows = [
        {"sink": sink, "event_id": i, "attempts": attempts, "error": error[:2000], "dead_at": now}
        for i in event_ids
    ]
    if rows:
        await conn.execute(dialect_insert(relay_dead).values(rows).on_conflict_do_nothing())


async def dead_letters(
    conn: AsyncConnection, sink: str | None = None
) -> list[tuple[str, int, int, str, datetime]]:
    d = relay_dead.c
    stmt = select(d.sink, d.event_id, d.attempts, d.error, d.dead_at).order_by(d.event_id)
    if sink is not None:
        stmt = stmt.where(d.sink == sink)
    return [(r.sink, r.event_id, r.attempts, r.error, r.dead_at) for r in await conn.execute(stmt)]


async def forget_dead(conn: AsyncConnection, sink: str, event_ids: list[int]) -> int:
    d = relay_dead.c
    result = await conn.execute(delete(relay_dead).where(d.sink == sink, d.event_id.in_(event_ids)))
    return int(result.rowcount or 0)


async def events_by_id(conn: AsyncConnection, ids: list[int]) -> list[StoredEvent]:
    e = outbox_events.c
    rows = await conn.execute(
        select(e.id, e.seq, e.type, e.aggregate_type, e.aggregate_id, e.payload, e.created_at)
        .where(e.id.in_(ids))
        .order_by(e.id)
    )
    return [StoredEvent(*row) for row in rows]


async def prune(conn: AsyncConnection, before: datetime, limit: int) -> int:
    """Deletes events every sink has taken (below every cursor of their lane), older than
    `before`, and not waiting in the dead letters; the table does not grow without bound."""
    result = await conn.execute(
        _timed(
            """
            DELETE FROM outbox_events WHERE id IN (
                SELECT e.id FROM outbox_events e
                WHERE e.seq IS NOT NULL AND e.created_at < :now
                  AND e.seq <= (SELECT MIN(c.delivered_seq) FROM relay_cursors c
                                WHERE c.lane = e.lane)
                  AND NOT EXISTS (SELECT 1 FROM relay_dead d WHERE d.event_id = e.id)
                ORDER BY e.id LIMIT :limit
            )
            """
        ),
        {"now": before, "limit": limit},
    )
    return int(result.rowcount or 0)


@dataclass(frozen=True)
class SinkBacklog:
    sink: str
    pending: int  # sequenced events past the sink's cursors
    oldest_seconds: float  # age of the oldest of them
    dead: int
    counters: dict[str, float]  # COUNTERS summed over the sink's lanes


async def backlog(conn: AsyncConnection, now: datetime) -> tuple[int, list[SinkBacklog]]:
    """Events not yet sequenced, and per sink what waits for it."""
    unsequenced = (
        await conn.execute(text("SELECT count(*) FROM outbox_events WHERE seq IS NULL"))
    ).scalar_one()
    rows = await conn.execute(
        text(
            """
            SELECT c.sink, count(e.id) AS pending, MIN(e.created_at) AS oldest,
                   (SELECT count(*) FROM relay_dead d WHERE d.sink = c.sink) AS dead
            FROM relay_cursors c
            LEFT JOIN outbox_events e ON e.lane = c.lane AND e.seq > c.delivered_seq
            GROUP BY c.sink ORDER BY c.sink
            """
        ).columns(oldest=UtcDateTime())
    )
    c = relay_cursors.c
    sums = {
        r.sink: r
        for r in await conn.execute(
            select(c.sink, *(func.sum(c[name]).label(name) for name in COUNTERS)).group_by(c.sink)
        )
    }
    found = [
        SinkBacklog(
            r.sink,
            int(r.pending),
            0.0 if r.oldest is None else max((now - r.oldest).total_seconds(), 0.0),
            int(r.dead),
            {name: float(getattr(sums[r.sink], name) or 0) for name in COUNTERS},
        )
        for r in rows
    ]
    return int(unsequenced), found


@dataclass(frozen=True)
class LaneState:
    sink: str
    lane: int
    pending: int
    attempts: int
    next_attempt_at: datetime
    last_error: str | None


async def lanes_with_work(conn: AsyncConnection, sink: str | None = None) -> list[LaneState]:
    """Lanes with events waiting, and lanes being retried after a failure."""
    rows = await conn.execute(
        text(
            """
            SELECT c.sink, c.lane, count(e.id) AS pending, c.attempts, c.next_attempt_at,
                   c.last_error
            FROM relay_cursors c
            LEFT JOIN outbox_events e ON e.lane = c.lane AND e.seq > c.delivered_seq
            WHERE (CAST(:sink AS VARCHAR) IS NULL OR c.sink = CAST(:sink AS VARCHAR))
            GROUP BY c.sink, c.lane, c.attempts, c.next_attempt_at, c.last_error
            HAVING count(e.id) > 0 OR c.attempts > 0
            ORDER BY c.sink, c.lane
            """
        ).columns(next_attempt_at=UtcDateTime()),
        {"sink": sink},
    )
    return [
        LaneState(r.sink, r.lane, int(r.pending), int(r.attempts), r.next_attempt_at, r.last_error)
        for r in rows
    ]
