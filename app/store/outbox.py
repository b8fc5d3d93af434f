"""The transactional outbox of image jobs, and the reconciler's queries.

A job row is written in the same transaction as its figalization (see
`writes.py`), so a job exists exactly when the figalization does, whatever
the broker is doing. Rows leave the table only after the queue accepted
their jobs (at least once). Two ways lead there: the relay publishes the
jobs it was just handed from memory and then deletes their rows
(`delete_published`), and `sweep` publishes rows nobody holds (another
replica crashed, the broker was down) in `seq` order. Which rows nobody
holds is the relay's knowledge, handed in as a `SweepScope`. `FOR UPDATE
SKIP LOCKED` lets every app replica sweep without two of them sending the
same rows at once; SQLite, single-process, ignores it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.figalization import Figalization, ImageStatus
from app.domain.image_job import ImageJob, JobMessage
from app.store.database import Database
from app.store.history import to_figalization
from app.store.own_connection import OwnConnection
from app.store.tables import figalization_table, outbox_table

Publish = Callable[[Sequence[JobMessage]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SweepScope:
    """The outbox rows a sweep may take: those no relay can still be publishing from memory.

    A row qualifies when it was written before `written_before` (whoever held it
    has published it or died by then) or its `seq` is at most `let_go_up_to`
    (the sweeping relay let it go). The default scope is every row."""

    written_before: datetime | None = None
    let_go_up_to: int = 0


EVERY_ROW = SweepScope()


def outbox_row(message: JobMessage, written_at: datetime) -> dict[str, Any]:
    """The outbox row of one job, as the SQLite writes and `requeue` insert it."""
    return {
        "figalization_id": message.key,
        "payload": message.payload,
        "request_id": message.request_id,
        "created_at": written_at,
    }


class SqlOutbox:
    def __init__(self, database: Database) -> None:
        self._database = database
        # The relay deletes published rows with every few batches: on PostgreSQL one
        # statement on a connection of its own, not a pooled transaction (`own_connection`).
        postgres = database.dialect_name == "postgresql"
        self._deletes = OwnConnection(database) if postgres else None

    async def sweep(
        self, publish: Publish, scope: SweepScope = EVERY_ROW, *, limit: int = 500
    ) -> int:
        """Publish up to `limit` waiting jobs in `scope`, in `seq` order, and delete their
        rows; return how many left. A failed publish leaves the rows and raises."""
        failure: Exception | None = None
        async with self._database.connect(write=True) as connection:
            rows = (await connection.execute(_waiting(scope, limit))).all()
            if not rows:
                return 0
            try:
                await publish(
                    [JobMessage(row.figalization_id, row.payload, row.request_id) for row in rows]
                )
            except Exception as error:  # the queue's failure, not the database's: rows stay
                failure = error
            else:
                await _delete(connection, [row.seq for row in rows])
        if failure is not None:
            raise failure
        return len(rows)

    async def delete_published(self, seqs: Sequence[int]) -> None:
        """Delete the rows whose jobs the queue has accepted."""
        if not seqs:
            return
        if self._deletes is not None:
            await self._deletes.fetch(_DELETE_PUBLISHED, list(seqs))
            return
        async with self._database.connect(write=True) as connection:
            await _delete(connection, seqs)

    async def close(self) -> None:
        """Let go of the delete connection (the pool is the `Database`'s)."""
        if self._deletes is not None:
            await self._deletes.close()

    async def backlog(self) -> int:
        async with self._database.connect(background=True) as connection:
            count = await connection.scalar(sa.select(sa.func.count()).select_from(outbox_table))
        return int(count or 0)

    async def oldest_written_at(self) -> datetime | None:
        """When the oldest waiting job was written, None when the outbox is empty.

        The row with the lowest `seq` (rows are numbered as they are written): one row
        of the primary key's index, however long the backlog — cheap enough for a gauge.
        """
        query = sa.select(outbox_table.c.created_at).order_by(outbox_table.c.seq).limit(1)
        async with self._database.connect(background=True) as connection:
            written: datetime | None = await connection.scalar(query)
        if written is not None and written.tzinfo is None:  # SQLite: naive, stored as UTC
            written = written.replace(tzinfo=UTC)
        return written

    async def stale_pending(self, *, queued_before: datetime, limit: int) -> list[Figalization]:
        """Pictures still pending long after their job was queued: the job may be lost."""
        async with self._database.connect(background=True) as connection:
            rows = (await connection.execute(stale_query(queued_before, limit))).mappings().all()
        return [to_figalization(row) for row in rows]

    async def requeue(self, jobs: Sequence[ImageJob]) -> list[int]:
        """Queue jobs again and restart their pending clock, in one transaction; return
        their new rows' `seq`s in the order of `jobs`, so that the caller can hand them to
        the relay (rows it is not handed wait out the relay's hand-off grace)."""
        if not jobs:
            return []
        now = datetime.now(UTC)
        ids = [job.figalization_id for job in jobs]
        insert = outbox_table.insert().returning(outbox_table.c.seq, sort_by_parameter_order=True)
        async with self._database.connect(write=True, background=True) as connection:
            result = await connection.execute(
                insert, [outbox_row(job.message(), now) for job in jobs]
            )
            seqs = list(result.scalars())
            await connection.execute(
                figalization_table.update()
                .where(figalization_table.c.id.in_(ids))
                .values(image_queued_at=now)
            )
        return seqs


def stale_query(queued_before: datetime, limit: int) -> sa.Select[Any]:
    """ "No job of its own still waits in the outbox" as NOT EXISTS on the outbox's index,
    an anti-join. The NOT IN it replaces was planned, once the estimates moved, as a rescan
    of the outbox for every candidate row: seconds a round under load."""
    waiting = sa.exists().where(outbox_table.c.figalization_id == figalization_table.c.id)
    return (
        figalization_table.select()
        .where(figalization_table.c.image_status == ImageStatus.PENDING.value)
        .where(figalization_table.c.image_queued_at < queued_before)
        .where(~waiting)
        .order_by(figalization_table.c.image_queued_at)
        .limit(limit)
    )


def _waiting(scope: SweepScope, limit: int) -> sa.Select[Any]:
    query = (
        sa.select(
            outbox_table.c.seq,
            outbox_table.c.figalization_id,
            outbox_table.c.payload,
            outbox_table.c.request_id,
        )
        .order_by(outbox_table.c.seq)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if scope.written_before is None:
        return query
    return query.where(
        sa.or_(
            outbox_table.c.created_at < scope.written_before,
            outbox_table.c.seq <= scope.let_go_up_to,
        )
    )


# One prepared plan whatever the count: an `IN (...)` list is compiled again for each length.
_DELETE_ANY = outbox_table.delete().where(
    outbox_table.c.seq == sa.any_(sa.bindparam("seqs", type_=postgresql.ARRAY(sa.BigInteger)))
)
# The same statement as asyncpg's text (`... = ANY ($1::BIGINT[])`), compiled once.
_DELETE_PUBLISHED = str(
    _DELETE_ANY.compile(dialect=sa.make_url("postgresql+asyncpg://").get_dialect()())
)
_DELETE_IN = outbox_table.delete().where(
    outbox_table.c.seq.in_(sa.bindparam("seqs", expanding=True))
)


async def _delete(connection: AsyncConnection, seqs: Sequence[int]) -> None:
    postgres = connection.dialect.name == "postgresql"
    await connection.execute(_DELETE_ANY if postgres else _DELETE_IN, {"seqs": list(seqs)})
