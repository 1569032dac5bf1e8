"""When the database cannot be reached: one exception for every driver's way of saying so.

PostgreSQL restarting, refusing connections or killing a session shows up in many shapes:
SQLAlchemy's OperationalError, InterfaceError or a bare DBAPIError wrapping asyncpg's
AdminShutdownError (57P01) or ConnectionDoesNotExistError (08003); asyncpg's own errors on the
placement pool; CannotConnectNowError (57P03) while it starts; TooManyConnectionsError (53300);
"not currently accepting connections" (55000); ConnectionRefusedError from the socket; a pool
that has no connection to give within its timeout. `is_unavailable` recognises all of them,
anywhere in an exception's chain; connecting (`connecting`) turns them into
DatabaseUnavailable at the adapter's edge, which the API answers with 503 and Retry-After.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy import exc as sa

# SQLSTATEs that say the server, not the statement, is the problem: 08 connection exception,
# 53 insufficient resources (too many connections, out of memory, disk full), 57P01-57P05
# (admin shutdown, crash shutdown, cannot connect now, database dropped, idle session
# timeout), 55000 (the database is not accepting connections), 3D000 (no such database),
# 28 (authentication refused: the server is there, but not for us).
_UNAVAILABLE_CLASSES = ("08", "53", "57P", "28")
_UNAVAILABLE_STATES = frozenset({"55000", "3D000"})
_NETWORK_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ETIMEDOUT,
        errno.EADDRNOTAVAIL,
        errno.EPIPE,
    }
)
_CLOSED_TEXTS = (
    "connection is closed",
    "connection was closed",
    "pool is closing",
    "pool is closed",
)


class DatabaseUnavailable(Exception):
    """The database could not be reached or dropped the connection; retrying later may work."""


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc`, or anything in its chain, says the database is unreachable."""
    return any(_says_unavailable(e) for e in _chain(exc))


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _says_unavailable(e: BaseException) -> bool:
    if isinstance(e, DatabaseUnavailable | sa.TimeoutError | sa.DisconnectionError):
        return True
    if isinstance(e, sa.DBAPIError) and (
        e.connection_invalidated or isinstance(e, sa.OperationalError)
    ):
        return True
    if isinstance(e, asyncpg.PostgresError):
        state = str(getattr(e, "sqlstate", "") or "")
        return state in _UNAVAILABLE_STATES or state.startswith(_UNAVAILABLE_CLASSES)
    if isinstance(e, asyncpg.InterfaceError):
        return isinstance(e, asyncpg.ConnectionDoesNotExistError) or any(
            text in str(e) for text in _CLOSED_TEXTS
        )
    if isinstance(e, ConnectionError | socket.gaierror):
        return True
    return isinstance(e, OSError) and e.errno in _NETWORK_ERRNOS


@asynccontextmanager
async def connecting() -> AsyncIterator[None]:
    """Around opening a connection: any failure to get one is DatabaseUnavailable (a timeout or
    an OSError here can only be the database's)."""
    try:
        yield
    except DatabaseUnavailable:
        raise
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnavailable(f"cannot connect to the database: {_describe(exc)}") from exc
    except sa.SQLAlchemyError as exc:
        if is_unavailable(exc) or (isinstance(exc, sa.DBAPIError) and exc.statement is None):
            raise DatabaseUnavailable(f"cannot connect to the database: {_describe(exc)}") from exc
        raise


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
