"""The job queue interface both backends implement.

The web tier never publishes directly: the outbox relay does, so what the
queue sees is exactly what the database committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol


class Message(NamedTuple):
    key: str  # the figalization id: one picture's jobs share a partition
    payload: bytes  # an encoded ImageJob
    request_id: str = ""  # travels as a header, for following one request through the logs


class QueueUnavailable(Exception):
    """The queue did not accept the messages; they stay in the outbox."""


class JobQueue(Protocol):
    async def start(self) -> None: ...
    async def publish(self, messages: Sequence[Message]) -> None: ...
    async def ping(self) -> None: ...
    async def close(self) -> None: ...
