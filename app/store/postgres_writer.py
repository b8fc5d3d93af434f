"""The group commit's own PostgreSQL connection: one statement, one round trip a batch.

Through SQLAlchemy's pool a batch cost four round trips (the pool's pre-ping,
BEGIN, the statement, COMMIT) and a few hundred microseconds of Python, which
at thousands of figalizations a second was a tenth of the app's CPU. A single
statement is a transaction by itself, so the one writer task keeps one asyncpg
connection of its own and sends only that statement: a plan prepared once,
every column an array parameter. A connection that failed is thrown away and
made again for the next batch; `SqlHistory` decides whether a failure means
the database is away.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]

# The figalizations, their counter increment and their image jobs, returning the jobs'
# outbox row numbers (for the relay, which deletes a row once its job is published).
BATCH_SQL = """
WITH figalizations AS (
    INSERT INTO figalization
        (id, phrase, scheme, result, created_at, image_status, image_queued_at)
    SELECT id, phrase, scheme, result, created_at, 'pending', $1
    FROM unnest($2::varchar[], $3::text[], $4::varchar[], $5::text[], $6::timestamptz[])
        AS rows (id, phrase, scheme, result, created_at)
), counted AS (
    UPDATE figalization_counter SET value = value + $7 WHERE slot = $8
)
INSERT INTO image_job_outbox (figalization_id, payload, request_id, created_at)
SELECT id, payload, request_id, $1
FROM unnest($2::varchar[], $9::bytea[], $10::varchar[]) WITH ORDINALITY
    AS rows (id, payload, request_id, position)
ORDER BY position
RETURNING seq
"""

# Errors that mean "the database is away or refusing connections", not "our SQL is wrong".
OUTAGES: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)


class PostgresBatchWriter:
    def __init__(self, connect_kwargs: dict[str, Any]) -> None:
        self._connect_kwargs = connect_kwargs
        self._connection: Any = None  # asyncpg.Connection, made on first use

    async def write(
        self,
        *,
        now: datetime,
        ids: Sequence[str],
        phrases: Sequence[str],
        schemes: Sequence[str],
        results: Sequence[str],
        created: Sequence[datetime],
        payloads: Sequence[bytes],
        request_ids: Sequence[str],
        slot: int,
    ) -> list[int]:
        """Store one batch; return its outbox row numbers."""
        connection = self._connection
        if connection is None or connection.is_closed():
            connection = self._connection = await asyncpg.connect(**self._connect_kwargs)
        try:
            rows = await connection.fetch(
                BATCH_SQL,
                now,
                ids,
                phrases,
                schemes,
                results,
                created,
                len(ids),
                slot,
                payloads,
                request_ids,
            )
        except BaseException:
            self._connection = None
            connection.terminate()  # in an unknown state (or gone): never reuse it
            raise
        return [row[0] for row in rows]

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            await connection.close(timeout=2)
