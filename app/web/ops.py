"""Operations endpoints: liveness, readiness with each dependency's state, metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import msgspec
from litestar import Controller, Response, get
from litestar.di import NamedDependency
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from app.runtime import Runtime
from app.web import paths

CHECK_TIMEOUT_SECONDS = 1.0
CACHE_SECONDS = 1.0


class DependencyState(msgspec.Struct):
    ok: bool
    detail: str = ""


class Readiness(msgspec.Struct):
    ready: bool
    database: DependencyState
    queue: DependencyState
    images: DependencyState
    outbox_backlog: int | None


@dataclass
class ReadinessProbe:
    """Checks every dependency at most once a second, however often it is asked."""

    runtime: Runtime
    _cached: tuple[float, Readiness] | None = field(default=None, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    async def check(self) -> Readiness:
        async with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < CACHE_SECONDS:
                return self._cached[1]
            health = self.runtime.health
            database, queue, images, backlog = await asyncio.gather(
                _state(health.database),
                _state(health.queue),
                _state(health.images),
                _backlog(health.backlog),
            )
            readiness = Readiness(
                ready=database.ok and queue.ok and images.ok,
                database=database,
                queue=queue,
                images=images,
                outbox_backlog=backlog,
            )
            self._cached = (time.monotonic(), readiness)
            return readiness


async def _state(check: Callable[[], Awaitable[None]]) -> DependencyState:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await check()
    except Exception as error:  # any failure means "not ready"; the detail says which
        return DependencyState(ok=False, detail=type(error).__name__ + ": " + str(error)[:200])
    return DependencyState(ok=True)


async def _backlog(backlog: Callable[[], Awaitable[int]]) -> int | None:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            return await backlog()
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

    @get(paths.METRICS, name="metrics")
    async def metrics(self) -> Response[bytes]:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
