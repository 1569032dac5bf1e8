"""The hub with the 1C exchange switched on, for the end-to-end tests of the exchange: the app
in-process over ASGI, a seeded network (tokens, stores WH1/S01/S02, products TEA/COFFEE/SUGAR/
MUG with 1C Ид `1c-<sku>`), and readers of what the database holds keyed by 1C Ид."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from decimal import Decimal
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import ColumnElement, Row, Table, func, select

from ordersync.api.app import create_app
from ordersync.config import Settings
from ordersync.db.tables import (
    exchange_log,
    outbox_events,
    products,
    stock_levels,
    stock_movements,
    stores,
)
from ordersync.db.unit_of_work import Database
from ordersync.domain import events as ev
from ordersync.exchange.auth import hash_password
from tests import support
from tests.integration.dbstate import snapshot
from tests.sim_1c import OneC

PASSWORD = "secret"
PASSWORD_HASH = hash_password(PASSWORD, iterations=1000)
# The exchange's own bookkeeping: a refused file is recorded there, and only there.
EXCHANGE_BOOKS = ("exchange_sessions", "exchange_files", "exchange_log")

StockKey = tuple[str, str]  # (product 1C Ид, store 1C Ид)


@dataclass(frozen=True)
class StockFigure:
    """One level's figure as a stock event carries it: `payload` is shaped as stock.changed's,
    `aggregate_id` is the level's ("<product>:<store>")."""

    event: Any  # the outbox row
    payload: dict[str, Any]

    @property
    def aggregate_type(self) -> str:
        return str(self.event.aggregate_type)

    @property
    def aggregate_id(self) -> str:
        return ev.stock_aggregate_id(self.payload["product_id"], self.payload["store_id"])


@dataclass
class Hub:
    http: httpx.AsyncClient
    db: Database
    net: support.Network
    settings: Settings
    work_dir: Path

    def onec(self, **options: Any) -> OneC:
        """A 1C node speaking to this hub, decoding replies in the configured encoding."""
        options.setdefault("encoding", self.settings.exchange.encoding)
        options.setdefault("password", PASSWORD)
        return OneC(self.http, **options)

    @property
    def admin(self) -> str:
        return self.net.tokens["admin"]

    async def rows(self, table: Table, *where: ColumnElement[bool]) -> list[Row[Any]]:
        stmt = select(table).where(*where)
        if "id" in table.c:
            stmt = stmt.order_by(table.c.id)
        async with self.db.uow_read() as uow:
            return list((await uow.conn.execute(stmt)).all())

    async def count(self, table: Table, *where: ColumnElement[bool]) -> int:
        stmt = select(func.count()).select_from(table).where(*where)
        async with self.db.uow_read() as uow:
            return int((await uow.conn.execute(stmt)).scalar_one())

    async def stock(self) -> dict[StockKey, tuple[Decimal, Decimal]]:
        """(on_hand, reserved) by (product Ид, store Ид), for every stock level."""
        sl, p, s = stock_levels.c, products.c, stores.c
        stmt = (
            select(p.xml_id, s.xml_id.label("store"), sl.on_hand, sl.reserved)
            .select_from(
                stock_levels.join(products, p.id == sl.product_id).join(stores, s.id == sl.store_id)
            )
            .order_by(p.xml_id, s.xml_id)
        )
        async with self.db.uow_read() as uow:
            found = (await uow.conn.execute(stmt)).all()
        return {(r.xml_id, r.store): (r.on_hand, r.reserved) for r in found}

    async def on_hand(self) -> dict[StockKey, Decimal]:
        return {k: v[0] for k, v in (await self.stock()).items()}

    async def products(self) -> dict[str, Row[Any]]:
        return {r.xml_id: r for r in await self.rows(products)}

    async def stores(self) -> dict[str, Row[Any]]:
        return {r.xml_id: r for r in await self.rows(stores)}

    async def movements(self, reason: str | None = None) -> list[Row[Any]]:
        where = [] if reason is None else [stock_movements.c.reason == reason]
        return await self.rows(stock_movements, *where)

    async def events(self, type_: str | None = None) -> list[Row[Any]]:
        where = [] if type_ is None else [outbox_events.c.type == type_]
        return await self.rows(outbox_events, *where)

    async def log(self, level: str | None = None) -> list[str]:
        where = [] if level is None else [exchange_log.c.level == level]
        return [r.message for r in await self.rows(exchange_log, *where)]

    async def stock_figures(self) -> list[StockFigure]:
        """Every level's figure in the stock events (stock.changed, and each level of a
        stock.levels_changed), in event order."""
        return [
            StockFigure(e, figure)
            for e in await self.events()
            for figure in ev.stock_figures(e.type, e.payload)
        ]

    async def ledger(self) -> tuple[int, int]:
        """(exchange_1c movements, stock figures in events)."""
        return (
            len(await self.movements("exchange_1c")),
            len(await self.stock_figures()),
        )

    async def domain_state(self) -> dict[str, Any]:
        """Every table and figure (tests.integration.dbstate.snapshot) except the exchange's
        own books, which a refused file rightly writes to."""
        state = await snapshot(self.db)
        for name in EXCHANGE_BOOKS:
            state.pop(name)
        return state


HubFactory = Callable[..., Awaitable[Hub]]


@pytest.fixture
async def start_hub(database_url: str, db: Database, tmp_path: Path) -> AsyncIterator[HubFactory]:
    """`await start_hub(master="1c", stock=None, **exchange)`: the app with these exchange
    settings (login 1c, password `secret`). Several hubs may run on the same database; the
    network is seeded once."""
    seeded: list[support.Network] = []
    async with AsyncExitStack() as stack:

        async def start(
            master: str = "1c",
            *,
            stock: dict[str, dict[str, Decimal | int]] | None = None,
            **exchange: Any,
        ) -> Hub:
            options: dict[str, Any] = {
                "login": "1c",
                "password_hash": PASSWORD_HASH,
                "work_dir": tmp_path / "exchange",
            }
            options.update(exchange)
            settings = Settings(
                master=master,
                database_url=database_url,
                seed_demo=False,
                catalog_cache_seconds=0,
                auth_cache_seconds=0,
                max_body_bytes=65536,
                exchange=options,
            )
            if not seeded:
                seeded.append(await support.seed_network(db, stock))
            app = create_app(settings, db=db, sweeper=False)
            await stack.enter_async_context(app.router.lifespan_context(app))
            # As a server would: an unexpected error is an HTTP 500, which the test then sees.
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            # The client keeps no cookie: each simulated node holds its own session (see OneC).
            no_cookies = CookieJar(DefaultCookiePolicy(allowed_domains=[]))
            http = await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://hub", cookies=no_cookies)
            )
            return Hub(http, db, seeded[0], settings, Path(options["work_dir"]))

        yield start


@pytest.fixture
async def hub(start_hub: HubFactory) -> Hub:
    """master = "1c", the exchange's defaults (windows-1251 replies, no zip)."""
    return await start_hub()
