"""How the worker stops on time: SIGTERM as an event, and the deadlines after it.

The worker promises to be gone within GRACE_SECONDS of SIGTERM (Kubernetes
waits 60 s before it kills): its current batch gets FINISH_SECONDS, then
leaving the group and closing the database get CLOSE_SECONDS each, so a
database or broker that is gone can hold the exit no longer than that. What
is cut short was not committed, and is delivered again to the next worker.
Only the work handed to these functions is ever cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)

GRACE_SECONDS = 20
FINISH_SECONDS = 10
CLOSE_SECONDS = 4


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT, for the loops to watch."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    return stopping


async def sleep_unless(stopping: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less when `stopping` is set meanwhile."""
    try:
        async with asyncio.timeout(seconds):
            await stopping.wait()
    except TimeoutError:
        return


async def finish_within(
    seconds: float, stopping: asyncio.Event, work: Coroutine[Any, Any, None]
) -> None:
    """Run `work` to its end, but once `stopping` is set give it only `seconds` more:
    then it is cancelled (say, a commit waiting for a broker that is gone)."""
    task = asyncio.create_task(work)
    stopped = asyncio.create_task(stopping.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.wait({task}, timeout=seconds)
    finally:
        stopped.cancel()
        if not task.done():
            log.warning("the batch is not done %.0f s after the stop: cancelled", seconds)
            task.cancel()
            await asyncio.wait({task})
    if not task.cancelled():
        task.result()  # the work's crash is the caller's


async def at_most(seconds: float, closing: Coroutine[Any, Any, None], what: str) -> None:
    """Closing a connection to a server that is gone must neither hold the exit nor fail
    it: the work is committed or not by now. (aiokafka's consumer, stopped while its
    broker is gone, even ends cancelled.)"""
    task = asyncio.create_task(closing)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        log.warning("%s took over %.0f s; exiting without it", what, seconds)
    elif task.cancelled():
        log.warning("%s was cut short", what)
    elif (error := task.exception()) is not None:
        log.warning("%s failed: %r", what, error)
