"""The write path: a new figalization, its count and its image job, committed together.

`FigalizationWriter.add` hands the figalization to a `GroupCommit`, so
concurrent requests share one transaction, and returns once it is committed.
Each batch goes to the database in its dialect's cheapest way —
`SqliteBatch` (three statements through SQLAlchemy Core in one transaction)
or `PostgresBatch` (one statement on its own connection) — and what it
committed, the jobs with their outbox row numbers, goes to `committed` (the
relay's hand-off), so nothing has to read the jobs back. This module never
publishes a job itself, nor knows who does.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

from app.domain.figalization import Figalization
from app.domain.image_job import ImageJob, JobMessage
from app.metrics import GROUP_COMMIT_BATCH
from app.outages import StoreUnavailable
from app.store.database import Database
from app.store.group_commit import GroupCommit, Unconfirmed
from app.store.outbox import outbox_row
from app.store.postgres_batch import PostgresBatch
from app.store.tables import COUNTER_SLOTS, counter_table, figalization_table, outbox_table

log = logging.getLogger(__name__)


class Committed(NamedTuple):
    """One committed batch's image jobs and their outbox row numbers, in the same order."""

    seqs: list[int]
    jobs: list[JobMessage]


class BatchWrite(Protocol):
    async def write(
        self,
        figalizations: Sequence[Figalization],
        jobs: Sequence[JobMessage],
        *,
        now: datetime,
        slot: int,
    ) -> list[int]:
        """Commit the figalizations, `len(figalizations)` more in counter row `slot`, and the
        jobs' outbox rows (written at `now`); return the rows' `seq`s in the jobs' order."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class FigalizationWriter:
    def __init__(
        self,
        batch: BatchWrite,
        *,
        committed: Callable[[Committed], None],
        wait_seconds: float | None = None,
    ) -> None:
        self._batch = batch
        self._committed = committed
        self._wait_seconds = wait_seconds
        self._group: GroupCommit[tuple[Figalization, ImageJob]] = GroupCommit(self._write)

    @classmethod
    def for_database(
        cls, database: Database, *, committed: Callable[[Committed], None]
    ) -> FigalizationWriter:
        """The writer with its database's batch; each committed batch goes to `committed`."""
        batch = PostgresBatch(database) if database.dialect_name == "postgresql" else None
        return cls(
            batch or SqliteBatch(database),
            committed=committed,
            wait_seconds=database.timeout_seconds,
        )

    async def add(self, figalization: Figalization, job: ImageJob) -> None:
        """Return once the figalization and its job are committed; `StoreUnavailable` if not
        (also when not confirmed within the database timeout: it may still be committed,
        and then its picture is made like any other's — the outbox row is swept)."""
        try:
            await self._group.submit((figalization, job), within=self._wait_seconds)
        except Unconfirmed as error:
            raise StoreUnavailable(str(error)) from error

    async def start(self) -> None:
        """Get the batch ready (connected, statement prepared); a database that is away now
        only means the first batch connects, as after any outage."""
        try:
            await self._batch.start()
        except StoreUnavailable as error:
            log.warning("writer not ready at start (it connects on first use): %s", error)

    async def close(self) -> None:
        """Commit what is queued, then let go of the writer's connection (not the database)."""
        await self._group.close()
        await self._batch.close()

    async def _write(self, batch: list[tuple[Figalization, ImageJob]]) -> None:
        GROUP_COMMIT_BATCH.observe(len(batch))
        slot = random.randrange(COUNTER_SLOTS)  # noqa: S311  (spreads writers, not a secret)
        jobs = [job.message() for _, job in batch]
        seqs = await self._batch.write(
            [figalization for figalization, _ in batch], jobs, now=datetime.now(UTC), slot=slot
        )
        self._committed(Committed(seqs, jobs))


class SqliteBatch:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def write(
        self,
        figalizations: Sequence[Figalization],
        jobs: Sequence[JobMessage],
        *,
        now: datetime,
        slot: int,
    ) -> list[int]:
        async with self._database.connect(write=True) as connection:
            await connection.execute(
                figalization_table.insert(), [row_values(f, queued_at=now) for f in figalizations]
            )
            result = await connection.execute(
                outbox_table.insert().returning(outbox_table.c.seq),
                [outbox_row(job, now) for job in jobs],
            )
            await connection.execute(
                counter_table.update()
                .where(counter_table.c.slot == slot)
                .values(value=counter_table.c.value + len(figalizations))
            )
            return list(result.scalars())

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


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
