"""The picture worker's one write: where a figalization's picture is in its life.

The worker builds a `Database` and `SqlPictureRecords` and nothing more: it
has no business with the group commit, the outbox or the history's reads.

A picture recorded `ready` stays ready when its job comes again (Kafka is at
least once: the same object is drawn again, and the record is left as it was),
and `record` says so, so the worker counts redeliveries without a read first.
"""

from __future__ import annotations

from enum import Enum
from typing import Protocol

import sqlalchemy as sa

from app.domain.figalization import ImageStatus
from app.store.database import Database
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


class SqlPictureRecords:
    def __init__(self, database: Database) -> None:
        self._database = database

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
