"""What the worker records about a picture, and how a job that came again is told apart.

On both SQL backends (the `database` fixture), with the records the worker uses on each
(`picture_records`: one statement for the records that wait together, on PostgreSQL).
Kafka delivers at least once: a job delivered again draws the same object again, but
it leaves the record as it was and counts in `figachechnaya_image_jobs_redelivered_total`,
which the rolling-restart test reads from every worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from app.domain.figalization import ImageStatus
from app.images import FsspecImageStore
from app.settings import Settings
from app.store.database import Database
from app.store.history import SqlHistory
from app.store.pictures import BatchedPictureRecords, PictureRecords, Recorded, picture_records
from app.store.writes import FigalizationWriter
from tests.integration.history_samples import make
from workers.pipeline import PictureMaker, RetryPolicy

REDELIVERED = "figachechnaya_image_jobs_redelivered_total"


_OPEN: list[PictureRecords] = []


def chosen(database: Database) -> PictureRecords:
    """The worker's records on this backend, closed after the test (`_close_records`)."""
    records = picture_records(database)
    expected = BatchedPictureRecords if database.dialect_name == "postgresql" else None
    assert expected is None or isinstance(records, expected)
    _OPEN.append(records)
    return records


@pytest.fixture(autouse=True)
async def _close_records() -> AsyncIterator[None]:
    yield
    while _OPEN:
        await _OPEN.pop().close()


def redelivered() -> float:
    return REGISTRY.get_sample_value(REDELIVERED) or 0.0


async def test_ready_again_changes_nothing_and_says_so(
    database: Database, writer: FigalizationWriter, history: SqlHistory
) -> None:
    figalization, job = make(1)
    await writer.add(figalization, job)
    records = chosen(database)
    assert await records.record(figalization.id, ImageStatus.READY, "a.png") is Recorded.RECORDED
    again = await records.record(figalization.id, ImageStatus.READY, "b.png")
    assert again is Recorded.ALREADY_READY
    stored = await history.get(figalization.id)
    assert stored is not None
    assert (stored.image_status, stored.image_key) == (ImageStatus.READY, "a.png")


async def test_failed_is_recorded_over_ready_as_before(
    database: Database, writer: FigalizationWriter, history: SqlHistory
) -> None:
    """A message that is no job, under the key of a ready picture, marks it failed
    (test_pictures_distributed.py::test_a_bad_message_is_marked_failed_and_skipped)."""
    figalization, job = make(2)
    await writer.add(figalization, job)
    records = chosen(database)
    await records.record(figalization.id, ImageStatus.READY, "a.png")
    assert await records.record(figalization.id, ImageStatus.FAILED, None) is Recorded.RECORDED
    stored = await history.get(figalization.id)
    assert stored is not None
    assert stored.image_status is ImageStatus.FAILED


async def test_a_picture_of_no_stored_figalization_is_not_a_redelivery(
    database: Database,
) -> None:
    records = chosen(database)
    unknown = await records.record("01JDUNKNOWN", ImageStatus.READY, "x.png")
    assert unknown is Recorded.NO_SUCH_FIGALIZATION


async def test_the_worker_counts_a_job_delivered_again_once(
    database: Database, writer: FigalizationWriter, tmp_path: Path
) -> None:
    figalization, job = make(3)
    await writer.add(figalization, job)
    images = FsspecImageStore(Settings(image_store_url=str(tmp_path / "images")))
    maker = PictureMaker(images, chosen(database), RetryPolicy())
    before = redelivered()
    await maker.make(job.message())
    assert redelivered() == before, "a first delivery is no redelivery"
    await maker.make(job.message())
    assert redelivered() == before + 1
    assert [p.name for p in (tmp_path / "images").iterdir()] == [f"{figalization.id}.png"]
    await images.close()


async def test_records_made_together_share_a_statement_and_keep_each_outcome(
    database: Database, writer: FigalizationWriter
) -> None:
    """Concurrent records (a worker makes a few pictures at once), one id twice among them
    (its job came again meanwhile), and one of no stored figalization: each learns its own
    outcome, and the second `ready` of the same picture is a redelivery, as in sequence."""
    stored = [make(n) for n in range(1, 7)]
    for figalization, job in stored:
        await writer.add(figalization, job)
    records = chosen(database)
    ids = [figalization.id for figalization, _ in stored]
    outcomes = await asyncio.gather(
        *(records.record(i, ImageStatus.READY, f"{i}.png") for i in ids),
        records.record(ids[0], ImageStatus.READY, "again.png"),
        records.record("01NOSUCHFIGALIZATION000000", ImageStatus.READY, "x.png"),
    )
    assert outcomes == [Recorded.RECORDED] * 6 + [
        Recorded.ALREADY_READY,
        Recorded.NO_SUCH_FIGALIZATION,
    ]
    for i in ids:
        figalization = await SqlHistory(database).get(i)
        assert figalization is not None
        assert figalization.image_status is ImageStatus.READY
        assert figalization.image_key == f"{i}.png"  # the first ready's, not the redelivery's
