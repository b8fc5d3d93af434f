"""The image worker process: Kafka consumer group → picture → object store → status.

Read `consume` top to bottom: poll → decode → render → store → record →
commit. Offsets are committed only after the picture is stored and its
status recorded, so a crash redelivers the job (at least once), and the
object key derived from the figalization id makes a redelivery overwrite the
same object. A message that cannot be decoded, or keeps failing, is recorded
`failed` and committed, so it never blocks its partition. SIGTERM finishes the
current job, commits, and leaves the group.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import start_http_server

from app.domain.figalization import ImageStatus
from app.domain.image_job import ImageJob, ImageJobError
from app.images import FsspecImageStore, ImageStore
from app.jobs.kafka import REQUEST_ID_HEADER, client_options, ensure_topic
from app.logs import request_id_var
from app.metrics import CONSUMER_LAG, JOBS_CONSUMED, JOBS_DONE
from app.settings import Settings
from app.store.history import History, SqlHistory
from workers.pipeline import RetryPolicy, make_picture, record

log = logging.getLogger(__name__)

POLL_TIMEOUT_MS = 500
MAX_RECORDS = 20  # a batch is what SIGTERM waits for: about a second of drawing
JOBS_AT_ONCE = 4


async def run_worker(settings: Settings) -> int:
    """The `figachechnaya worker` command: run until SIGTERM or SIGINT."""
    if not settings.uses_kafka:
        log.error("the worker needs FIGA_KAFKA_BOOTSTRAP_SERVERS; without it the app draws itself")
        return 2
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host)
    history = SqlHistory.from_settings(settings)
    images = FsspecImageStore(settings)
    policy = RetryPolicy(max_attempts=settings.image_max_attempts)
    try:
        consumer = await connect(settings, stopping)
        if consumer is None:
            return 0
        try:
            await consume(consumer, images, history, policy, stopping)
        finally:
            await consumer.stop()  # commits nothing more; leaves the group at once
    finally:
        await history.close()
        await images.close()
    log.info("worker stopped")
    return 0


async def connect(settings: Settings, stopping: asyncio.Event) -> AIOKafkaConsumer | None:
    """A started consumer in the group, retrying while the broker is unreachable."""
    backoff = 0.5
    while not stopping.is_set():
        consumer = AIOKafkaConsumer(
            settings.kafka_topic,
            **client_options(settings),
            group_id=settings.kafka_group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_interval_ms=300_000,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        )
        try:
            await ensure_topic(settings)
            await consumer.start()
        except (KafkaError, OSError) as error:
            await consumer.stop()
            log.warning("kafka not reachable yet (%s); retrying in %.1fs", error, backoff)
            await _sleep_unless(stopping, backoff)
            backoff = min(backoff * 2, 10.0)
            continue
        log.info("worker joined group %s on %s", settings.kafka_group_id, settings.kafka_topic)
        return consumer
    return None


async def consume(
    consumer: AIOKafkaConsumer,
    images: ImageStore,
    history: History,
    policy: RetryPolicy,
    stopping: asyncio.Event,
) -> None:
    """Poll a batch, draw its pictures a few at a time, commit it, repeat until SIGTERM.

    A few jobs run at once so one picture's upload and status update overlap the
    next one's drawing; the batch is committed only when every job in it is
    stored and recorded, so a crash redelivers it whole (effects are idempotent).
    """
    slots = asyncio.Semaphore(JOBS_AT_ONCE)

    async def one_at_a_slot(message: ConsumerRecord[bytes, bytes]) -> None:
        async with slots:
            await handle(message, images, history, policy)

    while not stopping.is_set():
        batches = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=MAX_RECORDS)
        messages = [message for batch in batches.values() for message in batch]
        JOBS_CONSUMED.inc(len(messages))
        await asyncio.gather(*(one_at_a_slot(message) for message in messages))
        if batches:
            await consumer.commit({tp: batch[-1].offset + 1 for tp, batch in batches.items()})
        await measure_lag(consumer)
    log.info("SIGTERM: the current batch is finished and committed, leaving the group")


async def handle(
    message: ConsumerRecord[bytes, bytes], images: ImageStore, history: History, policy: RetryPolicy
) -> None:
    key = (message.key or b"").decode("utf-8", "replace")
    try:
        job = ImageJob.decode(message.value or b"")
    except ImageJobError as error:
        log.error("bad image job at %s offset %d: %s", _where(message), message.offset, error)
        JOBS_DONE.labels("invalid").inc()
        if key:
            await record(history, key, ImageStatus.FAILED, None, policy)
        return
    token = request_id_var.set(_request_id(message) or job.request_id)
    try:
        status = await make_picture(job, images, history, policy)
        log.info("picture %s %s", job.figalization_id, status.value)
    finally:
        request_id_var.reset(token)


async def measure_lag(consumer: AIOKafkaConsumer) -> None:
    """Lag per assigned partition: the broker's end offset minus our position.

    The gauge is rebuilt from the current assignment, so a partition handed to
    another worker does not linger here beside what its new owner reports.
    """
    lags: dict[str, int] = {}
    for partition in consumer.assignment():
        end = consumer.highwater(partition)
        if end is not None:
            lags[str(partition.partition)] = max(0, end - await consumer.position(partition))
    CONSUMER_LAG.clear()  # no await from here on: a scrape never sees a half-built gauge
    for partition_label, lag in lags.items():
        CONSUMER_LAG.labels(partition_label).set(lag)


def _request_id(message: ConsumerRecord[bytes, bytes]) -> str:
    for name, value in message.headers or ():
        if name == REQUEST_ID_HEADER:
            return bytes(value).decode("utf-8", "replace")
    return ""


def _where(message: ConsumerRecord[bytes, bytes]) -> str:
    return str(TopicPartition(message.topic, message.partition))


async def _sleep_unless(stopping: asyncio.Event, seconds: float) -> None:
    try:
        async with asyncio.timeout(seconds):
            await stopping.wait()
    except TimeoutError:
        return
