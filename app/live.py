"""The newest figalization and the total, kept in memory for the polled fragments.

Thousands of browsers poll every two seconds; answering each poll from the
database would cost a query per poll. Instead each process re-reads both
values every `refresh_seconds` (so it sees other replicas' figalizations) and
takes its own at once, and polls compare versions against memory only. A
fragment of the state is rendered once per version and kept here, with the
state it shows, so two apps in one process never share a copy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from app.domain.figalization import Figalization
from app.outages import StoreUnavailable
from app.store.history import History

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LiveState:
    latest: Figalization | None = None
    total: int = 0
    available: bool = False  # False until the first read succeeds, and while the store is down

    @property
    def hint_version(self) -> str:
        if not self.available:
            return "down"
        return self.latest.id if self.latest else "none"

    @property
    def total_version(self) -> str:
        return str(self.total) if self.available else "down"


class LiveFeed:
    def __init__(self, history: History, *, refresh_seconds: float) -> None:
        self._history = history
        self._refresh_seconds = refresh_seconds
        self.state = LiveState()
        self._rendered: dict[str, tuple[str, bytes]] = {}  # fragment name → (version, body)

    async def refresh(self) -> LiveState:
        try:
            latest = await self._history.latest()
            total = await self._history.total()
        except StoreUnavailable as error:
            if self.state.available:
                log.warning("live feed unavailable: %s", error)
            self.state = LiveState(self.state.latest, self.state.total, available=False)
            return self.state
        current = self.state
        if current.latest is not None and (latest is None or current.latest.id > latest.id):
            latest = current.latest  # a row this process just stored, not yet visible to the read
        self.state = LiveState(latest, max(total, current.total), available=True)
        return self.state

    def record(self, figalization: Figalization) -> None:
        """Take a figalization this process stored, without waiting for the next refresh."""
        state = self.state
        newer = state.latest is None or figalization.id > state.latest.id
        self.state = LiveState(
            figalization if newer else state.latest, state.total + 1, available=state.available
        )

    def rendered(self, name: str, version: str, render: Callable[[], str]) -> bytes:
        """The fragment `name` at `version`, from `render` only when that version is new."""
        cached = self._rendered.get(name)
        if cached is not None and cached[0] == version:
            return cached[1]
        body = render().encode()
        self._rendered[name] = (version, body)
        return body

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_seconds)
            try:
                await self.refresh()
            except Exception:  # the page must keep its live regions whatever one read hit
                log.exception("live feed refresh failed")
