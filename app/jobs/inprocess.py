"""The in-process queue of the single-process mode: an asyncio queue in the app.

The worker task started beside the web app reads from it. It holds nothing
the database does not: a crash loses only copies, and the reconciler queues
pictures still pending again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from app.jobs.queue import Message


class InProcessQueue:
    def __init__(self) -> None:
        self._messages: asyncio.Queue[Message] = asyncio.Queue()

    async def start(self) -> None:
        return None

    async def publish(self, messages: Sequence[Message]) -> None:
        for message in messages:
            self._messages.put_nowait(message)

    async def get(self) -> Message:
        return await self._messages.get()

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
