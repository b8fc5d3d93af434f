"""Migrations are expand-only, so that rolling a release back needs no down-migration.

The deploy job migrates before the new pods roll out, and a failed rollout is
undone with `kubectl rollout undo` (.gitlab-ci.yml): in both cases the
previous release runs on the new schema. So every revision after the first
may only add — tables, columns that are nullable or have a server default,
indexes — and never drop, rename or narrow what the revision before it had;
removing something takes two releases (stop using it, then drop it).

Each database (SQLite and the session's PostgreSQL) is upgraded one revision
at a time; after each step the schema is compared with the one before, and
the previous revision's writes and reads — only the columns it knew — are
run against the new schema.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine

from app.store.migrate import alembic_config


@dataclass(frozen=True)
class Column:
    type: str
    length: int | None
    nullable: bool
    has_default: bool
    python_type: type | None


@dataclass(frozen=True)
class Table:
    columns: dict[str, Column]
    indexes: dict[str, tuple[str, ...]]
    unique: frozenset[tuple[str, ...]]
    foreign_keys: frozenset[tuple[tuple[str, ...], str]]


Schema = dict[str, Table]


def revisions(url: str) -> list[str]:
    """Every revision, oldest first."""
    script = ScriptDirectory.from_config(alembic_config(url))
    return [revision.revision for revision in reversed(list(script.walk_revisions()))]


def python_type(column_type: Any) -> type | None:
    try:
        kind: type = column_type.python_type
    except NotImplementedError:
        return None
    return kind


def describe(connection: sa.Connection) -> Schema:
    inspector = sa.inspect(connection)
    schema: Schema = {}
    for name in inspector.get_table_names():
        if name == "alembic_version":
            continue
        columns = {
            column["name"]: Column(
                type=type(column["type"]).__name__,
                length=getattr(column["type"], "length", None),
                nullable=bool(column["nullable"]),
                has_default=column.get("default") is not None,
                python_type=python_type(column["type"]),
            )
            for column in inspector.get_columns(name)
        }
        indexes = {i["name"]: tuple(i["column_names"]) for i in inspector.get_indexes(name)}
        unique = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(name)}
        unique |= {tuple(i["column_names"]) for i in inspector.get_indexes(name) if i["unique"]}
        foreign = {
            (tuple(f["constrained_columns"]), f["referred_table"])
            for f in inspector.get_foreign_keys(name)
        }
        schema[name] = Table(columns, indexes, frozenset(unique), frozenset(foreign))
    return schema


async def snapshot(url: str) -> Schema:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(describe)
    finally:
        await engine.dispose()


def contractions(before: Schema, after: Schema) -> Iterator[str]:
    """What the revision took away from or tightened for the previous release."""
    for name, old in before.items():
        new = after.get(name)
        if new is None:
            yield f"table {name} dropped or renamed"
            continue
        for column, was in old.columns.items():
            now = new.columns.get(column)
            if now is None:
                yield f"column {name}.{column} dropped or renamed"
            elif now.type != was.type:
                yield f"column {name}.{column} changed type {was.type} → {now.type}"
            elif was.length is not None and now.length is not None and now.length < was.length:
                yield f"column {name}.{column} narrowed {was.length} → {now.length}"
            elif was.nullable and not now.nullable:
                yield f"column {name}.{column} became NOT NULL"
        for column in new.columns.keys() - old.columns.keys():
            added = new.columns[column]
            if not added.nullable and not added.has_default:
                yield f"new column {name}.{column} is NOT NULL without a server default"
        for index in old.indexes.keys() - new.indexes.keys():
            yield f"index {index} on {name} dropped"
        for columns in new.unique - old.unique:
            yield f"new unique constraint on {name}{columns}: the previous release may violate it"
        for key in new.foreign_keys - old.foreign_keys:
            yield f"new foreign key on {name}{key[0]}: the previous release does not know it"


SAMPLES: dict[type, Any] = {
    str: "x",
    bytes: b"x",
    bool: True,
    datetime: datetime(2026, 12, 1, tzinfo=UTC),
}
_numbers = itertools.count(10_000)


def sample(column: Column) -> Any:
    if column.python_type is int:
        return next(_numbers)
    if column.python_type is str and column.length is not None and column.length < 8:
        return "x"
    if column.python_type is str:
        return f"old-{next(_numbers)}"
    return SAMPLES.get(column.python_type) if column.python_type else None


async def previous_release_writes_and_reads(url: str, before: Schema) -> None:
    """An INSERT and a SELECT of each table naming only the columns `before` had."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            for name, table in before.items():
                columns = list(table.columns)
                values = {column: sample(table.columns[column]) for column in columns}
                names = ", ".join(columns)
                binds = ", ".join(f":{column}" for column in columns)
                await connection.execute(
                    sa.text(f"INSERT INTO {name} ({names}) VALUES ({binds})"),  # noqa: S608
                    values,
                )
                await connection.execute(sa.text(f"SELECT {names} FROM {name}"))  # noqa: S608
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'expand.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def test_there_is_history_to_check(empty_database: str) -> None:
    assert len(revisions(empty_database)) >= 2, "nothing to compare: add a revision"


async def test_every_revision_only_expands_the_schema_of_the_one_before(
    empty_database: str,
) -> None:
    config = alembic_config(empty_database)
    steps = revisions(empty_database)
    await asyncio.to_thread(command.upgrade, config, steps[0])
    before = await snapshot(empty_database)
    for revision in steps[1:]:
        await asyncio.to_thread(command.upgrade, config, revision)
        after = await snapshot(empty_database)
        assert not list(contractions(before, after)), f"revision {revision} contracts the schema"
        await previous_release_writes_and_reads(empty_database, before)
        before = after


def test_the_rule_catches_a_contraction() -> None:
    # The comparison itself, on hand-made schemas: a drop, a NOT NULL column
    # without default and a narrowed column are caught; a nullable column is not.
    text = Column("VARCHAR", 64, nullable=False, has_default=False, python_type=str)
    old = {"t": Table({"a": text, "b": text}, {"ix_a": ("a",)}, frozenset(), frozenset())}
    grown = {
        "t": Table(
            {"a": text, "b": text, "c": Column("TEXT", None, True, False, str)},
            {"ix_a": ("a",), "ix_c": ("c",)},
            frozenset(),
            frozenset(),
        )
    }
    assert not list(contractions(old, grown))
    shrunk = {
        "t": Table(
            {
                "a": Column("VARCHAR", 26, nullable=False, has_default=False, python_type=str),
                "d": Column("INTEGER", None, nullable=False, has_default=False, python_type=int),
            },
            {},
            frozenset({("a",)}),
            frozenset(),
        )
    }
    found = list(contractions(old, shrunk))
    assert any("t.b dropped" in problem for problem in found)
    assert any("narrowed 64 → 26" in problem for problem in found)
    assert any("t.d is NOT NULL without a server default" in problem for problem in found)
    assert any("index ix_a" in problem for problem in found)
    assert any("unique constraint" in problem for problem in found)
