"""The hub calling the Evotor cloud (tests/evotor_sim.CloudApi): each linked store's tills
receive the nomenclature and the figures they may sell, through the relay (in order,
retried, the cloud's rate limit respected); the catch-up pull finds the documents no webhook
brought, from a watermark, applying each once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select, update

from ordersync.api.app import context_from, create_app
from ordersync.config import Settings
from ordersync.db.outbox import add_event
from ordersync.db.tables import evotor_products, evotor_watermarks, pos_transactions, products
from ordersync.db.unit_of_work import Database
from ordersync.domain import events
from ordersync.entrypoints.evotor_task import CatchUp
from ordersync.relay.configured import build_sinks
from ordersync.relay.worker import Relay, RelayPolicy
from ordersync.services.ports import InboxEntry
from tests import support
from tests.e2e.helpers import bearer, expect, line, pickup, placed, sale
from tests.evotor_sim import CloudApi, Ids, Item, Till, to_json
from tests.integration import dbstate

D = Decimal
STORE = "3e0fc0de-2b1a-4c5d-8e7f-6a5b4c3d2e1f"
TEA_UUID = "74e99680-3f9b-4abe-b902-fe197cf28ed2"
TEA = Item(TEA_UUID, "TEA", "Чай", D("100.00"))
FAST = RelayPolicy(lanes=4, batch=50, backoff_base_seconds=0.05, backoff_cap_seconds=0.2,
                   poll_seconds=0, probe_seconds=0.05)  # fmt: skip


@dataclass
class Hub:
    db: Database
    net: support.Network
    http: httpx.AsyncClient
    cloud: CloudApi
    relay: Relay
    settings: Settings

    async def sync(self, seconds: float = 10.0, until: Callable[[], bool] | None = None) -> None:
        """Rounds of the relay until it is idle, or until `until()` (the cloud may make it
        wait a while)."""
        loop = asyncio.get_running_loop()
        deadline, idle = loop.time() + seconds, 0
        while loop.time() < deadline:
            done = await self.relay.run_once()
            idle = idle + 1 if done == 0 else 0
            if until() if until is not None else idle >= 3:
                return
            await asyncio.sleep(0.02)

    def catch_up(self) -> CatchUp:
        client = httpx.AsyncClient(transport=self.cloud.transport())
        return CatchUp(self.db, self.settings.evotor, context_from(self.settings), client)


@pytest.fixture
async def hub(db: Database, database_url: str) -> AsyncIterator[Hub]:
    cloud = CloudApi(token="cloud-token-0f3a", window=0.5)
    settings = Settings(
        master="hub",
        database_url=database_url,
        seed_demo=False,
        catalog_cache_seconds=0,
        auth_cache_seconds=0,
        evotor={"token": cloud.token},
    )
    net = await support.seed_network(db, {"S01": {"TEA": 10, "COFFEE": 3}})
    async with db.uow() as uow:
        stmt = update(products).where(products.c.sku == "TEA").values(xml_id=TEA_UUID)
        await uow.conn.execute(stmt)
        await uow.commit()
    app = create_app(settings, db=db, sweeper=False)
    async with app.router.lifespan_context(app):
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub")
        admin = net.tokens["admin"]
        response = await http.patch(
            "/stores/S01", json={"evotor_uuid": STORE}, headers=bearer(admin)
        )
        expect(response, 200)
        client = httpx.AsyncClient(transport=cloud.transport())
        sinks = await build_sinks(db, {}, settings.evotor, client)
        assert list(sinks) == ["evotor"]
        relay = Relay(db, sinks, FAST)
        try:
            yield Hub(db, net, http, cloud, relay, settings)
        finally:
            await http.aclose()
            await client.aclose()


async def uuid_of(db: Database, product_id: int) -> str:
    rows = await dbstate.rows(db, evotor_products, evotor_products.c.product_id == product_id,
                              order_by=evotor_products.c.evotor_uuid)  # fmt: skip
    (row,) = [r for r in rows if r.origin == "hub"]
    return str(row.evotor_uuid)


async def test_a_linked_store_receives_the_whole_nomenclature_with_what_its_tills_may_sell(
    hub: Hub,
) -> None:
    await hub.sync()

    published = hub.cloud.products[STORE]
    tea = await uuid_of(hub.db, hub.net.products["TEA"])
    assert len(published) == len(hub.net.products)
    assert published[tea]["name"] == "Tea" and published[tea]["code"] == "TEA"
    assert (published[tea]["price"], published[tea]["quantity"]) == (D("100.00"), D(10))
    assert published[tea]["measureName"] == "шт" and published[tea]["tax"] == "NO_VAT"
    sugar = await uuid_of(hub.db, hub.net.products["SUGAR"])
    assert published[sugar]["measureName"] == "кг" and published[sugar]["quantity"] == D(0)
    # the uuid is the product's for good
    await hub.sync()
    assert await uuid_of(hub.db, hub.net.products["TEA"]) == tea


async def test_quantities_follow_the_stock_a_till_may_sell_never_below_zero(hub: Hub) -> None:
    await hub.sync()
    tea = await uuid_of(hub.db, hub.net.products["TEA"])
    coffee = await uuid_of(hub.db, hub.net.products["COFFEE"])

    await placed(hub.http, hub.net.tokens["online"], pickup("S01", line("TEA", 3)))
    await hub.http.post("/pos/sales", json=sale("S01", "1", line("COFFEE", 5)),
                        headers=bearer(hub.net.tokens["pos"]))  # fmt: skip
    await hub.sync()

    assert hub.cloud.quantities[STORE][tea] == D(7)  # 10 on hand, 3 held
    assert hub.cloud.quantities[STORE][coffee] == D(0)  # 3 on hand, 5 sold: -2
    calls = [c.path for c in hub.cloud.calls if c.method == "POST"]
    assert f"/api/v1/inventories/stores/{STORE}/products/quantities" in calls


async def test_a_1c_import_s_levels_changed_event_publishes_each_linked_store_s_figure(
    hub: Hub,
) -> None:
    """A stock.levels_changed (the 1C import's, one per product and chunk) carries several
    stores: the linked one's figure reaches its tills, the others are passed over."""
    await hub.sync()
    tea = await uuid_of(hub.db, hub.net.products["TEA"])
    s01, s02 = hub.net.stores["S01"], hub.net.stores["S02"]
    payload = events.stock_levels_changed(
        hub.net.products["TEA"], [(s01, D(4), D(1)), (s02, D(50), D(0))], "exchange_1c",
        "exchange_1c", "s/offers.xml",
    )  # fmt: skip
    async with hub.db.uow() as uow:
        await add_event(uow.conn, events.STOCK_LEVELS_CHANGED, events.AGGREGATE_STOCK,
                        str(hub.net.products["TEA"]), payload, datetime.now(UTC))  # fmt: skip
        await uow.commit()

    await hub.sync()

    assert hub.cloud.quantities[STORE][tea] == D(3)  # 4 on hand, 1 held, at the linked S01


async def test_a_changed_product_is_published_again_in_full(hub: Hub) -> None:
    await hub.sync()
    admin = hub.net.tokens["admin"]
    tea_id = hub.net.products["TEA"]
    response = await hub.http.patch(
        f"/products/{tea_id}", json={"name": "Чай зелёный", "price": "120.50"},
        headers=bearer(admin),
    )  # fmt: skip
    expect(response, 200)

    await hub.sync()

    tea = await uuid_of(hub.db, tea_id)
    assert (hub.cloud.products[STORE][tea]["name"], hub.cloud.products[STORE][tea]["price"]) == (
        "Чай зелёный",
        D("120.50"),
    )


async def test_the_cloud_rate_limit_makes_the_relay_wait_and_nothing_is_lost(hub: Hub) -> None:
    hub.cloud.throttle(3)

    await hub.sync(until=lambda: len(hub.cloud.products.get(STORE, {})) == len(hub.net.products))

    refused = [c for c in hub.cloud.calls if c.status == 429]
    assert refused and hub.relay.failures >= len(refused)  # the relay waited each time
    assert len(hub.cloud.products[STORE]) == len(hub.net.products)
    assert hub.relay.delivered > 0


async def test_the_catch_up_pull_applies_documents_no_webhook_brought_once(hub: Hub) -> None:
    now = datetime.now(UTC)
    till = Till(STORE, ids=Ids("dated", seed=9), start=now - timedelta(hours=3))
    hub.cloud.add_documents(STORE, [till.sell([(TEA, 2)]), till.open_session()])
    catch_up = hub.catch_up()
    try:
        first = await catch_up.pull_all()
        again = await catch_up.pull_all()
        # an offline till syncs a sale closed before the watermark: the overlap finds it
        late = till.sell([(TEA, 1)], at=now - timedelta(hours=2))
        hub.cloud.add_documents(STORE, [late])
        third = await catch_up.pull_all()
    finally:
        await catch_up.close()

    assert (first, again, third) == (1, 0, 1)
    assert await dbstate.level(hub.db, hub.net, "TEA", "S01") == (D(7), D(0))
    assert await dbstate.count(hub.db, pos_transactions) == 2
    (mark,) = await dbstate.rows(hub.db, evotor_watermarks, order_by=evotor_watermarks.c.store_uuid)
    assert mark.closed_before > now and mark.lease_until is None
    pulls = [c for c in hub.cloud.calls if c.path.endswith("/documents")]
    assert pulls and all("SELL" in c.params["types"] for c in pulls)


async def test_documents_left_in_the_inbox_are_applied_by_the_worker(hub: Hub) -> None:
    async with hub.db.uow() as uow:
        till = Till(STORE, ids=Ids(seed=10))
        document = till.sell([(TEA, 4)])
        entry = InboxEntry(STORE, document["uuid"], "documents", to_json(document), "SELL", None)
        await uow.evotor.store_documents([entry], datetime.now(UTC))
        await uow.commit()
    catch_up = hub.catch_up()
    try:
        assert await catch_up.apply_due() == 1
        assert await catch_up.apply_due() == 0
    finally:
        await catch_up.close()
    assert await dbstate.level(hub.db, hub.net, "TEA", "S01") == (D(6), D(0))
    async with hub.db.uow_read() as uow:
        states = (await uow.conn.execute(select(pos_transactions.c.kind))).scalars().all()
    assert states == ["sale"]
