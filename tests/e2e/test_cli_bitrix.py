"""`ordersync bitrix check` through the command line, against the site simulator: what the
site has, the mapping gaps, and the exit codes (a site that cannot be reached, a refused
webhook, a missing scope)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from ordersync.db.unit_of_work import Database
from ordersync.entrypoints import cli_bitrix
from ordersync.entrypoints.cli import app
from tests import support
from tests.bitrix_sim import BitrixSim


async def _seed(url: str) -> None:
    db = Database.from_url(url, pool_size=2, catalog_cache_seconds=0)
    try:
        if db.engine.dialect.name == "postgresql":
            await support.truncate_all(db)
        await support.seed_network(db)  # hub stores WH1, S01, S02 (Ид = code)
    finally:
        await db.dispose()


def site() -> BitrixSim:
    sim = BitrixSim()
    sim.add_store(71, "WH1", "Warehouse")
    sim.add_store(72, "S01", "Shop on Main St")
    sim.add_store(74, "OUTLET-1", "Outlet")  # the hub has no such store
    return sim


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("ORDERSYNC_"):
            monkeypatch.delenv(name)
    yield


def config(tmp_path: Path, database_url: str, url: str, extra: str = "") -> Path:
    path = tmp_path / "ordersync.toml"
    path.write_text(
        f'master = "hub"\ndatabase_url = "{database_url}"\n'
        f'[bitrix]\nurl = "{url}"\niblock_id = 14\npickup_deliveries = [3, 9]\n'
        f'cod_pay_systems = [3]\nshort_status = "W"\n{extra}'
    )
    return path


def check(path: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["bitrix", "check", *args],
                              env={"ORDERSYNC_CONFIG": str(path)})  # fmt: skip


def through(sim: BitrixSim, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        cli_bitrix,
        "make_client",
        lambda timeout: httpx.AsyncClient(transport=sim.transport(), timeout=timeout),
    )


@pytest.mark.usefixtures("clean_env")
def test_check_reports_what_the_site_has_and_the_gaps(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    support.run_in_thread(_seed(database_url))
    sim = site()
    through(sim, monkeypatch)

    done = check(config(tmp_path, database_url, sim.webhook_url))

    assert done.exit_code == 0, done.output
    out = done.stdout
    assert "site stores: 3" in out
    assert "71 'Warehouse' xmlId='WH1' -> WH1" in out
    assert "74 'Outlet' xmlId='OUTLET-1' -> no hub store" in out
    assert "3 'Pickup'" in out and "3 'Cash on delivery' cash" in out
    gaps = [line for line in out.splitlines() if line.startswith("GAP: ")]
    assert gaps == [
        "GAP: site store 74 'Outlet' (xmlId 'OUTLET-1') maps to no hub store: give it the hub "
        "store's Ид, or map it in [bitrix.store_map]",
        "GAP: hub store S02 has no site store (its stock is not sent)",
        "GAP: pickup delivery service 9 is not on the site",
        "GAP: status 'W' (short_status) is not on the site",
    ]
    assert set(sim.methods_called()) == {
        "catalog.store.list", "sale.status.list", "sale.delivery.getlist", "sale.paysystem.list"
    }  # fmt: skip
    assert check(config(tmp_path, database_url, sim.webhook_url), "--strict").exit_code == 1


@pytest.mark.usefixtures("clean_env")
def test_a_site_that_meets_every_mapping_is_ok(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    support.run_in_thread(_seed(database_url))
    sim = site()
    sim.add_store(73, "S02-site", "Pickup point")
    sim.add_delivery(9, "Pickup at S01")
    sim.add_status("W")
    through(sim, monkeypatch)
    extra = '[bitrix.store_map]\n"73" = "S02"\n"74" = "WH1"\n'

    done = check(config(tmp_path, database_url, sim.webhook_url, extra), "--strict")

    assert done.exit_code == 0, done.output
    assert done.stdout.strip().endswith("OK: the site answers and every mapping meets it")


@pytest.mark.usefixtures("clean_env")
def test_a_refused_webhook_exits_2(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = site()
    through(sim, monkeypatch)
    wrong = sim.webhook_url.replace(sim.code, "not-the-code")

    done = check(config(tmp_path, database_url, wrong))

    assert done.exit_code == 2
    assert "refused the webhook" in done.stderr and "INVALID_CREDENTIALS" in done.stderr


@pytest.mark.usefixtures("clean_env")
def test_a_missing_scope_is_a_problem_and_exits_1(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    support.run_in_thread(_seed(database_url))
    sim = site()
    sim.fail_next("sale.paysystem.list", "insufficient_scope", "higher privileges needed")
    through(sim, monkeypatch)

    done = check(config(tmp_path, database_url, sim.webhook_url))

    assert done.exit_code == 1
    assert "PROBLEM: pay systems (sale.paysystem.list" in done.stdout
    assert "insufficient_scope" in done.stdout


@pytest.mark.usefixtures("clean_env")
def test_a_site_that_cannot_be_reached_exits_2(tmp_path: Path, database_url: str) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/rest/1/abc/"

    done = check(config(tmp_path, database_url, url))

    assert done.exit_code == 2
    assert "cannot be reached" in done.stderr


@pytest.mark.usefixtures("clean_env")
def test_no_site_configured_exits_2(tmp_path: Path, database_url: str) -> None:
    path = tmp_path / "ordersync.toml"
    path.write_text(f'master = "hub"\ndatabase_url = "{database_url}"\n')
    done = check(path)
    assert done.exit_code == 2 and "ORDERSYNC_BITRIX__URL" in done.stderr


@pytest.mark.usefixtures("clean_env")
def test_a_hub_database_not_migrated_is_a_problem_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = site()
    through(sim, monkeypatch)
    empty = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"

    done = check(config(tmp_path, empty, sim.webhook_url))

    assert done.exit_code == 1, done.output
    assert "site stores: 3" in done.stdout
    assert "PROBLEM: the hub's stores could not be read" in done.stdout
