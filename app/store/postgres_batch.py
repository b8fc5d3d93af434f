"""The group commit's PostgreSQL batch: one statement, one round trip, on its own connection.

Through SQLAlchemy's pool a batch cost four round trips (the pool's pre-ping,
BEGIN, the statement, COMMIT) and a few hundred microseconds of Python, which
at thousands of figalizations a second was a tenth of the app's CPU. A single
statement is a transaction by itself, so the one writer task sends only that
statement, every column an array parameter, on a connection of its own
(`own_connection`).

The statement is built once, at import, from the table definitions in
`tables.py`: column names, and each parameter's type as the PostgreSQL
dialect compiles the column's. Parameters are named, and their `$n` are
handed out by code, so a column added or renamed cannot leave a stale
position behind. The text never changes, so asyncpg (which caches prepared
statements by text) plans it once per connection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from app.domain.figalization import Figalization, ImageStatus
from app.domain.image_job import JobMessage
from app.store.database import Database
from app.store.own_connection import OwnConnection
from app.store.tables import counter_table, figalization_table, outbox_table

_DIALECT = sa.make_url("postgresql+asyncpg://").get_dialect()()  # the engine's own dialect
_quote = _DIALECT.identifier_preparer.quote


@dataclass(frozen=True, slots=True)
class Statement:
    """SQL with asyncpg's positional parameters, and the name behind each position."""

    sql: str
    names: tuple[str, ...]

    def arguments(self, values: Mapping[str, object]) -> list[object]:
        return [values[name] for name in self.names]


class _Positions:
    """Hands out `$n::type` for named parameters: a name's first use takes the next number."""

    def __init__(self) -> None:
        self._types: dict[str, str] = {}  # in the order of first use: position = index + 1

    def __call__(self, name: str, column: sa.Column[Any], *, array: bool = False) -> str:
        sql_type = _parameter_type(column) + ("[]" if array else "")
        known = self._types.setdefault(name, sql_type)
        if known != sql_type:
            raise ValueError(f"parameter {name!r} is used as {known} and as {sql_type}")
        return f"${list(self._types).index(name) + 1}::{sql_type}"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._types)


def _parameter_type(column: sa.Column[Any]) -> str:
    """The column's type without a length: an explicit cast to VARCHAR(n) would cut a
    value short silently, where the insert itself refuses one that is too long."""
    column_type = column.type
    if isinstance(column_type, sa.TypeDecorator):  # SQLModel's AutoString: a String inside
        column_type = column_type.impl_instance
    if isinstance(column_type, sa.String) and column_type.length is not None:
        column_type = sa.String()
    return str(column_type.compile(dialect=_DIALECT))


def _insert_from_arrays(
    table: sa.Table,
    positions: _Positions,
    *,
    arrays: Mapping[str, str],
    scalars: Mapping[str, str],
    in_order: bool = False,
) -> str:
    """`INSERT … SELECT` of one row per array element; `arrays` and `scalars` map a column to
    its parameter (a scalar is the same for every row). `in_order` keeps the arrays' order."""
    columns = ", ".join(_quote(column) for column in [*arrays, *scalars])
    values = [_quote(column) for column in arrays]
    values += [positions(name, table.c[column]) for column, name in scalars.items()]
    unnest = ", ".join(
        positions(name, table.c[column], array=True) for column, name in arrays.items()
    )
    aliases = ", ".join([_quote(column) for column in arrays] + (["position"] if in_order else []))
    return (
        f"INSERT INTO {_quote(table.name)} ({columns})\n"  # noqa: S608  (tables.py names) # nosec B608
        f"    SELECT {', '.join(values)}\n"
        f"    FROM unnest({unnest}){' WITH ORDINALITY' if in_order else ''} AS rows ({aliases})"
        + ("\n    ORDER BY position" if in_order else "")
    )


def _batch_statement() -> Statement:
    """The figalizations, their counter increment and their image jobs, returning the jobs'
    outbox row numbers (for the relay, which deletes a row once its job is published)."""
    positions = _Positions()
    figalizations = _insert_from_arrays(
        figalization_table,
        positions,
        arrays={
            "id": "ids",
            "phrase": "phrases",
            "scheme": "schemes",
            "result": "results",
            "created_at": "created",
        },
        scalars={"image_status": "status", "image_queued_at": "now"},
    )
    value, slot = counter_table.c.value, counter_table.c.slot
    counted = (
        f"UPDATE {_quote(counter_table.name)}"  # noqa: S608  (tables.py names) # nosec B608
        f" SET {_quote(value.name)} = {_quote(value.name)} + {positions('count', value)}"
        f" WHERE {_quote(slot.name)} = {positions('slot', slot)}"
    )
    jobs = _insert_from_arrays(
        outbox_table,
        positions,
        arrays={"figalization_id": "ids", "payload": "payloads", "request_id": "request_ids"},
        scalars={"created_at": "now"},
        in_order=True,  # the seqs come back in the batch's order
    )
    sql = (
        f"WITH figalizations AS (\n    {figalizations}\n), counted AS (\n    {counted}\n)\n"
        f"{jobs}\nRETURNING {_quote(outbox_table.c.seq.name)}"
    )
    return Statement(sql, positions.names)


BATCH = _batch_statement()


class PostgresBatch:
    def __init__(self, database: Database) -> None:
        self._connection = OwnConnection(database)

    async def write(
        self,
        figalizations: Sequence[Figalization],
        jobs: Sequence[JobMessage],
        *,
        now: datetime,
        slot: int,
    ) -> list[int]:
        """Store one batch of new figalizations (their pictures pending) in one statement;
        return its outbox row numbers."""
        values = {
            "now": now,
            "status": ImageStatus.PENDING.value,
            "ids": [f.id for f in figalizations],
            "phrases": [f.phrase for f in figalizations],
            "schemes": [f.scheme for f in figalizations],
            "results": [f.result for f in figalizations],
            "created": [f.created_at for f in figalizations],
            "count": len(figalizations),
            "slot": slot,
            "payloads": [job.payload for job in jobs],
            "request_ids": [job.request_id for job in jobs],
        }
        rows = await self._connection.fetch(BATCH.sql, *BATCH.arguments(values))
        return [row[0] for row in rows]

    async def start(self) -> None:
        """Connect and prepare the statement before the first request needs them: that costs
        several round trips, which on a distant database would make the first batch slow."""
        await self._connection.prepare(BATCH.sql)

    async def close(self) -> None:
        await self._connection.close()
