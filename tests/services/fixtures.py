"""pytest plugin: real PostgreSQL, Kafka and S3 servers for the tests, without Docker.

Load it with `pytest_plugins = ["tests.services.fixtures"]` (or `-p tests.services.fixtures`).

A server starts the first time a test asks for it (a unit-only run starts
nothing) and stops when the session ends, failures included. Each test gets
its own database, topic or bucket, removed afterwards. A test may stop a
server to check degradation; the data fixtures start it again for the next
test. Degradation tests skip only when `<service>.controllable` is false,
i.e. when an external server is configured:

- `FIGA_TEST_DATABASE_URL`            e.g. postgresql+asyncpg://user:pw@host/postgres
- `FIGA_TEST_KAFKA_BOOTSTRAP_SERVERS` e.g. kafka:9092
- `FIGA_TEST_S3_ENDPOINT_URL`         e.g. http://minio:9000 (credentials from the
  standard AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY variables)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TypeVar

import pytest
import pytest_asyncio

from tests.services.kafka import KafkaService
from tests.services.postgres import PostgresService
from tests.services.processes import ControllableService
from tests.services.s3 import S3Service

KAFKA_TOPIC_PARTITIONS = 4
Service = TypeVar("Service", bound=ControllableService)
_EXTERNAL = (
    "FIGA_TEST_DATABASE_URL",
    "FIGA_TEST_KAFKA_BOOTSTRAP_SERVERS",
    "FIGA_TEST_S3_ENDPOINT_URL",
)


def pytest_report_header(config: pytest.Config) -> str:
    external = [name for name in _EXTERNAL if os.environ.get(name)]
    return "external test services: " + (", ".join(external) or "none (local servers on demand)")


def _running(service: Service) -> Iterator[Service]:
    """A session's server: started (unless external), and closed after the session."""
    try:
        service.ensure_running()
        yield service
    finally:
        service.close()


@pytest.fixture(scope="session")
def postgres_service() -> Iterator[PostgresService]:
    """The session's PostgreSQL server (local pgserver unless FIGA_TEST_DATABASE_URL)."""
    service = PostgresService(os.environ.get("FIGA_TEST_DATABASE_URL") or None)
    yield from _running(service)


@pytest_asyncio.fixture(loop_scope="session")
async def postgres_url(postgres_service: PostgresService) -> AsyncIterator[str]:
    """A fresh empty database for this test: its SQLAlchemy async URL (postgresql+asyncpg)."""
    postgres_service.ensure_running()
    database = await postgres_service.create_database()
    yield postgres_service.url_for(database)
    postgres_service.ensure_running()  # the test may have stopped the server
    await postgres_service.drop_database(database)


@pytest.fixture(scope="session")
def kafka_service() -> Iterator[KafkaService]:
    """The session's Kafka broker (local Tansu unless FIGA_TEST_KAFKA_BOOTSTRAP_SERVERS)."""
    service = KafkaService(os.environ.get("FIGA_TEST_KAFKA_BOOTSTRAP_SERVERS") or None)
    yield from _running(service)


@pytest_asyncio.fixture(loop_scope="session")
async def kafka_topic(kafka_service: KafkaService) -> AsyncIterator[str]:
    """A new topic with 4 partitions for this test: its name.

    After `kafka_service.restart()` the local broker has forgotten it; call
    `await kafka_service.create_topic(kafka_topic)` again.
    """
    kafka_service.ensure_running()
    topic = f"t-{uuid.uuid4().hex}"
    await kafka_service.create_topic(topic, partitions=KAFKA_TOPIC_PARTITIONS)
    yield topic
    kafka_service.ensure_running()  # the test may have stopped the broker
    await kafka_service.delete_topic(topic)


@pytest.fixture(scope="session")
def s3_service() -> Iterator[S3Service]:
    """The session's S3 server (local moto unless FIGA_TEST_S3_ENDPOINT_URL)."""
    endpoint_url = os.environ.get("FIGA_TEST_S3_ENDPOINT_URL")
    service = (
        S3Service(
            endpoint_url,
            key=os.environ.get("AWS_ACCESS_KEY_ID") or None,
            secret=os.environ.get("AWS_SECRET_ACCESS_KEY") or None,
        )
        if endpoint_url
        else S3Service()  # moto: fake credentials, whatever the environment holds
    )
    yield from _running(service)


@pytest.fixture
def s3_bucket(s3_service: S3Service) -> Iterator[str]:
    """A new empty bucket for this test: its name (reach it with `s3_service.storage_options()`)."""
    s3_service.ensure_running()
    bucket = s3_service.create_bucket()
    yield bucket
    s3_service.ensure_running()  # the test may have stopped the server
    s3_service.delete_bucket(bucket)
