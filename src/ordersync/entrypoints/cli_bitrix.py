"""`ordersync bitrix check`: calls the site with the configured incoming webhook and reports
what it found (stores, delivery services, statuses, pay systems) and the mapping gaps.

Exit codes: 0 the site answered (gaps are listed; `--strict` makes them fail); 1 a method the
webhook may not call (a scope missing); 2 the site cannot be reached or refuses the webhook,
or no site is configured."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any

import httpx
import typer
from sqlalchemy.exc import SQLAlchemyError

from ..config import Settings
from ..domain.errors import OrdersyncError
from ..sinks.bitrix_check import SiteFindings, SiteRefused, find_gaps, read_site
from ..sinks.bitrix_rest import BitrixRest
from .cli_db import opened

bitrix_app = typer.Typer(help="The 1C-Bitrix online store (the [bitrix] table).")


def make_client(timeout: float) -> httpx.AsyncClient:
    """How the command reaches the site (tests swap in a simulator's transport)."""
    return httpx.AsyncClient(timeout=timeout)


def register(app: typer.Typer, settings: Callable[[], Settings]) -> None:
    """Adds the commands; `settings` loads the configuration (shared with cli.py)."""
    app.add_typer(bitrix_app, name="bitrix")

    @bitrix_app.command("check")
    def check(
        strict: Annotated[
            bool, typer.Option("--strict", help="exit 1 when a mapping gap is found")
        ] = False,
    ) -> None:
        """Call the site (ORDERSYNC_BITRIX__URL) and report stores, delivery services,
        statuses, pay systems and mapping gaps."""
        conf = settings()
        if not conf.bitrix.url:
            typer.echo("no site: set [bitrix] url (better: ORDERSYNC_BITRIX__URL)", err=True)
            raise typer.Exit(2)
        try:
            found = asyncio.run(_check(conf))
        except SiteRefused as exc:
            typer.echo(f"FAILED: {exc}", err=True)
            raise typer.Exit(2) from exc
        _report(found)
        if found.problems:
            raise typer.Exit(1)
        if strict and found.gaps:
            raise typer.Exit(1)


async def _check(conf: Settings) -> SiteFindings:
    assert conf.bitrix.url
    client = make_client(conf.bitrix.timeout_seconds)
    rest = BitrixRest(conf.bitrix.url, client=client)
    try:
        found = await read_site(rest)
    finally:
        await client.aclose()
    try:
        async with opened(conf) as db:
            stores = await db.fresh_stores()
    except (OrdersyncError, SQLAlchemyError, OSError) as exc:
        found.problems.append(f"the hub's stores could not be read ({exc}): migrate first?")
        return found
    find_gaps(found, conf.bitrix, stores)
    return found


def _flag(value: Any) -> str:
    return "" if value in ("Y", True, None) else " (inactive)"


def _report(found: SiteFindings) -> None:
    echo = typer.echo
    echo(f"site stores: {len(found.stores)}")
    for row in found.stores:
        hub = found.mapped.get(str(row.get("id")))
        echo(
            f"  {row.get('id')} {row.get('title')!r} xmlId={row.get('xmlId')!r}"
            f"{_flag(row.get('active'))} -> {hub or 'no hub store'}"
        )
    echo(f"delivery services: {len(found.deliveries)}")
    for row in found.deliveries:
        echo(f"  {row.get('ID')} {row.get('NAME')!r}{_flag(row.get('ACTIVE'))}")
    echo(f"order statuses: {len(found.statuses)}")
    for row in found.statuses:
        if row.get("type", "O") == "O":
            echo(f"  {row.get('id')}")
    echo(f"pay systems: {len(found.pay_systems)}")
    for row in found.pay_systems:
        cash = " cash" if row.get("IS_CASH") == "Y" else ""
        echo(f"  {row.get('ID')} {row.get('NAME')!r}{cash}{_flag(row.get('ACTIVE'))}")
    for problem in found.problems:
        echo(f"PROBLEM: {problem}")
    for gap in found.gaps:
        echo(f"GAP: {gap}")
    if not found.problems and not found.gaps:
        echo("OK: the site answers and every mapping meets it")
    else:
        echo(f"{len(found.problems)} problem(s), {len(found.gaps)} gap(s)")
