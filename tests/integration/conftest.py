"""Fixtures of the integration tests: the SQL store on both backends it supports, and the
settings of the distributed mode on this test's own database, topic and bucket."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from app.settings import Settings
from app.store.database import Database
from app.store.history import SqlHistory
from app.store.migrate import upgrade_async
from app.store.outbox import SqlOutbox
from app.store.writes import Committed, FigalizationWriter
from tests.distributed import distributed_settings
from tests.services.kafka import KafkaService
from tests.services.s3 import S3Service


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


WriterFor = Callable[[Callable[[Committed], None]], FigalizationWriter]


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A migrated, empty database on each backend."""
    settings = Settings(database_url=database_url)
    await upgrade_async(settings)
    database = Database.from_settings(settings)
    yield database
    await database.close()


@pytest.fixture
def history(database: Database) -> SqlHistory:
    return SqlHistory(database)


@pytest.fixture
def outbox(database: Database) -> SqlOutbox:
    return SqlOutbox(database)


@pytest.fixture
async def writer_for(database: Database) -> AsyncIterator[WriterFor]:
    """Make writers on the test's database that tell `committed` each batch; all are
    closed after the test."""
    writers: list[FigalizationWriter] = []

    def make(committed: Callable[[Committed], None]) -> FigalizationWriter:
        writers.append(FigalizationWriter.for_database(database, committed=committed))
        return writers[-1]

    yield make
    for writer in writers:
        await writer.close()


@pytest.fixture
def writer(writer_for: WriterFor) -> FigalizationWriter:
    """A writer whose committed batches go nowhere (no relay)."""
    return writer_for(lambda _: None)


@pytest.fixture
async def stack_settings(
    postgres_url: str,
    kafka_service: KafkaService,
    kafka_topic: str,
    s3_service: S3Service,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    """The distributed mode's settings, the database migrated, and the S3 credentials in
    this process's environment too (an app under test in this process reads them)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", str(s3_service.key))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", str(s3_service.secret))
    settings = distributed_settings(
        database_url=postgres_url,
        kafka=kafka_service,
        topic=kafka_topic,
        s3=s3_service,
        bucket=s3_bucket,
    )
    await upgrade_async(settings)
    return settings
