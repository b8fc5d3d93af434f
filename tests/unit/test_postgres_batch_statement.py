"""The PostgreSQL batch statement is built from the table definitions: every column that
must be written is, every named parameter has exactly one position, and no cast can cut a
value short. Its behaviour against a real server is in test_history_store.py."""

from __future__ import annotations

import re

import sqlalchemy as sa

from app.store import postgres_batch
from app.store.postgres_batch import BATCH
from app.store.tables import figalization_table, outbox_table

INSERTS = dict(re.findall(r"INSERT INTO (\w+) \(([^)]*)\)", BATCH.sql))


def must_be_written(table: sa.Table) -> set[str]:
    """Columns with neither a default nor NULL allowed (an autoincrementing key fills itself)."""
    return {
        column.name
        for column in table.columns
        if not column.nullable
        and column.server_default is None
        and column.default is None
        and column is not table.autoincrement_column
    }


def test_the_statement_writes_every_column_without_a_default() -> None:
    for table in (figalization_table, outbox_table):
        written = {name.strip() for name in INSERTS[table.name].split(",")}
        assert must_be_written(table) <= written, table.name
        assert written <= set(table.columns.keys()), table.name


def test_each_named_parameter_has_one_position_and_every_position_is_used() -> None:
    positions = {int(number) for number in re.findall(r"\$(\d+)::", BATCH.sql)}
    assert positions == set(range(1, len(BATCH.names) + 1))
    assert len(set(BATCH.names)) == len(BATCH.names)


def test_arguments_follow_the_positions() -> None:
    values = {name: f"value of {name}" for name in BATCH.names}
    arguments = BATCH.arguments(values)
    assert arguments[BATCH.names.index("slot")] == "value of slot"
    assert len(arguments) == len(BATCH.names)


def test_no_parameter_is_cast_to_a_length_that_would_cut_it_short() -> None:
    assert re.search(r"::[A-Z ]+\(\d+\)", BATCH.sql) is None


def test_the_text_is_built_the_same_every_time_so_the_plan_is_prepared_once() -> None:
    assert postgres_batch._batch_statement() == BATCH
