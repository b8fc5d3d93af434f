"""Input rules of spec/figalization.md § Input: normalize, then validate.

An invalid phrase is described by `PhraseError` (a machine code and a human
message) and must never reach storage, the counter or the image queue; this
module only decides, it never stores.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from app.domain import messages

ErrorCode = Literal["empty", "too_long", "not_russian"]

RUSSIAN_LETTERS = "А-Яа-яЁё"
_ALLOWED = re.compile(rf"[{RUSSIAN_LETTERS}0-9 .,!?:;\-–—«»\"'()…№]*")
_HAS_LETTER = re.compile(rf"[{RUSSIAN_LETTERS}]")
# Python's \s also matches the separators U+001C–U+001F, which Unicode calls control
# characters, not whitespace: those must be refused by rule 3, not collapsed.
_WHITESPACE = re.compile(r"[^\S\x1c-\x1f]+")


@dataclass(frozen=True, slots=True)
class PhraseError(Exception):
    """Why a phrase was refused; `code` is the API's `error` field."""

    code: ErrorCode
    message: str


def normalize(text: str) -> str:
    """NFC, trimmed, inner whitespace runs collapsed to one space (rule 1)."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def validate(text: str, *, max_length: int) -> str:
    """The normalized phrase, or `PhraseError` by rules 2–4, checked in that order."""
    phrase = normalize(text)
    if not phrase:
        raise PhraseError("empty", messages.EMPTY)
    if len(phrase) > max_length:
        raise PhraseError("too_long", messages.too_long(max_length))
    if not _ALLOWED.fullmatch(phrase) or not _HAS_LETTER.search(phrase):
        raise PhraseError("not_russian", messages.NOT_RUSSIAN)
    return phrase
