"""The worker of the single-process mode: a task in the app reading the in-process queue.

It makes each picture exactly as the Kafka worker does (`workers.pipeline`);
what differs is only where jobs come from and how it stops: the app's
lifespan cancels the task. This module imports Pillow (through the pipeline),
so the app imports it only when it runs in the single-process mode.
"""

from __future__ import annotations

from app.images import ImageStore
from app.jobs.inprocess import InProcessQueue
from app.metrics import JOBS_CONSUMED
from app.store.pictures import PictureRecords
from workers.pipeline import PictureMaker, RetryPolicy


async def serve_in_process(
    queue: InProcessQueue, images: ImageStore, pictures: PictureRecords, policy: RetryPolicy
) -> None:
    """Draw every queued job, one at a time, until cancelled."""
    maker = PictureMaker(images, pictures, policy)
    while True:
        message = await queue.get()
        JOBS_CONSUMED.inc()
        await maker.make(message)
