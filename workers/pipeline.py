"""One image job, start to finish: decode → render → store → record.

`PictureMaker.make` is what both loops call for each message — the Kafka
consumer (`workers.consumer`) and the in-process worker of the single-process
mode (`workers.inprocess`) — so both make the same picture under the same rules:

- every log line of a job carries its request id;
- a message that is not an image job is recorded `failed` and skipped;
- a picture Pillow cannot draw is `failed` at once; storing it is retried with
  backoff up to the attempt limit, then it is `failed`;
- recording the outcome is retried while the database is away, since an
  unrecorded picture would only be drawn again;
- a job that makes a picture already `ready` (it was delivered again) leaves
  the record as it is and counts in `figachechnaya_image_jobs_redelivered_total`;
- once the worker is stopping, nothing is retried any more: the job raises
  `JobLeft`, unrecorded, so its Kafka batch is not committed and is delivered
  again (the picture's key is its id, so drawing it twice overwrites one object);
- any other error is a bug in one picture: logged, the picture left pending for
  the reconciler, and the loop goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from app.domain.figalization import ImageStatus, image_key
from app.domain.image_job import ImageJob, ImageJobError, JobMessage
from app.images import ImageStore
from app.logs import request_id_var
from app.metrics import (
    END_TO_END_SECONDS,
    JOBS_DONE,
    JOBS_REDELIVERED,
    LAST_PICTURE,
    RENDER_SECONDS,
    STORE_RETRIES,
    UPLOAD_SECONDS,
)
from app.outages import ImageStoreUnavailable, StoreUnavailable
from app.store.pictures import PictureRecords, Recorded
from workers.render import render_card
from workers.shutdown import sleep_unless

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5  # storing one picture, before it is `failed`
    first_backoff_seconds: float = 0.2
    max_backoff_seconds: float = 5.0

    def backoff(self, attempt: int) -> float:
        return float(min(self.first_backoff_seconds * 2 ** (attempt - 1), self.max_backoff_seconds))


class JobLeft(Exception):
    """The worker is stopping before this job was finished: it is left for redelivery."""


class PictureMaker:
    """Makes the picture of each job it is given; `stopping`, once set, ends every retry."""

    def __init__(
        self,
        images: ImageStore,
        pictures: PictureRecords,
        policy: RetryPolicy,
        *,
        stopping: asyncio.Event | None = None,
        waiting: Callable[[], None] = lambda: None,
        draw: Callable[[ImageJob], Awaitable[bytes]] | None = None,
    ) -> None:
        self._images = images
        self._draw = draw or render_in_thread
        self._pictures = pictures
        self._policy = policy
        # Told before each retry: waiting for a dependency, with bounded timeouts, is alive.
        self._waiting = waiting
        # Without an event to watch, the maker is stopped by cancelling its task.
        self._stopping = stopping if stopping is not None else asyncio.Event()

    async def make(self, message: JobMessage) -> None:
        """The whole job; raises nothing but `JobLeft` (and cancellation)."""
        token = request_id_var.set(message.request_id)
        try:
            await self._make(message)
        except JobLeft:
            raise
        except Exception:  # one picture's bug must not stop the others; the reconciler retries
            log.exception("picture %s failed unexpectedly", message.key)
        finally:
            request_id_var.reset(token)

    async def _make(self, message: JobMessage) -> None:
        try:
            job = ImageJob.decode(message.payload)
        except ImageJobError as error:
            log.error("bad image job %r: %s", message.key, error)
            JOBS_DONE.labels("invalid").inc()
            if message.key:
                await self._record(message.key, ImageStatus.FAILED, None)
            return
        if not message.request_id:
            request_id_var.set(job.request_id)  # reset with the outer token by `make`
        status, key = await self._draw_and_store(job)
        await self._record(job.figalization_id, status, key)
        JOBS_DONE.labels(status.value).inc()
        if status is ImageStatus.READY:
            LAST_PICTURE.set_to_current_time()
            if job.created_at:
                END_TO_END_SECONDS.observe(max(0.0, time.time() - job.created_at))
        log.info("picture %s %s", job.figalization_id, status.value)

    async def _draw_and_store(self, job: ImageJob) -> tuple[ImageStatus, str | None]:
        try:
            with RENDER_SECONDS.time():
                png = await self._draw(job)
        except Exception:  # a job Pillow cannot draw will never be drawable: fail it, don't retry
            log.exception("cannot render picture %s", job.figalization_id)
            return ImageStatus.FAILED, None
        key = image_key(job.figalization_id)
        attempts = self._policy.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                with UPLOAD_SECONDS.time():
                    await self._images.put(key, png)
            except ImageStoreUnavailable as error:
                log.warning(
                    "storing picture %s failed (attempt %d/%d): %s",
                    job.figalization_id,
                    attempt,
                    attempts,
                    error,
                )
                if attempt < attempts:
                    STORE_RETRIES.inc()
                    await self._before_retry(attempt)
            else:
                return ImageStatus.READY, key
        return ImageStatus.FAILED, None

    async def _record(self, figalization_id: str, status: ImageStatus, key: str | None) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                recorded = await self._pictures.record(figalization_id, status, key)
            except StoreUnavailable as error:
                log.warning(
                    "recording picture %s waits for the database: %s", figalization_id, error
                )
                await self._before_retry(attempt)
            else:
                break
        if recorded is Recorded.ALREADY_READY:
            JOBS_REDELIVERED.inc()
            log.warning("picture %s was ready already: its job came again", figalization_id)
        elif recorded is Recorded.NO_SUCH_FIGALIZATION:
            log.error("picture %s belongs to no stored figalization", figalization_id)

    async def _before_retry(self, attempt: int) -> None:
        """The backoff before another attempt, cut short by the stop, which leaves the job."""
        self._waiting()
        await sleep_unless(self._stopping, self._policy.backoff(attempt))
        if self._stopping.is_set():
            raise JobLeft(f"stopping after {attempt} failed attempts")


# Where a card is drawn. The app's own worker (single-process mode) draws in a thread: its
# event loop serves the page, which must not wait for a card. The worker process draws on
# its loop: it is one process on one core (its pod's CPU limit), so a thread adds no core,
# only its hand-offs and the loop's fight with it for the GIL (an interleaved A/B of the two
# was within the bench machine's noise; the profile on the loop is the readable one). Its
# loop stalls for one card at a time (~4 ms), which delays
# nothing that waits in seconds: the group's heartbeats, the store's and the database's
# timeouts (`/healthz` is served by a thread of its own).


async def render_in_thread(job: ImageJob) -> bytes:
    return await asyncio.to_thread(
        render_card, phrase=job.phrase, result=job.result, scheme_name=job.scheme_name
    )


async def render_here(job: ImageJob) -> bytes:
    return render_card(phrase=job.phrase, result=job.result, scheme_name=job.scheme_name)
