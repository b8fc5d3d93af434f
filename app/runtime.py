"""The services one running process offers its handlers, wired together once.

`asgi.create_app` builds a `Runtime` from `Settings`; handlers receive it by
dependency injection and never construct adapters themselves. It holds the
service layer and the two things handlers may touch beside it: the image
store (typed by its protocol) and the health checks of the dependencies.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from app.figalizations import Figalizer
from app.images import ImageStore
from app.live import LiveFeed
from app.settings import Settings

Check = Callable[[], Awaitable[None]]  # returns when the dependency answers, raises if not


@dataclass(frozen=True, slots=True)
class Health:
    """How to ask each dependency whether it is there, for readiness and operators."""

    database: Check
    queue: Check
    images: Check
    backlog: Callable[[], Awaitable[int]]  # image jobs not yet handed to the queue
    oldest_job_age: Callable[[], Awaitable[float]]  # seconds the oldest of them has waited


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    figalizer: Figalizer
    live: LiveFeed
    images: ImageStore
    health: Health
