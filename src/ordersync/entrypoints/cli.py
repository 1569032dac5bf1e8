"""The `ordersync` command: serve, migrate, token, user, seed-demo, demo traffic, check."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Annotated

import typer

from ..config import LogLevel, Settings, load_settings
from ..db import ledger, site_out, tokens
from ..db.catalog import all_stores, update_store
from ..db.migrate import downgrade, upgrade
from ..db.outbox import add_event
from ..db.unit_of_work import Database
from ..domain import events
from ..domain.errors import ConfigError
from ..domain.types import Role
from ..services.context import utcnow
from . import cli_bitrix, cli_exchange, cli_relay, cli_users, serving
from .cli_db import database
from .demo import (
    console_key,
    demo_login_file,
    demo_token_file,
    is_empty,
    seed_demo,
    seed_demo_users,
)
from .demo_site import DemoSite
from .demo_traffic import Traffic, default_sources, in_background

app = typer.Typer(help="ordersync: one order stream and one stock ledger.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens (stored hashed; shown once at creation).")
app.add_typer(token_app, name="token")
demo_app = typer.Typer(help="The demo network: orders from every channel against a hub.")
app.add_typer(demo_app, name="demo")


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        typer.echo(f"ordersync: {exc.message}", err=True)
        raise typer.Exit(2) from exc


def _db(settings: Settings) -> Database:
    return database(settings)


@app.command()
def migrate(
    down_to: Annotated[
        str | None,
        typer.Option(help="undo the migrations after this revision (a rollback), e.g. 0003"),
    ] = None,
) -> None:
    """Apply the database migrations (ORDERSYNC_DATABASE_URL); `serve` does it at start."""
    settings = _settings()
    if down_to is not None:
        downgrade(settings.database_url, down_to)
        typer.echo(f"migrations after {down_to} undone")
        return
    upgrade(settings.database_url)
    typer.echo("migrations applied")


async def _apply_store_settings(settings: Settings, db: Database) -> None:
    if not settings.stores:
        return
    async with db.uow() as uow:
        known = {s.code: s for s in await all_stores(uow.conn)}
        for code, conf in settings.stores.items():
            if code not in known:
                typer.echo(f"config names store {code}, which does not exist yet", err=True)
                continue
            values = conf.model_dump(exclude_none=True)
            if "pos_mode" in values:
                values["pos_mode"] = values["pos_mode"].value
            if values:
                await update_store(uow.conn, known[code].id, values, utcnow())
            if values.get("safety_stock", known[code].safety_stock) != known[code].safety_stock:
                # what the online store may sell moved at every product of the store
                await site_out.announce_store_levels(uow.conn, known[code].id, code, utcnow())
            if values.get("evotor_uuid", known[code].evotor_uuid) != known[code].evotor_uuid:
                # newly linked to Evotor: its tills get the whole catalog
                payload = {"store_id": known[code].id, "all": True, "source": "evotor_link"}
                await add_event(uow.conn, events.CATALOG_CHANGED, events.AGGREGATE_CATALOG,
                                "products", payload, utcnow())  # fmt: skip
        await uow.commit()


async def _prepare(settings: Settings) -> tuple[dict[str, str], dict[str, str]]:
    """(demo tokens, demo console logins) issued now, if any."""
    db = _db(settings)
    try:
        issued: dict[str, str] = {}
        logins: dict[str, str] = {}
        if settings.seed_demo and await is_empty(db):
            issued = await seed_demo(db, demo_token_file(settings.database_url))
        if settings.seed_demo:
            logins = await seed_demo_users(db, demo_login_file(settings.database_url))
        await _apply_store_settings(settings, db)
        return issued, logins
    finally:
        await db.dispose()


def _console_key(settings: Settings) -> None:
    """The console's signing key: from the environment; on SQLite made once and kept beside
    the database (var/, owner only) so sessions survive a restart; on PostgreSQL required."""
    if not settings.ui.enabled or settings.ui.secret_key:
        return
    if not settings.is_sqlite:
        typer.echo(
            "ordersync: the console needs a signing key on PostgreSQL: set "
            "ORDERSYNC_UI__SECRET_KEY (or ui.enabled = false)",
            err=True,
        )
        raise typer.Exit(2)
    os.environ["ORDERSYNC_UI__SECRET_KEY"] = console_key(settings.database_url)


def _demo_tokens(settings: Settings) -> dict[str, str]:
    path = demo_token_file(settings.database_url)
    if not path.is_file():
        return {}
    pairs = (line.partition("=") for line in path.read_text().splitlines())
    return {role: token for role, _, token in pairs if token}


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(envvar="ORDERSYNC_HOST")] = None,
    port: Annotated[int | None, typer.Option(envvar="ORDERSYNC_PORT")] = None,
    workers: Annotated[int | None, typer.Option(envvar="ORDERSYNC_WORKERS")] = None,
    log_level: Annotated[
        LogLevel | None,
        typer.Option(envvar="ORDERSYNC_LOG_LEVEL", help="critical, error, warning, info, debug"),
    ] = None,
    access_log: Annotated[
        bool | None,
        typer.Option(
            "--access-log/--no-access-log",
            envvar="ORDERSYNC_ACCESS_LOG",
            help="log a line per request",
        ),
    ] = None,
    demo_traffic: Annotated[
        bool,
        typer.Option(
            "--demo-traffic",
            help="place demo orders from every channel a few times a second (make run)",
        ),
    ] = False,
) -> None:
    """Migrate, seed the demo network into an empty database, and serve the API and the
    console."""
    import uvicorn

    settings = _settings()
    host = host or settings.host
    port = port or settings.port
    workers = workers or settings.workers
    level = log_level or settings.log_level
    access = settings.access_log if access_log is None else access_log
    if settings.is_sqlite and workers > 1:
        typer.echo("SQLite takes one writer at a time: serving with 1 worker", err=True)
        workers = 1
    _console_key(settings)
    upgrade(settings.database_url)
    issued, logins = asyncio.run(_prepare(settings))
    typer.echo(f"ordersync ({settings.master.value} is master) on {settings.database_url}")
    if settings.ui.enabled:
        typer.echo(f"console: http://{host}:{port}/ui/")
        _say_logins(settings, logins)
    typer.echo(f"API docs: http://{host}:{port}/docs")
    if settings.exchange.enabled:
        unset = not settings.exchange.password_hash
        hint = " (off until exchange.password_hash is set)" if unset else ""
        typer.echo(f"1C exchange: http://{host}:{port}{settings.exchange.path}{hint}")
    token_file = demo_token_file(settings.database_url)
    if issued:
        typer.echo(f"demo tokens (also in {token_file}):")
        for role, token in issued.items():
            typer.echo(f"  {role:9} {token}")
    elif token_file.exists():
        typer.echo(f"demo tokens: see {token_file}")
        for line in token_file.read_text().splitlines():
            role, _, token = line.partition("=")
            typer.echo(f"  {role:9} {token}")
    typer.echo(f"try: curl -H 'Authorization: Bearer <token>' http://{host}:{port}/stores")
    os.environ["ORDERSYNC_HOST"] = host
    os.environ["ORDERSYNC_PORT"] = str(port)
    if workers > 1:  # the workers' metrics add up in files there (api/metrics_middleware.py)
        serving.metrics_directory(settings.metrics_dir, port)
    serving.announce_when_ready(host, port, lambda line: typer.echo(line))
    if demo_traffic:
        tokens = _demo_tokens(settings)
        if {"admin", "online", "operator", "pos"} <= set(tokens):
            base = f"http://{serving.probe_host(host)}:{port}"
            site = None if settings.bitrix.connected else _demo_site()
            traffic = Traffic(base, tokens, sources=default_sources(site))
            serving.when_ready(base, lambda: in_background(traffic))
            typer.echo("demo traffic: a few orders a second from the site, the phone, the till")
            if site is not None:
                typer.echo(f"demo Bitrix site: {site.url} (its orders come in by its webhook)")
        else:
            typer.echo("demo traffic needs the demo tokens (seed_demo on an empty database)")
    uvicorn.run(
        "ordersync.entrypoints.asgi:create",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=serving.log_config(level, access),
        log_level=None,  # the levels are in log_config
        access_log=access,
        http="httptools",
        loop="uvloop",
    )


def _demo_site() -> DemoSite:
    """A stand-in Bitrix site for the demo, connected as [bitrix] would connect a real one: its
    orders come in through POST /bitrix/events. The hub sends it only order statuses (it
    keeps no stock) and records no till or phone orders on it."""
    site = DemoSite().start()
    os.environ["ORDERSYNC_BITRIX__URL"] = site.url
    os.environ["ORDERSYNC_BITRIX__APPLICATION_TOKEN"] = site.token
    os.environ["ORDERSYNC_BITRIX__MIRROR_CHANNELS"] = "[]"
    os.environ["ORDERSYNC_BITRIX__IBLOCK_ID"] = "1"  # the stock sink is not used
    os.environ["ORDERSYNC_SINKS__BITRIX__KIND"] = "bitrix"
    os.environ["ORDERSYNC_SINKS__BITRIX__TYPES"] = '["order.status_changed"]'
    return site


def _say_logins(settings: Settings, logins: dict[str, str]) -> None:
    path = demo_login_file(settings.database_url)
    if not logins and path.is_file():
        pairs = (line.partition(" ") for line in path.read_text().splitlines())
        logins = {name: password for name, _, password in pairs if password}
    if logins:
        typer.echo(f"demo logins (also in {path}):")
        for name, password in logins.items():
            typer.echo(f"  {name:9} {password}")


@demo_app.command("traffic")
def demo_traffic_command(
    url: Annotated[str, typer.Option(help="the running hub")] = "http://127.0.0.1:8000",
    rate: Annotated[float, typer.Option(help="documents a second", min=0.1, max=1000)] = 3.0,
    count: Annotated[int | None, typer.Option(help="stop after this many")] = None,
) -> None:
    """Place realistic orders from the three channels against a running hub (with the demo
    tokens of the configured database), until stopped."""
    tokens = _demo_tokens(_settings())
    if not {"admin", "online", "operator", "pos"} <= set(tokens):
        typer.echo("no demo tokens for this database: run `ordersync seed-demo` first", err=True)
        raise typer.Exit(2)
    stop = asyncio.Event()
    try:
        sent = asyncio.run(Traffic(url.rstrip("/"), tokens, rate).run(stop, count))
    except KeyboardInterrupt:
        return
    typer.echo(f"{sent} documents sent")


@token_app.command("create")
def token_create(
    role: Annotated[Role, typer.Option(help="online, pos, operator, admin or evotor")],
    name: Annotated[str, typer.Option(help="who holds it, e.g. the till or the site")],
    store: Annotated[
        list[str] | None,
        typer.Option(help="store code (repeat); POS needs one, evotor may have some"),
    ] = None,
) -> None:
    """Create a token; it is printed once, on the last line, and stored only as a hash."""
    settings = _settings()
    codes = store or []
    if role is Role.POS and not codes:
        typer.echo("a POS token is scoped to its stores: give --store", err=True)
        raise typer.Exit(2)
    if role not in (Role.POS, Role.EVOTOR) and codes:
        typer.echo("only POS and evotor tokens are scoped to stores; leave out --store", err=True)
        raise typer.Exit(2)

    async def run() -> tuple[int, str]:
        db = _db(settings)
        try:
            async with db.uow() as uow:
                known = {s.code: s.id for s in await all_stores(uow.conn)}
                missing = [c for c in codes if c not in known]
                if missing:
                    typer.echo(f"unknown store(s): {', '.join(missing)}", err=True)
                    raise typer.Exit(2)
                created = await tokens.create_token(
                    uow.conn, name, role, [known[c] for c in codes], utcnow()
                )
                await uow.commit()
                return created
        finally:
            await db.dispose()

    token_id, token = asyncio.run(run())
    typer.echo(f"token {token_id} for {name} ({role.value}; stores: {', '.join(codes) or 'all'})")
    typer.echo(token)


@token_app.command("list")
def token_list() -> None:
    """List tokens (never the tokens themselves)."""
    settings = _settings()

    async def run() -> None:
        db = _db(settings)
        try:
            async with db.connect(autocommit=True) as conn:
                codes = {s.id: s.code for s in await all_stores(conn)}
                for token_id, name, role, store_ids, active in await tokens.list_tokens(conn):
                    state = "active" if active else "revoked"
                    scope = ", ".join(codes.get(i, f"#{i}") for i in store_ids) or "all"
                    typer.echo(f"{token_id:5} {role:9} {state:8} {name} (stores: {scope})")
        finally:
            await db.dispose()

    asyncio.run(run())


@token_app.command("revoke")
def token_revoke(token_id: int) -> None:
    """Revoke a token by its id (running servers notice within auth_cache_seconds)."""
    settings = _settings()

    async def run() -> bool:
        db = _db(settings)
        try:
            async with db.uow() as uow:
                done = await tokens.revoke_token(uow.conn, token_id, utcnow())
                await uow.commit()
                return done
        finally:
            await db.dispose()

    if not asyncio.run(run()):
        typer.echo(f"no active token {token_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"token {token_id} revoked")


@app.command("seed-demo")
def seed_demo_command() -> None:
    """Seed the demo network (and its console logins) into an empty database."""
    settings = _settings()
    upgrade(settings.database_url)

    async def run() -> tuple[dict[str, str], dict[str, str]]:
        db = _db(settings)
        try:
            if not await is_empty(db):
                typer.echo("the database is not empty: nothing seeded", err=True)
                raise typer.Exit(1)
            issued = await seed_demo(db, demo_token_file(settings.database_url))
            return issued, await seed_demo_users(db, demo_login_file(settings.database_url))
        finally:
            await db.dispose()

    issued, logins = asyncio.run(run())
    for role, token in issued.items():
        typer.echo(f"{role:9} {token}")
    for name, password in logins.items():
        typer.echo(f"login {name:9} {password}")


@app.command()
def check() -> None:
    """Verify every stock level against its movements and active holds; non-zero on drift."""
    settings = _settings()

    async def run() -> tuple[int, list[ledger.Drift]]:
        db = _db(settings)
        try:
            async with db.connect(autocommit=True) as conn:
                return await ledger.drift(conn)
        finally:
            await db.dispose()

    checked, drifts = asyncio.run(run())
    for d in drifts:
        typer.echo(
            f"DRIFT {d.sku} @ {d.store}: on_hand {d.on_hand} vs movements {d.movements} "
            f"({d.on_hand_drift:+}); reserved {d.reserved} vs active holds {d.active_holds} "
            f"({d.reserved_drift:+})"
        )
    typer.echo(f"{checked} stock levels checked, {len(drifts)} with drift")
    if drifts:
        raise typer.Exit(1)


cli_exchange.register(app, _settings)
cli_relay.register(app, _settings)
cli_users.register(app, _settings)
cli_bitrix.register(app, _settings)


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        print(f"ordersync: {exc.message}", file=sys.stderr)
        sys.exit(2)
