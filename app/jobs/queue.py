"""The job queue interface both backends implement.

The web tier never publishes directly: the outbox relay does, so what the
queue sees is exactly what the database committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from app.domain.image_job import JobMessage


class JobQueue(Protocol):
    async def start(self) -> None: ...
    async def publish(self, messages: Sequence[JobMessage]) -> None:
        """Return once the queue has every message; `QueueUnavailable` (app.outages) if not."""
        ...

    async def ping(self) -> None: ...
    async def close(self) -> None: ...
