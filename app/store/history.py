"""Figalization history: the one SQL implementation for SQLite and PostgreSQL.

`History` is the interface the service layer sees. `SqlHistory` stores a
figalization, its counter increment and its image job (the outbox row) in one
transaction, batched across concurrent requests by `GroupCommit`. Any
database failure surfaces as `StoreUnavailable`, and after one the store
fails fast for a moment instead of making every request wait for a timeout.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.domain.figalization import Figalization, ImageStatus
from app.domain.image_job import ImageJob
from app.store.group_commit import GroupCommit
from app.store.tables import COUNTER_SLOTS, counter_table, figalization_table, outbox_table

FAIL_FAST_SECONDS = 1.0


class StoreUnavailable(Exception):
    """The database cannot be reached or refused the work right now."""


class History(Protocol):
    async def add(self, figalization: Figalization, job: ImageJob) -> None: ...
    async def get(self, figalization_id: str) -> Figalization | None: ...
    async def page(self, *, limit: int, before: str | None) -> list[Figalization]: ...
    async def latest(self) -> Figalization | None: ...
    async def total(self) -> int: ...
    async def newest_with_result(self, result: str) -> Figalization | None: ...
    async def record_image(
        self, figalization_id: str, status: ImageStatus, key: str | None
    ) -> None: ...
    async def ping(self) -> None: ...


class SqlHistory:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer: GroupCommit[tuple[Figalization, ImageJob]] = GroupCommit(self._write)
        self._down_until = 0.0

    @asynccontextmanager
    async def connect(self, *, write: bool = False) -> AsyncIterator[AsyncConnection]:
        """A connection (in a transaction when `write`), with failures as `StoreUnavailable`."""
        if time.monotonic() < self._down_until:
            raise StoreUnavailable("database was unreachable a moment ago")
        try:
            opener = self._engine.begin() if write else self._engine.connect()
            async with opener as connection:
                yield connection
        except (sa.exc.DBAPIError, sa.exc.TimeoutError, OSError, TimeoutError) as error:
            if not _is_outage(error):
                raise  # a bug (bad SQL, a constraint), not the database being away
            self._down_until = time.monotonic() + FAIL_FAST_SECONDS
            raise StoreUnavailable(str(error).splitlines()[0]) from error

    async def add(self, figalization: Figalization, job: ImageJob) -> None:
        await self._writer.submit((figalization, job))

    async def close(self) -> None:
        await self._writer.close()
        await self._engine.dispose()

    async def _write(self, batch: list[tuple[Figalization, ImageJob]]) -> None:
        now = datetime.now(UTC)
        slot = random.randrange(COUNTER_SLOTS)  # noqa: S311  (spreads writers, not a secret)
        async with self.connect(write=True) as connection:
            if connection.dialect.name == "postgresql":
                await connection.execute(_POSTGRES_BATCH, _postgres_batch(batch, now, slot))
                return
            await connection.execute(
                figalization_table.insert(), [row_values(f, queued_at=now) for f, _ in batch]
            )
            await connection.execute(outbox_table.insert(), [job_values(j, now) for _, j in batch])
            await connection.execute(
                counter_table.update()
                .where(counter_table.c.slot == slot)
                .values(value=counter_table.c.value + len(batch))
            )

    async def get(self, figalization_id: str) -> Figalization | None:
        query = figalization_table.select().where(figalization_table.c.id == figalization_id)
        return await self._one(query)

    async def page(self, *, limit: int, before: str | None) -> list[Figalization]:
        query = figalization_table.select().order_by(figalization_table.c.id.desc()).limit(limit)
        if before is not None:
            query = query.where(figalization_table.c.id < before)
        async with self.connect() as connection:
            rows = (await connection.execute(query)).mappings().all()
        return [to_figalization(row) for row in rows]

    async def latest(self) -> Figalization | None:
        query = figalization_table.select().order_by(figalization_table.c.id.desc()).limit(1)
        return await self._one(query)

    async def total(self) -> int:
        async with self.connect() as connection:
            value = await connection.scalar(sa.select(sa.func.sum(counter_table.c.value)))
        return int(value or 0)

    async def newest_with_result(self, result: str) -> Figalization | None:
        query = (
            figalization_table.select()
            .where(figalization_table.c.result == result)
            .order_by(figalization_table.c.id.desc())
            .limit(1)
        )
        return await self._one(query)

    async def record_image(
        self, figalization_id: str, status: ImageStatus, key: str | None
    ) -> None:
        async with self.connect(write=True) as connection:
            await connection.execute(
                figalization_table.update()
                .where(figalization_table.c.id == figalization_id)
                .values(image_status=status.value, image_key=key)
            )

    async def ping(self) -> None:
        async with self.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))

    async def _one(self, query: sa.Select[Any]) -> Figalization | None:
        async with self.connect() as connection:
            row = (await connection.execute(query)).mappings().first()
        return None if row is None else to_figalization(row)


# PostgreSQL: the same three writes as one statement with array parameters, so a batch
# costs one round trip and one prepared plan, and no Python work per row and statement.
_POSTGRES_BATCH = sa.text(
    """
    WITH figalizations AS (
        INSERT INTO figalization
            (id, phrase, scheme, result, created_at, image_status, image_queued_at)
        SELECT id, phrase, scheme, result, created_at, 'pending', :now
        FROM unnest(
            CAST(:ids AS varchar[]), CAST(:phrases AS text[]), CAST(:schemes AS varchar[]),
            CAST(:results AS text[]), CAST(:created AS timestamptz[])
        ) AS rows (id, phrase, scheme, result, created_at)
    ), jobs AS (
        INSERT INTO image_job_outbox (figalization_id, payload, request_id, created_at)
        SELECT id, payload, request_id, :now
        FROM unnest(
            CAST(:ids AS varchar[]), CAST(:payloads AS bytea[]), CAST(:request_ids AS varchar[])
        ) WITH ORDINALITY AS rows (id, payload, request_id, position)
        ORDER BY position
    )
    UPDATE figalization_counter SET value = value + :count WHERE slot = :slot
    """
)


def _postgres_batch(
    batch: list[tuple[Figalization, ImageJob]], now: datetime, slot: int
) -> dict[str, Any]:
    return {
        "now": now,
        "ids": [f.id for f, _ in batch],
        "phrases": [f.phrase for f, _ in batch],
        "schemes": [f.scheme for f, _ in batch],
        "results": [f.result for f, _ in batch],
        "created": [f.created_at for f, _ in batch],
        "payloads": [job.encode() for _, job in batch],
        "request_ids": [job.request_id for _, job in batch],
        "count": len(batch),
        "slot": slot,
    }


def job_values(job: ImageJob, now: datetime) -> dict[str, Any]:
    return {
        "figalization_id": job.figalization_id,
        "payload": job.encode(),
        "request_id": job.request_id,
        "created_at": now,
    }


def _is_outage(error: Exception) -> bool:
    """Connection-level failures and timeouts: the database is away, not wrong."""
    if isinstance(error, sa.exc.DBAPIError):
        return error.connection_invalidated or isinstance(
            error, sa.exc.OperationalError | sa.exc.InterfaceError
        )
    return True


def row_values(figalization: Figalization, *, queued_at: datetime) -> dict[str, Any]:
    return {
        "id": figalization.id,
        "phrase": figalization.phrase,
        "scheme": figalization.scheme,
        "result": figalization.result,
        "created_at": figalization.created_at,
        "image_status": figalization.image_status.value,
        "image_key": figalization.image_key,
        "image_queued_at": queued_at,
    }


def to_figalization(row: Any) -> Figalization:
    created_at: datetime = row["created_at"]
    if created_at.tzinfo is None:  # SQLite gives back naive datetimes; they were stored as UTC
        created_at = created_at.replace(tzinfo=UTC)
    return Figalization(
        id=row["id"],
        phrase=row["phrase"],
        scheme=row["scheme"],
        result=row["result"],
        created_at=created_at,
        image_status=ImageStatus(row["image_status"]),
        image_key=row["image_key"],
    )
