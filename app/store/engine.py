"""The async engine: one per process, tuned per backend.

SQLite gets WAL and a busy timeout so concurrent requests wait instead of
failing; PostgreSQL gets short connect and statement timeouts so a database
that is down costs a request seconds, not minutes.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.settings import Settings


def create_engine(settings: Settings) -> AsyncEngine:
    if settings.uses_sqlite:
        path = settings.sqlite_path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            settings.database_url, connect_args={"timeout": settings.db_timeout_seconds}
        )
        sa.event.listen(engine.sync_engine, "connect", _tune_sqlite)
        return engine
    engine = create_async_engine(
        settings.database_url,
        # Per process; the connection budget (replicas × (size + overflow + 1 for the
        # group commit)) is sized against the server's limit in docs/capacity.md.
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_overflow,
        pool_pre_ping=True,  # a restarted server leaves dead pooled connections behind
        pool_timeout=settings.db_timeout_seconds,
        connect_args=_timeouts(settings),
    )
    sa.event.listen(engine.sync_engine, "handle_error", _timeout_is_a_disconnect)
    return engine


def postgres_connect_kwargs(engine: AsyncEngine, settings: Settings) -> dict[str, Any]:
    """`asyncpg.connect` arguments for a connection like the engine's, outside its pool."""
    _, kwargs = engine.dialect.create_connect_args(engine.url)
    for adapter_only in ("prepared_statement_cache_size", "prepared_statement_name_func"):
        kwargs.pop(adapter_only, None)  # SQLAlchemy's adapter options, not asyncpg's
    return {**kwargs, **_timeouts(settings)}


def _timeouts(settings: Settings) -> dict[str, float]:
    # One bound for connecting and for each statement: on a link that drops packets
    # silently nothing else ends the wait, and the group commit's statement holds every
    # request queued behind it (the statements here take milliseconds).
    return {
        "timeout": settings.db_timeout_seconds,
        "command_timeout": settings.db_timeout_seconds,
    }


def _timeout_is_a_disconnect(context: sa.engine.ExceptionContext) -> None:
    """A statement that timed out leaves its connection mid-conversation with a server that
    may not be listening (a link dropping packets): drop it from the pool instead of
    rolling it back over that link, which waits another timeout."""
    if isinstance(context.original_exception, TimeoutError | OSError):
        context.is_disconnect = True


def _tune_sqlite(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL is durable across app crashes
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
