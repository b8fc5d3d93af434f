"""The SQL store on both backends it supports: the same tests, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from app.domain.figalization import ImageStatus
from app.domain.image_job import ImageJob, JobMessage
from app.settings import Settings
from app.store.database import Database
from app.store.history import SqlHistory
from app.store.migrate import upgrade_async
from app.store.outbox import SqlOutbox, SweepScope, stale_query
from app.store.pictures import SqlPictureRecords
from app.store.tables import counter_table
from app.store.writes import Committed, FigalizationWriter
from tests.conftest import AppClient
from tests.integration.conftest import WriterFor
from tests.integration.history_samples import make


async def test_migrations_create_exactly_the_declared_schema(database: Database) -> None:
    async with database.connect() as connection:
        differences = await connection.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), SQLModel.metadata)
        )
    assert differences == []


async def test_a_stored_figalization_reads_back_equal(
    writer: FigalizationWriter, history: SqlHistory
) -> None:
    figalization, job = make(1)
    await writer.add(figalization, job)
    assert await history.get(figalization.id) == figalization
    assert await history.get("unknown") is None


async def test_latest_and_total_follow_what_was_stored(
    writer: FigalizationWriter, history: SqlHistory
) -> None:
    assert await history.latest() is None
    assert await history.total() == 0
    for n in range(3):
        await writer.add(*make(n))
    latest = await history.latest()
    assert latest is not None
    assert latest.id == make(2)[0].id
    assert await history.total() == 3


async def test_the_total_is_read_from_a_fixed_number_of_counter_rows(
    database: Database, writer: FigalizationWriter, history: SqlHistory
) -> None:
    for n in range(40):
        await writer.add(*make(n))
    async with database.connect() as connection:
        rows = await connection.scalar(sa.select(sa.func.count()).select_from(counter_table))
    assert rows == 16  # O(1): the count never scans the figalization table
    assert await history.total() == 40


async def test_pages_go_newest_first_before_a_cursor(
    writer: FigalizationWriter, history: SqlHistory
) -> None:
    for n in range(5):
        await writer.add(*make(n))
    first = await history.page(limit=2, before=None)
    assert [f.id for f in first] == [make(4)[0].id, make(3)[0].id]
    rest = await history.page(limit=10, before=first[-1].id)
    assert [f.id for f in rest] == [make(n)[0].id for n in (2, 1, 0)]


async def test_200_parallel_figalizations_make_200_rows_and_a_total_of_200(
    writer: FigalizationWriter, history: SqlHistory
) -> None:
    await asyncio.gather(*(writer.add(*make(n)) for n in range(200)))
    assert await history.total() == 200
    assert len(await history.page(limit=500, before=None)) == 200


async def test_each_batch_tells_what_it_committed_in_outbox_order(
    writer_for: WriterFor, outbox: SqlOutbox
) -> None:
    committed: list[Committed] = []
    writer = writer_for(committed.append)
    await asyncio.gather(*(writer.add(*make(n)) for n in range(50)))  # one or more batches
    seqs = [seq for batch in committed for seq in batch.seqs]
    jobs = [job for batch in committed for job in batch.jobs]
    assert sorted(job.key for job in jobs) == [make(n)[0].id for n in range(50)]
    assert all(len(batch.seqs) == len(batch.jobs) for batch in committed)
    assert seqs == sorted(seqs)  # batches commit one after another, rows in their order
    swept: list[JobMessage] = []

    async def publish(messages: Sequence[JobMessage]) -> None:
        swept.extend(messages)

    await outbox.sweep(publish, limit=100)
    assert swept == jobs  # what each batch reported is exactly what its rows hold
    messages = {figalization.id: job.message() for figalization, job in map(make, range(50))}
    assert jobs == [messages[job.key] for job in jobs]


async def test_the_picture_status_is_recorded(
    database: Database, writer: FigalizationWriter, history: SqlHistory
) -> None:
    figalization, job = make(1)
    await writer.add(figalization, job)
    await SqlPictureRecords(database).record(figalization.id, ImageStatus.READY, "x.png")
    stored = await history.get(figalization.id)
    assert stored is not None
    assert (stored.image_status, stored.image_key) == (ImageStatus.READY, "x.png")


async def test_newest_with_result_finds_the_newest_of_equal_results(
    writer: FigalizationWriter, history: SqlHistory
) -> None:
    await writer.add(*make(1))
    await writer.add(*make(2))
    await writer.add(*make(3, result="Фигот"))
    newest = await history.newest_with_result("Фигосипед")
    assert newest is not None
    assert newest.id == make(2)[0].id


async def test_postgresql_refuses_a_value_too_long_for_its_column_instead_of_cutting_it(
    postgres_url: str,
) -> None:
    settings = Settings(database_url=postgres_url)
    await upgrade_async(settings)
    database = Database.from_settings(settings)
    writer = FigalizationWriter.for_database(database, committed=lambda _: None)
    figalization, job = make(1)
    try:
        with pytest.raises(asyncpg.exceptions.StringDataRightTruncationError):
            await writer.add(dataclasses.replace(figalization, scheme="s" * 33), job)
        assert await SqlHistory(database).total() == 0
    finally:
        await writer.close()
        await database.close()


async def test_every_stored_figalization_has_its_job_in_the_outbox_in_order(
    writer: FigalizationWriter, outbox: SqlOutbox
) -> None:
    for n in range(3):
        await writer.add(*make(n))
    assert await outbox.backlog() == 3
    published: list[JobMessage] = []

    async def publish(messages: Sequence[JobMessage]) -> None:
        published.extend(messages)

    assert await outbox.sweep(publish) == 3
    assert [message.key for message in published] == [make(n)[0].id for n in range(3)]
    assert [message.request_id for message in published] == [f"request-{n}" for n in range(3)]
    assert ImageJob.decode(published[0].payload) == make(0)[1]
    assert await outbox.backlog() == 0


async def test_a_sweep_takes_only_the_rows_in_its_scope(
    writer_for: WriterFor, outbox: SqlOutbox
) -> None:
    committed: list[Committed] = []
    writer = writer_for(committed.append)
    for n in range(4):
        await writer.add(*make(n))
    seqs = [seq for batch in committed for seq in batch.seqs]
    published: list[JobMessage] = []

    async def publish(messages: Sequence[JobMessage]) -> None:
        published.extend(messages)

    long_ago = datetime.now(UTC) - timedelta(hours=1)
    assert await outbox.sweep(publish, SweepScope(long_ago, let_go_up_to=seqs[1])) == 2
    assert [message.key for message in published] == [make(0)[0].id, make(1)[0].id]
    in_a_minute = datetime.now(UTC) + timedelta(minutes=1)
    assert await outbox.sweep(publish, SweepScope(in_a_minute)) == 2  # older than the cutoff
    assert await outbox.backlog() == 0


async def test_a_failed_publish_keeps_the_jobs_in_the_outbox(
    writer: FigalizationWriter, outbox: SqlOutbox
) -> None:
    await writer.add(*make(1))

    async def broken(messages: Sequence[JobMessage]) -> None:
        raise ConnectionError("broker down")

    with pytest.raises(ConnectionError):
        await outbox.sweep(broken)
    assert await outbox.backlog() == 1


async def test_pictures_pending_too_long_are_found_and_requeued_once(
    writer: FigalizationWriter, outbox: SqlOutbox
) -> None:
    figalization, job = make(1)
    await writer.add(figalization, job)

    async def drop(messages: Sequence[JobMessage]) -> None:
        return None  # the broker "lost" them

    await outbox.sweep(drop)
    later = datetime.now(UTC) + timedelta(minutes=5)
    stale = await outbox.stale_pending(queued_before=later, limit=10)
    assert [f.id for f in stale] == [figalization.id]
    await outbox.requeue([job])
    assert await outbox.backlog() == 1
    # while its job waits in the outbox it is not stale again
    assert await outbox.stale_pending(queued_before=later, limit=10) == []


async def test_the_stale_picture_query_is_an_anti_join_on_the_outbox_index(
    postgres_url: str,
) -> None:
    """PostgreSQL planned the old NOT IN as a rescan of the outbox per candidate once its
    estimates moved (4.8 s a round in a bench; its timeout then tripped the outage rule)."""
    settings = Settings(database_url=postgres_url)
    await upgrade_async(settings)
    database = Database.from_settings(settings)
    old = datetime.now(UTC) - timedelta(hours=1)
    try:
        async with database.connect(write=True) as connection:
            await connection.execute(
                sa.text(
                    "INSERT INTO figalization (id, phrase, scheme, result, created_at,"
                    " image_status, image_queued_at) SELECT lpad(n::text, 26, '0'), 'кот',"
                    " 'figa', 'фигот', CAST(:old AS timestamptz), 'pending',"
                    " CAST(:old AS timestamptz) + n * interval '1 ms'"
                    " FROM generate_series(1, 20000) AS n"
                ),
                {"old": old},
            )
            await connection.execute(  # the first 15,000 still have their job waiting
                sa.text(
                    "INSERT INTO image_job_outbox (figalization_id, payload, created_at)"
                    " SELECT lpad(n::text, 26, '0'), '\\x00', :old"
                    " FROM generate_series(1, 15000) AS n"
                ),
                {"old": old},
            )
            await connection.execute(sa.text("ANALYZE figalization"))
            await connection.execute(sa.text("ANALYZE image_job_outbox"))
            query = stale_query(datetime.now(UTC), 100)
            compiled = query.compile(
                dialect=connection.dialect, compile_kwargs={"literal_binds": True}
            )
            plan = "\n".join((await connection.execute(sa.text(f"EXPLAIN {compiled}"))).scalars())
        assert "Anti Join" in plan, plan
        assert "SubPlan" not in plan, plan
        stale = await SqlOutbox(database).stale_pending(queued_before=datetime.now(UTC), limit=3)
        assert [f.id for f in stale] == [str(n).zfill(26) for n in (15001, 15002, 15003)]
    finally:
        await database.close()


async def test_200_parallel_requests_through_the_api_store_200_and_count_200(
    postgres_url: str, app_client: AppClient, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=postgres_url, image_store_url=str(tmp_path / "images"), metrics_port=0
    )
    await upgrade_async(settings)
    client = await app_client(settings)
    answers = await asyncio.gather(
        *(client.post("/api/v2/figalizations", json={"phrase": f"кот {n}"}) for n in range(200))
    )
    assert [answer.status_code for answer in answers] == [201] * 200
    assert (await client.get("/api/v2/stats")).json() == {"total": 200}
    stored = (await client.get("/api/v2/history", params={"limit": 100})).json()
    rest = await client.get("/api/v2/history", params={"limit": 100, "before": stored["next"]})
    ids = {item["id"] for item in stored["items"] + rest.json()["items"]}
    assert ids == {answer.json()["id"] for answer in answers}
