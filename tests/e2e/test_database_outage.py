"""The API while PostgreSQL is away: every way the database says it is unavailable is a 503
`database_unavailable` with Retry-After, and the first request after it is back succeeds.

The shared PostgreSQL server may not be restarted, so a restart is played on the test's own
database: its sessions are killed with pg_terminate_backend (what a restart does to every
pooled connection) and new connections are refused with ALLOW_CONNECTIONS false (what a
server that is shutting down or starting does), or the hub is pointed at a closed port."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from ordersync.api.app import create_app
from ordersync.config import Settings
from ordersync.db.unit_of_work import Database
from ordersync.relay.listener import ListenPolicy
from ordersync.relay.worker import Relay, RelayPolicy
from ordersync.services.context import utcnow
from tests import support
from tests.e2e.helpers import bearer, delivery, expect, line
from tests.integration.test_relay import Recorder

pytestmark = pytest.mark.parametrize("backend", ["postgres"])
STOCK = {"WH1": {"TEA": 100}}


class Server:
    """The superuser's view of the test database: kill its sessions, refuse new ones."""

    def __init__(self, database_url: str) -> None:
        self.name = make_url(database_url).database

    @asynccontextmanager
    async def admin(self) -> AsyncIterator[asyncpg.Connection]:
        url = make_url(support.postgres_admin_url()).set(drivername="postgresql")
        conn = await asyncpg.connect(url.render_as_string(hide_password=False))
        try:
            yield conn
        finally:
            await conn.close()

    async def kill_sessions(self) -> int:
        """Terminates every session of the database and waits until they are gone."""
        async with self.admin() as conn:
            killed = await conn.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                self.name,
            )
            for _ in range(100):
                left = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", self.name
                )
                if left == 0:
                    break
                await asyncio.sleep(0.02)
        # A backend leaves pg_stat_activity as it exits, a moment before its socket closes:
        # let the hub read those closes, as it would have long before a restarted server took
        # requests again. (A request inside that moment is refused 503 with Retry-After.)
        await asyncio.sleep(0.1)
        return len(killed)

    async def refuse_connections(self, refuse: bool) -> None:
        async with self.admin() as conn:
            allow = "false" if refuse else "true"
            await conn.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS {allow}')


@pytest.fixture
def server(database_url: str) -> Server:
    return Server(database_url)


@pytest.fixture
async def net(db: Database) -> support.Network:
    return await support.seed_network(db, STOCK)


def unavailable(response: httpx.Response) -> None:
    expect(response, 503, "database_unavailable")
    assert int(response.headers["Retry-After"]) > 0


async def order(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/orders", json=delivery(line("TEA", 1)), headers=bearer(token))


async def test_while_the_database_refuses_connections_every_request_is_503_with_retry_after(
    client: httpx.AsyncClient, net: support.Network, server: Server
) -> None:
    token = net.tokens["admin"]
    placed = expect(await order(client, token), 201)  # both pools hold a connection now
    try:
        await server.refuse_connections(True)
        assert await server.kill_sessions() > 0

        unavailable(await client.get("/stock", params={"sku": "TEA"}, headers=bearer(token)))
        unavailable(await order(client, token))
        unavailable(await client.get(f"/orders/{placed['id']}", headers=bearer(token)))
        unavailable(await client.post(f"/orders/{placed['id']}/pay", headers=bearer(token)))
        assert (await client.get("/healthz")).status_code == 503
    finally:
        await server.refuse_connections(False)

    # the first request of each kind after the database is back succeeds
    expect(await client.get("/stock", params={"sku": "TEA"}, headers=bearer(token)), 200)
    expect(await order(client, token), 201)
    expect(await client.post(f"/orders/{placed['id']}/pay", headers=bearer(token)), 200)


async def test_the_first_requests_after_every_session_was_killed_succeed(
    client: httpx.AsyncClient, net: support.Network, server: Server
) -> None:
    """A restart leaves every pooled connection dead: SQLAlchemy's pool and the placement's
    asyncpg pool must notice and connect again, not hand the dead ones to requests."""
    token = net.tokens["admin"]
    placed = expect(await order(client, token), 201)
    expect(await client.get("/orders", headers=bearer(token)), 200)

    assert await server.kill_sessions() > 0

    expect(await client.get("/stock", params={"sku": "TEA"}, headers=bearer(token)), 200)
    expect(await order(client, token), 201)
    expect(await client.get(f"/orders/{placed['id']}", headers=bearer(token)), 200)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_database_nobody_listens_for_is_503_not_500(
    settings: Settings, db: Database, net: support.Network
) -> None:
    url = make_url(settings.database_url).set(host="127.0.0.1", port=closed_port())
    gone = Database.from_url(url.render_as_string(hide_password=False), pool_size=2,
                             catalog_cache_seconds=0, timeout_seconds=2)  # fmt: skip
    app = create_app(settings, db=gone, sweeper=False)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
                token = net.tokens["admin"]
                unavailable(await http.get("/stock", params={"sku": "TEA"}, headers=bearer(token)))
                unavailable(await order(http, token))
    finally:
        await gone.dispose()


async def test_no_free_pooled_connection_in_time_is_503(
    settings: Settings, database_url: str, net: support.Network
) -> None:
    """Both pools, each of one connection held elsewhere: requests wait `db_timeout_seconds`
    for it, then are told to come back."""
    small = Database.from_url(database_url, pool_size=1, catalog_cache_seconds=0,
                              timeout_seconds=0.5)  # fmt: skip
    app = create_app(settings, db=small, sweeper=False)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
                token = net.tokens["admin"]
                placement = await small.acquire_pg()
                async with small.connect() as _held:
                    unavailable(await http.get("/stores", headers=bearer(token)))
                    unavailable(await order(http, token))
                await (await small.pg_pool()).release(placement)
                expect(await http.get("/stores", headers=bearer(token)), 200)
                expect(await order(http, token), 201)
    finally:
        await small.dispose()


async def test_the_relay_rides_out_a_restart_and_listens_again(
    db: Database, database_url: str, server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """Every session killed and connections refused for a while, as in a restart: the relay
    says once that the database is away (not a traceback at every poll), then LISTENs again
    and delivers a commit long before its 30 s poll."""
    sink = Recorder("hook")
    relay = Relay(db, {"hook": sink}, RelayPolicy(lanes=2, poll_seconds=30),
                  listen_policy=ListenPolicy(backoff_base_seconds=0.1))  # fmt: skip
    assert relay.listener is not None
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await asyncio.wait_for(relay.listener.connected.wait(), 5)
        try:
            await server.refuse_connections(True)
            await server.kill_sessions()
            relay.wake.set()  # a round while the database is away
            await asyncio.sleep(1.5)
        finally:
            await server.refuse_connections(False)
        for _ in range(250):
            if relay.listener.connected.is_set() and relay.listener.connections == 2:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        writer = Database.from_url(database_url, pool_size=1)
        try:
            async with writer.uow() as uow:
                await uow.add_event("stock.changed", "stock", "1:1", {}, utcnow())
                await uow.commit()
        finally:
            await writer.dispose()
        for _ in range(150):
            if sink.delivered:
                break
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
    assert len(sink.delivered) == 1
    away = [r for r in caplog.records if "database is unavailable" in r.getMessage()]
    assert len(away) == 1
    assert not [r for r in caplog.records if r.getMessage() == "relay round failed"]
