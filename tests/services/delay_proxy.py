"""A TCP proxy that delays every byte by a fixed time each way: a slow link, measurably.

`tc netem` is not available on every machine (nor in this sandbox); a proxy in
the test's own process gives the same effect for one service: each chunk read
from one side is written to the other `one_way_seconds` later, in order, so a
round trip costs `2 × one_way_seconds` more while the bandwidth stays whole.
It runs its own event loop in a thread, so the test's loop and the processes
under test all see the same slow server.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator


class DelayProxy:
    def __init__(
        self, listen_host: str, target: tuple[str, int], *, one_way_seconds: float
    ) -> None:
        self.listen_host = listen_host
        self.target = target
        self.one_way_seconds = one_way_seconds
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="delay-proxy", daemon=True
        )
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)

    def close(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.listen_host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        pipes = [
            asyncio.create_task(self._pipe(client_reader, server_writer)),
            asyncio.create_task(self._pipe(server_reader, client_writer)),
        ]
        self._tasks.update(pipes)
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pipes:
                task.cancel()
                self._tasks.discard(task)
            for writer in (client_writer, server_writer):
                writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read as fast as it comes; write each chunk once it is `one_way_seconds` old."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, chunk = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not chunk:
                    writer.write_eof() if writer.can_write_eof() else writer.close()
                    return
                writer.write(chunk)
                await writer.drain()

        delivery = asyncio.create_task(deliver())
        try:
            while True:
                chunk = await reader.read(65536)
                await queue.put((time.monotonic() + self.one_way_seconds, chunk))
                if not chunk:
                    break
            await delivery
        finally:
            delivery.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await delivery


@contextlib.contextmanager
def delayed(
    listen_host: str, target: tuple[str, int], *, round_trip_seconds: float
) -> Iterator[DelayProxy]:
    """A running `DelayProxy` adding `round_trip_seconds` to each round trip to `target`."""
    proxy = DelayProxy(listen_host, target, one_way_seconds=round_trip_seconds / 2)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()
