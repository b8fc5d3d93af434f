"""One job, start to finish: render → store → record, with retries.

Shared by the Kafka consumer and the in-process worker, so both modes make
the same picture under the same rules. Storage errors are retried with
backoff up to the attempt limit, then the picture is recorded `failed`;
recording itself is retried until it succeeds, since a job whose outcome is
not recorded would be drawn again by the reconciler anyway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from app.domain.figalization import ImageStatus, image_key
from app.domain.image_job import ImageJob
from app.images import ImageStore, ImageStoreUnavailable
from app.metrics import (
    END_TO_END_SECONDS,
    JOBS_DONE,
    LAST_PICTURE,
    RENDER_SECONDS,
    STORE_RETRIES,
    UPLOAD_SECONDS,
)
from app.store.history import History, StoreUnavailable
from workers.render import render_card

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    first_backoff_seconds: float = 0.2
    max_backoff_seconds: float = 5.0

    def backoff(self, attempt: int) -> float:
        return float(min(self.first_backoff_seconds * 2 ** (attempt - 1), self.max_backoff_seconds))


async def render(job: ImageJob) -> bytes:
    """Pillow work runs in a thread: it must not stall the event loop it shares."""
    with RENDER_SECONDS.time():
        return await asyncio.to_thread(
            render_card, phrase=job.phrase, result=job.result, scheme_name=job.scheme_name
        )


async def make_picture(
    job: ImageJob, images: ImageStore, history: History, policy: RetryPolicy
) -> ImageStatus:
    status, key = await _draw_and_store(job, images, policy)
    await record(history, job.figalization_id, status, key, policy)
    JOBS_DONE.labels(status.value).inc()
    if status is ImageStatus.READY:
        LAST_PICTURE.set_to_current_time()
        if job.created_at:
            END_TO_END_SECONDS.observe(max(0.0, time.time() - job.created_at))
    return status


async def _draw_and_store(
    job: ImageJob, images: ImageStore, policy: RetryPolicy
) -> tuple[ImageStatus, str | None]:
    try:
        png = await render(job)
    except Exception:  # a job Pillow cannot draw will never be drawable: fail it, don't retry
        log.exception("cannot render picture %s", job.figalization_id)
        return ImageStatus.FAILED, None
    key = image_key(job.figalization_id)
    for attempt in range(1, policy.max_attempts + 1):
        try:
            with UPLOAD_SECONDS.time():
                await images.put(key, png)
        except ImageStoreUnavailable as error:
            log.warning(
                "storing picture %s failed (attempt %d/%d): %s",
                job.figalization_id,
                attempt,
                policy.max_attempts,
                error,
            )
            if attempt < policy.max_attempts:
                STORE_RETRIES.inc()
                await asyncio.sleep(policy.backoff(attempt))
        else:
            return ImageStatus.READY, key
    return ImageStatus.FAILED, None


async def record(
    history: History,
    figalization_id: str,
    status: ImageStatus,
    key: str | None,
    policy: RetryPolicy,
) -> None:
    attempt = 0
    while True:
        attempt += 1
        try:
            await history.record_image(figalization_id, status, key)
        except StoreUnavailable as error:
            log.warning("recording picture %s waits for the database: %s", figalization_id, error)
            await asyncio.sleep(policy.backoff(attempt))
        else:
            return
