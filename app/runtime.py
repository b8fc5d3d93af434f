"""The adapters and services of one running process, wired together once.

`asgi.create_app` builds a `Runtime` from `Settings`; handlers receive it by
dependency injection and never construct adapters themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.figalizations import Figalizer
from app.images import FsspecImageStore
from app.jobs.queue import JobQueue
from app.jobs.relay import OutboxRelay
from app.live import LiveFeed
from app.settings import Settings
from app.store.history import SqlHistory
from app.store.outbox import SqlOutbox


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    figalizer: Figalizer
    history: SqlHistory
    outbox: SqlOutbox
    queue: JobQueue
    relay: OutboxRelay
    images: FsspecImageStore
    live: LiveFeed
