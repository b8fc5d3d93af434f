"""The database: its engine, and the one rule that tells an outage from a bug.

Every way to the database goes through `Database.guard()`: the SQLAlchemy
connections of the reads and of the SQLite writes (`connect`), and the
PostgreSQL group commit's own asyncpg connection (`connect_directly`). So one
classification (`is_outage`) decides, for SQLAlchemy's errors and asyncpg's
alike, whether the database is away — then the caller gets `StoreUnavailable`
and every call fails at once for `FAIL_FAST_SECONDS`, instead of each request
waiting for a timeout — or whether our SQL is wrong, which is raised as it is.
This module holds no table's SQL: the history, the writes, the outbox and the
picture records do.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.deadline import within
from app.outages import StoreUnavailable
from app.settings import Settings
from app.store.engine import create_engine, postgres_connect_kwargs

FAIL_FAST_SECONDS = 1.0
T = TypeVar("T")

# The driver's and the network's ways of saying "the database is away or refusing work".
_AWAY: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    sa.exc.TimeoutError,  # no pooled connection came free in time
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, starting up
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
)


def is_outage(error: BaseException) -> bool:
    """Connection-level failures and timeouts: the database is away, not wrong."""
    if isinstance(error, sa.exc.DBAPIError):
        if error.connection_invalidated or isinstance(
            error, sa.exc.OperationalError | sa.exc.InterfaceError
        ):
            return True
        # SQLAlchemy wraps asyncpg's error in its own; judge the driver's as on the raw path.
        driver_error = error.orig.__cause__ if error.orig is not None else None
        return driver_error is not None and isinstance(driver_error, _AWAY)
    return isinstance(error, _AWAY)


class Database:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        direct_connect_kwargs: dict[str, Any] | None = None,
        timeout_seconds: float = 2.0,
    ) -> None:
        self._engine = engine
        # FIGA_DB_TIMEOUT_SECONDS: the longest a request may wait for the database.
        self.timeout_seconds = timeout_seconds
        self._direct_connect_kwargs = direct_connect_kwargs
        self._guard = _OutageGuard()
        self._background_guard = self._guard.for_background()

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        engine = create_engine(settings)
        timeout = settings.db_timeout_seconds
        if settings.uses_sqlite:
            return cls(engine, timeout_seconds=timeout)
        direct = postgres_connect_kwargs(engine, settings)
        return cls(engine, direct_connect_kwargs=direct, timeout_seconds=timeout)

    @property
    def dialect_name(self) -> str:
        """`"sqlite"` or `"postgresql"`."""
        return str(self._engine.dialect.name)

    def guard(self) -> _OutageGuard:
        """`with database.guard():` fail fast after an outage, and turn one into
        `StoreUnavailable`; other errors pass unchanged."""
        return self._guard

    @asynccontextmanager
    async def connect(
        self, *, write: bool = False, background: bool = False
    ) -> AsyncIterator[AsyncConnection]:
        """A pooled connection (in a transaction when `write`), guarded; `background` for
        work no request waits on (see `_OutageGuard`)."""
        with self._background_guard if background else self._guard:
            opener = self._engine.begin() if write else self._engine.connect()
            async with opener as connection:
                yield connection

    async def read(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """`work` on a pooled connection, answered within `timeout_seconds` in all.

        Checkout, its ping, the statement and letting a broken connection go (the driver's
        graceful close) each have a timeout of their own, so over a link that drops packets
        their sum is what a request would wait. At the bound the caller gets
        `StoreUnavailable` and the read finishes (or fails) in the background."""

        async def run() -> T:
            async with self.connect() as connection:
                return await work(connection)

        try:
            return await within(self.timeout_seconds, run())
        except TimeoutError:
            # Not an outage by itself (a slow read is not a down database): if the link
            # is silent, the read's own timeout trips the guard in the background.
            raise StoreUnavailable(f"no answer within {self.timeout_seconds:g} s") from None

    async def connect_directly(self) -> Any:
        """A new asyncpg connection like the engine's, outside its pool (PostgreSQL only).

        Call it inside `guard()`: its failures are the raw driver's."""
        if self._direct_connect_kwargs is None:
            raise RuntimeError(f"no direct connections to {self.dialect_name}")
        return await asyncpg.connect(**self._direct_connect_kwargs)

    async def ping(self) -> None:
        async with self.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))

    async def close(self) -> None:
        await self._engine.dispose()


class _OutageGuard:
    """The outage rule as a plain context manager, reused: the write path enters it once a
    batch, and one `StoreUnavailable` makes the next calls fail at once for a moment.

    `for_background()` is the same rule for work no request waits on (the reconciler, the
    relay's gauges): it fails fast while the database is down, and a refused or broken
    connection trips the rule for everyone, but its own statement running out of time does
    not. Under load a slow background statement is the load, not an outage: one reconciler
    round past its timeout once made every request fail fast for a moment, and answer
    unstored. A database that is really away times out the requests' own statements, which
    trip it."""

    __slots__ = ("_down_until", "_timeouts_trip")

    def __init__(
        self, down_until: list[float] | None = None, *, timeouts_trip: bool = True
    ) -> None:
        self._down_until = down_until if down_until is not None else [0.0]  # shared
        self._timeouts_trip = timeouts_trip

    def for_background(self) -> _OutageGuard:
        return _OutageGuard(self._down_until, timeouts_trip=False)

    def trip(self) -> None:
        """An outage seen outside the guard: fail fast from now on, for a moment."""
        self._down_until[0] = time.monotonic() + FAIL_FAST_SECONDS

    def __enter__(self) -> None:
        if time.monotonic() < self._down_until[0]:
            raise StoreUnavailable("database was unreachable a moment ago")

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not self._timeouts_trip and _timed_out(error):
            raise StoreUnavailable(f"no answer in time ({error!r})") from error
        if isinstance(error, Exception) and is_outage(error):
            self.trip()
            message = str(error).splitlines()[0] if str(error) else repr(error)
            raise StoreUnavailable(message) from error


def _timed_out(error: BaseException | None) -> bool:
    """The driver's or the pool's timeout, raw or as SQLAlchemy wraps the driver's."""
    if isinstance(error, sa.exc.DBAPIError) and error.orig is not None:
        error = error.orig.__cause__
    return isinstance(error, TimeoutError | sa.exc.TimeoutError)
