"""The Kafka backend of the job queue: one long-lived aiokafka producer per process.

`acks="all"` and (by setting) the idempotent producer, so a retried send
neither loses nor duplicates a message within a partition; messages are keyed
by figalization id, and the key picks the partition, so every job of one
picture lands in one partition, in order.

A broker that refuses the idempotent producer is named as such, with the
setting to change (`refused_idempotence`): aiokafka reports only the broker's
bare error code, `[Error -1] UnknownError` from Tansu, and retrying never helps.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import BrokerResponseError, IncompatibleBrokerVersion, KafkaError
from aiokafka.helpers import create_ssl_context
from aiokafka.producer.message_accumulator import BatchBuilder

from app.domain.image_job import JobMessage
from app.outages import QueueUnavailable
from app.settings import Settings, variable

SEND_TIMEOUT_SECONDS = 10.0
REQUEST_ID_HEADER = "x-request-id"
Encoded = tuple[bytes, bytes, bytes]  # a job's key, payload and request id, as Kafka takes them


def client_options(settings: Settings) -> dict[str, Any]:
    """Connection options shared by the producer, the consumer and the admin client."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers.split(","),
        "security_protocol": settings.kafka_security_protocol,
        "request_timeout_ms": 10_000,
        "retry_backoff_ms": 200,
    }
    if settings.kafka_security_protocol.endswith("SSL"):
        options["ssl_context"] = create_ssl_context(cafile=settings.kafka_ssl_cafile or None)
    if settings.kafka_sasl_mechanism:
        options |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": settings.kafka_sasl_password,
        }
    return options


class KafkaQueue:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Connect if possible; an unreachable broker is retried on the next publish."""
        try:
            await self._ensure_producer()
        except QueueUnavailable:
            return

    async def _ensure_producer(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is not None:
                return self._producer
            producer = AIOKafkaProducer(
                **client_options(self._settings),
                acks="all",
                enable_idempotence=self._settings.kafka_idempotence,
                linger_ms=2,
                max_batch_size=256 * 1024,
            )
            try:
                await producer.start()
            except (KafkaError, OSError) as error:
                await producer.stop()
                if self._settings.kafka_idempotence and refused_idempotence(error):
                    raise QueueUnavailable(f"kafka: {idempotence_refused(error)}") from error
                raise QueueUnavailable(f"kafka: {error}") from error
            self._producer = producer
            return producer

    async def publish(self, messages: Sequence[JobMessage]) -> None:
        """Send and wait until the broker has every message (acks=all).

        Messages are grouped by partition and sent as ready-made batches: one `send()`
        per message costs the event loop several times more. The partition is the key's
        CRC-32 modulo the partition count: any stable hash keeps one picture's jobs
        together, and aiokafka's murmur2 (the Java client's) is pure Python, a few
        microseconds a message.
        """
        producer = await self._ensure_producer()
        topic = self._settings.kafka_topic
        try:
            async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
                partitions = sorted(await producer.partitions_for(topic))
                by_partition: dict[int, list[Encoded]] = defaultdict(list)
                for key, payload, request_id in messages:
                    encoded = key.encode()
                    partition = partitions[zlib.crc32(encoded) % len(partitions)]
                    by_partition[partition].append((encoded, payload, request_id.encode()))
                delivered = [
                    await producer.send_batch(batch, topic, partition=partition)
                    for partition, group in by_partition.items()
                    for batch in _batches(producer, group)
                ]
                await asyncio.gather(*delivered)
        except (KafkaError, OSError, TimeoutError) as error:
            raise QueueUnavailable(f"kafka: {error!r}") from error

    async def ping(self) -> None:
        producer = await self._ensure_producer()
        try:
            async with asyncio.timeout(2.0):
                await producer.client.fetch_all_metadata()
        except (KafkaError, OSError, TimeoutError) as error:
            raise QueueUnavailable(f"kafka: {error!r}") from error

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()  # flushes what is still buffered
            self._producer = None


def refused_idempotence(error: BaseException) -> bool:
    """Whether a failed `AIOKafkaProducer.start()` of an idempotent producer means the broker
    refuses idempotence.

    `start()` first bootstraps, where every failure becomes a `KafkaConnectionError`
    (aiokafka's client catches the rest), and then asks the broker for a producer id
    (InitProducerId). So an error the broker *answered* (`BrokerResponseError`: Tansu's
    UnknownError, or ClusterAuthorizationFailed without the IDEMPOTENT_WRITE permission)
    or a broker too old for the request (`IncompatibleBrokerVersion`) can only come from
    there; a broker that is down or unreachable gives neither.
    """
    return isinstance(error, BrokerResponseError | IncompatibleBrokerVersion)


def idempotence_refused(error: BaseException) -> str:
    """The cause and the cure, for the relay's log and `/readyz` (whose detail keeps 200
    characters: the broker's own words come last)."""
    return (
        "the broker refused the idempotent producer (InitProducerId failed): "
        f"set {variable('kafka_idempotence')}=false for brokers without it"
        f" (the broker answered {error})"
    )


def _batches(producer: AIOKafkaProducer, records: list[Encoded]) -> list[BatchBuilder]:
    """As few batches as the producer's batch size allows, in the records' order."""
    batches = [producer.create_batch()]
    for key, value, request_id in records:
        headers = [(REQUEST_ID_HEADER, request_id)]
        batch = batches[-1]
        if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
            batch = producer.create_batch()  # full: start the next one
            batch.append(key=key, value=value, timestamp=None, headers=headers)
            batches.append(batch)
    return batches


async def ensure_topic(settings: Settings) -> None:
    """Create the job topic if it is missing; an existing topic is left as it is."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        if settings.kafka_topic in await admin.list_topics():
            return
        topic = NewTopic(settings.kafka_topic, settings.kafka_topic_partitions, 1)
        try:
            await admin.create_topics([topic])
        except TopicAlreadyExistsError:
            return  # another replica was first
    finally:
        await admin.close()
