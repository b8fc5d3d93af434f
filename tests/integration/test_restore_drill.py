"""The restore drill of docs/operations.md, for real: base backup + archived WAL, restored to
a point in time, and the app on the restored database (issue 12 item 5).

A PostgreSQL with `archive_command` takes figalizations through the real app (in this
event loop, distributed mode: the Tansu broker, moto's S3, a `figachechnaya worker`
process). Then, in order: pictures drawn; a base backup; figalizations whose jobs went to
the broker but were never drawn (no worker); a restore point, and its time noted; more
figalizations, the "incident" to undo. A new data directory made from the backup replays
the archive up to the restore point (and, a second one, up to the time). On it:

- the rows before the target are there, those after are not; the counter equals the rows;
- the broker "lost its topic" (the app and worker use a new, empty one, as after a
  managed broker was rebuilt): the restored rows' jobs exist nowhere but in the database,
  and the reconciler queues again exactly the pending pictures — never one already drawn —
  so a worker draws them and every restored figalization has its picture;
- a picture recorded `ready` whose object was lost from the bucket as well is found by
  comparing the rows with the objects and marked with deploy/backup/requeue-missing.sql,
  as docs/operations.md says; the reconciler queues it and it is drawn again.

The compose backup layer's archive settings and deploy/backup/restore.sh are what run
here (tests/services/postgres_backup.py). ~14 s on a quiet 2-core machine.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from app.asgi import create_app
from app.settings import Settings
from app.store.migrate import upgrade_async
from tests.conftest import figalize, wait_until
from tests.distributed import distributed_settings, process_env
from tests.services.kafka import KafkaService
from tests.services.postgres_backup import (
    BACKUP_LAYER,
    ArchivingPostgres,
    RecoveryTarget,
    RestoredPostgres,
    run_sql_file,
)
from tests.services.s3 import S3Service

FIGACHECHNAYA = str(Path(sys.executable).with_name("figachechnaya"))
RESTORE_POINT = "before-the-incident"
REQUEUED = "figachechnaya_image_jobs_requeued_total"
REQUEUE_MISSING = BACKUP_LAYER / "requeue-missing.sql"
EACH = 4  # figalizations per phase


@pytest.fixture(scope="module")
def archiving_postgres() -> Iterator[ArchivingPostgres]:
    server = ArchivingPostgres()
    try:
        server.start()
        yield server
    finally:
        server.close()


async def scalar(url: str, query: str) -> Any:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.scalar(sa.text(query))
    finally:
        await engine.dispose()


async def figalization_ids(url: str) -> set[str]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(sa.text("SELECT id FROM figalization"))
            return {row.id for row in rows}
    finally:
        await engine.dispose()


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(settings)) as client:
        yield client


async def statuses(client: AsyncTestClient[Any], ids: list[str]) -> dict[str, str]:
    answers = await asyncio.gather(*(client.get(f"/api/v2/figalizations/{i}") for i in ids))
    return {i: a.json()["image"]["status"] for i, a in zip(ids, answers, strict=True)}


async def wait_drawn(client: AsyncTestClient[Any], ids: list[str]) -> None:
    async def all_ready() -> bool:
        return set((await statuses(client, ids)).values()) == {"ready"}

    await wait_until(all_ready, within=30, every=0.2)


async def wait_outbox_empty(url: str) -> None:
    async def relayed() -> bool:
        return await scalar(url, "SELECT count(*) FROM image_job_outbox") == 0

    await wait_until(relayed, within=10, every=0.1)


async def phrases(client: AsyncTestClient[Any], word: str) -> list[str]:
    return [(await figalize(client, f"{word} {n}"))["id"] for n in range(EACH)]


async def test_a_restore_to_a_point_in_time_keeps_what_came_before_and_redraws_what_it_lacks(
    archiving_postgres: ArchivingPostgres, stack: Stack, kafka_topic: str
) -> None:
    source = archiving_postgres
    stack.database = await source.create_database()
    settings = stack.settings(source, kafka_topic)
    drawing = stack.start_worker(settings, "before")  # it starts while the schema is made
    await upgrade_async(settings)

    async with running_app(settings) as client:
        drawn = await phrases(client, "Велосипед")
        await wait_drawn(client, drawn)
        stack.stop_worker(drawing)
        backup = await asyncio.to_thread(source.base_backup, "base")
        queued = await phrases(client, "Самокат")  # published, never drawn: no worker
        await wait_outbox_empty(settings.database_url)
        point = await scalar(source.url, f"SELECT pg_create_restore_point('{RESTORE_POINT}')::text")
        point_time = await scalar(source.url, "SELECT clock_timestamp()::text")
        undone = await phrases(client, "Паровоз")  # the incident, after the target
        pending = await statuses(client, queued + undone)
        assert pending == dict.fromkeys(queued + undone, "pending")
    await archive_up_to(source, point)
    source.stop()  # the damaged server takes no part in the restore

    by_name = RestoredPostgres(source, backup, RecoveryTarget(name=RESTORE_POINT))
    by_time = RestoredPostgres(source, backup, RecoveryTarget(time=point_time))
    try:
        await asyncio.gather(asyncio.to_thread(by_name.start), asyncio.to_thread(by_time.start))
        for restored in (by_name, by_time):
            url = restored.url_for(stack.database)
            assert await figalization_ids(url) == set(drawn + queued), restored.describe()
            counted = await scalar(url, "SELECT sum(value) FROM figalization_counter")
            assert counted == len(drawn + queued)
            # Their jobs went out before the target: only the database knows them now.
            assert await scalar(url, "SELECT count(*) FROM image_job_outbox") == 0
        await serve_restored(stack, by_name, drawn=drawn, queued=queued, undone=undone)
    finally:
        by_name.close()
        by_time.close()


async def serve_restored(
    stack: Stack,
    restored: RestoredPostgres,
    *,
    drawn: list[str],
    queued: list[str],
    undone: list[str],
) -> None:
    """The app and a worker on the restored database and a broker that lost its topic; one
    drawn picture's object lost too, and marked for drawing again as the runbook says."""
    topic = f"t-{uuid.uuid4().hex}"
    await stack.kafka.create_topic(topic, partitions=4)
    settings = stack.settings(restored, topic, image_retry_seconds=1.0)
    assert stack.pictures() == set(drawn), "the restored pending ones were never drawn"
    damaged, kept = drawn[0], drawn[1:]
    stack.s3.filesystem().rm(f"{stack.bucket}/pictures/{damaged}.png")
    missing = sorted(set(drawn) - stack.pictures())
    marked = await asyncio.to_thread(
        run_sql_file, restored, stack.database, REQUEUE_MISSING, ids=",".join(missing)
    )
    assert marked.strip() == "UPDATE 1"
    restored_at = await queued_at(settings.database_url)
    requeued_before = REGISTRY.get_sample_value(REQUEUED) or 0.0
    drawing = stack.start_worker(settings, "after")  # it starts while the app does
    try:
        async with running_app(settings) as client:
            stats = await client.get("/api/v2/stats")
            assert stats.json()["total"] == len(drawn + queued)
            assert await statuses(client, kept) == dict.fromkeys(kept, "ready")
            for gone in undone:
                assert (await client.get(f"/api/v2/figalizations/{gone}")).status_code == 404
            await wait_drawn(client, drawn + queued)
    finally:
        stack.stop_worker(drawing)
        await stack.kafka.delete_topic(topic)
    assert stack.pictures() == set(drawn + queued), "every restored figalization has its picture"
    requeued = (REGISTRY.get_sample_value(REQUEUED) or 0.0) - requeued_before
    assert requeued >= len(queued) + 1
    now_at = await queued_at(settings.database_url)
    assert {i: now_at[i] for i in kept} == {i: restored_at[i] for i in kept}, "drawn: left"
    redrawn = [*queued, damaged]
    assert all(now_at[i] > restored_at[i] for i in redrawn), "every picture lacking: queued again"


class Stack:
    """The broker, the object store, the test's names and its worker processes, shared by
    both sides of the drill."""

    def __init__(self, kafka: KafkaService, s3: S3Service, bucket: str, logs: Path) -> None:
        self.kafka, self.s3, self.bucket, self.logs = kafka, s3, bucket, logs
        self.database = ""  # the same name on the source and on the restored servers
        self.workers: list[subprocess.Popen[bytes]] = []

    def settings(self, server: Any, topic: str, **overrides: Any) -> Settings:
        return distributed_settings(
            database_url=server.url_for(self.database),
            kafka=self.kafka,
            topic=topic,
            s3=self.s3,
            bucket=self.bucket,
            **overrides,
        )

    def pictures(self) -> set[str]:
        filesystem = self.s3.filesystem(use_listings_cache=False)
        return {Path(key).stem for key in filesystem.find(f"{self.bucket}/pictures")}

    def start_worker(self, settings: Settings, name: str) -> subprocess.Popen[bytes]:
        """A `figachechnaya worker` process, its output in `worker-<name>.log`."""
        log = self.logs / f"worker-{name}.log"
        process = subprocess.Popen(
            [FIGACHECHNAYA, "worker"],
            env=process_env(settings, self.s3),
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        self.workers.append(process)
        return process

    def stop_worker(self, process: subprocess.Popen[bytes]) -> None:
        """SIGTERM, its graceful stop: the batch in hand is finished and committed."""
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def stack(
    kafka_service: KafkaService,
    s3_service: S3Service,
    s3_bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Stack]:
    for name, value in s3_service.credentials_environment().items():
        monkeypatch.setenv(name, value)  # the app in this process reads them
    stack = Stack(kafka_service, s3_service, s3_bucket, tmp_path)
    yield stack
    for process in stack.workers:
        stack.stop_worker(process)


async def queued_at(url: str) -> dict[str, Any]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(sa.text("SELECT id, image_queued_at FROM figalization"))
            return {row.id: row.image_queued_at for row in rows}
    finally:
        await engine.dispose()


async def archive_up_to(source: ArchivingPostgres, lsn: Any) -> None:
    """Close the WAL segment holding `lsn` and wait until the archiver has copied it."""
    segment = await scalar(source.url, f"SELECT pg_walfile_name('{lsn}')")
    await scalar(source.url, "SELECT pg_switch_wal()")

    async def segment_archived() -> bool:
        return (source.archive / segment).exists()

    await wait_until(segment_archived, within=10, every=0.05)
