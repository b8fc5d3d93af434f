"""The test services themselves: each fixture reaches a real server, and stop/start is real.

These are the guarantees the degradation tests build on: a stopped server
refuses connections, and a started one answers at the same address (with its
data, where the server keeps data). They also pin the known limits of the
local Kafka broker (Tansu), so a new Tansu that lifts one is noticed.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import s3fs
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError
from botocore.exceptions import EndpointConnectionError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from tests.services.kafka import KafkaService
from tests.services.postgres import PostgresService
from tests.services.processes import ServiceError
from tests.services.s3 import S3Service

# --- PostgreSQL ---------------------------------------------------------------------------


async def scalar(url: str, statement: str) -> Any:
    """Run one statement in its own connection; the first column of its first row, if any."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            result = await connection.execute(sa.text(statement))
            return result.scalar() if result.returns_rows else None
    finally:
        await engine.dispose()


async def test_postgres_url_is_a_fresh_database_of_its_own(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+asyncpg://")
    database = sa.make_url(postgres_url).database
    assert database is not None
    assert database.startswith("t_")
    assert await scalar(postgres_url, "SELECT current_database()") == database
    tables = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
    assert await scalar(postgres_url, tables) == 0
    assert await scalar(postgres_url, "SELECT upper('фигосипед')") == "ФИГОСИПЕД"


async def test_postgres_databases_are_dropped_with_their_clients(
    postgres_service: PostgresService,
) -> None:
    database = await postgres_service.create_database()
    engine = create_async_engine(postgres_service.url_for(database))
    connection = await engine.connect()  # a client still connected
    await connection.execute(sa.text("SELECT 1"))

    await postgres_service.drop_database(database)

    await connection.invalidate()  # the server has cut it
    await engine.dispose()
    names = await scalar(postgres_service.url, "SELECT array_agg(datname) FROM pg_database")
    assert database not in names


async def test_stopped_postgres_refuses_connections_and_restarts_with_its_data(
    postgres_service: PostgresService, postgres_url: str
) -> None:
    if not postgres_service.controllable:
        pytest.skip("an external PostgreSQL cannot be stopped by the tests")
    await scalar(postgres_url, "CREATE TABLE figalization (result text)")
    await scalar(postgres_url, "INSERT INTO figalization VALUES ('Фигосипед')")

    postgres_service.stop()
    assert not postgres_service.is_running
    with pytest.raises((OSError, sa.exc.DBAPIError)):
        await scalar(postgres_url, "SELECT 1")

    postgres_service.start()
    assert await scalar(postgres_url, "SELECT result FROM figalization") == "Фигосипед"


# --- Kafka --------------------------------------------------------------------------------


@pytest.fixture
async def producer(kafka_service: KafkaService) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_service.bootstrap_servers, acks="all", enable_idempotence=False
    )
    await producer.start()
    yield producer
    await producer.stop()


def group_consumer(kafka_service: KafkaService, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_service.bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **kafka_service.group_timeouts,
    )


async def consume(consumer: AIOKafkaConsumer, count: int) -> list[ConsumerRecord[bytes, bytes]]:
    records: list[ConsumerRecord[bytes, bytes]] = []
    deadline = time.monotonic() + 30
    while len(records) < count:
        if time.monotonic() > deadline:
            pytest.fail(f"received {len(records)} of {count} messages within 30s")
        batches = await consumer.getmany(timeout_ms=200, max_records=count - len(records))
        for batch in batches.values():
            records.extend(batch)
    return records


async def send_one_per_partition(producer: AIOKafkaProducer, topic: str, label: str) -> None:
    for partition in range(4):
        await producer.send_and_wait(topic, f"{label}{partition}".encode(), partition=partition)


async def test_a_group_consumer_resumes_from_the_committed_offsets(
    kafka_service: KafkaService, kafka_topic: str, producer: AIOKafkaProducer
) -> None:
    await send_one_per_partition(producer, kafka_topic, "first")
    first = group_consumer(kafka_service, kafka_topic, "workers")
    await first.start()
    try:
        records = await consume(first, 4)
        await first.commit()
    finally:
        await first.stop()
    assert sorted(record.value for record in records) == [
        b"first0",
        b"first1",
        b"first2",
        b"first3",
    ]

    await send_one_per_partition(producer, kafka_topic, "second")
    second = group_consumer(kafka_service, kafka_topic, "workers")
    await second.start()
    try:
        records = await consume(second, 4)
        committed = await second.committed(TopicPartition(kafka_topic, 0))
    finally:
        await second.stop()
    assert sorted(record.value for record in records) == [
        b"second0",
        b"second1",
        b"second2",
        b"second3",
    ]
    assert committed == 1


async def test_two_consumers_of_a_group_split_the_partitions(
    kafka_service: KafkaService, kafka_topic: str
) -> None:
    consumers = [group_consumer(kafka_service, kafka_topic, "workers") for _ in range(2)]
    await asyncio.gather(*(consumer.start() for consumer in consumers))
    try:
        deadline = time.monotonic() + 30
        while True:
            await asyncio.gather(*(consumer.getmany(timeout_ms=200) for consumer in consumers))
            assigned = [{tp.partition for tp in consumer.assignment()} for consumer in consumers]
            if all(len(partitions) == 2 for partitions in assigned):
                break
            assert time.monotonic() < deadline, f"no even split within 30s: {assigned}"
    finally:
        await asyncio.gather(*(consumer.stop() for consumer in consumers))
    assert assigned[0] | assigned[1] == {0, 1, 2, 3}


async def test_tansu_refuses_the_idempotent_producer(kafka_service: KafkaService) -> None:
    if kafka_service.supports_idempotence:
        pytest.skip("an external Kafka is expected to accept idempotent producers")
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_service.bootstrap_servers, enable_idempotence=True
    )
    with pytest.raises(KafkaError):
        await producer.start()  # InitProducerId fails: aiokafka raises UnknownError
    await producer.stop()


async def test_tansu_creates_a_topic_on_first_produce(
    kafka_service: KafkaService, producer: AIOKafkaProducer
) -> None:
    if not kafka_service.controllable:
        pytest.skip("auto-creation is the external broker's own setting")
    topic = f"auto-{time.time_ns()}"
    metadata = await producer.send_and_wait(topic, b"hello")
    assert metadata.offset == 0
    await kafka_service.delete_topic(topic)


async def test_stopped_kafka_refuses_producers_and_restarts_empty(
    kafka_service: KafkaService, kafka_topic: str, producer: AIOKafkaProducer
) -> None:
    if not kafka_service.controllable:
        pytest.skip("an external Kafka cannot be stopped by the tests")
    await producer.send_and_wait(kafka_topic, b"before", partition=0)

    kafka_service.stop()
    assert not kafka_service.is_running
    late = AIOKafkaProducer(
        bootstrap_servers=kafka_service.bootstrap_servers,
        enable_idempotence=False,
        request_timeout_ms=2000,
    )
    with pytest.raises(KafkaConnectionError):
        await late.start()
    await late.stop()

    kafka_service.start()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_service.bootstrap_servers)
    await admin.start()
    try:
        assert kafka_topic not in await admin.list_topics()  # Tansu keeps nothing
    finally:
        await admin.close()
    await kafka_service.create_topic(kafka_topic)
    metadata = await producer.send_and_wait(kafka_topic, b"after", partition=0)
    assert metadata.offset == 0


# --- S3 -----------------------------------------------------------------------------------


@pytest.fixture
async def s3(s3_service: S3Service) -> AsyncIterator[s3fs.S3FileSystem]:
    """An asynchronous s3fs instance of this test's own, as the application uses it."""
    filesystem = s3fs.S3FileSystem(
        asynchronous=True, skip_instance_cache=True, **s3_service.storage_options()
    )
    session = await filesystem.set_session()
    yield filesystem
    await session.close()


async def test_s3_bucket_round_trip_with_s3fs(s3: s3fs.S3FileSystem, s3_bucket: str) -> None:
    await s3._pipe_file(f"{s3_bucket}/images/1.png", b"\x89PNG picture")
    assert await s3._cat_file(f"{s3_bucket}/images/1.png") == b"\x89PNG picture"
    assert await s3._ls(f"{s3_bucket}/images", refresh=True) == [f"{s3_bucket}/images/1.png"]


def test_s3_listings_are_cached_until_refreshed(s3_service: S3Service, s3_bucket: str) -> None:
    reader, writer = s3_service.filesystem(), s3_service.filesystem()
    writer.pipe(f"{s3_bucket}/a.png", b"a")
    assert reader.ls(s3_bucket) == [f"{s3_bucket}/a.png"]
    writer.pipe(f"{s3_bucket}/b.png", b"b")
    assert reader.ls(s3_bucket) == [f"{s3_bucket}/a.png"]  # the pitfall
    assert reader.ls(s3_bucket, refresh=True) == [f"{s3_bucket}/a.png", f"{s3_bucket}/b.png"]


async def test_stopped_s3_refuses_requests_and_restarts_with_its_objects(
    s3_service: S3Service, s3: s3fs.S3FileSystem, s3_bucket: str
) -> None:
    if not s3_service.controllable:
        pytest.skip("an external S3 cannot be stopped by the tests")
    await s3._pipe_file(f"{s3_bucket}/kept.png", b"kept")

    s3_service.stop()
    assert not s3_service.is_running
    # No retries here: botocore and s3fs would retry for about 9 s before giving up.
    config = {**s3_service.storage_options()["config_kwargs"], "retries": {"max_attempts": 1}}
    impatient = s3_service.filesystem(config_kwargs=config)
    impatient.retries = 1
    with pytest.raises(EndpointConnectionError):
        impatient.cat(f"{s3_bucket}/kept.png")

    s3_service.start()
    assert await s3._cat_file(f"{s3_bucket}/kept.png") == b"kept"


# --- start-up failures --------------------------------------------------------------------


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        yield squatter.getsockname()[1]


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (KafkaService, r"(?s)exited.*Last lines of .*tansu\.log"),
        (PostgresService, r"(?s)exited.*could not (bind|create)"),
    ],
    ids=["kafka", "postgres"],
)
def test_a_server_that_cannot_listen_fails_with_its_log(
    taken_port: int, make: Any, says: str
) -> None:
    service = make(port=taken_port)
    try:
        with pytest.raises(ServiceError, match=says):
            service.start()
    finally:
        service.close()


def test_an_s3_that_cannot_listen_fails_at_once(taken_port: int) -> None:
    with pytest.raises(ServiceError, match="cannot listen"):
        S3Service(port=taken_port).start()
