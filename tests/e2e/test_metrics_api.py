"""/metrics: valid Prometheus text (read back with prometheus_client's own parser), for admin
tokens only: the relay's backlog per configured sink, HTTP requests by route template and
status with their latency, insufficient-stock refusals, and the 1C exchange."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sqlalchemy import insert

from ordersync.api.app import create_app
from ordersync.config import Settings
from ordersync.db.tables import bitrix_inbox, evotor_inbox
from ordersync.db.unit_of_work import Database
from ordersync.relay.worker import Relay, RelayPolicy
from ordersync.services.context import utcnow
from tests import support
from tests.e2e.conftest import Hub, HubFactory
from tests.e2e.helpers import bearer, delivery, expect, line, placed
from tests.integration.test_relay import Recorder
from tests.sim_1c import Offer, Product, import_xml, offers_xml

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample by (name, sorted labels); the parser raises on anything invalid."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[_key(s)] = s.value
    return found


def _key(s: Sample) -> tuple[str, tuple[tuple[str, str], ...]]:
    return s.name, tuple(sorted(s.labels.items()))


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


async def scrape(http: httpx.AsyncClient, token: str) -> Samples:
    response = await http.get("/metrics", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


@asynccontextmanager
async def app_client(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, db=db, sweeper=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            yield http


HOOK = {"kind": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "s"}


async def test_metrics_show_the_backlog_per_configured_sink(
    settings: Settings, db: Database
) -> None:
    net = await support.seed_network(db)
    configured = Settings(**(settings.model_dump() | {"sinks": {"hook": HOOK}}))
    relay = Relay(db, {"hook": Recorder("hook")}, RelayPolicy(lanes=2, poll_seconds=0))
    async with db.uow() as uow:
        for n in range(3):
            await uow.add_event("stock.changed", "stock", f"{n}:1", {}, utcnow())
        await uow.commit()
    await relay.run_once()  # cursors made, everything delivered
    async with db.uow() as uow:
        await uow.add_event("stock.changed", "stock", "9:1", {}, utcnow())
        await uow.commit()

    async with app_client(configured, db) as http:
        before = await scrape(http, net.tokens["admin"])
        await relay.run_once()
        after = await scrape(http, net.tokens["admin"])

    hook = {"sink": "hook"}
    assert value(before, "ordersync_outbox_unsequenced") == 1
    assert value(after, "ordersync_outbox_unsequenced") == 0
    assert value(after, "ordersync_relay_backlog", **hook) == 0
    assert value(after, "ordersync_relay_dead_letters", **hook) == 0
    assert value(after, "ordersync_relay_failing_lanes", **hook) == 0
    assert value(after, "ordersync_relay_failures_total", **hook) == 0
    assert (value(after, "ordersync_relay_attempts_total", **hook) or 0) > 0
    assert (value(after, "ordersync_relay_seconds_since_last_success", **hook) or -1) >= 0
    delivered = relay.delivered
    assert delivered == 4
    assert value(after, "ordersync_relay_delivery_seconds_count", **hook) == delivered
    assert value(after, "ordersync_relay_delivery_seconds_bucket", le="+Inf", **hook) == delivered
    assert value(after, "ordersync_relay_delivery_seconds_bucket", le="10", **hook) is not None


async def test_metrics_count_requests_by_route_template_and_status_with_their_latency(
    client: httpx.AsyncClient, db: Database
) -> None:
    net = await support.seed_network(db, {"WH1": {"TEA": 1}})
    token = net.tokens["admin"]
    for order_id in ("a", "b", "c"):
        await client.get(f"/orders/{order_id}", headers=bearer(token))
    await client.get("/stores", headers=bearer(token))
    await client.get("/no/such/path", headers=bearer(token))
    refused = await client.post("/orders", json=delivery(line("TEA", 5)), headers=bearer(token))
    expect(refused, 409, "insufficient_stock")

    samples = await scrape(client, token)

    requests = "ordersync_http_requests_total"
    assert value(samples, requests, method="GET", route="/orders/{order_id}", status="404") == 3
    assert value(samples, requests, method="GET", route="/stores", status="200") == 1
    assert value(samples, requests, method="GET", route="unmatched", status="404") == 1
    assert value(samples, requests, method="POST", route="/orders", status="409") == 1
    assert not [k for k in samples if ("route", "/orders/a") in k[1]]  # templates, not paths
    latency = "ordersync_http_request_duration_seconds"
    assert value(samples, f"{latency}_count", method="GET", route="/orders/{order_id}") == 3
    assert value(samples, f"{latency}_bucket", method="GET", route="/stores", le="+Inf") == 1
    assert value(samples, "ordersync_insufficient_stock_refusals_total", route="/orders") == 1


async def test_metrics_show_the_last_1c_exchange_per_type_and_the_oldest_unconfirmed_order(
    start_hub: HubFactory,
) -> None:
    hub: Hub = await start_hub(master="1c", stock={"WH1": {"TEA": 5}})
    started = datetime.now(UTC).timestamp()
    samples = await scrape(hub.http, hub.admin)
    last = "ordersync_1c_exchange_last_success_timestamp_seconds"
    oldest = "ordersync_1c_oldest_unconfirmed_order_seconds"
    assert value(samples, last, type="catalog") is None  # 1C never exchanged
    assert value(samples, last, type="sale") is None
    assert value(samples, oldest) == 0

    await placed(hub.http, hub.net.tokens["online"], delivery(line("TEA", 1)))
    results = await hub.onec().catalog_exchange(
        [("import.xml", import_xml([Product("1c-tea", "Чай")])),
         ("offers.xml", offers_xml([Offer("1c-tea", total=5)]))]
    )  # fmt: skip
    assert all(r[0] == "success" for r in results.values()), results
    waiting = await scrape(hub.http, hub.admin)
    sale = hub.onec()
    await sale.open("sale")
    await sale.query()
    await sale.success()
    confirmed = await scrape(hub.http, hub.admin)

    assert (value(waiting, last, type="catalog") or 0) >= started - 1
    assert value(waiting, last, type="sale") is None
    assert (value(waiting, oldest) or 0) > 0  # the order 1C has not confirmed
    assert (value(confirmed, last, type="sale") or 0) >= started - 1
    assert value(confirmed, oldest) == 0


async def test_metrics_need_an_admin_token(client: httpx.AsyncClient, db: Database) -> None:
    net = await support.seed_network(db)
    assert (await client.get("/metrics")).status_code == 401
    refused = await client.get("/metrics", headers=bearer(net.tokens["online"]))
    assert refused.status_code == 403


async def test_metrics_count_the_inbound_events_that_wait_and_those_that_failed(
    settings: Settings, db: Database
) -> None:
    net = await support.seed_network(db)
    now = utcnow()
    site = [("pending", 2), ("failed", 3), ("done", 4)]
    tills = [("pending", 1), ("failed", 1), ("rejected", 2), ("done", 5)]
    async with db.uow() as uow:
        await uow.conn.execute(
            insert(bitrix_inbox),
            [
                {"event": "ONSALEORDERSAVED", "body": "{}", "state": state, "received_at": now}
                for state, n in site
                for _ in range(n)
            ],
        )
        await uow.conn.execute(
            insert(evotor_inbox),
            [
                {
                    "store_uuid": "s",
                    "document_uuid": f"{state}-{k}",
                    "feed": "documents",
                    "body": "{}",
                    "state": state,
                    "received_at": now,
                }
                for state, n in tills
                for k in range(n)
            ],
        )
        await uow.commit()

    async with app_client(settings, db) as http:
        scraped = await scrape(http, net.tokens["admin"])

    def pending(channel: str) -> float | None:
        return value(scraped, "ordersync_inbound_events_pending", channel=channel)

    def unapplied(channel: str, state: str) -> float | None:
        return value(
            scraped, "ordersync_inbound_events_unapplied_total", channel=channel, state=state
        )

    assert (pending("bitrix"), pending("evotor")) == (2, 1)
    assert [unapplied("bitrix", s) for s in ("failed", "rejected")] == [3, 0]
    assert [unapplied("evotor", s) for s in ("failed", "rejected")] == [1, 2]
    assert unapplied("bitrix", "done") is None
