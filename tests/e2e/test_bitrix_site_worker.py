"""`ordersync worker` as a process with nothing but `[bitrix]` configured, against the site
simulator served over HTTP: the relay makes the sink "bitrix" by itself, the site gets the
sellable figure per store and the till sale recorded once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal as D
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from ordersync.db.unit_of_work import Database
from ordersync.domain.commands import RecordPosSale
from ordersync.domain.types import Channel
from ordersync.services.pos import record_pos_sale
from tests import support
from tests.bitrix_sim import BitrixSim
from tests.e2e.test_relay_worker import BINARY, support_wait
from tests.integration.test_order_lifecycle import delivery, lines, place

TEA = 501
WH1, S01 = 71, 72


class SiteServer:
    """The simulator's REST API on 127.0.0.1, one request at a time."""

    def __init__(self, sim: BitrixSim) -> None:
        self.sim = sim
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = httpx.Request(
                    "POST", f"http://shop{self.path}", headers=dict(self.headers), content=body
                )
                with lock:
                    response = sim.handler(request)
                self.send_response(response.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(response.content)))
                self.end_headers()
                self.wfile.write(response.content)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def webhook_url(self) -> str:
        port = self.server.server_address[1]
        return f"http://127.0.0.1:{port}/rest/{self.sim.user}/{self.sim.code}/"

    def close(self) -> None:
        self.server.shutdown()


def start_worker(database_url: str, site_url: str, tmp_path: Path) -> subprocess.Popen[bytes]:
    """The worker with only [bitrix] configured, the webhook URL in the environment."""
    config = tmp_path / "worker.toml"
    config.write_text(
        f'master = "hub"\ndatabase_url = "{database_url}"\n'
        "[relay]\nlanes = 4\npoll_seconds = 0.05\n"
        '[bitrix]\niblock_id = 14\nmirror_channels = ["pos"]\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERSYNC_")}
    env["ORDERSYNC_CONFIG"] = str(config)
    env["ORDERSYNC_BITRIX__URL"] = site_url
    return subprocess.Popen([str(BINARY), "worker"], env=env, stderr=subprocess.PIPE)


@pytest.fixture
def shop() -> Iterator[SiteServer]:
    sim = BitrixSim(iblock_id=14)
    sim.add_product(TEA, "1c-tea")
    sim.add_store(WH1, "WH1")
    sim.add_store(S01, "S01")
    server = SiteServer(sim)
    yield server
    server.close()


async def test_the_worker_serves_the_site_from_the_bitrix_table_alone(
    db: Database, database_url: str, shop: SiteServer, tmp_path: Path
) -> None:
    await support.seed_network(db, {"WH1": {"TEA": 10}, "S01": {"TEA": 5}})
    await place(db, delivery(("TEA", 3), channel=Channel.OPERATOR))
    sale = RecordPosSale("S01", "till-1", "T-1", lines(("TEA", 2)), datetime.now(UTC))
    recorded = await record_pos_sale(db.uow, sale, support.context())
    assert isinstance(recorded, dict)
    config = tmp_path / "worker.toml"
    config.write_text(
        f'master = "hub"\ndatabase_url = "{database_url}"\n'
        "[relay]\nlanes = 4\npoll_seconds = 0.05\n"
        '[bitrix]\niblock_id = 14\nmirror_channels = ["pos"]\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERSYNC_")}
    env["ORDERSYNC_CONFIG"] = str(config)
    env["ORDERSYNC_BITRIX__URL"] = shop.webhook_url
    sim = shop.sim

    def arrived() -> bool:
        return (sim.amount(TEA, WH1), sim.amount(TEA, S01)) == (D(7), D(2)) and any(
            o.xml_id == recorded["order_id"] for o in list(sim.orders.values())
        )

    worker = start_worker(database_url, shop.webhook_url, tmp_path)
    try:
        await support_wait(arrived, 30)
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=15)
    assert arrived(), err.decode()[-2000:]
    [order] = [o for o in sim.orders.values() if o.xml_id == recorded["order_id"]]
    assert json.loads(order.additional_info)["pos_transaction_id"] == "T-1"
    assert len(sim.orders) == 1  # the operator order is not in mirror_channels
