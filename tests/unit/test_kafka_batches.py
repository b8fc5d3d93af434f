"""`app.jobs.kafka._batches`: the relay's jobs go out in as few ready-made batches as fit."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer
from aiokafka.record.default_records import DefaultRecordBatch

from app.jobs.kafka import REQUEST_ID_HEADER, _batches


async def test_jobs_beyond_a_full_batch_start_the_next_and_none_is_lost_or_reordered() -> None:
    """A producer with 1 KiB batches (never started: building batches needs no broker)."""
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", max_batch_size=1024)
    try:
        records = [(b"key-%d" % n, b"x" * 300, b"request-%d" % n) for n in range(10)]
        batches = _batches(producer, records)
        assert len(batches) > 1
        assert sum(batch.record_count() for batch in batches) == len(records)
        seen = []
        for batch in batches:  # read back as the broker would (`_build`: the wire bytes)
            for record in DefaultRecordBatch(bytes(batch._build())):
                seen.append((record.key, record.value, record.headers))
        assert seen == [(k, v, [(REQUEST_ID_HEADER, r)]) for k, v, r in records]
    finally:
        await producer.stop()
