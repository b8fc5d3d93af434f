"""A figalization and its image job, numbered, for the store and relay tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.domain.figalization import Figalization
from app.domain.image_job import ImageJob


def make(n: int, *, result: str = "Фигосипед") -> tuple[Figalization, ImageJob]:
    figalization = Figalization(
        id=f"01JD{n:022d}",
        phrase="Велосипед",
        scheme="figa",
        result=result,
        created_at=datetime(2026, 11, 29, 10, 0, tzinfo=UTC) + timedelta(seconds=n),
    )
    job = ImageJob(
        figalization.id,
        figalization.phrase,
        result,
        "figa",
        "Фигачечная",
        request_id=f"request-{n}",
    )
    return figalization, job
