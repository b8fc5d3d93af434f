"""One write per loop turn: an answer's head and body leave in one system call, in order."""

from __future__ import annotations

import asyncio
from typing import Any

from app.coalesced_writes import CoalescingTransport


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 8000) if name == "sockname" else None


def coalescing() -> tuple[CoalescingTransport, RecordingTransport]:
    real = RecordingTransport()
    return CoalescingTransport(real, asyncio.get_running_loop()), real  # type: ignore[arg-type]


async def test_a_head_and_its_body_written_in_one_turn_leave_as_one_write() -> None:
    transport, real = coalescing()
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    transport.write(b"{}")
    assert real.writes == []  # nothing yet: the turn is not over
    await asyncio.sleep(0)
    assert real.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]


async def test_writes_of_later_turns_are_not_held_back() -> None:
    transport, real = coalescing()
    for chunk in (b"head", b"chunk 1", b"chunk 2"):  # a streamed answer
        transport.write(chunk)
        await asyncio.sleep(0)
        assert real.writes[-1] == chunk
    assert len(real.writes) == 3


async def test_close_sends_what_is_held_first_and_other_calls_reach_the_transport() -> None:
    transport, real = coalescing()
    transport.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    transport.write(b"")  # nothing to write: no extra call
    transport.close()
    assert real.writes == [b"HTTP/1.1 400 Bad Request\r\n\r\n"]
    assert real.closed
    assert transport.is_closing()
    assert transport.get_extra_info("sockname") == ("127.0.0.1", 8000)
    await asyncio.sleep(0)  # the scheduled flush finds nothing held
    assert len(real.writes) == 1
