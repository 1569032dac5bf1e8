"""/metrics: the relay's backlog per sink in Prometheus text format, for admin tokens only."""

from __future__ import annotations

import httpx

from ordersync.db.unit_of_work import Database
from ordersync.relay.worker import Relay, RelayPolicy
from ordersync.services.context import utcnow
from tests import support
from tests.e2e.helpers import bearer
from tests.integration.test_relay import Recorder


async def test_metrics_show_the_backlog_per_sink(client: httpx.AsyncClient, db: Database) -> None:
    net = await support.seed_network(db)
    relay = Relay(db, {"hook": Recorder("hook")}, RelayPolicy(lanes=2, poll_seconds=0))
    async with db.uow() as uow:
        for n in range(3):
            await uow.add_event("stock.changed", "stock", f"{n}:1", {}, utcnow())
        await uow.commit()
    await relay.run_once()  # cursors made, everything delivered
    async with db.uow() as uow:
        await uow.add_event("stock.changed", "stock", "9:1", {}, utcnow())
        await uow.commit()

    before = await client.get("/metrics", headers=bearer(net.tokens["admin"]))
    await relay.run_once()
    after = await client.get("/metrics", headers=bearer(net.tokens["admin"]))

    assert before.status_code == 200
    assert before.headers["content-type"].startswith("text/plain")
    assert "ordersync_outbox_unsequenced 1\n" in before.text
    assert 'ordersync_relay_backlog{sink="hook"} 0\n' in before.text
    assert 'ordersync_relay_backlog{sink="hook"} 0\n' in after.text
    assert "ordersync_outbox_unsequenced 0\n" in after.text
    assert 'ordersync_relay_dead_letters{sink="hook"} 0\n' in after.text
    assert 'ordersync_relay_failures_total{sink="hook"} 0\n' in after.text
    assert 'ordersync_relay_attempts_total{sink="hook"} ' in after.text
    assert 'ordersync_relay_attempts_total{sink="hook"} 0\n' not in after.text
    delivered = relay.delivered
    assert delivered >= 4
    assert f'ordersync_relay_delivery_seconds_count{{sink="hook"}} {delivered}\n' in after.text
    assert f'ordersync_relay_delivery_seconds_bucket{{sink="hook",le="+Inf"}} {delivered}\n' in (
        after.text
    )
    assert 'ordersync_relay_delivery_seconds_bucket{sink="hook",le="10"} ' in after.text


async def test_metrics_need_an_admin_token(client: httpx.AsyncClient, db: Database) -> None:
    net = await support.seed_network(db)
    assert (await client.get("/metrics")).status_code == 401
    refused = await client.get("/metrics", headers=bearer(net.tokens["online"]))
    assert refused.status_code == 403
