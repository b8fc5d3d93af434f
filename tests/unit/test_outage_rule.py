"""One rule tells an outage from a bug, for SQLAlchemy's errors and raw asyncpg's alike,
and after an outage the database fails fast for a moment. No server needed: the errors
are built as the driver and SQLAlchemy raise them."""

from __future__ import annotations

import time

import asyncpg  # type: ignore[import-untyped]
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from app.outages import StoreUnavailable
from app.store import database as database_module
from app.store.database import Database, is_outage


def wrapped(error: Exception, kind: type[sa.exc.DBAPIError] = sa.exc.DBAPIError) -> Exception:
    """The way SQLAlchemy's asyncpg adapter raises a driver error: its own, caused by it."""
    adapter_error = Exception(str(error))
    adapter_error.__cause__ = error
    return kind("SELECT 1", None, adapter_error)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        asyncpg.exceptions.TooManyConnectionsError("too many clients"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        sa.exc.TimeoutError("QueuePool limit reached"),
        wrapped(OSError("network down"), sa.exc.OperationalError),
        wrapped(asyncpg.exceptions.CannotConnectNowError("starting up")),
    ],
)
def test_the_database_being_away_is_an_outage(error: Exception) -> None:
    assert is_outage(error)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.UndefinedTableError('relation "x" does not exist'),
        asyncpg.exceptions.StringDataRightTruncationError("value too long"),
        wrapped(asyncpg.exceptions.UniqueViolationError("duplicate key"), sa.exc.IntegrityError),
        wrapped(asyncpg.exceptions.UndefinedColumnError("no column"), sa.exc.ProgrammingError),
        ValueError("a bug"),
    ],
)
def test_wrong_sql_or_data_is_not_an_outage(error: Exception) -> None:
    assert not is_outage(error)


def test_an_invalidated_connection_is_an_outage() -> None:
    error = wrapped(ValueError("anything"))
    assert isinstance(error, sa.exc.DBAPIError)
    error.connection_invalidated = True
    assert is_outage(error)


def database() -> Database:
    return Database(create_async_engine("sqlite+aiosqlite://"))  # connects only when used


def test_an_outage_becomes_unavailable_and_the_next_calls_fail_fast() -> None:
    store = database()
    with pytest.raises(StoreUnavailable, match="Connection refused"), store.guard():
        raise ConnectionRefusedError(111, "Connection refused")
    with pytest.raises(StoreUnavailable, match="a moment ago"), store.guard():
        pytest.fail("a call during the fail-fast moment must not reach the database")


def test_after_the_fail_fast_moment_calls_go_through_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(database_module, "FAIL_FAST_SECONDS", 0.01)
    store = database()
    with pytest.raises(StoreUnavailable), store.guard():
        raise TimeoutError
    time.sleep(0.02)
    with store.guard():
        pass


def test_a_bug_passes_the_guard_unchanged_and_is_no_outage() -> None:
    store = database()
    with pytest.raises(ValueError, match="a bug"), store.guard():
        raise ValueError("a bug")
    with store.guard():
        pass  # the next call is not failed fast


async def test_a_background_statement_out_of_time_fails_alone_and_trips_nothing() -> None:
    store = database()
    for timeout in (
        TimeoutError(),
        sa.exc.TimeoutError("QueuePool limit reached"),
        wrapped(TimeoutError()),  # the driver's, as SQLAlchemy's adapter raises it
    ):
        with pytest.raises(StoreUnavailable, match="no answer in time"):
            async with store.connect(background=True):
                raise timeout
    async with store.connect() as connection:  # the requests' calls are not failed fast
        assert (await connection.scalar(sa.text("SELECT 1"))) == 1


async def test_a_background_call_refused_trips_the_rule_for_every_caller() -> None:
    store = database()
    with pytest.raises(StoreUnavailable, match="Connection refused"):
        async with store.connect(background=True):
            raise ConnectionRefusedError(111, "Connection refused")
    with pytest.raises(StoreUnavailable, match="a moment ago"):
        async with store.connect():
            pytest.fail("the refusal tripped the rule for every caller")
    with pytest.raises(StoreUnavailable, match="a moment ago"):
        async with store.connect(background=True):
            pytest.fail("background work fails fast during the moment too")
    await store.close()
