"""The image job message: what the app asks a worker to draw.

Version 1, JSON, UTF-8. Decoding is strict (`ImageJobError`) so the worker can
tell a poisoned message, which it must mark failed and skip, from a transient
failure, which it must retry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import NamedTuple

import msgspec

VERSION = 1
# Compact UTF-8 JSON, encoded once per figalization: msgspec's costs a seventh of `json`'s.
_ENCODER = msgspec.json.Encoder()


class JobMessage(NamedTuple):
    """An encoded job as the outbox keeps it and the queue carries it."""

    key: str  # the figalization id: one picture's jobs share a partition
    payload: bytes  # `ImageJob.encode()`
    request_id: str = ""  # travels as a header, for following one request through the logs


class ImageJobError(ValueError):
    """A message that is not a version-1 image job and never will be."""


@dataclass(frozen=True, slots=True)
class ImageJob:
    """Everything a worker needs, so it never has to read the figalization back."""

    figalization_id: str
    phrase: str
    result: str
    scheme: str
    scheme_name: str
    request_id: str = ""
    created_at: float = 0.0  # unix seconds of the figalization, for end-to-end latency

    def encode(self) -> bytes:
        body = {
            "v": VERSION,
            "figalization_id": self.figalization_id,
            "phrase": self.phrase,
            "result": self.result,
            "scheme": self.scheme,
            "scheme_name": self.scheme_name,
            "request_id": self.request_id,
            "created_at": self.created_at,
        }  # spelled out: dataclasses.asdict deep-copies, and this runs once per request
        return _ENCODER.encode(body)

    def message(self) -> JobMessage:
        return JobMessage(self.figalization_id, self.encode(), self.request_id)

    @classmethod
    def decode(cls, raw: bytes) -> ImageJob:
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ImageJobError(f"not JSON: {error}") from error
        version = body.get("v") if isinstance(body, dict) else None
        if type(version) is not int or version != VERSION:
            raise ImageJobError("not a version-1 image job")
        created_at = body.get("created_at", 0.0)
        if type(created_at) not in (int, float):
            raise ImageJobError("field 'created_at' must be a number")
        job = cls(
            figalization_id=_text(body, "figalization_id"),
            phrase=_text(body, "phrase"),
            result=_text(body, "result"),
            scheme=_text(body, "scheme"),
            scheme_name=_text(body, "scheme_name"),
            request_id=_text(body, "request_id", default=""),
            created_at=float(created_at),
        )
        if not job.figalization_id:
            raise ImageJobError("empty figalization_id")
        return job


def _text(body: dict[str, object], field: str, default: str | None = None) -> str:
    value = body.get(field, default)
    if not isinstance(value, str):
        raise ImageJobError(f"field {field!r} must be a string")
    return value
