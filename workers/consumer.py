"""The image worker process: Kafka consumer group → picture → object store → status.

Read `consume` top to bottom: poll → make each picture (`workers.pipeline`:
decode → render → store → record) → commit. Offsets are committed only after
every picture of the batch is stored and its status recorded, so a crash
redelivers the batch (at least once), and the object key derived from the
figalization id makes a redelivery overwrite the same object. A message that
cannot be decoded, or keeps failing, is recorded `failed` and committed, so it
never blocks its partition.

Every rebalance is logged, and the partitions the worker holds are a gauge
(`workers.assignment`). The operations port (`FIGA_WORKER_METRICS_PORT`) serves
`/metrics` and `/healthz`, which fails once the loop has not beaten its heartbeat
for `FIGA_WORKER_STALL_SECONDS` (`workers.liveness`): a hung worker is restarted.

SIGTERM (or SIGINT) ends the worker within `shutdown.GRACE_SECONDS`: the
current batch is finished and committed, or, when the database or the store is
away, its jobs give up at their next retry and the batch is left uncommitted
for the next worker; then the worker leaves the group.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from app.domain.image_job import JobMessage
from app.images import FsspecImageStore
from app.jobs.kafka import REQUEST_ID_HEADER, client_options, ensure_topic
from app.metrics import ASSIGNED_PARTITIONS, CONSUMER_LAG, JOBS_CONSUMED
from app.operations_port import OperationsPort
from app.settings import Settings
from app.store.database import Database
from app.store.pictures import picture_records
from workers.assignment import AssignmentReport
from workers.handover import Handover
from workers.liveness import Heartbeat
from workers.pipeline import JobLeft, PictureMaker, RetryPolicy, render_here
from workers.shutdown import (
    CLOSE_SECONDS,
    FINISH_SECONDS,
    at_most,
    finish_within,
    sleep_unless,
    stop_on_signals,
)

log = logging.getLogger(__name__)

POLL_TIMEOUT_MS = 500
# A batch is what SIGTERM waits for (FINISH_SECONDS): 100 pictures are ~0.5 s of work on the
# bench machine. Each batch ends in a commit, with its last pictures made while nothing else
# waits to be drawn, so the longer the batch, the less of that stall per picture.
MAX_RECORDS = 100
# Enough jobs at once that one is always ready to draw while the others upload and record.
JOBS_AT_ONCE = 8


async def run_worker(settings: Settings) -> int:
    """The `figachechnaya worker` command (`Settings.refuse_unsafe` checked the settings):
    run until SIGTERM or SIGINT, with `/metrics` and `/healthz` on the operations port."""
    stopping = stop_on_signals()
    heartbeat = Heartbeat(settings.worker_stall_seconds)
    operations = None
    if settings.worker_metrics_port:
        operations = OperationsPort(
            settings.worker_metrics_host, settings.worker_metrics_port, healthz=heartbeat.check
        )
        operations.start()
    try:
        await work(settings, stopping, heartbeat)
    finally:
        if operations is not None:
            await asyncio.to_thread(operations.stop)
    log.info("worker stopped")
    return 0


async def work(settings: Settings, stopping: asyncio.Event, heartbeat: Heartbeat) -> None:
    """Join the group and consume until stopped; then leave it and close everything."""
    database = Database.from_settings(settings)
    images = FsspecImageStore(settings)
    policy = RetryPolicy(max_attempts=settings.image_max_attempts)
    records = picture_records(database)
    maker = PictureMaker(
        images, records, policy, stopping=stopping, waiting=heartbeat.beat, draw=render_here
    )
    # A rebalance waits for the batch's commit, and is logged with what it gives this worker.
    handover = Handover(wait_seconds=FINISH_SECONDS, report=AssignmentReport(settings.kafka_topic))
    try:
        consumer = await connect(settings, stopping, heartbeat, handover)
        if consumer is None:
            return
        try:
            rounds = consume(consumer, maker, stopping, heartbeat, handover)
            await finish_within(FINISH_SECONDS, stopping, rounds)
        finally:
            await at_most(CLOSE_SECONDS, consumer.stop(), "leaving the group")
            ASSIGNED_PARTITIONS.set(0)  # aiokafka calls no listener on leaving
    finally:
        await at_most(CLOSE_SECONDS, records.close(), "closing the picture records")
        await at_most(CLOSE_SECONDS, database.close(), "closing the database")
        await images.close()


async def connect(
    settings: Settings, stopping: asyncio.Event, heartbeat: Heartbeat, handover: Handover
) -> AIOKafkaConsumer | None:
    """A started consumer in the group, retrying while the broker is unreachable
    (each attempt is bounded by the client's request timeout, and beats the heart)."""
    backoff = 0.5
    while not stopping.is_set():
        heartbeat.beat()
        consumer = AIOKafkaConsumer(
            **client_options(settings),
            group_id=settings.kafka_group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_interval_ms=300_000,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        )
        consumer.subscribe([settings.kafka_topic], listener=handover)
        try:
            await ensure_topic(settings)
            await consumer.start()
        except (KafkaError, OSError) as error:
            await consumer.stop()
            log.warning("kafka not reachable yet (%s); retrying in %.1fs", error, backoff)
            await sleep_unless(stopping, backoff)
            backoff = min(backoff * 2, 10.0)
            continue
        log.info("worker joined group %s on %s", settings.kafka_group_id, settings.kafka_topic)
        return consumer
    return None


async def consume(
    consumer: AIOKafkaConsumer,
    maker: PictureMaker,
    stopping: asyncio.Event,
    heartbeat: Heartbeat,
    handover: Handover,
) -> None:
    """Poll a batch, make its pictures a few at a time, commit it, repeat until SIGTERM;
    each round beats the heart (`/healthz` fails when rounds stop coming). A rebalance
    waits for the batch being made (`workers.handover`)."""
    while not stopping.is_set():
        heartbeat.beat()
        batches = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=MAX_RECORDS)
        # Taken with no await after the poll (a free asyncio.Lock is taken at once): a
        # revocation that begins later waits for this batch, and one that began earlier
        # made the poll wait for the new assignment — aiokafka hands out no records while
        # a reassignment is in progress. Polling inside the lock would deadlock with it.
        async with handover.batch():
            messages = [message for batch in batches.values() for message in batch]
            JOBS_CONSUMED.inc(len(messages))
            if not await make_all(maker, messages):
                log.info("SIGTERM: the batch is left unfinished and uncommitted, to come again")
                return
            if batches:
                await commit(consumer, {tp: batch[-1].offset + 1 for tp, batch in batches.items()})
        await measure_lag(consumer)
    log.info("SIGTERM: the current batch is finished and committed, leaving the group")


async def make_all(maker: PictureMaker, messages: list[ConsumerRecord[bytes, bytes]]) -> bool:
    """Every job of a batch; False when one was left because the worker is stopping.

    A few jobs run at once so one picture's upload and status update overlap the
    next one's drawing (on the loop: `workers.pipeline.render_here`). Once a job is left
    the batch will not be committed, so the others are cancelled rather than finished: all
    of them come again.
    """
    slots = asyncio.Semaphore(JOBS_AT_ONCE)

    async def one_at_a_slot(message: ConsumerRecord[bytes, bytes]) -> None:
        async with slots:
            await maker.make(job_message(message))

    left = False
    try:
        async with asyncio.TaskGroup() as jobs:
            for message in messages:
                jobs.create_task(one_at_a_slot(message))
    except* JobLeft:
        left = True
    return not left


async def commit(consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
    """Commit a finished batch. When the group rebalanced meanwhile (this worker was cut
    off from the broker past its session, say) the commit is refused: that is no crash —
    the partitions are another member's now, which is given the batch again and
    overwrites the same objects, and this worker rejoins on its next poll."""
    try:
        await consumer.commit(offsets)
    except (CommitFailedError, IllegalStateError) as error:
        log.warning(
            "the batch's commit was refused (%s: the group rebalanced); its jobs go again"
            " to the partitions' new owner",
            type(error).__name__,
        )


def job_message(message: ConsumerRecord[bytes, bytes]) -> JobMessage:
    """The job as the app published it: key, payload and the request id header."""
    key = (message.key or b"").decode("utf-8", "replace")
    return JobMessage(key, message.value or b"", _request_id(message))


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
