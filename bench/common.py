"""What the benchmarks share: logging, the project's console scripts, commands that must
succeed, scratch PostgreSQL databases, and stopping a served process group."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import asyncpg

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
ADMIN_DSN = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres"
ROOT = Path.cwd()


class BenchError(Exception):
    """A step failed; the message says which and why."""


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def venv_bin(name: str) -> Path:
    """A console script of the interpreter running this file (the project's venv)."""
    candidates = [Path(sys.executable).parent / name, ROOT / ".venv" / "bin" / name]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise BenchError(
        f"{name} not found in {candidates[0].parent}; install the package first "
        "(.venv/bin/pip install -e '.[dev]')"
    )


def run(
    cmd: Sequence[str | Path],
    *,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    what: str,
) -> subprocess.CompletedProcess[str]:
    args = [str(c) for c in cmd]
    try:
        proc = subprocess.run(
            args, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise BenchError(f"{what}: {args[0]} not found") from exc
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{what}: timed out after {timeout} s") from exc
    if proc.returncode != 0:
        raise BenchError(
            f"{what} failed (exit {proc.returncode}): {' '.join(args)}\n"
            f"--- stdout\n{proc.stdout.strip()}\n--- stderr\n{proc.stderr.strip()}"
        )
    return proc


async def _drop(name: str, create: bool) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if create:
            await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()


def recreate_database(name: str) -> None:
    asyncio.run(_drop(name, create=True))


def drop_database(name: str) -> None:
    asyncio.run(_drop(name, create=False))


def database_urls(name: str) -> tuple[str, str]:
    """(the hub's SQLAlchemy URL, an asyncpg DSN) of a scratch database."""
    where = f"{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    return f"postgresql+asyncpg://{where}", f"postgresql://{where}"


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no server log)"
    tail = "\n".join(text.splitlines()[-lines:])
    return f"--- last lines of {path}\n{tail}"


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """TERM, then KILL, a process started with its own group, and any worker left in it."""
    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):  # the group may be gone already
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; make sure no worker of its group survives it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return


def interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _stat_fields(path: Path) -> list[str] | None:
    """The fields of a /proc/<pid>/stat after the command name (None when it is gone)."""
    try:
        return path.read_text().rpartition(")")[2].split()
    except OSError:
        return None


def _cpu(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def cpu_seconds(pid: int | str) -> float:
    """User and system CPU time of a process so far (0 when it is gone)."""
    fields = _stat_fields(Path(f"/proc/{pid}/stat"))
    return 0.0 if fields is None else _cpu(fields)


def group_cpu_seconds(group: int) -> float:
    """CPU time (user + system) of every process in a process group: the hub's server and
    its workers. Steadier than throughput on a machine shared with other work."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = _stat_fields(stat)
        if fields is not None and int(fields[2]) == group:  # pgrp
            total += _cpu(fields)
    return total


def backend_cpu(database: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend connected to `database` (PostgreSQL
    runs on this machine), by pid; compare two readings with `cpu_since`."""

    async def backends() -> list[int]:
        conn = await asyncpg.connect(ADMIN_DSN)
        try:
            rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", database)
        finally:
            await conn.close()
        return [int(r["pid"]) for r in rows]

    return {pid: cpu_seconds(pid) for pid in asyncio.run(backends())}


def cpu_since(before: dict[int, float], after: dict[int, float]) -> float:
    """What the processes of `after` spent since `before`: a process new since counts whole,
    one gone since not at all (its earlier reading is not taken off anything)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())
