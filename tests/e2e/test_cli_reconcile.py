"""`ordersync reconcile [--apply]`, `ordersync exchange log` and `ordersync exchange
hash-password`, after an import from 1C with the hub as master (on SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import select
from typer.testing import CliRunner

from ordersync.db.tables import exchange_log, products, stock_levels, stores
from ordersync.db.unit_of_work import Database
from ordersync.domain.types import Master
from ordersync.entrypoints.cli import app
from ordersync.exchange.auth import verify_password
from tests import support
from tests.integration import dbstate
from tests.integration.test_exchange_stock import (
    Exchange,
    Offer,
    formed_time,
    offers_xml,
    receive,
    sell,
)

BINARY = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "ordersync"
D = Decimal


@dataclass
class Imported:
    url: str
    formed: datetime
    warnings: list[str]


async def _hub_import(url: str, backend: str, work_dir: Path) -> Imported:
    """The network, the hub's own stock, then one offers.xml imported with master = "hub":
    COFFEE @ S02 1C 7 vs hub 10 (1 sold since), MUG @ S02 1C -2 (taken as 0) vs 3, SUGAR @ S02
    1C 1.5 vs no level, TEA @ a store new to the hub 1C 4; TEA @ S02 agrees (10 then, 2 sold
    since)."""
    db = Database.from_url(url, pool_size=5, catalog_cache_seconds=0)
    try:
        if backend == "postgres":
            await support.truncate_all(db)
        await support.seed_network(db, pos_stores=("S02",))
        formed = formed_time()
        after = formed + timedelta(minutes=10)
        await receive(db, formed - timedelta(hours=1), "S02", "R-1",
                      ("TEA", 10), ("COFFEE", 10), ("MUG", 3))  # fmt: skip
        await sell(db, "S02", "T1", "TEA", 2, business_time=after, recorded_at=after)
        await sell(db, "S02", "T2", "COFFEE", 1, business_time=after, recorded_at=after)
        offers = [
            Offer("1c-tea", {"S02": 10, "x-new-store": 4}, name="Tea"),
            Offer("1c-coffee", {"S02": 7}, name="Coffee"),
            Offer("1c-mug", {"S02": "-2"}, name="Mug"),
            Offer("1c-sugar", {"S02": "1.5"}, name="Sugar"),
        ]
        body = offers_xml(formed, offers, {"S02": "Shop 2", "x-new-store": "New store"})
        await Exchange(db, work_dir, Master.HUB).load(body)
        logged = await dbstate.rows(db, exchange_log, exchange_log.c.level == "warning")
        return Imported(url, formed, [r.message for r in logged])
    finally:
        await db.dispose()


async def _stock_by_code(url: str) -> dict[tuple[str, str], Decimal]:
    """on_hand by (SKU, store code) for every stock level."""
    db = Database.from_url(url, pool_size=2, catalog_cache_seconds=0)
    try:
        sl = stock_levels.c
        stmt = (
            select(products.c.sku, stores.c.code, sl.on_hand)
            .join(products, products.c.id == sl.product_id)
            .join(stores, stores.c.id == sl.store_id)
        )
        async with db.uow_read() as uow:
            return {(r.sku, r.code): r.on_hand for r in await uow.conn.execute(stmt)}
    finally:
        await db.dispose()


@pytest.fixture
def imported(
    database_url: str, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Imported:
    for name in list(os.environ):
        if name.startswith("ORDERSYNC_"):
            monkeypatch.delenv(name)
    return support.run_in_thread(_hub_import(database_url, backend, tmp_path / "exchange"))


def ordersync(imported: Imported, *args: str, master: str = "hub") -> Result:
    env = {"ORDERSYNC_DATABASE_URL": imported.url, "ORDERSYNC_MASTER": master}
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def lines(result: Result) -> list[str]:
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()


def test_reconcile_lists_the_levels_where_1c_differs_and_apply_adopts_them(
    imported: Imported,
) -> None:
    at = imported.formed.isoformat()
    drifts = [
        f"TEA @ 1C-x-new-st: 1C 4 vs hub 0 (drift -4) as of {at}",
        f"COFFEE @ S02: 1C 7 vs hub 10 (drift +3) as of {at}",
        f"MUG @ S02: 1C 0 vs hub 3 (drift +3) as of {at}",
        f"SUGAR @ S02: 1C 1.5 vs hub 0 (drift -1.5) as of {at}",
    ]

    assert lines(ordersync(imported, "reconcile")) == [*drifts, "4 stock levels differ from 1C"]
    assert lines(ordersync(imported, "reconcile", "--store", "S02")) == [
        *drifts[1:],
        "3 stock levels differ from 1C",
    ]
    assert lines(ordersync(imported, "reconcile", "--limit", "1")) == [
        drifts[0],
        "1 stock levels differ from 1C",
    ]
    # Listing changes nothing.
    assert lines(ordersync(imported, "reconcile")) == [*drifts, "4 stock levels differ from 1C"]

    before = support.run_in_thread(_stock_by_code(imported.url))
    assert before[("COFFEE", "S02")] == D(9)

    applied = lines(ordersync(imported, "reconcile", "--apply"))

    assert applied == [*drifts, "4 stock levels differ from 1C", "4 adopted as counts"]
    assert lines(ordersync(imported, "reconcile")) == ["0 stock levels differ from 1C"]
    checked = lines(ordersync(imported, "check"))
    assert checked[-1].endswith("stock levels checked, 0 with drift")
    assert lines(ordersync(imported, "reconcile", "--apply")) == [
        "0 stock levels differ from 1C",
        "0 adopted as counts",
    ]
    # 1C's figures, plus the hub's movements since 1C formed its file.
    assert support.run_in_thread(_stock_by_code(imported.url)) == {
        **before,
        ("TEA", "1C-x-new-st"): D(4),
        ("COFFEE", "S02"): D(6),  # 7 - 1 sold after
        ("MUG", "S02"): D(0),
        ("SUGAR", "S02"): D("1.5"),
    }


def test_reconcile_before_1c_sent_any_figure_says_there_are_none_yet(
    database_url: str, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("ORDERSYNC_"):
            monkeypatch.delenv(name)
    support.run_in_thread(_seeded(database_url, backend))
    fresh = Imported(database_url, formed_time(), [])

    for args in (["reconcile"], ["reconcile", "--apply"]):
        out = lines(ordersync(fresh, *args))
        assert out == [
            "no stock figures from 1C yet: nothing to compare until 1C sends an offers or "
            "rests file through the exchange"
        ]


async def _seeded(url: str, backend: str) -> None:
    db = Database.from_url(url, pool_size=2, catalog_cache_seconds=0)
    try:
        if backend == "postgres":
            await support.truncate_all(db)
        await support.seed_network(db, {"S02": {"TEA": 3}})
    finally:
        await db.dispose()


def test_reconcile_with_1c_as_master_says_stock_follows_1c(imported: Imported) -> None:
    result = ordersync(imported, "reconcile", "--apply", master="1c")
    assert result.exit_code == 1  # nothing to reconcile, and --apply must not adopt old figures
    out = result.stdout.strip().splitlines()
    assert out == ['master is "1c": stock already follows 1C\'s figures at every import']


def test_exchange_log_prints_the_import_warnings(imported: Imported) -> None:
    assert any("negative" in m for m in imported.warnings)
    assert any("x-new-store" in m for m in imported.warnings)

    out = lines(ordersync(imported, "exchange", "log"))

    for message in imported.warnings:
        matching = [x for x in out if x.endswith(f" warning {message}")]
        assert len(matching) == 1, (message, out)
        stamp = matching[0].split(" ", 1)[0]
        assert datetime.fromisoformat(stamp).utcoffset() == timedelta(0)
    assert len(lines(ordersync(imported, "exchange", "log", "--limit", "1"))) == 1


def test_exchange_hash_password_prints_a_hash_that_verifies() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERSYNC_")}
    done = subprocess.run(
        [str(BINARY), "exchange", "hash-password", "pw"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    printed = done.stdout.strip().splitlines()[-1]
    assert printed.startswith("pbkdf2_sha256$")
    assert verify_password("pw", printed)
    assert not verify_password("pw2", printed)
    assert printed != CliRunner().invoke(app, ["exchange", "hash-password", "pw"]).stdout.strip()
