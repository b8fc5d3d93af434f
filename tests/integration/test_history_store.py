"""The SQL store on both backends it supports: the same tests, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from app.domain.figalization import ImageStatus
from app.domain.image_job import ImageJob
from app.jobs.queue import Message
from app.settings import Settings
from app.store.history import SqlHistory
from app.store.migrate import upgrade_async
from app.store.outbox import SqlOutbox
from app.store.tables import counter_table
from tests.conftest import AppClient
from tests.integration.history_samples import make


async def test_migrations_create_exactly_the_declared_schema(history: SqlHistory) -> None:
    async with history.connect() as connection:
        differences = await connection.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), SQLModel.metadata)
        )
    assert differences == []


async def test_a_stored_figalization_reads_back_equal(history: SqlHistory) -> None:
    figalization, job = make(1)
    await history.add(figalization, job)
    assert await history.get(figalization.id) == figalization
    assert await history.get("unknown") is None


async def test_latest_and_total_follow_what_was_stored(history: SqlHistory) -> None:
    assert await history.latest() is None
    assert await history.total() == 0
    for n in range(3):
        await history.add(*make(n))
    latest = await history.latest()
    assert latest is not None
    assert latest.id == make(2)[0].id
    assert await history.total() == 3


async def test_the_total_is_read_from_a_fixed_number_of_counter_rows(history: SqlHistory) -> None:
    for n in range(40):
        await history.add(*make(n))
    async with history.connect() as connection:
        rows = await connection.scalar(sa.select(sa.func.count()).select_from(counter_table))
    assert rows == 16  # O(1): the count never scans the figalization table
    assert await history.total() == 40


async def test_pages_go_newest_first_before_a_cursor(history: SqlHistory) -> None:
    for n in range(5):
        await history.add(*make(n))
    first = await history.page(limit=2, before=None)
    assert [f.id for f in first] == [make(4)[0].id, make(3)[0].id]
    rest = await history.page(limit=10, before=first[-1].id)
    assert [f.id for f in rest] == [make(n)[0].id for n in (2, 1, 0)]


async def test_200_parallel_figalizations_make_200_rows_and_a_total_of_200(
    history: SqlHistory,
) -> None:
    await asyncio.gather(*(history.add(*make(n)) for n in range(200)))
    assert await history.total() == 200
    assert len(await history.page(limit=500, before=None)) == 200


async def test_the_picture_status_is_recorded(history: SqlHistory) -> None:
    figalization, job = make(1)
    await history.add(figalization, job)
    await history.record_image(figalization.id, ImageStatus.READY, "x.png")
    stored = await history.get(figalization.id)
    assert stored is not None
    assert (stored.image_status, stored.image_key) == (ImageStatus.READY, "x.png")


async def test_newest_with_result_finds_the_newest_of_equal_results(history: SqlHistory) -> None:
    await history.add(*make(1))
    await history.add(*make(2))
    await history.add(*make(3, result="Фигот"))
    newest = await history.newest_with_result("Фигосипед")
    assert newest is not None
    assert newest.id == make(2)[0].id


async def test_every_stored_figalization_has_its_job_in_the_outbox_in_order(
    history: SqlHistory,
) -> None:
    outbox = SqlOutbox(history)
    for n in range(3):
        await history.add(*make(n))
    assert await outbox.backlog() == 3
    published: list[Message] = []

    async def publish(messages: list[Message]) -> None:
        published.extend(messages)

    assert await outbox.relay(publish) == 3
    assert [message.key for message in published] == [make(n)[0].id for n in range(3)]
    assert [message.request_id for message in published] == [f"request-{n}" for n in range(3)]
    assert ImageJob.decode(published[0].payload) == make(0)[1]
    assert await outbox.backlog() == 0


async def test_a_failed_publish_keeps_the_jobs_in_the_outbox(history: SqlHistory) -> None:
    outbox = SqlOutbox(history)
    await history.add(*make(1))

    async def broken(messages: list[Message]) -> None:
        raise ConnectionError("broker down")

    with pytest.raises(ConnectionError):
        await outbox.relay(broken)
    assert await outbox.backlog() == 1


async def test_pictures_pending_too_long_are_found_and_requeued_once(history: SqlHistory) -> None:
    outbox = SqlOutbox(history)
    figalization, job = make(1)
    await history.add(figalization, job)

    async def drop(messages: list[Message]) -> None:
        return None  # the broker "lost" them

    await outbox.relay(drop)
    later = datetime.now(UTC) + timedelta(minutes=5)
    stale = await outbox.stale_pending(queued_before=later, limit=10)
    assert [f.id for f in stale] == [figalization.id]
    await outbox.requeue([job])
    assert await outbox.backlog() == 1
    # while its job waits in the outbox it is not stale again
    assert await outbox.stale_pending(queued_before=later, limit=10) == []


async def test_200_parallel_requests_through_the_api_store_200_and_count_200(
    postgres_url: str, app_client: AppClient, tmp_path: Path
) -> None:
    settings = Settings(database_url=postgres_url, image_store_url=str(tmp_path / "images"))
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
