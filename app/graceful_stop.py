"""How `serve` stops: a SIGTERM never resets a connection the server had already let in.

uvicorn's own stop closes its listening socket, then closes every connection
that has not begun a request. Behind a proxy that opens a connection per
request (deploy/nginx/nginx.conf), both drop requests the proxy has already
sent: a connection still in the kernel's accept queue is reset when the
listening socket closes, and one accepted a moment ago whose request is not
read yet is closed unread. nginx answers 502 for either, and never retries a
POST it has sent (it cannot know the app did not act on it). Only a refused
connection is safe: nginx then tries the next replica, whatever the method.

So `DrainingServer` stops in this order:
1. the event loop stops accepting, but a copy of each listening socket is
   kept open, so nothing queued is reset;
2. everything in the accept queue is accepted from that copy, and the copy is
   closed at once: from now on a connection is refused (microseconds later);
3. the connections that have not sent their first request yet get up to
   FIRST_REQUEST_SECONDS to send it (nginx sends it right after connecting);
4. then uvicorn's own shutdown: in-flight requests finish (keep-alive off),
   then the lifespan ends.

It never drops a request it has read; it only cuts a client that connected
and sent nothing for FIRST_REQUEST_SECONDS. Tested by
tests/integration/test_rolling_restart.py, through the real nginx.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import time

import uvicorn

log = logging.getLogger(__name__)

FIRST_REQUEST_SECONDS = 1.0


class DrainingServer(uvicorn.Server):
    """uvicorn's server with the stop described above (one process: `serve` without
    `--workers`, as every container runs it)."""

    _listeners: list[socket.socket]

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # A second descriptor of each listening socket: the loop closing its own
        # then leaves the socket listening until `_empty_accept_queues` closes this one.
        self._listeners = [
            socket.socket(fileno=os.dup(listener.fileno()))
            for server in getattr(self, "servers", [])
            for listener in server.sockets
        ]

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in getattr(self, "servers", []):
            server.close()  # uvicorn closes them again: a no-op
        queued = _empty_accept_queues(getattr(self, "_listeners", []))
        loop = asyncio.get_running_loop()
        protocol = functools.partial(  # as uvicorn's own startup builds it
            self.config.http_protocol_class,  # type: ignore[call-arg]
            config=self.config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
        )
        for connection in queued:
            await loop.connect_accepted_socket(protocol, connection)
        if queued:
            log.info("stopping: %d queued connection(s) taken in", len(queued))
        await self._wait_for_first_requests(FIRST_REQUEST_SECONDS)
        await super().shutdown(sockets)

    async def _wait_for_first_requests(self, seconds: float) -> None:
        """Until every HTTP connection has begun a request (uvicorn's protocols hold it
        in `cycle`, None before the first), or `seconds` pass."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            # By attribute, not by class: the configured protocol may be a factory (a
            # partial of app.header_timeout's protocol); websockets have no `cycle`.
            waiting = [
                connection
                for connection in self.server_state.connections
                if hasattr(connection, "cycle") and connection.cycle is None
            ]
            if not waiting:
                return
            await asyncio.sleep(0.005)
        log.info("stopping: a connection sent no request within %.1fs; closing it", seconds)


def _empty_accept_queues(listeners: list[socket.socket]) -> list[socket.socket]:
    """Accept whatever each listening socket holds, then close it, with no await in
    between: a connection that arrives after this is refused, not reset."""
    accepted: list[socket.socket] = []
    for listener in listeners:
        listener.setblocking(False)
        while True:
            try:
                connection, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError as error:  # the socket was not listening after all
                log.warning("stopping: cannot empty the accept queue: %s", error)
                break
            connection.setblocking(False)
            accepted.append(connection)
        listener.close()
    return accepted
