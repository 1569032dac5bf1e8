"""`ordersync serve` as a process: it says once when it is ready, is quiet unless asked to
log requests, and with several worker processes its metrics add up whichever one answers."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from ordersync.db.unit_of_work import Database
from tests import support
from tests.e2e.test_metrics_api import parse, value

BINARY = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "ordersync"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    process: subprocess.Popen[str]
    port: int
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for(self, text: str, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if any(text in line for line in self.out):
                return
            assert self.process.poll() is None, "".join(self.err)
            time.sleep(0.05)
        raise AssertionError(f"{text!r} never printed: {''.join(self.out)}{''.join(self.err)}")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=30)
        time.sleep(0.1)  # the readers take the last lines


CONSOLE_KEY = "a-console-signing-key-for-the-tests-0123456789"


def serve(tmp_path: Path, database_url: str, *options: str, console_key: bool = True) -> Served:
    config = tmp_path / "serve.toml"
    config.write_text(
        f'master = "hub"\ndatabase_url = "{database_url}"\nmetrics_dir = "{tmp_path / "metrics"}"\n'
        + (f'[ui]\nsecret_key = "{CONSOLE_KEY}"\n' if console_key else "")
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERSYNC_", "PROMETHEUS"))}
    env["ORDERSYNC_CONFIG"] = str(config)
    port = free_port()
    process = subprocess.Popen(
        [str(BINARY), "serve", "--port", str(port), *options],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    served = Served(process, port)
    for stream, lines in ((process.stdout, served.out), (process.stderr, served.err)):
        threading.Thread(target=lambda s=stream, x=lines: x.extend(iter(s.readline, "")),
                         daemon=True).start()  # fmt: skip
    return served


@pytest.fixture
def stop_after() -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for served in started:
        if served.process.poll() is None:
            served.stop()


ACCESS_LINE = '"GET /healthz HTTP/1.1" 200'


@pytest.mark.parametrize("backend", ["sqlite"])
def test_serve_says_once_that_it_listens_when_it_answers_and_logs_no_request_by_default(
    tmp_path: Path, database_url: str, stop_after: list[Served], backend: str
) -> None:
    served = serve(tmp_path, database_url)
    stop_after.append(served)
    served.wait_for("listening on http://127.0.0.1:")

    assert httpx.get(f"{served.url}/healthz").status_code == 200  # ready when it says so
    served.stop()
    assert [line for line in served.out if "listening on" in line] == [
        f"listening on http://127.0.0.1:{served.port}\n"
    ]
    assert not [line for line in served.out + served.err if ACCESS_LINE in line]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_serve_with_the_access_log_logs_every_request(
    tmp_path: Path, database_url: str, stop_after: list[Served], backend: str
) -> None:
    served = serve(tmp_path, database_url, "--access-log", "--log-level", "info")
    stop_after.append(served)
    served.wait_for("listening on")

    for _ in range(3):
        httpx.get(f"{served.url}/healthz")
    served.stop()

    assert len([line for line in served.out + served.err if ACCESS_LINE in line]) >= 3


@pytest.mark.parametrize("backend", ["postgres"])
async def test_several_workers_say_once_that_they_listen_and_their_metrics_add_up(
    tmp_path: Path, database_url: str, db: Database, stop_after: list[Served], backend: str
) -> None:
    token = (await support.seed_network(db)).tokens["admin"]
    served = serve(tmp_path, database_url, "--workers", "2")
    stop_after.append(served)
    await asyncio.to_thread(served.wait_for, "listening on")
    await asyncio.sleep(3)  # both workers up

    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=served.url) as http:
        for _ in range(40):  # a new connection each: the workers take turns
            async with httpx.AsyncClient(base_url=served.url) as one:
                assert (await one.get("/stores", headers=headers)).status_code == 200
        scraped = parse((await http.get("/metrics", headers=headers)).text)
    served.stop()

    counted = value(scraped, "ordersync_http_requests_total",
                    method="GET", route="/stores", status="200")  # fmt: skip
    assert counted == 40
    files = list((tmp_path / "metrics" / str(served.port)).glob("counter_*.db"))
    assert len(files) >= 2  # both workers counted some of them
    assert len([line for line in served.out if "listening on" in line]) == 1


@pytest.mark.parametrize("backend", ["postgres"])
def test_serve_refuses_postgresql_without_the_console_signing_key(
    tmp_path: Path, database_url: str, stop_after: list[Served], backend: str
) -> None:
    served = serve(tmp_path, database_url, console_key=False)
    stop_after.append(served)

    assert served.process.wait(timeout=60) == 2
    time.sleep(0.1)
    assert any("ORDERSYNC_UI__SECRET_KEY" in line for line in served.err)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_serve_on_sqlite_makes_the_console_key_once_and_keeps_it_private(
    tmp_path: Path, database_url: str, stop_after: list[Served], backend: str
) -> None:
    served = serve(tmp_path, database_url, console_key=False)
    stop_after.append(served)
    served.wait_for("listening on")
    served.stop()
    key_file = Path(database_url.split("///", 1)[1]).with_name("ordersync.console-key")
    first = key_file.read_text()

    again = serve(tmp_path, database_url, console_key=False)
    stop_after.append(again)
    again.wait_for("listening on")
    again.stop()

    assert key_file.read_text() == first and len(first.strip()) >= 32
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert any(f"console: http://127.0.0.1:{again.port}/ui/" in line for line in again.out)
