"""Engines for the embedded SQLite default and PostgreSQL, set up the same way for both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .search import SQLITE_LOWER, python_lower

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=30000",
)


READ_ONLY = "ordersync_read_only"


def is_sqlite_url(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, pool_size: int = 10, timeout_seconds: float = 10.0) -> AsyncEngine:
    """`timeout_seconds`: how long a caller waits for a pooled connection, and for a new
    one to be made, before the database counts as unavailable."""
    if is_sqlite_url(url):
        return _sqlite_engine(url, timeout_seconds)
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=timeout_seconds,
        pool_recycle=3600,
        connect_args={"timeout": timeout_seconds},
    )
    event.listen(engine.sync_engine, "checkout", _closed_connections_are_stale)
    return engine


def _closed_connections_are_stale(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection whose server went away (PostgreSQL restarted, or the session was
    terminated) is discarded at checkout and another one made, so the first request after a
    restart succeeds. asyncpg notices the server closing the socket by itself, so this costs
    no round trip, unlike pool_pre_ping."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def _sqlite_engine(url: str, timeout_seconds: float) -> AsyncEngine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, pool_size=5, max_overflow=5, pool_timeout=timeout_seconds)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" below issue the BEGIN, instead of the driver's deferred one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()
        # SQLite's lower() folds ASCII only: product search folds with Python's (search.py).
        dbapi_connection.create_function(SQLITE_LOWER, 1, python_lower, deterministic=True)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock at once: two writers never both read and then
        # deadlock on the upgrade to a write lock; the second one waits (busy_timeout).
        # Connections marked read-only take a plain (deferred) read transaction.
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine
