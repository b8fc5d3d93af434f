"""One socket write per answer: what a response's head and body become on the wire.

uvicorn's httptools protocol writes an answer's head when the app sends
`http.response.start` and its body when the app sends `http.response.body`:
two `send()` system calls for every answer, even though nearly every answer
here is two messages sent back to back. On the loopback and on a pod's
network a system call is most of what writing costs, and the receiver is
woken twice. `CoalescingTransport` stands in for the connection's transport
and holds what is written until the end of the current event-loop turn (or
the next write, or a close), then writes it in one call: a head and the body
that follows it in the same turn leave together. Nothing waits longer than
the turn that wrote it, so a streamed answer (its chunks in later turns)
still goes out as the app sends it, and order is kept because every write of
the connection, uvicorn's own error answers included, passes through here.
"""

from __future__ import annotations

import asyncio
from typing import Any


class CoalescingTransport:
    """A connection's transport whose writes within one loop turn are sent as one."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(bytes(data))

    def flush(self) -> None:
        """Write what is held now (a no-op when nothing is)."""
        held = self._held
        if held:
            self._held = []
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self.flush()  # an answer written just before the close still goes out
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        """Everything else (pause/resume reading, extra info, set_protocol, abort…) is the
        real transport's."""
        return getattr(self._transport, name)
