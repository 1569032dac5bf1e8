"""What `serve` sets up around uvicorn: its logging, the directory where several worker
processes add up their metrics, and the line that says the server is ready."""

from __future__ import annotations

import copy
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from uvicorn.config import LOGGING_CONFIG

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def log_config(level: str, access_log: bool) -> dict[str, Any]:
    """uvicorn's own logging setup, with ordersync's loggers beside its own at `level`, and
    the access log (one line per request, uvicorn's format) when switched on."""
    config = copy.deepcopy(LOGGING_CONFIG)
    loggers = config["loggers"]
    loggers["uvicorn.error"]["level"] = level.upper()
    loggers["uvicorn.access"]["level"] = "INFO" if access_log else "WARNING"
    loggers["ordersync"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config


def metrics_directory(base: Path, port: int) -> Path:
    """An empty directory for prometheus-client's multiprocess mode, one per served port, so
    that two servers never count into each other's files. PROMETHEUS_MULTIPROC_DIR, when the
    environment sets it, wins. Files of an earlier run are removed: counters start at 0 with
    the server, as they do with one process."""
    directory = Path(os.environ.get(MULTIPROC_ENV) or base / str(port))
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.db"):
        old.unlink()
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory


def announce_when_ready(
    host: str, port: int, say: Callable[[str], None], timeout_seconds: float = 300.0
) -> threading.Thread:
    """Says `listening on http://<host>:<port>` once, when the server first answers (its
    startup done, whichever worker answers), from a thread beside uvicorn."""
    probe_host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    url = f"http://{_bracketed(probe_host)}:{port}/healthz"

    def wait() -> None:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            try:
                httpx.get(url, timeout=2.0)
            except httpx.HTTPError:
                time.sleep(0.1)
                continue
            say(f"listening on http://{_bracketed(host)}:{port}")
            return

    thread = threading.Thread(target=wait, name="ordersync-ready", daemon=True)
    thread.start()
    return thread


def probe_host(host: str) -> str:
    """The address to reach a server listening on `host` from this machine."""
    return _bracketed({"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host))


def when_ready(base_url: str, then: Callable[[], object], timeout_seconds: float = 300.0) -> None:
    """Calls `then` from a thread once the server at `base_url` answers."""

    def wait() -> None:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{base_url}/healthz", timeout=2.0)
            except httpx.HTTPError:
                time.sleep(0.2)
                continue
            then()
            return

    threading.Thread(target=wait, name="ordersync-when-ready", daemon=True).start()


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host
