"""The outbox relay's storage: sequencing committed events, leasing lanes, moving cursors.

Event ids are not commit order: a transaction can take id 10 and commit after another took
id 11, so a reader that moved past 11 would never see 10. Within one aggregate, though, id
order is commit order (every writer holds the stock or order row's lock while it inserts the
event). So one sequencer at a time (an advisory lock) numbers the events it can see, in id
order, with a gap-free `seq`, and gives each a lane (a hash of its aggregate; for stock events,
of its product). Delivery then
runs per (sink, lane) from a cursor over `seq`: a lane is leased by one worker at a time, so
each aggregate's events reach each sink in commit order, however many workers run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    String,
    TextClause,
    bindparam,
    case,
    delete,
    func,
    select,
    text,
    update,
)
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
    attempts: int  # failed deliveries in a row, of any kind
    refusals: int = 0  # permanent refusals in a row of the lane's head event
    waiting: int = 0  # events past the cursor when it was leased (counted up to a batch)


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


# A stock event's lane is its product's: a product's stock.levels_changed (aggregate "<product>")
# and the stock.changed of its levels ("<product>:<store>") are delivered in commit order.
_LANE_KEY = (
    "CASE WHEN e.aggregate_type = 'stock' THEN split_part(e.aggregate_id, ':', 1) "
    "ELSE e.aggregate_id END"
)


async def sequence(conn: AsyncConnection, lanes: int, limit: int) -> int:
    """Numbers up to `limit` committed, unnumbered events; 0 when another process is the
    sequencer right now."""
    if conn.dialect.name == "postgresql":
        # The lock is taken by a statement of its own: the numbering statement's snapshot is
        # then taken after the previous sequencer's commit, so it sees that one's numbers.
        got = await conn.execute(text(f"SELECT pg_try_advisory_xact_lock({_SEQUENCER_LOCK})"))
        if not got.scalar_one():
            return 0
        numbered = await conn.execute(_PG_SEQUENCE, {"limit": limit, "lanes": lanes})
        return int(numbered.scalar_one())
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
    result = await conn.execute(
        text(
            """
            UPDATE outbox_events AS e SET seq = :base + n.rn, lane = 0
            FROM (
                SELECT id, row_number() OVER (ORDER BY id) AS rn FROM (
                    SELECT id FROM outbox_events WHERE seq IS NULL ORDER BY id LIMIT :limit
                ) AS batch
            ) AS n
            WHERE e.id = n.id
            """
        ),
        {"base": int(base), "limit": limit},
    )
    count = int(result.rowcount or 0)
    if count:
        await conn.execute(
            text("UPDATE relay_state SET value = value + :n WHERE name = 'last_seq'"), {"n": count}
        )
    return count


# PostgreSQL's numbering in one statement (one round trip instead of four): the counter (made
# again above any seq should its row be lost), the events numbered in id order from it with
# their lanes, the counter moved past them; how many were numbered.
_PG_SEQUENCE = text(
    f"""
    WITH base AS MATERIALIZED (
        SELECT COALESCE(
            (SELECT value FROM relay_state WHERE name = 'last_seq'),
            (SELECT COALESCE(MAX(seq), 0) FROM outbox_events)
        ) AS value
    ),
    batch AS MATERIALIZED (
        SELECT id, row_number() OVER (ORDER BY id) AS rn FROM (
            SELECT id FROM outbox_events WHERE seq IS NULL ORDER BY id LIMIT :limit
        ) AS b
    ),
    numbered AS (
        UPDATE outbox_events AS e
        SET seq = (SELECT value FROM base) + batch.rn,
            lane = mod(abs(hashtext({_LANE_KEY})), :lanes)
        FROM batch WHERE e.id = batch.id
        RETURNING 1
    ),
    counted AS MATERIALIZED (SELECT count(*) AS n FROM numbered),
    moved AS (
        INSERT INTO relay_state (name, value)
        SELECT 'last_seq', (SELECT value FROM base) + n FROM counted WHERE n > 0
        ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value
    )
    SELECT n FROM counted
    """
)


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
    count_to: int = 0,
) -> list[Cursor]:
    """Lanes with events past their cursor, free or whose lease ran out (a worker that died),
    and due (not waiting out a retry). Other workers skip the rows this one is taking.
    `count_to`: each cursor says how many events wait past it, counted up to this."""
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
            RETURNING sink, lane, delivered_seq, attempts, refusals, (
                SELECT count(*) FROM (
                    SELECT 1 FROM outbox_events e
                    WHERE e.lane = relay_cursors.lane AND e.seq > relay_cursors.delivered_seq
                    LIMIT :count_to
                ) AS w
            ) AS waiting
            """
        ).bindparams(bindparam("sinks", expanding=True)),
        {
            "worker": worker,
            "sinks": sinks,
            "now": now,
            "until": until,
            "limit": limit,
            "count_to": count_to,
        },
    )
    return [
        Cursor(
            r.sink,
            r.lane,
            int(r.delivered_seq),
            int(r.attempts),
            int(r.refusals),
            int(r.waiting),
        )
        for r in result
    ]


async def events_after(conn: AsyncConnection, lane: int, seq: int, limit: int) -> list[StoredEvent]:
    e = outbox_events.c
    rows = await conn.execute(
        select(e.id, e.seq, e.type, e.aggregate_type, e.aggregate_id, e.payload, e.created_at)
        .where(e.lane == lane, e.seq > seq)
        .order_by(e.seq)
        .limit(limit)
    )
    return [StoredEvent(*row) for row in rows]


# One statement whatever the number of lanes (prepared once per connection).
_EVENTS_AFTER_LANES = text(
    """
    SELECT at.k - 1 AS k, e.id, e.seq, e.type, e.aggregate_type, e.aggregate_id, e.payload,
           e.created_at
    FROM unnest(CAST(:lanes AS int[]), CAST(:seqs AS bigint[])) WITH ORDINALITY
         AS at(lane, after, k)
    CROSS JOIN LATERAL (
        SELECT * FROM outbox_events o WHERE o.lane = at.lane AND o.seq > at.after
        ORDER BY o.seq LIMIT :limit
    ) AS e
    ORDER BY at.k, e.seq
    """
).columns(payload=JSON(), created_at=UtcDateTime())


async def events_after_lanes(
    conn: AsyncConnection, positions: Sequence[tuple[int, int]], limit: int
) -> list[list[StoredEvent]]:
    """`events_after` for several (lane, seq) positions in one round trip on PostgreSQL;
    the events of each, in the order of `positions`."""
    if conn.dialect.name != "postgresql" or len(positions) < 2:
        return [await events_after(conn, lane, seq, limit) for lane, seq in positions]
    rows = await conn.execute(
        _EVENTS_AFTER_LANES,
        {
            "lanes": [lane for lane, _ in positions],
            "seqs": [seq for _, seq in positions],
            "limit": limit,
        },
    )
    events: list[list[StoredEvent]] = [[] for _ in positions]
    for k, *row in rows:
        events[k].append(StoredEvent(*row))
    return events


def _counters(latencies: Sequence[float], batches: int | None = None) -> dict[str, Any]:
    """The lane's delivery counters, grown by one batch of `latencies` (commit to
    acknowledged, per event the sink took); `batches`: requests to count, if not one per
    batch that delivered anything."""
    c = relay_cursors.c
    if batches is None:
        batches = 1 if latencies else 0
    counters: dict[str, Any] = {
        "delivered_total": c.delivered_total + len(latencies),
        "batches_total": c.batches_total + batches,
        "latency_sum": c.latency_sum + float(sum(latencies)),
    }
    for le in LATENCY_BUCKETS:
        column = _bucket_column(le)
        counters[column] = c[column] + sum(1 for x in latencies if x <= le)
    return counters


async def advance(
    conn: AsyncConnection,
    cursor: Cursor,
    worker: str,
    seq: int,
    latencies: Sequence[float] = (),
    now: datetime | None = None,
    *,
    failed: bool = False,
    batches: int | None = None,
) -> bool:
    """The lane delivered up to `seq` (`failed`: moved past a dead letter instead) and is due
    again at once; False when the lease was lost meanwhile (another worker took the lane over
    and delivers it again: at least once)."""
    c = relay_cursors.c
    values: dict[str, Any] = {
        "delivered_seq": seq,
        "attempts": 0,
        "refusals": 0,
        "last_error": None,
        "lease_owner": None,
        "lease_until": None,
        **_counters(latencies, batches),
    }
    if failed:
        values["failures_total"] = c.failures_total + 1
    if latencies and now is not None:
        values["succeeded_at"] = now
    result = await conn.execute(
        update(relay_cursors)
        .where(c.sink == cursor.sink, c.lane == cursor.lane, c.lease_owner == worker)
        .values(**values)
    )
    return bool(result.rowcount)


async def warm_up(conn: AsyncConnection) -> None:
    """Runs the statements of a busy round that an idle one does not (reading several lanes,
    moving several cursors) with nothing to do, so the connection has them prepared."""
    await conn.execute(_EVENTS_AFTER_LANES, {"lanes": [], "seqs": [], "limit": 1})
    await advance_many(conn, "", [], datetime.now(UTC))


@dataclass(frozen=True)
class Advance:
    cursor: Cursor
    seq: int
    latencies: Sequence[float]


async def advance_many(
    conn: AsyncConnection, worker: str, moves: Sequence[Advance], now: datetime
) -> None:
    """`advance` for several lanes that delivered in one request (counted once, as the first
    lane's batch), in one statement on PostgreSQL."""
    taken = any(m.latencies for m in moves)
    if conn.dialect.name != "postgresql":
        for m in moves:
            batches = int(m is moves[0] and taken)
            await advance(conn, m.cursor, worker, m.seq, m.latencies, now, batches=batches)
        return
    buckets = ", ".join(f"{name} = c.{name} + v.{name}" for name in BUCKET_COLUMNS)
    arrays = {
        "sinks": [m.cursor.sink for m in moves],
        "lanes": [m.cursor.lane for m in moves],
        "seqs": [m.seq for m in moves],
        "counts": [len(m.latencies) for m in moves],
        "batches": [int(i == 0 and taken) for i in range(len(moves))],
        "sums": [float(sum(m.latencies)) for m in moves],
        **{
            name: [sum(1 for x in m.latencies if x <= le) for m in moves]
            for name, le in zip(BUCKET_COLUMNS, LATENCY_BUCKETS, strict=True)
        },
    }
    await conn.execute(
        _timed(
            f"""
            UPDATE relay_cursors AS c
            SET delivered_seq = v.seq, attempts = 0, refusals = 0, last_error = NULL,
                lease_owner = NULL, lease_until = NULL,
                delivered_total = c.delivered_total + v.n,
                batches_total = c.batches_total + v.b,
                latency_sum = c.latency_sum + v.s, {buckets},
                succeeded_at = CASE WHEN v.n > 0 THEN :now ELSE c.succeeded_at END
            FROM unnest(CAST(:sinks AS text[]), CAST(:lanes AS int[]), CAST(:seqs AS bigint[]),
                        CAST(:counts AS bigint[]), CAST(:batches AS int[]), CAST(:sums AS float8[]),
                        {", ".join(f"CAST(:{n} AS bigint[])" for n in BUCKET_COLUMNS)})
                 AS v(sink, lane, seq, n, b, s, {", ".join(BUCKET_COLUMNS)})
            WHERE c.sink = v.sink AND c.lane = v.lane AND c.lease_owner = :worker
            """
        ),
        {"worker": worker, "now": now, **arrays},
    )


async def postpone(
    conn: AsyncConnection,
    cursor: Cursor,
    worker: str,
    at: datetime,
    error: str,
    *,
    seq: int | None = None,
    latencies: Sequence[float] = (),
    now: datetime | None = None,
    refusals: int | None = None,
    failures: int = 1,
) -> None:
    """The lane failed: it is tried again at `at`. `seq` and `latencies`: what the failed
    round delivered before the failure; `refusals`: the head event's refusals so far;
    `failures`: failed requests to count (0 for a lane of a request counted on another)."""
    c = relay_cursors.c
    values: dict[str, Any] = {
        "delivered_seq": cursor.delivered_seq if seq is None else seq,
        "attempts": cursor.attempts + 1,
        "refusals": cursor.refusals if refusals is None else refusals,
        "failures_total": c.failures_total + failures,
        "next_attempt_at": at,
        "last_error": error[:2000],
        "lease_owner": None,
        "lease_until": None,
        **_counters(latencies),
    }
    if latencies and now is not None:
        values["succeeded_at"] = now
    await conn.execute(
        update(relay_cursors)
        .where(c.sink == cursor.sink, c.lane == cursor.lane, c.lease_owner == worker)
        .values(**values)
    )


async def keep_probing(conn: AsyncConnection, sink: str, at: datetime) -> None:
    """While a sink is down one of its failing lanes (the one due first) is tried by `at`,
    however far the others have backed off: its success wakes them (`wake_failing`)."""
    await conn.execute(
        _timed(
            """
            UPDATE relay_cursors SET next_attempt_at = :now
            WHERE sink = :sink AND next_attempt_at > :now AND lane = (
                SELECT lane FROM relay_cursors
                WHERE sink = :sink AND attempts > 0 AND refusals = 0
                ORDER BY next_attempt_at, lane LIMIT 1
            )
            """
        ),
        {"sink": sink, "now": at},
    )


async def wake_failing(conn: AsyncConnection, sink: str, now: datetime) -> int:
    """The sink took a delivery again: its lanes waiting out a backoff for the outage are
    due now (lanes waiting on an event the sink refused keep their backoff)."""
    result = await conn.execute(
        _timed(
            """
            UPDATE relay_cursors SET next_attempt_at = :now
            WHERE sink = :sink AND attempts > 0 AND refusals = 0 AND next_attempt_at > :now
            """
        ),
        {"sink": sink, "now": now},
    )
    return int(result.rowcount or 0)


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


async def prune(conn: AsyncConnection, sinks: list[str], before: datetime, limit: int) -> int:
    """Deletes sequenced events older than `before` that no configured sink needs: at or
    below each of their cursors in the event's lane (with no sink configured, none needs
    any), and not waiting in the dead letters. Cursors of sinks no longer configured hold
    nothing back. The table does not grow without bound, whatever the configuration."""
    result = await conn.execute(
        _timed(
            """
            DELETE FROM outbox_events WHERE id IN (
                SELECT e.id FROM outbox_events e
                WHERE e.seq IS NOT NULL AND e.created_at < :now
                  AND NOT EXISTS (SELECT 1 FROM relay_cursors c
                                  WHERE c.sink IN :sinks AND c.lane = e.lane
                                    AND c.delivered_seq < e.seq)
                  AND NOT EXISTS (SELECT 1 FROM relay_dead d WHERE d.event_id = e.id)
                ORDER BY e.id LIMIT :limit
            )
            """
        ).bindparams(bindparam("sinks", expanding=True, type_=String())),
        {"now": before, "limit": limit, "sinks": sinks},
    )
    return int(result.rowcount or 0)


@dataclass(frozen=True)
class SinkBacklog:
    sink: str
    pending: int  # sequenced events past the sink's cursors
    oldest_seconds: float  # age of the oldest of them
    dead: int
    failing_lanes: int  # lanes whose last delivery failed (retrying)
    last_success: datetime | None  # the sink's last delivery, if any
    counters: dict[str, float]  # COUNTERS summed over the sink's lanes


async def unsequenced(conn: AsyncConnection) -> int:
    """Committed events the sequencer has not numbered yet."""
    found = await conn.execute(text("SELECT count(*) FROM outbox_events WHERE seq IS NULL"))
    return int(found.scalar_one())


async def backlog(conn: AsyncConnection, sinks: list[str], now: datetime) -> list[SinkBacklog]:
    """Per configured sink, what waits for it and how its deliveries went."""
    if not sinks:
        return []
    rows = await conn.execute(
        text(
            """
            SELECT c.sink, count(e.id) AS pending, MIN(e.created_at) AS oldest
            FROM relay_cursors c
            LEFT JOIN outbox_events e ON e.lane = c.lane AND e.seq > c.delivered_seq
            WHERE c.sink IN :sinks
            GROUP BY c.sink
            """
        )
        .bindparams(bindparam("sinks", expanding=True))
        .columns(oldest=UtcDateTime()),
        {"sinks": sinks},
    )
    waiting = {r.sink: (int(r.pending), r.oldest) for r in rows}
    d = relay_dead.c
    counted = select(d.sink, func.count().label("n")).group_by(d.sink)
    dead: dict[str, int] = {r.sink: int(r.n) for r in await conn.execute(counted)}
    c = relay_cursors.c
    failing = func.sum(case((c.attempts > 0, 1), else_=0))
    sums = {
        r.sink: r
        for r in await conn.execute(
            select(
                c.sink,
                failing.label("failing"),
                func.max(c.succeeded_at).label("last_success"),
                *(func.sum(c[name]).label(name) for name in COUNTERS),
            )
            .where(c.sink.in_(sinks))
            .group_by(c.sink)
        )
    }
    found = []
    for sink in sorted(sinks):
        pending, oldest = waiting.get(sink, (0, None))
        row = sums.get(sink)
        counters = {name: float(getattr(row, name) or 0) if row else 0.0 for name in COUNTERS}
        found.append(
            SinkBacklog(
                sink,
                pending,
                0.0 if oldest is None else max((now - oldest).total_seconds(), 0.0),
                int(dead.get(sink, 0)),
                int(row.failing or 0) if row else 0,
                row.last_success if row else None,
                counters,
            )
        )
    return found


@dataclass(frozen=True)
class LaneState:
    sink: str
    lane: int
    pending: int
    attempts: int
    next_attempt_at: datetime
    last_error: str | None


async def lanes_with_work(conn: AsyncConnection, sinks: list[str]) -> list[LaneState]:
    """Lanes of these sinks with events waiting, and lanes being retried after a failure."""
    if not sinks:
        return []
    rows = await conn.execute(
        text(
            """
            SELECT c.sink, c.lane, count(e.id) AS pending, c.attempts, c.next_attempt_at,
                   c.last_error
            FROM relay_cursors c
            LEFT JOIN outbox_events e ON e.lane = c.lane AND e.seq > c.delivered_seq
            WHERE c.sink IN :sinks
            GROUP BY c.sink, c.lane, c.attempts, c.next_attempt_at, c.last_error
            HAVING count(e.id) > 0 OR c.attempts > 0
            ORDER BY c.sink, c.lane
            """
        )
        .bindparams(bindparam("sinks", expanding=True))
        .columns(next_attempt_at=UtcDateTime()),
        {"sinks": sinks},
    )
    return [
        LaneState(r.sink, r.lane, int(r.pending), int(r.attempts), r.next_attempt_at, r.last_error)
        for r in rows
    ]
