"""A figalization as the product knows it, independent of how it is stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class ImageStatus(StrEnum):
    """Where the picture of a figalization is in its life: spec/api.md's `image.status`."""

    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Figalization:
    """One stored figalization; `id` sorts by creation time (a ULID)."""

    id: str
    phrase: str
    scheme: str
    result: str
    created_at: datetime
    image_status: ImageStatus = ImageStatus.PENDING
    image_key: str | None = None


def image_key(figalization_id: str) -> str:
    """The object name of a figalization's picture.

    Derived from the id alone, so a redelivered job overwrites the same object
    and never makes a second one.
    """
    return f"{figalization_id}.png"
