"""Which driver errors mean "the database is unavailable" (503, retry) and which are bugs (500),
including the ones the end-to-end outage tests cannot provoke on a shared server (too many
clients, a server shutting down or starting up)."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import exc as sa

from ordersync.db.availability import DatabaseUnavailable, connecting, is_unavailable


def wrapped(driver_error: BaseException, statement: str | None = "SELECT 1") -> sa.DBAPIError:
    """What SQLAlchemy raises around a driver error (the generic DBAPIError)."""
    try:
        raise sa.DBAPIError(statement, None, driver_error) from driver_error  # type: ignore[arg-type]
    except sa.DBAPIError as exc:
        return exc


UNAVAILABLE = [
    asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.exceptions.CannotConnectNowError("the database system is shutting down"),
    asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
    asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.exceptions.CrashShutdownError("terminating connection due to crash of another"),
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle"),
    asyncpg.exceptions.ConnectionFailureError("connection failure"),
    asyncpg.exceptions.ObjectNotInPrerequisiteStateError(
        'database "x" is not currently accepting connections'
    ),
    asyncpg.exceptions.InterfaceError("connection is closed"),
    asyncpg.exceptions.InterfaceError("pool is closing"),
    ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
    ConnectionResetError(104, "Connection reset by peer"),
    OSError(113, "No route to host"),
    sa.TimeoutError("QueuePool limit of size 10 overflow 0 reached, connection timed out"),
    sa.OperationalError("SELECT 1", None, Exception("database is locked")),  # type: ignore[arg-type]
    wrapped(asyncpg.exceptions.AdminShutdownError("terminating connection")),
    wrapped(asyncpg.exceptions.CannotConnectNowError("the database system is starting up")),
    DatabaseUnavailable("no connection"),
]

BUGS = [
    asyncpg.exceptions.UniqueViolationError("duplicate key"),
    asyncpg.exceptions.UndefinedTableError('relation "x" does not exist'),
    asyncpg.exceptions.InterfaceError("cannot perform operation: another operation is in progress"),
    wrapped(asyncpg.exceptions.SyntaxOrAccessError("syntax error")),
    FileNotFoundError(2, "No such file or directory"),
    ValueError("not a database error"),
]


@pytest.mark.parametrize("error", UNAVAILABLE, ids=lambda e: type(e).__name__)
def test_every_way_of_saying_the_database_is_away_is_unavailable(error: BaseException) -> None:
    assert is_unavailable(error)


@pytest.mark.parametrize("error", BUGS, ids=lambda e: type(e).__name__)
def test_errors_of_the_statement_or_the_code_are_not(error: BaseException) -> None:
    assert not is_unavailable(error)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.exceptions.InvalidPasswordError("password authentication failed"),
        TimeoutError(),
        OSError("Multiple exceptions: [Errno 111] Connect call failed"),
        wrapped(asyncpg.exceptions.PostgresError("anything"), statement=None),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_any_failure_to_connect_is_database_unavailable(error: BaseException) -> None:
    with pytest.raises(DatabaseUnavailable) as raised:
        async with connecting():
            raise error
    assert raised.value.__cause__ is error


async def test_a_bug_while_connecting_is_not_disguised() -> None:
    with pytest.raises(ValueError):
        async with connecting():
            raise ValueError("a bug")
