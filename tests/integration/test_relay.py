"""The outbox relay on both databases: every event reaches every sink, each aggregate's events
in commit order, a failing sink retried without holding the others, dead letters, several
workers on PostgreSQL, and an event committed late with a lower id."""

from __future__ import annotations

import asyncio
import socket
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from ordersync.db.outbox import add_event
from ordersync.db.relay import (
    backlog,
    bury,
    dead_letters,
    events_after_lanes,
    prune,
    sequence,
    unsequenced,
)
from ordersync.db.tables import outbox_events
from ordersync.db.unit_of_work import Database
from ordersync.relay.listener import ListenPolicy, OutboxListener
from ordersync.relay.worker import OUTBOX_CHANNEL, Relay, RelayPolicy, redeliver_dead
from ordersync.services.context import utcnow
from ordersync.sinks.base import DeliveryFailed, OutboxEvent

FAST = RelayPolicy(lanes=4, batch=7, backoff_base_seconds=0, backoff_cap_seconds=0, poll_seconds=0)


class Recorder:
    """A sink that keeps what it got. It can be down for its first deliveries, or always
    (`always_fail`), or refuse every batch holding one of `refuse` (permanently)."""

    def __init__(
        self,
        name: str,
        fail_first: int = 0,
        always_fail: bool = False,
        refuse: Sequence[int] = (),
    ) -> None:
        self.name = name
        self.fail_first = fail_first
        self.always_fail = always_fail
        self.refuse = set(refuse)
        self.batches: list[list[int]] = []
        self.tried: list[list[int]] = []
        self.in_flight: set[int] = set()
        self.overlaps: list[int] = []

    def wants(self, event: OutboxEvent) -> bool:
        return True

    async def deliver(self, events: Sequence[OutboxEvent]) -> None:
        ids = [e.id for e in events]
        self.tried.append(ids)
        self.overlaps += [i for i in ids if i in self.in_flight]
        self.in_flight.update(ids)
        try:
            await asyncio.sleep(0)
            if self.always_fail or self.fail_first > 0:
                self.fail_first -= 1
                raise DeliveryFailed(f"{self.name} is down")
            if self.refuse & set(ids):
                raise DeliveryFailed(f"{self.name} refuses {sorted(self.refuse)}", permanent=True)
            self.batches.append(ids)
        finally:
            self.in_flight.difference_update(ids)

    async def close(self) -> None:
        pass

    @property
    def delivered(self) -> list[int]:
        return [i for batch in self.batches for i in batch]


async def write_events(db: Database, aggregates: int, per_aggregate: int) -> dict[str, list[int]]:
    """Events of several aggregates, interleaved across transactions; their ids by aggregate."""
    for round_ in range(per_aggregate):
        async with db.uow() as uow:
            for a in range(aggregates):
                await uow.add_event("stock.changed", "stock", f"{a}:1", {"n": round_}, utcnow())
            await uow.commit()
    return await ids_by_aggregate(db)


async def ids_by_aggregate(db: Database) -> dict[str, list[int]]:
    e = outbox_events.c
    async with db.uow_read() as uow:
        rows = await uow.conn.execute(select(e.aggregate_id, e.id).order_by(e.id))
    found: dict[str, list[int]] = defaultdict(list)
    for aggregate, event_id in rows:
        found[aggregate].append(event_id)
    return found


async def drain(*relays: Relay, rounds: int = 200) -> None:
    idle = 0
    for _ in range(rounds):
        done = sum(await asyncio.gather(*(r.run_once() for r in relays)))
        idle = idle + 1 if done == 0 else 0
        if idle >= 3:
            return


def in_aggregate_order(delivered: list[int], expected: dict[str, list[int]]) -> bool:
    position = {event_id: i for i, event_id in enumerate(delivered)}
    return all(
        [position[i] for i in ids] == sorted(position[i] for i in ids) for ids in expected.values()
    )


async def test_every_event_reaches_every_sink_in_order_per_aggregate(db: Database) -> None:
    expected = await write_events(db, aggregates=5, per_aggregate=6)
    one, two = Recorder("one"), Recorder("two")

    await drain(Relay(db, {"one": one, "two": two}, FAST))

    every = sorted(i for ids in expected.values() for i in ids)
    for sink in (one, two):
        assert sorted(sink.delivered) == every  # all of them, none twice
        assert in_aggregate_order(sink.delivered, expected)
        assert max(len(b) for b in sink.batches) <= FAST.batch


async def test_a_sink_that_is_down_for_a_while_gets_everything_and_holds_no_other(
    db: Database,
) -> None:
    expected = await write_events(db, aggregates=3, per_aggregate=4)
    flaky, steady = Recorder("flaky", fail_first=5), Recorder("steady")

    await drain(Relay(db, {"flaky": flaky, "steady": steady}, FAST))

    every = sorted(i for ids in expected.values() for i in ids)
    assert sorted(steady.delivered) == every
    assert sorted(flaky.delivered) == every
    assert in_aggregate_order(flaky.delivered, expected)


async def test_an_event_the_sink_refuses_is_found_in_its_batch_and_dead_lettered_alone(
    db: Database,
) -> None:
    """The sink refuses one event permanently (a 4xx): the batch is halved until that event
    is found, the events around it are delivered in order, and after `max_attempts` refusals
    it goes to the dead letters, from where `events retry` brings it back."""
    expected = await write_events(db, aggregates=1, per_aggregate=9)
    every = sorted(i for ids in expected.values() for i in ids)
    bad = every[5]
    picky = Recorder("picky", refuse=[bad])
    policy = RelayPolicy(lanes=1, batch=10, max_attempts=3, backoff_base_seconds=0,
                         backoff_cap_seconds=0, poll_seconds=0)  # fmt: skip

    await drain(Relay(db, {"picky": picky}, policy))

    assert picky.delivered == [i for i in every if i != bad]  # all the others, in order
    assert [b for b in picky.tried if b == [bad]] == [[bad]] * policy.max_attempts
    async with db.uow_read() as uow:
        dead = await dead_letters(uow.conn, "picky")
        (stats,) = await backlog(uow.conn, ["picky"], utcnow())
    assert [(d[1], d[2]) for d in dead] == [(bad, policy.max_attempts)]
    assert stats.failing_lanes == 0 and stats.pending == 0
    assert stats.counters["delivered_total"] == len(every) - 1

    mended = Recorder("picky")
    assert await redeliver_dead(db, mended, [bad]) == 1
    assert mended.delivered == [bad]
    async with db.uow_read() as uow:
        assert await dead_letters(uow.conn, "picky") == []


async def test_a_sink_that_is_down_is_retried_for_as_long_as_it_lasts_and_loses_nothing(
    db: Database,
) -> None:
    """Refused connections, timeouts and 5xx say the sink is down, not that an event is bad:
    far more failures than max_attempts dead-letter nothing, and the lanes say they fail."""
    expected = await write_events(db, aggregates=3, per_aggregate=3)
    every = sorted(i for ids in expected.values() for i in ids)
    down = Recorder("down", fail_first=40)
    policy = RelayPolicy(lanes=2, batch=10, max_attempts=2, backoff_base_seconds=0,
                         backoff_cap_seconds=0, probe_seconds=0.01, poll_seconds=0)  # fmt: skip
    relay = Relay(db, {"down": down}, policy)

    for _ in range(15):
        await relay.run_once()
    async with db.uow_read() as uow:
        (during,) = await backlog(uow.conn, ["down"], utcnow())
        assert await dead_letters(uow.conn, "down") == []
    assert during.failing_lanes >= 1 and during.pending == len(every)
    assert during.last_success is None

    await drain(relay)

    assert sorted(down.delivered) == every
    assert in_aggregate_order(down.delivered, expected)
    async with db.uow_read() as uow:
        (after,) = await backlog(uow.conn, ["down"], utcnow())
        assert await dead_letters(uow.conn, "down") == []
    assert after.failing_lanes == 0 and after.last_success is not None
    assert after.counters["failures_total"] == 40


@pytest.mark.parametrize("backend", ["postgres"])
@pytest.mark.parametrize("count", [2, 4])
async def test_several_workers_deliver_everything_and_nothing_twice_at_once(
    db: Database, backend: str, count: int
) -> None:
    expected = await write_events(db, aggregates=40, per_aggregate=5)
    sink = Recorder("hook")
    workers = [Relay(db, {"hook": sink}, FAST, worker_id=f"w{i}") for i in range(count)]

    await drain(*workers)

    assert sink.overlaps == []
    assert sorted(sink.delivered) == sorted(i for ids in expected.values() for i in ids)
    assert in_aggregate_order(sink.delivered, expected)


@pytest.mark.parametrize("backend", ["postgres"])
async def test_an_event_committed_after_a_higher_id_is_not_skipped(
    db: Database, backend: str
) -> None:
    sink = Recorder("hook")
    relay = Relay(db, {"hook": sink}, FAST)
    async with db.uow() as late:  # takes the lower id, commits last
        await late.add_event("stock.changed", "stock", "1:1", {"late": True}, utcnow())
        async with db.uow() as early:
            await early.add_event("stock.changed", "stock", "2:1", {"late": False}, utcnow())
            await early.commit()
        await drain(relay)
        assert len(sink.delivered) == 1
        await late.commit()

    await drain(relay)

    assert sorted(sink.delivered) == sorted(i for ids in (await ids_by_aggregate(db)).values()
                                            for i in ids)  # fmt: skip


async def test_delivered_events_are_pruned_and_the_rest_kept(db: Database) -> None:
    expected = await write_events(db, aggregates=3, per_aggregate=3)
    every = sorted(i for ids in expected.values() for i in ids)
    keep = Recorder("keep")
    await drain(Relay(db, {"keep": keep}, FAST))
    late = await write_events(db, aggregates=1, per_aggregate=1)  # not delivered yet
    async with db.uow() as uow:
        await bury(uow.conn, "keep", [every[0]], 8, "kept for a retry", utcnow())
        pruned = await prune(uow.conn, ["keep"], utcnow() + timedelta(seconds=1), 1000)
        await uow.commit()

    remaining = sorted(i for ids in (await ids_by_aggregate(db)).values() for i in ids)
    assert pruned == len(every) - 1
    assert remaining == sorted(
        {every[0], *[i for ids in late.values() for i in ids]} - set(every[1:])
    )


async def test_a_commit_wakes_the_relay_long_before_its_poll(
    db: Database, database_url: str
) -> None:
    """The commit comes from another Database (another process, as far as the relay can
    tell): on PostgreSQL only the NOTIFY can wake it; on SQLite the relay runs inside
    `serve`, whose own commits wake it."""
    sink = Recorder("hook")
    relay = Relay(db, {"hook": sink}, RelayPolicy(lanes=2, poll_seconds=30))
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await asyncio.sleep(0.5)  # the relay is idle, waiting
        writer = db if db.engine.dialect.name == "sqlite" else Database.from_url(database_url)
        async with writer.uow() as uow:
            await uow.add_event("stock.changed", "stock", "1:1", {}, utcnow())
            await uow.commit()
        if writer is not db:
            await writer.dispose()
        for _ in range(100):
            if sink.delivered:
                break
            await asyncio.sleep(0.02)
        assert len(sink.delivered) == 1  # within 2 s, with a 30 s poll
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)


@pytest.mark.parametrize("backend", ["postgres"])
async def test_the_relay_listens_again_after_its_connection_is_killed(
    db: Database, database_url: str
) -> None:
    """A PostgreSQL restart kills the LISTEN connection: the relay connects and LISTENs
    again, so a commit still wakes it long before its 30 s poll."""
    sink = Recorder("hook")
    relay = Relay(db, {"hook": sink}, RelayPolicy(lanes=2, poll_seconds=30))
    assert relay.listener is not None
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    writer = Database.from_url(database_url, pool_size=1)
    try:
        await asyncio.wait_for(relay.listener.connected.wait(), 5)
        killed = relay.listener.server_pid
        async with writer.uow() as uow:
            await uow.conn.execute(text(f"SELECT pg_terminate_backend({killed})"))
        for _ in range(250):
            if relay.listener.connections == 2 and relay.listener.connected.is_set():
                break
            await asyncio.sleep(0.02)
        assert relay.listener.server_pid not in (None, killed)
        await asyncio.sleep(0.5)  # the relay is idle again, waiting
        async with writer.uow() as uow:
            await uow.add_event("stock.changed", "stock", "1:1", {}, utcnow())
            await uow.commit()
        for _ in range(100):
            if sink.delivered:
                break
            await asyncio.sleep(0.02)
        assert len(sink.delivered) == 1  # within 2 s, with a 30 s poll
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
        await writer.dispose()


@pytest.mark.parametrize("backend", ["postgres"])
async def test_while_postgresql_refuses_the_listener_it_retries_with_backoff(
    db: Database, database_url: str
) -> None:
    """The listener cannot connect (the server refuses): it keeps trying with backoff, and
    once it gets through it LISTENs."""
    gone = Database.from_url(
        make_url(database_url).set(port=_closed_port()).render_as_string(hide_password=False),
        pool_size=1,
    )
    listener = OutboxListener(gone, OUTBOX_CHANNEL, asyncio.Event(),
                              ListenPolicy(backoff_base_seconds=0.05))  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(listener.run(stop))
    try:
        await asyncio.sleep(0.5)
        assert listener.connections == 0 and not listener.connected.is_set()
        listener.db = db  # the server takes connections again
        await asyncio.wait_for(listener.connected.wait(), 5)
        assert listener.connections == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
        await gone.dispose()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_with_no_sink_the_outbox_is_still_ordered_and_pruned(db: Database) -> None:
    """Delivered means no sink needs it: with none configured every event is, so the outbox
    stays bounded whatever the configuration."""
    await write_events(db, aggregates=3, per_aggregate=2)
    relay = Relay(db, {}, RelayPolicy(lanes=2, retention_hours=1e-9, prune_every_seconds=0))

    await relay.run_once()
    async with db.uow_read() as uow:
        assert await unsequenced(uow.conn) == 0
    await asyncio.sleep(0.01)
    await relay.run_once()

    assert await ids_by_aggregate(db) == {}


async def test_cursors_of_a_sink_no_longer_configured_hold_nothing_back(db: Database) -> None:
    await write_events(db, aggregates=2, per_aggregate=2)
    await drain(Relay(db, {"gone": Recorder("gone", always_fail=True)}, FAST), rounds=3)
    kept = Relay(db, {"kept": Recorder("kept")}, replace(FAST, retention_hours=1e-9))

    await drain(kept)
    await asyncio.sleep(0.01)
    kept.policy = replace(kept.policy, prune_every_seconds=0)
    await kept.run_once()

    assert await ids_by_aggregate(db) == {}


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_product_s_stock_events_of_both_shapes_share_one_lane(
    db: Database, backend: str
) -> None:
    """stock.changed ("<product>:<store>") and stock.levels_changed ("<product>") of one
    product go down one lane, so a sink receives them in commit order."""
    now = utcnow()
    rows = [("stock.changed", "stock", f"{p}:{s}") for p in range(1, 40) for s in (1, 2, 3)] + [
        ("stock.levels_changed", "stock", str(p)) for p in range(1, 40)
    ]
    async with db.uow() as uow:
        for type_, aggregate_type, aggregate_id in rows:
            await add_event(uow.conn, type_, aggregate_type, aggregate_id, {}, now)
        await uow.commit()
    async with db.uow() as uow:
        await sequence(uow.conn, 16, 1000)
        await uow.commit()
        found = await uow.conn.execute(select(outbox_events.c.aggregate_id, outbox_events.c.lane))
        lanes: dict[str, set[int]] = defaultdict(set)
        for aggregate_id, lane in found:
            lanes[aggregate_id.split(":")[0]].add(lane)
    assert all(len(v) == 1 for v in lanes.values()), lanes
    assert len({next(iter(v)) for v in lanes.values()}) > 1  # products still spread over lanes


@pytest.mark.parametrize("backend", ["postgres"])
async def test_lanes_in_good_standing_share_one_request_each_lane_in_order(
    db: Database, backend: str
) -> None:
    """A round's lanes of one sink with few events each (under a quarter of a batch) go in
    one request of at most `batch` events, in seq order (so each aggregate's events stay in
    commit order); the request counts as one batch. Lanes with more go alone."""
    expected = await write_events(db, aggregates=12, per_aggregate=1)
    every = sorted(i for ids in expected.values() for i in ids)
    sink = Recorder("hook")
    policy = RelayPolicy(lanes=4, batch=100, poll_seconds=0)
    async with db.uow() as uow:
        await sequence(uow.conn, 4, 100)
        await uow.commit()
    async with db.uow_read() as uow:  # every lane's events, read at once, as they were written
        read = await events_after_lanes(uow.conn, [(lane, 0) for lane in range(4)], 20)
    assert sorted(e.id for lane in read for e in lane) == every
    assert all(e.payload == {"n": 0} and e.created_at.tzinfo for lane in read for e in lane)
    assert all([e.seq for e in lane] == sorted(e.seq for e in lane) for lane in read)

    await drain(Relay(db, {"hook": sink}, policy))

    assert sink.batches == [every]  # 12 events of 4 lanes, one request
    assert sink.delivered == every
    async with db.uow_read() as uow:
        (stats,) = await backlog(uow.conn, ["hook"], utcnow())
    assert stats.pending == 0
    assert stats.counters["batches_total"] == 1
    assert stats.counters["delivered_total"] == len(every)
    assert stats.counters["latency_le_10"] == len(every)

    more = await write_events(db, aggregates=12, per_aggregate=2)
    fresh = sorted(i for ids in more.values() for i in ids if i not in every)
    await drain(Relay(db, {"hook": sink}, RelayPolicy(lanes=4, batch=5, poll_seconds=0)))
    assert sorted(i for b in sink.batches[1:] for i in b) == fresh
    assert all(len(b) <= 5 for b in sink.batches[1:])  # never above the batch
    assert in_aggregate_order(sink.delivered, more)


@pytest.mark.parametrize("backend", ["postgres"])
async def test_an_event_refused_in_a_shared_request_is_found_lane_by_lane(
    db: Database, backend: str
) -> None:
    """A request holding several lanes is refused: each lane is then delivered alone, the
    refused event found and dead-lettered, every other event delivered in order."""
    expected = await write_events(db, aggregates=8, per_aggregate=3)
    every = sorted(i for ids in expected.values() for i in ids)
    bad = every[10]
    picky = Recorder("picky", refuse=[bad])
    policy = RelayPolicy(lanes=4, batch=200, max_attempts=2, backoff_base_seconds=0,
                         backoff_cap_seconds=0, poll_seconds=0)  # fmt: skip

    await drain(Relay(db, {"picky": picky}, policy))

    assert sorted(picky.delivered) == [i for i in every if i != bad]
    good = {k: [i for i in ids if i != bad] for k, ids in expected.items()}
    assert in_aggregate_order(picky.delivered, good)
    assert picky.tried[0] == every  # the first request held every lane
    async with db.uow_read() as uow:
        dead = await dead_letters(uow.conn, "picky")
    assert [(d[1], d[2]) for d in dead] == [(bad, policy.max_attempts)]


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_notify_during_a_round_that_found_nothing_starts_another_at_once(
    db: Database, backend: str
) -> None:
    """On PostgreSQL the wake is cleared before a round, not after: a commit notified while
    a round found nothing (it sequenced before the commit) is not left to the poll."""
    relay = Relay(db, {"hook": Recorder("hook")}, RelayPolicy(lanes=2, poll_seconds=30))
    rounds: list[float] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def round_() -> int:
        rounds.append(loop.time())
        if len(rounds) == 1:
            relay.wake.set()  # the NOTIFY of a commit this round was too early to see
        else:
            stop.set()
        return 0

    relay.run_once = round_  # type: ignore[method-assign]
    await asyncio.wait_for(relay._rounds(stop), timeout=5)

    assert len(rounds) == 2 and rounds[1] - rounds[0] < 1  # not the 30 s poll


@pytest.mark.parametrize("backend", ["postgres"])
async def test_the_sequencer_restarts_its_counter_above_every_seq_if_the_row_is_lost(
    db: Database, backend: str
) -> None:
    await write_events(db, aggregates=3, per_aggregate=2)
    async with db.uow() as uow:
        assert await sequence(uow.conn, 4, 100) == 6
        await uow.conn.execute(text("DELETE FROM relay_state"))
        await uow.commit()
    await write_events(db, aggregates=2, per_aggregate=1)
    async with db.uow() as uow:
        assert await sequence(uow.conn, 4, 100) == 2
        await uow.commit()
    e = outbox_events.c
    async with db.uow_read() as uow:
        seqs = [r.seq for r in await uow.conn.execute(select(e.seq).order_by(e.id))]
        counter = (
            await uow.conn.execute(text("SELECT value FROM relay_state WHERE name = 'last_seq'"))
        ).scalar_one()
    assert seqs == list(range(1, 9)) and counter == 8
