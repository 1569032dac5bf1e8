"""`ordersync reconcile` and `ordersync exchange ...`: the 1C side of the command line."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

import typer

from ..config import Settings
from ..db import exchange_records, reconcile
from ..domain.events import dec
from ..domain.types import Master
from ..exchange.auth import hash_password
from ..services.context import utcnow
from .cli_db import opened

exchange_app = typer.Typer(help="The CommerceML exchange with 1C.")


def register(app: typer.Typer, settings: Callable[[], Settings]) -> None:
    """Adds the commands; `settings` loads the configuration (shared with cli.py)."""
    load = settings

    @app.command("reconcile")
    def reconcile_command(
        apply: Annotated[
            bool, typer.Option("--apply", help="adopt 1C's figures as inventory counts")
        ] = False,
        store: Annotated[str | None, typer.Option(help="only this store code")] = None,
        limit: Annotated[int | None, typer.Option(help="show at most this many")] = None,
    ) -> None:
        """master = "hub": stock levels where 1C's last figure differs from the hub's."""
        conf: Settings = load()
        if conf.master is not Master.HUB:
            typer.echo('master is "1c": stock already follows 1C\'s figures at every import')
            raise typer.Exit(1)
        found, adopted = asyncio.run(_reconcile(conf, apply, store, limit))
        if found is None:
            typer.echo(
                "no stock figures from 1C yet: nothing to compare until 1C sends an offers or "
                "rests file through the exchange"
            )
            return
        for d in found:
            typer.echo(
                f"{d.sku} @ {d.store}: 1C {dec(d.figure_1c)} vs hub {dec(d.hub)} "
                f"(drift {'+' if d.drift > 0 else ''}{dec(d.drift)}) "
                f"as of {d.formed_at.isoformat()}"
            )
        typer.echo(f"{len(found)} stock levels differ from 1C")
        if apply:
            typer.echo(f"{adopted} adopted as counts")

    app.add_typer(exchange_app, name="exchange")

    @exchange_app.command("hash-password")
    def hash_password_command(
        password: Annotated[
            str | None, typer.Argument(help="asked for when left out (stays out of history)")
        ] = None,
    ) -> None:
        """Prints the value for exchange.password_hash."""
        secret = password or getpass.getpass("exchange password: ")
        if not secret:
            raise typer.BadParameter("the password is empty")
        typer.echo(hash_password(secret))

    @exchange_app.command("log")
    def log_command(
        limit: Annotated[int, typer.Option(help="lines, newest first")] = 50,
    ) -> None:
        """The exchange log: files imported, warnings (negative balances, new stores), errors."""
        conf: Settings = load()
        for at, level, message in asyncio.run(_log(conf, limit)):
            typer.echo(f"{at.isoformat()} {level:7} {message}")


async def _reconcile(
    conf: Settings, apply: bool, store: str | None, limit: int | None
) -> tuple[list[reconcile.FigureDrift] | None, int]:
    """The drifts and how many were adopted; None when 1C never sent a figure."""
    async with opened(conf) as db:
        async with db.uow_read() as uow:
            if not await reconcile.any_figures(uow.conn):
                return None, 0
            found = await reconcile.drifts(uow.conn, store, limit)
        adopted = 0
        if apply:
            for drift in found:
                async with db.uow() as uow:
                    await reconcile.adopt(uow.conn, drift, utcnow())
                    await uow.commit()
                adopted += 1
        return found, adopted


async def _log(conf: Settings, limit: int) -> list[tuple[datetime, str, str]]:
    async with opened(conf) as db, db.uow_read() as uow:
        return list(await exchange_records.recent_log(uow.conn, limit))
