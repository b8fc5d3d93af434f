"""The HTTP/1.1 protocol `serve` runs: uvicorn's, with a bound on reading a request's head.

uvicorn (0.54, the locked one) bounds only the idle time between two requests
of a kept-alive connection (`timeout_keep_alive`). Neither its httptools
protocol nor its h11 one bounds the time from a connection's first byte to
the end of a request's headers, and a new connection that sends nothing is
never timed at all: a client that sends half a request line and then waits
("slowloris") holds the connection, and a slot of every proxy in front,
for as long as it likes. uvicorn accepts a protocol class (or any factory)
as its `http` option; `protocol(seconds)` is httptools' protocol (the one
uvicorn picks itself, `uvicorn[standard]` installs httptools) that times
each request head from the connection's opening or the request's first byte
to the end of its headers. When that takes longer, the connection is closed
without an answer, as nginx's `client_header_timeout` does. The body is not timed here:
it is at most 4 KiB (`security.MAX_BODY_BYTES`), and a handler waiting for it
is one task, not a blocked server.

The same protocol writes each answer in one system call, not two
(`coalesced_writes`): it gives uvicorn a coalescing stand-in for the
connection's transport.

The factory is a `functools.partial` of a module-level class, so uvicorn can
pickle it into the processes of `serve --workers N`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.coalesced_writes import CoalescingTransport


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """httptools' protocol that closes a connection whose request head is not complete
    within `header_timeout` seconds of the connection or of the request's first byte, and
    writes each answer at once."""

    def __init__(self, *args: Any, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self._head_since: float | None = None  # when the head being read began (loop clock)
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Set after uvicorn's own setup, which reads the socket's addresses from the real one.
        self.transport = CoalescingTransport(transport, self.loop)  # type: ignore[assignment]
        self._head_since = self.loop.time()  # a connection that never sends a byte is timed too
        self._head_timer = self.loop.call_at(self._head_since + self.header_timeout, self._check)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    # One timer per connection, re-armed when it fires, not one per request: a request only
    # notes when its head began and that it ended (a timer armed and cancelled for every
    # request of a kept-alive connection cost more than that).
    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_since is None:  # the next request of a kept-alive connection
            self._head_since = self.loop.time()

    def on_headers_complete(self) -> None:
        self._head_since = None
        super().on_headers_complete()

    def _check(self) -> None:
        self._head_timer = None
        now, since = self.loop.time(), self._head_since
        if since is not None and now - since >= self.header_timeout:
            if not self.transport.is_closing():
                self.transport.close()
            return
        self._head_timer = self.loop.call_at(
            (now if since is None else since) + self.header_timeout, self._check
        )


def protocol(header_timeout: float) -> Callable[..., HeaderTimeoutProtocol]:
    """uvicorn's `http` option: connections whose request head takes longer are closed."""
    return functools.partial(HeaderTimeoutProtocol, header_timeout=header_timeout)
