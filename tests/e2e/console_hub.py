"""The hub served for real for the console's tests: uvicorn in a thread on a free port, on
SQLite or PostgreSQL, with a seeded network, staff users and API tokens; and Debian's
chromium driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from ordersync.api.app import create_app
from ordersync.config import Settings
from ordersync.db import catalog, users
from ordersync.db.unit_of_work import Database
from ordersync.domain.types import StaffRole
from ordersync.services.context import utcnow
from ordersync.ui.accounts import hash_password
from tests import support

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # No name resolves but the loopback: a page that reached for another host would fail.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]
PASSWORD = "correct horse battery"
CONSOLE_KEY = "a-console-signing-key-for-the-tests-0123456789"
STAFF = {
    "olga": (StaffRole.OPERATOR, ()),
    "root": (StaffRole.ADMIN, ()),
    "shop1": (StaffRole.STORE, ("S01",)),
}
STOCK = {
    "WH1": {"TEA": 40, "COFFEE": 20, "MUG": 10},
    "S01": {"TEA": 8, "MUG": 3},
    "S02": {"TEA": 2},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chromium_or_fail() -> str:
    if shutil.which(CHROMIUM) is None:
        message = f"{CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)"
        if support.in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@dataclass
class Hub:
    url: str
    app: FastAPI
    server: uvicorn.Server
    thread: threading.Thread
    tokens: dict[str, str]
    stores: dict[str, int]
    products: dict[str, int]
    backend: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def console(self) -> Any:
        return self.app.state.console

    def api(self, method: str, path: str, role: str = "admin", **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[role]}", **kw.pop("headers", {})}
        return httpx.request(method, self.url + path, headers=headers, timeout=10, **kw)

    def place(self, body: dict[str, Any], role: str = "operator") -> dict[str, Any]:
        answer = self.api("POST", "/orders", role, json=body)
        assert answer.status_code == 201, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def level(self, sku: str, store: str) -> tuple[Decimal, Decimal, Decimal]:
        body = self.api("GET", "/stock", params={"sku": sku, "store": store}).json()
        (found,) = body["levels"]
        return Decimal(found["on_hand"]), Decimal(found["reserved"]), Decimal(found["available"])

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


async def seed(database_url: str, backend: str) -> support.Network:
    db = Database.from_url(database_url, pool_size=2, catalog_cache_seconds=0)
    try:
        if backend == "postgres":
            await support.truncate_all(db)
        net = await support.seed_network(db, STOCK)
        async with db.uow() as uow:
            now = utcnow()
            tea = await catalog.insert_product(
                uow.conn,
                {"sku": "OOLONG-1", "xml_id": "1c-oolong", "name": "Чай Улун молочный",
                 "unit": "pcs", "price": Decimal("420.00"), "barcode": "4600000000017",
                 "active": True},
                now,
            )  # fmt: skip
            net.products["OOLONG-1"] = tea.id
            hashed = await hash_password(PASSWORD)
            for name, (role, codes) in STAFF.items():
                ids = [net.stores[c] for c in codes]
                await users.create_user(uow.conn, name, role, ids, hashed, now)
            await uow.commit()
        from ordersync.domain.commands import ProductRef, StockDocument, StockLine
        from ordersync.services import stock
        from ordersync.services.context import Context

        for code, qty in (("WH1", 12), ("S01", 5)):
            doc = StockDocument(code, f"SEED-OOLONG-{code}",
                                (StockLine(ProductRef(sku="OOLONG-1"), Decimal(qty)),))  # fmt: skip
            await stock.receive(db.uow, doc, Context(), None)
        return net
    finally:
        await db.dispose()


def start(database_url: str, backend: str, **ui: Any) -> Hub:
    net = support.run_in_thread(seed(database_url, backend))
    settings = Settings(
        master="hub",
        database_url=database_url,
        seed_demo=False,
        catalog_cache_seconds=0,
        auth_cache_seconds=0,
        db_pool_size=5,
        ui={"secret_key": CONSOLE_KEY, "login_delay_seconds": 0.2, **ui},
    )
    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"hub-{backend}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "the hub did not start"
        assert time.monotonic() < deadline, "the hub did not start within 30 s"
        time.sleep(0.05)
    return Hub(f"http://127.0.0.1:{port}", app, server, thread, net.tokens, net.stores,
               net.products, backend)  # fmt: skip


@dataclass
class Databases:
    """A database per backend for a module of tests (the hub keeps its pools open)."""

    tmp: Path
    created: list[str] = field(default_factory=list)

    def url(self, backend: str, name: str) -> str:
        if backend == "sqlite":  # in a thread: Playwright's loop runs in this one
            with ThreadPoolExecutor(1) as pool:
                template = pool.submit(support.migrated_sqlite_template, self.tmp).result()
            return support.fresh_sqlite_url(template, self.tmp, name)
        if not support.run_in_thread(support.postgres_reachable()):
            message = f"PostgreSQL is not reachable at {support.postgres_admin_url()}"
            if support.in_ci():
                pytest.fail(message)
            pytest.skip(message)
        database = f"ordersync_{name}_{os.getpid()}"
        self.created.append(database)
        return support.run_in_thread(support.create_postgres_database(database))

    def drop(self) -> None:
        for name in self.created:
            support.run_in_thread(support.drop_postgres_database(name))


def hubs(tmp: Path, backends: list[str], **ui: Any) -> Iterator[dict[str, Hub]]:
    databases = Databases(tmp)
    started: dict[str, Hub] = {}
    try:
        for backend in backends:
            started[backend] = start(databases.url(backend, "console"), backend, **ui)
        yield started
    finally:
        for hub in started.values():
            hub.stop()
        databases.drop()


def run(coro: Any) -> Any:
    return asyncio.run(coro)
