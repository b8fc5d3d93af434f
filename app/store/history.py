"""Figalization history: the one SQL implementation for SQLite and PostgreSQL.

`History` is the interface the service layer sees. `SqlHistory` stores a
figalization, its counter increment and its image job (the outbox row) in one
transaction, batched across concurrent requests by `GroupCommit`, and then
hands the batch's jobs, with their outbox row numbers, to whoever publishes
them (the relay), so nothing has to read them back from the database. Any
database failure surfaces as `StoreUnavailable`, and after one the store
fails fast for a moment instead of making every request wait for a timeout.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.domain.figalization import Figalization, ImageStatus
from app.domain.image_job import ImageJob
from app.jobs.queue import Message
from app.settings import Settings
from app.store.engine import create_engine, postgres_connect_kwargs
from app.store.group_commit import GroupCommit
from app.store.postgres_writer import OUTAGES, PostgresBatchWriter
from app.store.tables import COUNTER_SLOTS, counter_table, figalization_table, outbox_table

FAIL_FAST_SECONDS = 1.0

JobsCommitted = Callable[[list[int], list[Message]], None]
"""Told a committed batch's outbox row numbers (`seq`) and its jobs."""


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
    def __init__(
        self, engine: AsyncEngine, *, batch_writer: PostgresBatchWriter | None = None
    ) -> None:
        if engine.dialect.name == "postgresql" and batch_writer is None:
            raise ValueError("PostgreSQL needs a batch writer: use SqlHistory.from_settings")
        self._engine = engine
        self._batch_writer = batch_writer
        self._writer: GroupCommit[tuple[Figalization, ImageJob]] = GroupCommit(self._write)
        self._down_until = 0.0
        self._jobs_committed: JobsCommitted = lambda _seqs, _jobs: None

    @classmethod
    def from_settings(cls, settings: Settings) -> SqlHistory:
        if settings.uses_sqlite:
            return cls(create_engine(settings))
        engine = create_engine(settings)
        writer = PostgresBatchWriter(postgres_connect_kwargs(engine, settings))
        return cls(engine, batch_writer=writer)

    def hand_committed_jobs_to(self, listener: JobsCommitted) -> None:
        self._jobs_committed = listener

    @asynccontextmanager
    async def connect(self, *, write: bool = False) -> AsyncIterator[AsyncConnection]:
        """A connection (in a transaction when `write`), with failures as `StoreUnavailable`."""
        self._fail_fast()
        try:
            opener = self._engine.begin() if write else self._engine.connect()
            async with opener as connection:
                yield connection
        except (sa.exc.DBAPIError, sa.exc.TimeoutError, OSError, TimeoutError) as error:
            if not _is_outage(error):
                raise  # a bug (bad SQL, a constraint), not the database being away
            raise self._unavailable(error) from error

    def _fail_fast(self) -> None:
        if time.monotonic() < self._down_until:
            raise StoreUnavailable("database was unreachable a moment ago")

    def _unavailable(self, error: BaseException) -> StoreUnavailable:
        """Remember the outage (fail fast for a moment) and say what happened."""
        self._down_until = time.monotonic() + FAIL_FAST_SECONDS
        return StoreUnavailable(str(error).splitlines()[0] if str(error) else repr(error))

    async def add(self, figalization: Figalization, job: ImageJob) -> None:
        await self._writer.submit((figalization, job))

    async def close(self) -> None:
        await self._writer.close()
        if self._batch_writer is not None:
            await self._batch_writer.close()
        await self._engine.dispose()

    async def _write(self, batch: list[tuple[Figalization, ImageJob]]) -> None:
        now = datetime.now(UTC)
        slot = random.randrange(COUNTER_SLOTS)  # noqa: S311  (spreads writers, not a secret)
        jobs = [job_message(job) for _, job in batch]
        if self._batch_writer is not None:
            seqs = await self._write_postgres(self._batch_writer, batch, jobs, now, slot)
        else:
            async with self.connect(write=True) as connection:
                await connection.execute(
                    figalization_table.insert(), [row_values(f, queued_at=now) for f, _ in batch]
                )
                result = await connection.execute(
                    outbox_table.insert().returning(outbox_table.c.seq),
                    [outbox_values(message, now) for message in jobs],
                )
                await connection.execute(
                    counter_table.update()
                    .where(counter_table.c.slot == slot)
                    .values(value=counter_table.c.value + len(batch))
                )
                seqs = list(result.scalars())
        self._jobs_committed(seqs, jobs)

    async def _write_postgres(
        self,
        writer: PostgresBatchWriter,
        batch: list[tuple[Figalization, ImageJob]],
        jobs: list[Message],
        now: datetime,
        slot: int,
    ) -> list[int]:
        self._fail_fast()
        try:
            return await writer.write(
                now=now,
                ids=[f.id for f, _ in batch],
                phrases=[f.phrase for f, _ in batch],
                schemes=[f.scheme for f, _ in batch],
                results=[f.result for f, _ in batch],
                created=[f.created_at for f, _ in batch],
                payloads=[message.payload for message in jobs],
                request_ids=[message.request_id for message in jobs],
                slot=slot,
            )
        except OUTAGES as error:
            raise self._unavailable(error) from error

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


def job_message(job: ImageJob) -> Message:
    return Message(job.figalization_id, job.encode(), job.request_id)


def outbox_values(message: Message, now: datetime) -> dict[str, Any]:
    return {
        "figalization_id": message.key,
        "payload": message.payload,
        "request_id": message.request_id,
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
