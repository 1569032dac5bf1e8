"""The ASGI application, built from settings (nothing is created at import time)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Depends, FastAPI
from fastapi_offline import FastAPIOffline

from ..channels.bitrix import http as bitrix_http
from ..channels.evotor import http as evotor_http
from ..config import Settings
from ..db.unit_of_work import Database
from ..domain.types import Channel, Master
from ..entrypoints.evotor_task import run_evotor
from ..entrypoints.relay_task import run_relay
from ..entrypoints.site_task import run_site
from ..entrypoints.sweeper import run_sweeper, run_timeline_pruner
from ..exchange import http as exchange_http
from ..exchange.http import Exchange
from ..services.context import Context, HoldPolicy
from ..ui import Console, install_console
from .auth import TokenCache
from .body_limit import BodyLimitMiddleware
from .errors import install_error_handlers
from .guards import TextGuardMiddleware, known_query_only
from .lean_orders import install_lean_orders
from .metrics_middleware import install_metrics
from .openapi import install_openapi
from .routes import catalog, health, metrics, orders, pos, stock


def context_from(settings: Settings) -> Context:
    return Context(
        holds=HoldPolicy(
            {c: settings.holds.minutes(c) for c in Channel},
            {c: settings.holds.confirmed_minutes(c) for c in Channel},
        ),
        shift_orders=settings.master is Master.HUB,
        zone=ZoneInfo(settings.exchange.timezone),
    )


def _without_builtin_telemetry() -> dict[str, Any]:
    """Newer FastAPI releases trace and meter every request through OpenTelemetry unless told
    not to; ordersync exports its own metrics, and the tracing costs the hot path dearly."""
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    off = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
    return {"telemetry": off}


def create_app(settings: Settings, db: Database | None = None, sweeper: bool = True) -> FastAPI:
    console: Console | None = None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = db or Database.from_url(
            settings.database_url,
            settings.db_pool_size,
            settings.catalog_cache_seconds,
            settings.db_timeout_seconds,
        )
        app.state.db = database
        app.state.context = context_from(settings)
        app.state.token_cache = TokenCache(settings.auth_cache_seconds)
        app.state.exchange = Exchange.build(database, settings, app.state.context)
        if console is not None:
            await console.start(database, app.state.context)
        async with (
            run_sweeper(
                database, app.state.context, settings.sweeper_interval_seconds, enabled=sweeper
            ),
            run_timeline_pruner(database, settings.ui.timeline_days, enabled=sweeper),
            run_relay(settings, database, enabled=sweeper and settings.is_sqlite),
            run_evotor(
                settings.evotor,
                database,
                app.state.context,
                enabled=sweeper and settings.is_sqlite,
            ),
            run_site(
                settings.bitrix, database, app.state.context, enabled=sweeper and settings.is_sqlite
            ) as site_task,
        ):
            app.state.site_task = site_task
            yield
        if evotor is not None:
            await evotor.drain()
        if console is not None:
            await console.stop()
        if db is None:
            await database.dispose()

    # /docs with Swagger UI's files served by the hub itself (fastapi-offline ships them): it
    # works on a network without internet, and its Authorize button takes a bearer token.
    app = FastAPIOffline(
        **_without_builtin_telemetry(),
        title="ordersync",
        summary="One order stream and one stock ledger for a retail network",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_openapi(app)
    for router in (
        health.router,
        metrics.router,
        orders.router,
        stock.router,
        pos.router,
        catalog.router,
    ):
        app.include_router(router, dependencies=[Depends(known_query_only)])
    install_lean_orders(app)  # POST /orders, when FastAPI's per-request work is not needed
    evotor = None
    if settings.evotor.enabled:
        # The Evotor cloud's webhooks: its own protocol, errors and token role.
        evotor_app, evotor = evotor_http.build(app, settings.evotor)
        app.mount(evotor_http.PREFIX, evotor_app)
    app.state.evotor = evotor
    # The Bitrix site's outgoing events: form-encoded, known by their application token (a
    # 404 when [bitrix] application_token is not set). Kept out of the JSON API's document.
    app.include_router(bitrix_http.router(settings.bitrix), include_in_schema=False)
    exempt: tuple[str, ...] = ()
    if settings.exchange.enabled:
        # 1C's plain-text protocol (see the README), not a JSON API: kept out of the document.
        app.include_router(exchange_http.router(settings.exchange), include_in_schema=False)
        exempt = exchange_http.paths(settings.exchange)  # it streams files to disk itself
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, exempt=exempt)
    # Before any route or body reader sees the request; only the request counter is outside.
    app.add_middleware(TextGuardMiddleware)
    install_metrics(app, settings)
    if settings.ui.enabled:
        console = install_console(app, settings)
    return app
