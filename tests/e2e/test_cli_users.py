"""`ordersync user`: staff accounts of the console, created, listed, disabled and given new
passwords from the command line; the password read from standard input."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_cli import BINARY, Cli


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def with_stdin(cli: Cli, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BINARY), *args], env=cli.env, cwd=cli.directory, input=text,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_users_are_created_listed_disabled_and_given_new_passwords(cli: Cli) -> None:
    cli.ok("seed-demo")
    made = with_stdin(cli, "s3cret-password\n", "user", "create", "anna", "--role", "operator",
                      "--password-stdin")  # fmt: skip
    assert made.returncode == 0, made.stderr
    shop = with_stdin(cli, "another-password\n", "user", "create", "kassa", "--role", "store",
                      "--store", "S01", "--password-stdin")  # fmt: skip
    assert shop.returncode == 0, shop.stderr

    listed = cli.ok("user", "list").stdout
    assert "anna" in listed and "operator" in listed
    assert "kassa" in listed and "stores: S01" in listed
    (stored,) = cli.sql("SELECT password_hash FROM users WHERE name = 'anna'")[0]
    assert isinstance(stored, str) and stored.startswith("$argon2id$")
    assert "s3cret" not in stored

    (before,) = cli.sql("SELECT session_version FROM users WHERE name = 'anna'")[0]
    cli.ok("user", "disable", "anna")
    assert "disabled" in cli.ok("user", "list").stdout
    assert cli.run("user", "disable", "anna").returncode == 1  # already

    again = with_stdin(cli, "a-new-password\n", "user", "set-password", "anna", "--password-stdin")
    assert again.returncode == 0, again.stderr
    (after, disabled) = cli.sql(
        "SELECT session_version, disabled_at FROM users WHERE name = 'anna'"
    )[0]
    assert isinstance(before, int) and isinstance(after, int) and after > before + 1
    assert disabled is None


def test_user_create_refuses_bad_roles_scopes_names_and_short_passwords(cli: Cli) -> None:
    cli.ok("seed-demo")
    for args, text in (
        (("--role", "store"), "long-enough-password\n"),  # a store user needs --store
        (("--role", "operator", "--store", "S01"), "long-enough-password\n"),
        (("--role", "store", "--store", "NOPE"), "long-enough-password\n"),
        (("--role", "cashier"), "long-enough-password\n"),
        (("--role", "operator"), "short\n"),
    ):
        done = with_stdin(cli, text, "user", "create", "bob", *args, "--password-stdin")
        assert done.returncode == 2, (args, done.stdout, done.stderr)
    assert with_stdin(cli, "long-enough-password\n", "user", "create", "operator", "--role",
                      "operator", "--password-stdin").returncode == 1  # fmt: skip
    assert cli.sql("SELECT count(*) FROM users WHERE name = 'bob'")[0] == (0,)


def test_seed_demo_makes_a_console_login_per_role_kept_private(cli: Cli) -> None:
    done = cli.ok("seed-demo")
    logins = [line.split() for line in done.stdout.splitlines() if line.startswith("login ")]
    assert [x[1] for x in logins] == ["operator", "admin", "shop1"]
    kept = (cli.directory / "x.demo-logins.txt").read_text().split()
    assert kept == [w for x in logins for w in x[1:]]
    assert (cli.directory / "x.demo-logins.txt").stat().st_mode & 0o777 == 0o600
