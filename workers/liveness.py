"""The worker's liveness: a heartbeat its consume loop beats, judged on the operations port.

Kubernetes restarts a worker whose `/healthz` fails, so `/healthz` must fail
exactly when a restart would help: when the loop is hung (a call that never
returns, an event loop blocked) — not when it is busy doing what it is meant
to. The loop beats once per round: after each poll (also an empty one, every
half second when idle), before each attempt to reach an unreachable broker,
and before each retry of a job waiting for the database or the object store
(a dependency that is down is not cured by a restart, and the loop is alive
while it waits with a bounded timeout). A heartbeat older than
`FIGA_WORKER_STALL_SECONDS` means none of these happened: the loop is stuck.

`beat` runs on the event loop, `check` on the operations port's thread: a float
assigned and read whole is all they share.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Heartbeat:
    """When the consume loop was last seen alive, and whether that is recent enough."""

    def __init__(self, stall_seconds: float, *, clock: Callable[[], float] = time.monotonic):
        self._stall_seconds = stall_seconds
        self._clock = clock
        self._last = clock()  # starting counts as a beat: the grace begins at start-up

    def beat(self) -> None:
        self._last = self._clock()

    def silent_seconds(self) -> float:
        return max(0.0, self._clock() - self._last)

    def alive(self) -> bool:
        return self.check()[0]

    def check(self) -> tuple[bool, dict[str, object]]:
        """The operations port's `/healthz`: alive, and how long since the last sign of life."""
        silent = self.silent_seconds()
        detail: dict[str, object] = {
            "silent_seconds": round(silent, 3),
            "stall_seconds": self._stall_seconds,
        }
        return silent <= self._stall_seconds, detail
