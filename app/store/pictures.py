"""The picture worker's one write: where a figalization's picture is in its life.

The worker builds a `Database` and its picture records and nothing more: it
has no business with the figalizations' writes, the outbox or the history's
reads. On PostgreSQL the records are batched (`BatchedPictureRecords`).

A picture recorded `ready` stays ready when its job comes again (Kafka is at
least once: the same object is drawn again, and the record is left as it was),
and `record` says so, so the worker counts redeliveries without a read first.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

import sqlalchemy as sa

from app.domain.figalization import ImageStatus
from app.outages import StoreUnavailable
from app.store.database import Database
from app.store.group_commit import GroupCommit, Unconfirmed
from app.store.own_connection import OwnConnection
from app.store.tables import figalization_table


class Recorded(Enum):
    """What `record` found: the usual first outcome, or a job that came again."""

    RECORDED = "recorded"
    ALREADY_READY = "already ready"  # a `ready` outcome again: left as it was
    NO_SUCH_FIGALIZATION = "no such figalization"


class PictureRecords(Protocol):
    async def record(self, figalization_id: str, status: ImageStatus, key: str | None) -> Recorded:
        """Store the picture's status and object key (`ready` on `ready` changes nothing);
        `StoreUnavailable` when the database is away (the caller decides whether to wait)."""
        ...

    async def close(self) -> None:
        """Let go of what the records hold outside the database's pool."""
        ...


class SqlPictureRecords:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def close(self) -> None:
        """Nothing of its own: it uses the database's pool."""

    async def record(self, figalization_id: str, status: ImageStatus, key: str | None) -> Recorded:
        table = figalization_table
        update = table.update().where(table.c.id == figalization_id)
        if status is ImageStatus.READY:
            update = update.where(table.c.image_status != ImageStatus.READY.value)
        async with self._database.connect(write=True) as connection:
            updated = await connection.execute(
                update.values(image_status=status.value, image_key=key)
            )
            if updated.rowcount:  # one statement in the usual case; a read only when not
                return Recorded.RECORDED
            found = await connection.scalar(
                sa.select(table.c.image_status).where(table.c.id == figalization_id)
            )
        return Recorded.NO_SUCH_FIGALIZATION if found is None else Recorded.ALREADY_READY


@dataclass(eq=False, slots=True)
class _Record:
    figalization_id: str
    status: str
    key: str | None
    outcome: Recorded | None = None


# Measured on the bench machine, interleaved: two workers on a backlog made 399 and 444
# pictures/s with 3 turns against 349 and 339 without (the workers' CPU per picture 4.0–4.4
# against 5.0–5.2 ms): fewer statements for PostgreSQL and for the worker.
GATHER_TURNS = 3


class BatchedPictureRecords:
    """The worker's records on PostgreSQL: the statuses recorded meanwhile, one statement.

    A worker makes a few pictures at once; each recorded through the pool cost a pooled
    transaction (checkout, BEGIN, UPDATE, COMMIT). Here the records that wait while one is
    written share the next statement (`GroupCommit`, on a connection of the writer's own),
    with the same rules as `SqlPictureRecords`: `ready` on `ready` changes nothing and says
    so, an unknown figalization says so (one more read, only then), an outage or no answer
    within the database timeout is `StoreUnavailable`. One id twice in a batch (its job came
    again while the first was being made) is written in a second statement, in order.
    """

    def __init__(self, database: Database) -> None:
        self._connection = OwnConnection(database)
        self._timeout = database.timeout_seconds
        # The worker draws on its loop: a turn is often a whole card (~4 ms), and the records
        # of the jobs drawn meanwhile join the statement. Idle, a record is written at once.
        self._group: GroupCommit[_Record] = GroupCommit(self._write, gather_turns=GATHER_TURNS)

    async def record(self, figalization_id: str, status: ImageStatus, key: str | None) -> Recorded:
        record = _Record(figalization_id, status.value, key)
        try:
            await self._group.submit(record, within=self._timeout)
        except Unconfirmed as error:
            raise StoreUnavailable(str(error)) from error
        assert record.outcome is not None  # noqa: S101  (set by the write that returned)
        return record.outcome

    async def close(self) -> None:
        await self._group.close()
        await self._connection.close()

    async def _write(self, records: list[_Record]) -> None:
        while records:
            seen: set[str] = set()
            now: list[_Record] = []
            later: list[_Record] = []
            for record in records:
                (later if record.figalization_id in seen else now).append(record)
                seen.add(record.figalization_id)
            await self._write_once(now)
            records = later

    async def _write_once(self, records: list[_Record]) -> None:
        ids = [record.figalization_id for record in records]
        rows = await self._connection.fetch(
            _RECORD, ids, [record.status for record in records], [r.key for r in records]
        )
        updated = {row[0] for row in rows}
        missing = [i for i in ids if i not in updated]
        found = (
            {row[0] for row in await self._connection.fetch(_FOUND, missing)} if missing else set()
        )
        for record in records:
            if record.figalization_id in updated:
                record.outcome = Recorded.RECORDED
            elif record.figalization_id in found:
                record.outcome = Recorded.ALREADY_READY
            else:
                record.outcome = Recorded.NO_SUCH_FIGALIZATION


_TABLE = figalization_table.name
_RECORD = f"""
UPDATE {_TABLE} AS f SET image_status = r.status, image_key = r.key
FROM unnest($1::varchar[], $2::varchar[], $3::varchar[]) AS r (id, status, key)
WHERE f.id = r.id AND NOT (r.status = 'ready' AND f.image_status = 'ready')
RETURNING f.id
"""  # noqa: S608  (the table's name from tables.py) # nosec B608
_FOUND = f"SELECT id FROM {_TABLE} WHERE id = ANY($1::varchar[])"  # noqa: S608 # nosec B608


def picture_records(database: Database) -> PictureRecords:
    """The worker's records for this database: batched on PostgreSQL, one at a time on
    SQLite (one process, one writer: nothing to share a statement with)."""
    if database.dialect_name == "postgresql":
        return BatchedPictureRecords(database)
    return SqlPictureRecords(database)
