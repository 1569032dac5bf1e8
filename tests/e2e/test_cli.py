"""The `ordersync` command, run as a process against a temporary SQLite database."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from ordersync.api.app import create_app
from ordersync.config import Settings
from ordersync.domain.types import Role

BINARY = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "ordersync"


class Cli:
    """Runs the binary with a clean ORDERSYNC_* environment in a temporary directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.db_path = directory / "x.db"
        self.url = f"sqlite+aiosqlite:///{self.db_path}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERSYNC_")}
        self.env["ORDERSYNC_DATABASE_URL"] = self.url
        self.env["ORDERSYNC_MASTER"] = "hub"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BINARY), *args],
            env=self.env,
            cwd=self.directory,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = self.run(*args)
        assert done.returncode == 0, f"{args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done

    def sql(self, statement: str, *params: object) -> list[tuple[object, ...]]:
        conn = sqlite3.connect(self.db_path)
        try:
            rows = conn.execute(statement, params).fetchall()
            conn.commit()
            return rows
        finally:
            conn.close()


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1].strip()


def api_status(
    url: str, token: str, method: str = "GET", path: str = "/stores", json: Any = None
) -> int:
    """The status the app, built on `url`, answers for a request with `token`."""

    async def run() -> int:
        settings = Settings(
            master="hub",
            database_url=url,
            seed_demo=False,
            auth_cache_seconds=0,
            catalog_cache_seconds=0,
        )
        app = create_app(settings, sweeper=False)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
                response = await http.request(
                    method,
                    path,
                    headers={"Authorization": f"Bearer {token}"},
                    json=json,
                )
                return response.status_code

    return asyncio.run(run())


@pytest.fixture
def no_config_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings built in this process must not read a config file named by the caller's env."""
    for name in list(os.environ):
        if name.startswith("ORDERSYNC_"):
            monkeypatch.delenv(name)


def test_migrate_creates_the_schema_and_can_run_again(cli: Cli) -> None:
    done = cli.ok("migrate")
    assert "migrations applied" in done.stdout
    tables = {name for (name,) in cli.sql("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {
        "stores",
        "products",
        "stock_levels",
        "stock_movements",
        "orders",
        "api_tokens",
    } <= tables
    cli.ok("migrate")


def test_migrate_down_to_a_revision_rolls_the_schema_back_and_up_again(cli: Cli) -> None:
    cli.ok("migrate")
    undone = cli.ok("migrate", "--down-to", "0003")
    assert "after 0003 undone" in undone.stdout
    assert cli.sql("SELECT version_num FROM alembic_version") == [("0003",)]
    columns = {row[1] for row in cli.sql("PRAGMA table_info(relay_cursors)")}
    assert "refusals" not in columns
    cli.ok("migrate")
    assert cli.sql("SELECT version_num FROM alembic_version") != [("0003",)]


def test_token_create_prints_an_os_token_on_its_last_line_that_the_api_accepts(
    cli: Cli, no_config_in_env: None
) -> None:
    cli.ok("migrate")
    done = cli.ok("token", "create", "--role", "admin", "--name", "x")
    token = last_line(done.stdout)
    assert token.startswith("os_")
    assert len(token) > 20
    assert cli.sql("SELECT name, role FROM api_tokens") == [("x", "admin")]
    assert token not in {h for (h,) in cli.sql("SELECT token_hash FROM api_tokens")}
    assert api_status(cli.url, token) == 200
    assert api_status(cli.url, token + "x") == 401
    body = {"code": "S77", "name": "Shop 77", "kind": "shop"}
    assert api_status(cli.url, token, "POST", "/stores", json=body) == 201


def test_every_token_create_prints_a_new_token(cli: Cli) -> None:
    cli.ok("migrate")
    first = last_line(cli.ok("token", "create", "--role", "online", "--name", "site").stdout)
    second = last_line(cli.ok("token", "create", "--role", "online", "--name", "site").stdout)
    assert first != second
    assert first.startswith("os_") and second.startswith("os_")


def test_a_pos_token_without_a_store_is_refused_and_none_is_created(cli: Cli) -> None:
    cli.ok("migrate")
    done = cli.run("token", "create", "--role", "pos", "--name", "t")
    assert done.returncode != 0
    assert "--store" in done.stderr
    assert not any(line.startswith("os_") for line in done.stdout.splitlines())
    assert cli.sql("SELECT count(*) FROM api_tokens") == [(0,)]


def test_a_pos_token_is_scoped_to_a_known_store(cli: Cli, no_config_in_env: None) -> None:
    cli.ok("seed-demo")
    done = cli.run("token", "create", "--role", "pos", "--name", "t", "--store", "S99")
    assert done.returncode != 0
    assert "S99" in done.stderr
    token = last_line(
        cli.ok("token", "create", "--role", "pos", "--name", "t", "--store", "S01").stdout
    )
    assert token.startswith("os_")
    sale = {
        "store": "S02",
        "pos_id": "T9",
        "transaction_id": "1",
        "lines": [{"sku": "TEA-001", "quantity": 1}],
    }
    assert api_status(cli.url, token, "POST", "/pos/sales", json=sale) == 403
    sale["store"] = "S01"
    assert api_status(cli.url, token, "POST", "/pos/sales", json=sale) == 201


def test_a_revoked_token_stops_working(cli: Cli, no_config_in_env: None) -> None:
    cli.ok("migrate")
    token = last_line(cli.ok("token", "create", "--role", "operator", "--name", "desk").stdout)
    assert api_status(cli.url, token) == 200
    listed = cli.ok("token", "list").stdout
    assert "desk" in listed and token not in listed
    (token_id,) = cli.sql("SELECT id FROM api_tokens WHERE name = 'desk'")[0]
    cli.ok("token", "revoke", str(token_id))
    assert api_status(cli.url, token) == 401
    assert cli.run("token", "revoke", str(token_id)).returncode == 1


@pytest.mark.parametrize(
    "command",
    [
        ["migrate"],
        ["check"],
        ["seed-demo"],
        ["token", "list"],
        ["token", "create", "--role", "admin", "--name", "x"],
    ],
)
def test_a_hybrid_master_in_the_config_file_makes_every_command_exit_2_naming_master(
    cli: Cli, tmp_path: Path, command: list[str]
) -> None:
    config = tmp_path / "ordersync.toml"
    config.write_text(f'master = "hybrid"\ndatabase_url = "{cli.url}"\n')
    del cli.env["ORDERSYNC_MASTER"]
    cli.env["ORDERSYNC_CONFIG"] = str(config)
    done = cli.run(*command)
    assert done.returncode == 2, f"{done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "master" in done.stderr
    assert "Traceback" not in done.stderr
    assert not cli.db_path.exists()


def test_a_hub_master_in_the_config_file_is_accepted(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "ordersync.toml"
    config.write_text(f'master = "hub"\ndatabase_url = "{cli.url}"\n')
    del cli.env["ORDERSYNC_MASTER"]
    cli.env["ORDERSYNC_CONFIG"] = str(config)
    cli.ok("migrate")
    assert cli.db_path.exists()


@pytest.mark.parametrize("master", ["hybrid", "", "both"])
def test_a_master_that_is_not_1c_or_hub_in_the_environment_exits_2(cli: Cli, master: str) -> None:
    cli.env["ORDERSYNC_MASTER"] = master
    done = cli.run("migrate")
    assert done.returncode == 2, f"{done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "master" in done.stderr


def test_no_master_at_all_exits_2_naming_master(cli: Cli) -> None:
    del cli.env["ORDERSYNC_MASTER"]
    done = cli.run("check")
    assert done.returncode == 2
    assert "master" in done.stderr


def test_a_config_path_that_is_not_a_file_exits_2(cli: Cli, tmp_path: Path) -> None:
    cli.env["ORDERSYNC_CONFIG"] = str(tmp_path / "missing.toml")
    done = cli.run("migrate")
    assert done.returncode == 2
    assert "ORDERSYNC_CONFIG" in done.stderr


def test_check_passes_on_a_seeded_database_and_fails_after_on_hand_is_tampered(cli: Cli) -> None:
    seeded = cli.ok("seed-demo")
    assert len([x for x in seeded.stdout.splitlines() if "os_" in x]) == len(Role)
    (levels,) = cli.sql("SELECT count(*) FROM stock_levels")[0]
    assert isinstance(levels, int) and levels > 0
    done = cli.ok("check")
    assert f"{levels} stock levels checked, 0 with drift" in done.stdout

    (product_id, store_id, on_hand) = cli.sql(
        "SELECT product_id, store_id, on_hand FROM stock_levels ORDER BY product_id, store_id"
    )[0]
    assert isinstance(on_hand, int)  # quantities are stored as thousandths
    cli.sql(
        "UPDATE stock_levels SET on_hand = on_hand + 1000 WHERE product_id = ? AND store_id = ?",
        product_id,
        store_id,
    )
    done = cli.run("check")
    assert done.returncode == 1, f"{done.stdout}\n{done.stderr}"
    drift = [x for x in done.stdout.splitlines() if x.startswith("DRIFT")]
    assert len(drift) == 1
    assert "+1" in drift[0]
    assert f"{levels} stock levels checked, 1 with drift" in done.stdout

    cli.sql(
        "UPDATE stock_levels SET on_hand = on_hand - 1000 WHERE product_id = ? AND store_id = ?",
        product_id,
        store_id,
    )
    cli.ok("check")


def test_check_fails_when_reserved_does_not_match_the_active_holds(cli: Cli) -> None:
    cli.ok("seed-demo")
    cli.sql(
        "UPDATE stock_levels SET reserved = 2000 "
        "WHERE rowid = (SELECT min(rowid) FROM stock_levels)"
    )
    done = cli.run("check")
    assert done.returncode == 1
    assert "DRIFT" in done.stdout


def test_check_passes_on_an_empty_database(cli: Cli) -> None:
    cli.ok("migrate")
    assert "0 stock levels checked, 0 with drift" in cli.ok("check").stdout


def test_seed_demo_refuses_a_database_that_is_not_empty(cli: Cli) -> None:
    cli.ok("seed-demo")
    (stores_before,) = cli.sql("SELECT count(*) FROM stores")[0]
    done = cli.run("seed-demo")
    assert done.returncode == 1
    assert "not empty" in done.stderr
    assert cli.sql("SELECT count(*) FROM stores") == [(stores_before,)]


def test_token_list_names_the_stores_by_code_as_token_create_does(cli: Cli) -> None:
    cli.ok("seed-demo")
    created = cli.ok("token", "create", "--role", "pos", "--name", "till-9", "--store", "S02")
    assert "stores: S02" in created.stdout
    listed = {line.split()[3]: line for line in cli.ok("token", "list").stdout.splitlines()}
    assert listed["till-9"].endswith("(stores: S02)")
    assert listed["demo-pos"].endswith("(stores: S01)")
    assert listed["demo-admin"].endswith("(stores: all)")


def test_each_database_keeps_its_own_demo_tokens_file(cli: Cli, no_config_in_env: None) -> None:
    """A second database seeded from the same directory leaves the first one's tokens be."""
    first_url = cli.url
    cli.ok("seed-demo")
    second = Cli(cli.directory)
    second.db_path = cli.directory / "other.db"
    second.url = second.env["ORDERSYNC_DATABASE_URL"] = f"sqlite+aiosqlite:///{second.db_path}"
    second.ok("seed-demo")
    files = sorted(p.name for p in cli.directory.glob("*demo-tokens*"))
    assert files == ["other.demo-tokens.txt", "x.demo-tokens.txt"]
    for url, name in ((first_url, "x"), (second.url, "other")):
        text = (cli.directory / f"{name}.demo-tokens.txt").read_text()
        admin = dict(line.split("=", 1) for line in text.splitlines())["admin"]
        assert api_status(url, admin) == 200
