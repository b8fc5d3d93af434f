"""The in-process queue of the single-process mode: an asyncio queue in the app.

The worker task started beside the web app reads from it. It holds nothing
the database does not: a crash loses only copies, and the reconciler queues
pictures still pending again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from app.domain.image_job import JobMessage


class InProcessQueue:
    def __init__(self) -> None:
        self._messages: asyncio.Queue[JobMessage] = asyncio.Queue()

    async def start(self) -> None:
        return None

    async def publish(self, messages: Sequence[JobMessage]) -> None:
        for message in messages:
            self._messages.put_nowait(message)

    async def get(self) -> JobMessage:
        return await self._messages.get()

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
