"""`ordersync worker` and `ordersync events`: the outbox relay from the command line."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

import typer

from ..api.app import context_from
from ..config import Settings
from ..db import relay as relay_store
from ..relay.configured import build_sinks, policy
from ..relay.worker import Relay, redeliver_dead
from ..sinks.base import DeliveryFailed
from .cli_db import opened
from .evotor_task import run_evotor
from .site_task import run_site

events_app = typer.Typer(help="Outbox events that could not be delivered.")


def register(app: typer.Typer, settings: Callable[[], Settings]) -> None:
    @app.command()
    def worker() -> None:
        """Deliver outbox events to the configured sinks until stopped (SIGTERM, Ctrl-C).
        Run several for throughput: lanes are shared out, each aggregate stays in order.
        With no sink configured it still orders and prunes the outbox, which stays bounded.
        It also pulls the documents of stores linked to Evotor (the catch-up) and applies
        till documents left waiting in the inbox, and brings in the Bitrix site's orders (its
        events' inbox and the catch-up poll) when [bitrix] is connected."""
        conf = settings()
        if not conf.sinks:
            typer.echo("no sinks configured: the outbox is only ordered and pruned", err=True)
        asyncio.run(_work(conf))

    app.add_typer(events_app, name="events")

    @events_app.command("pending")
    def pending(sink: Annotated[str | None, typer.Option(help="only this sink")] = None) -> None:
        """Events waiting per configured sink and lane, lanes retrying after a failure, and
        events not yet ordered by the relay (the same figures as /metrics)."""
        unordered, rows = asyncio.run(_pending(settings(), sink))
        for lane in rows:
            state = f"{lane.pending} waiting"
            if lane.attempts:
                state += (
                    f", failed {lane.attempts} times, next try {lane.next_attempt_at.isoformat()}"
                    f": {lane.last_error}"
                )
            typer.echo(f"{lane.sink} lane {lane.lane}: {state}")
        typer.echo(f"{unordered} events not yet ordered by the relay")
        typer.echo(f"{sum(lane.pending for lane in rows)} events waiting")

    @events_app.command("dead")
    def dead(sink: Annotated[str | None, typer.Option(help="only this sink")] = None) -> None:
        """List the dead letters: events a sink refused `relay.max_attempts` times."""
        rows = asyncio.run(_dead(settings(), sink))
        for name, event_id, attempts, error, at in rows:
            typer.echo(f"{name} event {event_id}: {attempts} attempts, {at.isoformat()}: {error}")
        typer.echo(f"{len(rows)} dead letters")

    @events_app.command("retry")
    def retry(
        sink: Annotated[str, typer.Option(help="the sink to send them to")],
        event: Annotated[
            list[int] | None, typer.Option(help="event id (repeat); all if none")
        ] = None,
    ) -> None:
        """Send dead letters again now; those delivered leave the list."""
        try:
            count = asyncio.run(_retry(settings(), sink, event))
        except DeliveryFailed as exc:
            typer.echo(f"still failing: {exc}", err=True)
            raise typer.Exit(1) from exc
        typer.echo(f"{count} events delivered")

    @events_app.command("drop")
    def drop(
        sink: Annotated[str, typer.Option(help="the sink")],
        event: Annotated[list[int], typer.Option(help="event id (repeat)")],
    ) -> None:
        """Give up on dead letters for good."""
        typer.echo(f"{asyncio.run(_drop(settings(), sink, event))} dead letters dropped")


async def _work(conf: Settings) -> None:
    async with opened(conf, pool_size=4) as db:  # lanes are drained side by side
        sinks = await build_sinks(db, conf.sinks, conf.evotor, bitrix=conf.bitrix)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            # The Evotor channel's catch-up and leftover documents run beside the relay.
            ctx = context_from(conf)
            async with (
                run_evotor(conf.evotor, db, ctx, enabled=True),
                run_site(conf.bitrix, db, ctx, enabled=True),
            ):
                await Relay(db, sinks, policy(conf.relay)).run(stop)
        finally:
            for sink in sinks.values():
                await sink.close()


async def _pending(conf: Settings, sink: str | None) -> tuple[int, list[relay_store.LaneState]]:
    if sink is not None and sink not in conf.sinks:
        raise typer.BadParameter(f"no sink {sink} in the configuration")
    names = [sink] if sink is not None else list(conf.sinks)
    async with opened(conf) as db, db.uow_read() as uow:
        unordered = await relay_store.unsequenced(uow.conn)
        return unordered, await relay_store.lanes_with_work(uow.conn, names)


async def _dead(conf: Settings, sink: str | None) -> list[tuple[str, int, int, str, datetime]]:
    async with opened(conf) as db, db.uow_read() as uow:
        return list(await relay_store.dead_letters(uow.conn, sink))


async def _retry(conf: Settings, sink_name: str, ids: list[int] | None) -> int:
    if sink_name not in conf.sinks:
        raise typer.BadParameter(f"no sink {sink_name} in the configuration")
    async with opened(conf) as db:
        sink = (await build_sinks(db, {sink_name: conf.sinks[sink_name]}, bitrix=conf.bitrix))[
            sink_name
        ]
        try:
            async with db.uow_read() as uow:
                dead = await relay_store.dead_letters(uow.conn, sink_name)
            wanted = [row[1] for row in dead if ids is None or row[1] in ids]
            return await redeliver_dead(db, sink, wanted) if wanted else 0
        finally:
            await sink.close()


async def _drop(conf: Settings, sink: str, ids: list[int]) -> int:
    async with opened(conf) as db, db.uow() as uow:
        count = await relay_store.forget_dead(uow.conn, sink, ids)
        await uow.commit()
        return count
