"""The worker of the single-process mode: a task in the app reading the in-process queue."""

from __future__ import annotations

import logging

from app.domain.figalization import ImageStatus
from app.domain.image_job import ImageJob, ImageJobError
from app.images import ImageStore
from app.jobs.inprocess import InProcessQueue
from app.metrics import JOBS_CONSUMED, JOBS_DONE
from app.store.history import History
from workers.pipeline import RetryPolicy, make_picture, record

log = logging.getLogger(__name__)


async def serve_in_process(
    queue: InProcessQueue, images: ImageStore, history: History, policy: RetryPolicy
) -> None:
    """Draw every queued job, one at a time, until cancelled."""
    while True:
        key, payload, _ = await queue.get()
        JOBS_CONSUMED.inc()
        try:
            job = ImageJob.decode(payload)
        except ImageJobError as error:
            log.error("dropping bad image job %s: %s", key, error)
            JOBS_DONE.labels("invalid").inc()
            await record(history, key, ImageStatus.FAILED, None, policy)
            continue
        try:
            await make_picture(job, images, history, policy)
        except Exception:  # one picture's bug must not stop the others; the reconciler retries
            log.exception("picture %s failed unexpectedly", job.figalization_id)
