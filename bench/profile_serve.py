"""`ordersync serve` under cProfile, for bench/cml_import.py --profile DIR.

Run as ``python bench/profile_serve.py DIR LABEL serve ...``: the main thread (the event loop:
the HTTP calls, the SQL statements' Python side and the waits on the database) is profiled as
a whole, and the catalog read-ahead thread (the file's parsing) on each batch it reads. When
the server stops (SIGTERM), both profiles are written to DIR/LABEL-{loop,reader}.prof and
their top entries to DIR/LABEL.txt.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import signal
import sys
from pathlib import Path
from typing import Any

TOP = 25


def _profile_reader(reader: cProfile.Profile) -> None:
    from ordersync.exchange import read_ahead

    original = read_ahead.ReadAhead._next

    def profiled(self: Any) -> Any:
        reader.enable()
        try:
            return original(self)
        finally:
            reader.disable()

    read_ahead.ReadAhead._next = profiled  # type: ignore[method-assign]


def _top(profile: cProfile.Profile, title: str) -> str:
    out = io.StringIO()
    out.write(f"=== {title}: by own time\n")
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("tottime").print_stats(TOP)
    out.write(f"=== {title}: by cumulative time\n")
    stats.sort_stats("cumulative").print_stats(TOP)
    return out.getvalue()


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main() -> int:
    where, label, *args = sys.argv[1:]
    folder = Path(where)
    folder.mkdir(parents=True, exist_ok=True)
    loop, reader = cProfile.Profile(), cProfile.Profile()
    _profile_reader(reader)
    from ordersync.entrypoints.cli import app

    # uvicorn raises the SIGTERM it caught again once it has shut down: let that end here.
    signal.signal(signal.SIGTERM, _exit)
    loop.enable()
    try:
        app(args, standalone_mode=False)
    finally:
        loop.disable()
        loop.dump_stats(folder / f"{label}-loop.prof")
        reader.dump_stats(folder / f"{label}-reader.prof")
        text = _top(loop, "event loop thread") + _top(reader, "read-ahead thread")
        (folder / f"{label}.txt").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
