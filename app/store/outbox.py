"""The transactional outbox of image jobs, and the reconciler's queries.

A job row is written in the same transaction as its figalization (see
`history.SqlHistory`), so a job exists exactly when the figalization does,
whatever the broker is doing. Rows leave the table only after the queue
accepted their jobs (at least once). Two ways lead there: the relay
publishes the jobs it was just handed from memory and then `forget`s their
rows, and `relay` sweeps rows nobody handed over (another replica crashed,
the broker was down) in `seq` order. `FOR UPDATE SKIP LOCKED` lets every app
replica sweep without two of them sending the same rows at once; SQLite,
single-process, ignores it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.figalization import Figalization, ImageStatus
from app.domain.image_job import ImageJob
from app.jobs.queue import Message
from app.store.history import SqlHistory, job_message, outbox_values, to_figalization
from app.store.tables import figalization_table, outbox_table

Publish = Callable[[Sequence[Message]], Awaitable[None]]


class SqlOutbox:
    def __init__(self, history: SqlHistory) -> None:
        self._history = history

    async def relay(
        self,
        publish: Publish,
        *,
        limit: int = 500,
        created_before: datetime | None = None,
        or_seq_up_to: int = 0,
    ) -> int:
        """Publish up to `limit` waiting jobs, in `seq` order; return how many left.

        With `created_before`, only rows older than that or numbered up to
        `or_seq_up_to`: the others may be on their way through a relay's memory."""
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
        if created_before is not None:
            query = query.where(
                sa.or_(
                    outbox_table.c.created_at < created_before,
                    outbox_table.c.seq <= or_seq_up_to,
                )
            )
        failure: Exception | None = None
        async with self._history.connect(write=True) as connection:
            rows = (await connection.execute(query)).all()
            if not rows:
                return 0
            try:
                await publish(
                    [Message(row.figalization_id, row.payload, row.request_id) for row in rows]
                )
            except Exception as error:  # the queue's failure, not the database's: rows stay
                failure = error
            else:
                await _delete(connection, [row.seq for row in rows])
        if failure is not None:
            raise failure
        return len(rows)

    async def forget(self, seqs: Sequence[int]) -> None:
        """Delete the rows whose jobs the queue has accepted."""
        if seqs:
            async with self._history.connect(write=True) as connection:
                await _delete(connection, seqs)

    async def backlog(self) -> int:
        async with self._history.connect() as connection:
            count = await connection.scalar(sa.select(sa.func.count()).select_from(outbox_table))
        return int(count or 0)

    async def stale_pending(self, *, queued_before: datetime, limit: int) -> list[Figalization]:
        """Pictures still pending long after their job was queued: the job may be lost."""
        waiting = sa.select(outbox_table.c.figalization_id)
        query = (
            figalization_table.select()
            .where(figalization_table.c.image_status == ImageStatus.PENDING.value)
            .where(figalization_table.c.image_queued_at < queued_before)
            .where(figalization_table.c.id.not_in(waiting))
            .order_by(figalization_table.c.image_queued_at)
            .limit(limit)
        )
        async with self._history.connect() as connection:
            rows = (await connection.execute(query)).mappings().all()
        return [to_figalization(row) for row in rows]

    async def requeue(self, jobs: Sequence[ImageJob]) -> None:
        """Queue jobs again and restart their pending clock, in one transaction."""
        if not jobs:
            return
        now = datetime.now(UTC)
        ids = [job.figalization_id for job in jobs]
        async with self._history.connect(write=True) as connection:
            await connection.execute(
                outbox_table.insert(),
                [outbox_values(job_message(job), now) for job in jobs],
            )
            await connection.execute(
                figalization_table.update()
                .where(figalization_table.c.id.in_(ids))
                .values(image_queued_at=now)
            )


# One prepared plan whatever the count: an `IN (...)` list is compiled again for each length.
_DELETE_ANY = sa.text("DELETE FROM image_job_outbox WHERE seq = ANY(:seqs)")
_DELETE_IN = outbox_table.delete().where(
    outbox_table.c.seq.in_(sa.bindparam("seqs", expanding=True))
)


async def _delete(connection: AsyncConnection, seqs: Sequence[int]) -> None:
    postgres = connection.dialect.name == "postgresql"
    await connection.execute(_DELETE_ANY if postgres else _DELETE_IN, {"seqs": list(seqs)})
