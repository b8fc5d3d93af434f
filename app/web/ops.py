"""Operations endpoints of the public port: liveness, and readiness with each dependency's state.

Ready means "this process can serve now": started and not draining. A
dependency that is down is *not* a readiness failure — the page degrades
instead (README, "When something is down") — otherwise Kubernetes would take
every replica out of the Service at once when Kafka or the object store
blinks. The dependencies' states stay in the `/readyz` body, and in metrics
and alerts. Metrics are not here: they are on the operations port
(`app.operations_port`), never on the public one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import msgspec
from litestar import Controller, Response, get
from litestar.di import NamedDependency

from app.deadline import within
from app.runtime import Health

CHECK_TIMEOUT_SECONDS = 1.0
CACHE_SECONDS = 1.0
Measure = TypeVar("Measure", int, float)


class DependencyState(msgspec.Struct):
    ok: bool
    detail: str = ""


class QueueState(DependencyState):
    """The queue, and how long the oldest job not yet handed to it has waited: seconds,
    0 when none waits, None when the database cannot say. It grows while the relay cannot
    publish, whatever `ok` says (the broker may answer and still refuse the jobs)."""

    oldest_job_age_seconds: float | None = None


class Readiness(msgspec.Struct):
    ready: bool
    database: DependencyState
    queue: QueueState
    images: DependencyState
    outbox_backlog: int | None


# The database, the queue, the image store, and the outbox backlog (None when unknown).
Dependencies = tuple[DependencyState, QueueState, DependencyState, int | None]


@dataclass
class ReadinessProbe:
    """Ready while serving (between `start_serving` and `stop_serving`, which the app's
    lifespan calls); checks every dependency at most once a second for the body,
    however often it is asked."""

    health: Health
    serving: bool = False
    _cached: tuple[float, Dependencies] | None = field(default=None, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    def start_serving(self) -> None:
        """Start-up is over: ready, whatever the dependencies say."""
        self.serving = True

    def stop_serving(self) -> None:
        """Draining: not ready any more, so no new traffic is routed here."""
        self.serving = False

    async def check(self) -> Readiness:
        database, queue, images, backlog = await self._dependencies()
        return Readiness(self.serving, database, queue, images, backlog)

    async def _dependencies(self) -> Dependencies:
        async with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < CACHE_SECONDS:
                return self._cached[1]
            health = self.health
            database, queue, images, backlog, age = await asyncio.gather(
                _state(health.database),
                _state(health.queue),
                _state(health.images),
                _measured(health.backlog),
                _measured(health.oldest_job_age),
            )
            waited = None if age is None else round(age, 1)
            states = (database, QueueState(queue.ok, queue.detail, waited), images, backlog)
            self._cached = (time.monotonic(), states)
            return states


async def _state(check: Callable[[], Awaitable[None]]) -> DependencyState:
    try:
        await within(CHECK_TIMEOUT_SECONDS, check())
    except Exception as error:  # any failure means "not ok"; the detail says which
        # A silent link says nothing at all: say how long it was waited for.
        said = str(error) or f"no answer within {CHECK_TIMEOUT_SECONDS:g} s"
        return DependencyState(ok=False, detail=type(error).__name__ + ": " + said[:200])
    return DependencyState(ok=True)


async def _measured(measure: Callable[[], Awaitable[Measure]]) -> Measure | None:
    try:
        return await within(CHECK_TIMEOUT_SECONDS, measure())
    except Exception:  # the database state already says why
        return None


class OpsController(Controller):
    include_in_schema = False

    @get("/healthz", name="healthz")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/readyz", name="readyz")
    async def readyz(self, probe: NamedDependency[ReadinessProbe]) -> Response[Readiness]:
        readiness = await probe.check()
        return Response(readiness, status_code=200 if readiness.ready else 503)
