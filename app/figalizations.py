"""The service layer: what happens when someone figalizes, and what they can read back.

Handlers call these methods and only render; every product decision is
here: validate, pick the scheme, figalize, store with its image job, degrade
(answer without storing) when the database is down, and which stored
figalization a reader gets. The web tier reaches the store only through here.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from app.domain import messages
from app.domain.figalization import Figalization, ImageStatus
from app.domain.figalize import figalize
from app.domain.image_job import ImageJob
from app.domain.phrase import PhraseError, validate
from app.domain.schemes import Catalogue, Scheme
from app.metrics import FIGALIZATIONS, REJECTED_INPUTS
from app.outages import StoreUnavailable
from app.store.history import History

log = logging.getLogger(__name__)


class UnknownScheme(LookupError):
    """The scheme id (or compat index) is not in the catalogue."""

    message = messages.UNKNOWN_SCHEME


class FigalizationStore(Protocol):
    """Where a new figalization goes with its image job, in one transaction."""

    async def add(self, figalization: Figalization, job: ImageJob) -> None: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    figalization: Figalization
    stored: bool  # False when the database was down: shown, but not stored or counted


class Figalizer:
    def __init__(
        self,
        catalogue: Catalogue,
        history: History,
        store: FigalizationStore,
        *,
        max_phrase_length: int,
        new_id: Callable[[], str],
        on_stored: Callable[[Figalization], None] = lambda _: None,
    ) -> None:
        self.catalogue = catalogue
        self._history = history
        self._store = store
        self._max_length = max_phrase_length
        self._new_id = new_id
        self._on_stored = on_stored

    def scheme(self, scheme_id: str | None) -> Scheme:
        if not scheme_id:
            return self.catalogue.default
        scheme = self.catalogue.get(scheme_id)
        if scheme is None:
            raise UnknownScheme(scheme_id)
        return scheme

    async def figalize(self, text: str, scheme_id: str | None, *, request_id: str = "") -> Outcome:
        """Raises `PhraseError` or `UnknownScheme` for bad input; never for a down database."""
        try:
            scheme = self.scheme(scheme_id)
            phrase = validate(text, max_length=self._max_length)
        except PhraseError as error:
            REJECTED_INPUTS.labels(error.code).inc()
            log.info("phrase refused: %s", error.code)
            raise
        except UnknownScheme:
            REJECTED_INPUTS.labels("unknown_scheme").inc()
            raise
        figalization = Figalization(
            id=self._new_id(),
            phrase=phrase,
            scheme=scheme.id,
            result=figalize(phrase, scheme),
            created_at=datetime.now(UTC),
        )
        try:
            await self._store.add(figalization, self._job(figalization, scheme.name, request_id))
        except StoreUnavailable as error:
            log.warning("figalization answered but not stored: %s", error)
            _counted(scheme.id, stored=False).inc()
            return Outcome(figalization, stored=False)
        _counted(scheme.id, stored=True).inc()
        log.info("figalization %s stored (scheme %s)", figalization.id, scheme.id)
        log.debug("figalization %s of phrase %r", figalization.id, phrase)  # user text: DEBUG only
        self._on_stored(figalization)
        return Outcome(figalization, stored=True)

    async def get(self, figalization_id: str) -> Figalization | None:
        return await self._history.get(figalization_id)

    async def page(self, *, limit: int, before: str | None) -> list[Figalization]:
        """Newest first, strictly older than the figalization `before` (a cursor)."""
        return await self._history.page(limit=limit, before=before)

    async def latest(self) -> Figalization | None:
        return await self._history.latest()

    async def total(self) -> int:
        return await self._history.total()

    async def newest_ready_picture(self, result: str) -> Figalization | None:
        """The newest figalization with this result, if its picture is drawn: the original
        service answered "the picture of this result", not of one figalization."""
        figalization = await self._history.newest_with_result(result)
        if figalization is None or figalization.image_status is not ImageStatus.READY:
            return None
        return figalization

    def image_job(self, figalization: Figalization, request_id: str = "") -> ImageJob:
        return self._job(figalization, self.scheme_name(figalization.scheme), request_id)

    @staticmethod
    def _job(figalization: Figalization, scheme_name: str, request_id: str) -> ImageJob:
        return ImageJob(
            figalization_id=figalization.id,
            phrase=figalization.phrase,
            result=figalization.result,
            scheme=figalization.scheme,
            scheme_name=scheme_name,
            request_id=request_id,
            created_at=figalization.created_at.timestamp(),
        )

    def scheme_name(self, scheme_id: str) -> str:
        scheme = self.catalogue.get(scheme_id)
        return scheme.name if scheme else scheme_id


@functools.cache  # schemes come from the catalogue, so the cache is as small as it is
def _counted(scheme_id: str, *, stored: bool) -> Any:
    """The labelled counter, looked up once: `labels()` takes a lock on every call."""
    return FIGALIZATIONS.labels(scheme_id, "true" if stored else "false")
