"""The live stream behind the dashboards: one broadcaster per server process reads each new
outbox event once and fans the changed orders out to every connected screen, each getting
only what its role may see and what its filters ask for.

It runs only while someone watches. It wakes on a commit (LISTEN ordersync_outbox on
PostgreSQL, the trigger the relay uses; this process's own commits on SQLite) or after
`poll_seconds`, and then at most every `interval_seconds` (half a second: a lone order shows
at once, a burst within a second), so a burst of orders costs one read
of the new events and one read of the changed orders, whatever the number of dashboards;
rows are rendered once per language. Nothing is added to the placement path.

Ids are not commit order on PostgreSQL (a transaction may take an id and commit after a later
one): ids skipped at a read are asked for again for GAP_SECONDS.

Nothing falls between a page and its stream: a page carries an event id every earlier one of
which it saw (`since`, see `page_mark`), each message the id up to which the stream had read
every event (the SSE `id`, sent back by the browser as Last-Event-ID when it reconnects), and
a screen that joins or comes back behind the stream is first told of the orders changed since:
one read per round, newest first, for all such screens (ui/catch_up.py). A screen further
behind than READ_LIMIT events or CATCH_UP_ORDERS orders is offered to reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from ..db import console_orders, outbox_reader
from ..db.console_orders import OrderRow
from ..db.unit_of_work import Database
from ..domain.types import Channel, OrderStatus
from ..relay.listener import OutboxListener
from ..relay.worker import OUTBOX_CHANNEL
from ..services.context import utcnow
from .catch_up import ChangedOrders

log = logging.getLogger("ordersync.ui.live")
GAP_SECONDS = 5.0
MAX_GAPS = 10_000
READ_LIMIT = 5000
MAX_ROWS = 10  # changed orders sent per message; beyond that the screen is told to reload
QUEUE_SIZE = 32
CATCH_UP_ORDERS = 200  # newest changed orders read for screens behind, before each one's scope
START_WAIT_SECONDS = 3.0  # how long a new screen waits for the stream's starting point

RenderRows = Callable[[list[OrderRow], str], dict[str, str]]
Message = tuple[str, str, int]  # the SSE event, its data, the event id read up to


@dataclass(eq=False)  # each screen is itself, however alike two are
class Watch:
    """One connected screen: whose it is, and what it shows."""

    locale: str
    visible_stores: frozenset[int] | None  # None: every order
    order_id: str | None = None  # an order's own page
    channel: Channel | None = None
    status: OrderStatus | None = None
    store_id: int | None = None
    attention: bool = False
    inserts: bool = True  # the first page of an unsearched list: new orders are added on top
    since: int | None = None  # the event its page was read at, until the screen is caught up
    queue: asyncio.Queue[Message] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    missed: bool = False  # a message was dropped (a slow screen): tell it to reload

    def sees(self, row: OrderRow) -> bool:
        return self.visible_stores is None or bool(self.visible_stores & row.stores)

    def matches(self, row: OrderRow) -> bool:
        return (
            (self.channel is None or row.channel is self.channel)
            and (self.status is None or row.status is self.status)
            and (self.store_id is None or self.store_id in row.stores)
            and (not self.attention or row.attention)
        )

    def offer(self, event: str, data: str, read_up_to: int) -> None:
        try:
            self.queue.put_nowait((event, data, read_up_to))
        except asyncio.QueueFull:
            self.missed = True


async def page_mark(db: Database, conn: AsyncConnection) -> int:
    """The `since` of a page read now: an event every earlier one of which its read saw. On
    PostgreSQL that is the newest event older than GAP_SECONDS, as an id may commit late; the
    screen is then told again of what changed just before, which changes nothing on it."""
    before = utcnow() - timedelta(seconds=GAP_SECONDS) if db.is_postgres else None
    return await outbox_reader.last_id(conn, before)


class Broadcaster:
    def __init__(
        self,
        db: Database,
        render: RenderRows,
        poll_seconds: float = 0.5,
        interval_seconds: float = 0.5,
    ) -> None:
        self.db = db
        self.render = render
        self.poll_seconds = poll_seconds
        self.interval_seconds = interval_seconds
        self.watches: set[Watch] = set()
        self.rounds = 0  # reads of the outbox (for tests and the bench)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._last_id = 0
        self._gaps: dict[int, float] = {}
        self._reading = asyncio.Event()  # the loop has fixed where "from now on" starts

    async def subscribe(self, watch: Watch, wait_seconds: float = START_WAIT_SECONDS) -> None:
        """Adds a screen; the first one starts the reading (at most one loop runs: nothing is
        awaited between the check and the start). Returns once the stream has fixed the event
        it starts after, so that whatever commits after this returns reaches the screen; if the
        database does not answer within `wait_seconds` it returns anyway and the loop keeps
        trying. A screen with `since` returns at once: the next round tells it what changed
        after that event."""
        self.watches.add(watch)
        if self._task is None or self._task.done():
            self._start()
        if watch.since is not None:
            self._wake.set()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._reading.wait(), wait_seconds)

    def _start(self) -> None:
        self._reading.clear()
        self._task = asyncio.create_task(self._run())

    def unsubscribe(self, watch: Watch) -> None:
        self.watches.discard(watch)
        if not self.watches:
            self._wake.set()  # the loop ends when it sees no screen

    async def close(self) -> None:
        self._closing = True
        self.watches.clear()
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._task, timeout=5)

    async def _run(self) -> None:
        stop = asyncio.Event()
        listening: asyncio.Task[None] | None = None
        if self.db.is_postgres:
            listener = OutboxListener(self.db, OUTBOX_CHANNEL, self._wake)
            listening = asyncio.create_task(listener.run(stop))
        else:
            self.db.commit_watchers.add(self._wake)
        try:
            while not await self._start_from_now():
                if not self.watches or self._closing:
                    return
                await asyncio.sleep(self.poll_seconds)
            while self.watches and not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
                self._wake.clear()
                if not self.watches or self._closing:
                    break
                try:
                    await self.round()
                except Exception as exc:  # a database hiccup must not end the stream
                    log.warning("live stream: reading new events failed: %s", exc)
                await asyncio.sleep(self.interval_seconds)
        finally:
            self._reading.clear()  # before any await: a screen coming now waits for the next
            self.db.commit_watchers.discard(self._wake)
            stop.set()
            if listening is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await listening
            if self.watches and not self._closing:  # a screen came while this one ended
                self._start()

    async def _start_from_now(self) -> bool:
        """The stream tells what happens from now on: it starts at the newest event."""
        try:
            async with self.db.connect(autocommit=True) as conn:
                self._last_id = await outbox_reader.last_id(conn)
        except Exception as exc:
            log.warning("live stream: cannot read the outbox yet: %s", exc)
            return False
        self._gaps.clear()
        self._reading.set()
        return True

    async def round(self) -> int:
        """Reads what is new and tells the screens; how many events it read."""
        self.rounds += 1
        now = time.monotonic()
        self._gaps = {i: t for i, t in self._gaps.items() if t > now}
        behind = [w for w in self.watches if w.since is not None]
        caught_up_to = self._last_id
        async with self.db.connect(autocommit=True) as conn:
            missed = await self._missed(conn, behind, caught_up_to) if behind else None
            found = await outbox_reader.events_after(conn, self._last_id, READ_LIMIT)
            late = await outbox_reader.events_by_ids(conn, sorted(self._gaps))
            events = late + found
            if found:
                self._remember_gaps([event_id for event_id, _ in found], now)
                self._last_id = found[-1][0]
            for event_id, _ in late:
                self._gaps.pop(event_id, None)
            changed = list(
                dict.fromkeys(order_id for _, order_id in reversed(events) if order_id is not None)
            )
            rows = await console_orders.rows_by_ids(conn, changed[: MAX_ROWS * 2])
        if rows or missed:
            await self.db.fresh_stores()  # the store codes the rows show
        if missed:  # first: theirs are the older news (and rows read a moment earlier)
            self._catch_up(*missed, self._settled(caught_up_to))
        if rows:  # not to a screen that came during this round: the next one catches it up
            current = [w for w in self.watches if w.since is None]
            more = len(changed) > MAX_ROWS * 2
            self._tell(rows, more, current, self._settled(self._last_id), {})
        if len(found) == READ_LIMIT:
            self._wake.set()  # more waiting: read again after the interval
        return len(events)

    async def _missed(
        self, conn: AsyncConnection, behind: list[Watch], up_to: int
    ) -> tuple[list[tuple[Watch, int]], ChangedOrders, dict[str, OrderRow]]:
        """One read for every screen behind the stream: the orders changed after the oldest
        `since` among them, up to `up_to`, newest first; the screens are marked caught up."""
        start = min(w.since or 0 for w in behind)
        events = await outbox_reader.events_after(
            conn, start, READ_LIMIT, up_to=up_to, newest_first=True
        )
        changes = ChangedOrders.from_events(events, full=len(events) == READ_LIMIT)
        wanted = set(changes.orders[:CATCH_UP_ORDERS])
        wanted.update(w.order_id for w in behind if w.order_id and w.order_id in changes.at)
        rows = {r.id: r for r in await console_orders.rows_by_ids(conn, list(wanted))}
        since = [(w, w.since or 0) for w in behind]
        for watch in behind:
            watch.since = None  # before telling: a screen that cannot be told is not read again
        return since, changes, rows

    def _catch_up(
        self,
        behind: list[tuple[Watch, int]],
        changes: ChangedOrders,
        rows: dict[str, OrderRow],
        read_up_to: int,
    ) -> None:
        """Tells each screen behind the stream what it missed, or to reload when that is more
        than it is sent."""
        html: dict[tuple[str, str], str] = {}
        for watch, since in behind:
            if watch not in self.watches:
                continue
            try:
                if watch.order_id is not None:
                    changed = changes.order_changed_after(watch.order_id, since)
                    row = rows.get(watch.order_id)
                    if changed and row is not None:
                        self._tell([row], False, [watch], read_up_to, html)
                    elif not changed and changes.unread_after(since):
                        self._tell_to_reload(watch, read_up_to)
                    continue
                ids, more = changes.orders_after(since, CATCH_UP_ORDERS)
                visible = [rows[i] for i in ids if i in rows and watch.sees(rows[i])]
                if visible:
                    watch.missed = watch.missed or more
                    self._tell(visible, False, [watch], read_up_to, html)
                elif more:
                    self._tell_to_reload(watch, read_up_to)
            except Exception as exc:  # one screen's rows must not stop the others'
                log.warning("live stream: catching a screen up failed: %s", exc)
                self._tell_to_reload(watch, read_up_to)

    def _settled(self, up_to: int) -> int:
        """The SSE id of a message: every event up to it has been read, so a screen that comes
        back with it misses nothing; below an id still awaited (see GAP_SECONDS)."""
        return min(up_to, min(self._gaps) - 1) if self._gaps else up_to

    def _remember_gaps(self, ids: list[int], now: float) -> None:
        expected = self._last_id + 1
        for event_id in ids:
            if event_id > expected and len(self._gaps) < MAX_GAPS:
                for missing in range(expected, min(event_id, expected + MAX_GAPS)):
                    self._gaps[missing] = now + GAP_SECONDS
            expected = event_id + 1

    @staticmethod
    def _tell_to_reload(watch: Watch, read_up_to: int) -> None:
        """More changed than the screen can be sent: it offers to reload."""
        if watch.order_id is not None:
            watch.offer("order", json.dumps({"id": watch.order_id, "version": None}), read_up_to)
        else:
            watch.offer("orders", json.dumps({"rows": [], "more": True}), read_up_to)

    def _tell(
        self,
        rows: list[OrderRow],
        more: bool,
        watches: list[Watch],
        read_up_to: int,
        html: dict[tuple[str, str], str],
    ) -> None:
        """Each screen its message; rows are rendered once per language and a message once
        per distinct content, however many screens get it. `html`: (language, order id): the
        row, shared by the calls that tell of the same rows."""
        encoded: dict[str, str] = {}  # a message's JSON by its content's key

        def rendered(locale: str, wanted: list[OrderRow]) -> None:
            missing = [r for r in wanted if (locale, r.id) not in html]
            if missing:
                html.update({(locale, k): v for k, v in self.render(missing, locale).items()})

        for watch in watches:
            if watch.order_id is not None:
                for row in rows:
                    if row.id == watch.order_id and watch.sees(row):
                        data = json.dumps({"id": row.id, "version": row.version})
                        watch.offer("order", data, read_up_to)
                continue
            visible = [r for r in rows if watch.sees(r)]
            if not visible:
                continue
            sent = visible[:MAX_ROWS]
            missed, watch.missed = watch.missed, False
            flags = [(r.id, watch.matches(r), watch.inserts and watch.matches(r)) for r in sent]
            told_more = more or missed or len(visible) > MAX_ROWS
            key = repr((watch.locale, flags, told_more))
            if key not in encoded:
                rendered(watch.locale, sent)
                encoded[key] = json.dumps(
                    {
                        "rows": [
                            {"id": i, "html": html[(watch.locale, i)], "match": m, "insert": n}
                            for i, m, n in reversed(flags)
                        ],
                        "more": told_more,
                    }
                )
            watch.offer("orders", encoded[key], read_up_to)
