"""How long the oldest unpublished image job has waited: for `/readyz`, a gauge and an alert.

A relay that cannot publish (the broker is away, or refuses the producer)
shows first as this age growing, whatever the traffic: a healthy relay
publishes a job within a second, so an age of minutes is an outage even when
the backlog is small. The outbox is read at most every `READ_EVERY_SECONDS`
per process, however often readiness or Prometheus ask; between reads the age
counts from the oldest job last read, so it grows smoothly while nothing goes
out, and a scrape never touches the database (`known_seconds` does no I/O).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from app.store.outbox import SqlOutbox

READ_EVERY_SECONDS = 3.0


def _utc_now() -> datetime:
    return datetime.now(UTC)


class OldestJob:
    def __init__(
        self,
        outbox: SqlOutbox,
        *,
        read_every_seconds: float = READ_EVERY_SECONDS,
        now: Callable[[], datetime] = _utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._outbox = outbox
        self._read_every = read_every_seconds
        self._now = now
        self._monotonic = monotonic
        self._read_at: float | None = None
        self._written_at: datetime | None = None  # of the oldest job at the last read

    async def age_seconds(self) -> float:
        """Seconds the oldest waiting job has waited, 0 when none waits; reads the outbox
        when the last read is a period old. A failed read raises (`StoreUnavailable`) and
        leaves the last known age, to be read again a period later."""
        now = self._monotonic()
        if self._read_at is None or now - self._read_at >= self._read_every:
            self._read_at = now  # claimed before the await: a concurrent caller uses the known
            self._written_at = await self._outbox.oldest_written_at()
        return self.known_seconds()

    def none_waiting(self) -> None:
        """The outbox was just counted empty: nothing waits, whatever the last read said
        (without this the known age counted on for up to a period after the last job left)."""
        self._written_at = None
        self._read_at = self._monotonic()

    def known_seconds(self) -> float:
        """The age as of now, from the last read (the gauge's value at a scrape)."""
        if self._written_at is None:
            return 0.0
        return max(0.0, (self._now() - self._written_at).total_seconds())
