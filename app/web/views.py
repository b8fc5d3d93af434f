"""Shapes the HTTP layer shows: the v2 API object and the template view of a result."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import msgspec

from app.domain.figalization import Figalization, ImageStatus
from app.figalizations import Figalizer
from app.web.paths import image_path


class ImageView(msgspec.Struct):
    status: Literal["pending", "ready", "failed"]
    url: str | None


class FigalizationView(msgspec.Struct):
    """spec/api.md's figalization object."""

    id: str
    phrase: str
    scheme: str
    result: str
    created_at: str
    image: ImageView


class ErrorView(msgspec.Struct):
    error: str
    message: str


def iso_utc(moment: datetime) -> str:
    """`2026-11-29T04:47:34Z` of a UTC moment (`isoformat` is C; `strftime` costs 3×).

    Every answer to a POST shows the second it was made in, thousands of times a second,
    and an aware `isoformat` costs ~1.4 µs: the text of the last UTC second is kept
    (~0.3 µs to find it again)."""
    global _kept_second
    if moment.tzinfo is UTC:
        second = moment.timestamp() // 1  # floor, as the text is (also before 1970)
        if second == _kept_second[0]:
            return _kept_second[1]
        text = moment.isoformat(timespec="seconds")[:19] + "Z"
        _kept_second = (second, text)
        return text
    return moment.isoformat(timespec="seconds")[:19] + "Z"


_kept_second: tuple[float, str] = (float("nan"), "")  # whole seconds since the epoch, text


def download_name(figalization_id: str) -> str:
    """The file name a downloaded picture is saved under."""
    return f"figachechnaya-{figalization_id}.png"


def api_view(figalization: Figalization, base_url: str) -> FigalizationView:
    """`base_url` is `FIGA_PUBLIC_BASE_URL` (`Settings.public_base`), never the request's Host."""
    ready = figalization.image_status is ImageStatus.READY
    return FigalizationView(
        id=figalization.id,
        phrase=figalization.phrase,
        scheme=figalization.scheme,
        result=figalization.result,
        created_at=iso_utc(figalization.created_at),
        image=ImageView(
            status=figalization.image_status.value,
            url=base_url.rstrip("/") + image_path(figalization.id) if ready else None,
        ),
    )


class ResultView(msgspec.Struct, frozen=True):
    """What the page shows of one figalization."""

    id: str
    phrase: str
    result: str
    scheme_name: str
    image_status: str
    stored: bool

    @property
    def download_name(self) -> str:
        return download_name(self.id)


def result_view(figalizer: Figalizer, figalization: Figalization, *, stored: bool) -> ResultView:
    return ResultView(
        id=figalization.id,
        phrase=figalization.phrase,
        result=figalization.result,
        scheme_name=figalizer.scheme_name(figalization.scheme),
        image_status=figalization.image_status.value,
        stored=stored,
    )
