"""The form's htmx answer, rendered by Jinja once per shape and then only filled in.

The answer to the htmx form POST is `fragments/result.html` with the field
out of band. Rendering it with Jinja costs about a third of the whole
request (its three includes each build a new context), more than storing
the figalization. Yet only a handful of texts change from one answer to
the next — the phrase, the error, and the result's id, phrase, result and
scheme name — while everything the template decides on (which texts are
empty, stored or not, the picture's status) takes few values: the *shape*.

So `ResultAnswer` renders the template itself, with the real Jinja
environment (autoescaping on), once per shape, with a marker in place of
each text, and keeps that as UTF-8 pieces with a slot per marker (`Filled`);
an answer is then those pieces joined with the texts escaped exactly as
`markupsafe.escape`, the function Jinja's autoescaping calls, escapes them
(`escaped`). Pieces, not a format string: `str.format` parses its kilobyte
of format on every call, which cost more than the rest of the answer, and
the answer is sent as bytes anyway. The template stays the one source of
the markup: a changed template changes every answer. What it must never do:
let a text through unescaped, or serve a template that transformed a text
(a filter, a comparison) from a marker — such a template is refused at its
first render rather than answered wrongly. `tests/integration/test_form_fast_path.py`
checks that it answers exactly what Jinja renders, hostile texts included.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from app.web.views import ResultView

_MARKER = re.compile("\x00([0-9]+)mM\x00")
_SPECIAL = re.compile("[&<>\"']")
Shape = tuple[tuple[bool, ...], tuple[bool, str] | None]


class ResultAnswer:
    """`fragments/result.html` for htmx (`oob`), prerendered per shape."""

    def __init__(self, template: Any) -> None:
        self._template = template  # a jinja2.Template of the app's environment
        self._answers: dict[Shape, Filled] = {}

    def render(self, *, phrase: str, error: str | None, result: ResultView | None) -> bytes:
        """The answer's UTF-8 bytes."""
        texts = [phrase, error or "", *_texts_of(result)]
        shape: Shape = (
            tuple(map(bool, texts)),
            None if result is None else (result.stored, result.image_status),
        )
        filled = self._answers.get(shape)
        if filled is None:
            filled = self._answers[shape] = self._prerender(texts, result)
        return filled.fill(texts)

    def _prerender(self, texts: list[str], result: ResultView | None) -> Filled:
        """The template rendered with markers for the (non-empty) texts, as pieces and slots;
        checked once against Jinja's own rendering of the real texts."""
        filled = Filled(_MARKER.split(self._jinja(texts, result, marked=True)))
        if filled.leftover_marker or filled.fill(texts) != self._jinja(texts, result).encode():
            raise RuntimeError("fragments/result.html transforms a text: it cannot be prerendered")
        return filled

    def _jinja(self, texts: list[str], result: ResultView | None, *, marked: bool = False) -> str:
        """Jinja's rendering of these texts, or with a marker in place of each non-empty one
        (`mM`: a marker that went through a case filter no longer matches)."""
        if marked:
            texts = [f"\x00{i}mM\x00" if text else text for i, text in enumerate(texts)]
        if result is not None:
            result = msgspec.structs.replace(
                result, id=texts[2], phrase=texts[3], result=texts[4], scheme_name=texts[5]
            )
        html: str = self._template.render(
            phrase=texts[0], error=texts[1] or None, result=result, oob=True
        )
        return html


class Filled:
    """A rendering split at its markers: static UTF-8 pieces, and a slot between two of
    them for each marker, which says whose text goes there."""

    __slots__ = ("_pieces", "_slots", "leftover_marker")

    def __init__(self, split: list[str]) -> None:
        # `_MARKER.split` alternates static text and a marker's number: "a", "2", "b", ...
        self._pieces = [piece.encode() if i % 2 == 0 else b"" for i, piece in enumerate(split)]
        self._slots = [(i, int(split[i])) for i in range(1, len(split), 2)]
        self.leftover_marker = any("\x00" in piece for piece in split[::2])

    def fill(self, texts: list[str]) -> bytes:
        escaped_texts = [escaped(text).encode() for text in texts]
        pieces = self._pieces.copy()
        for position, text in self._slots:
            pieces[position] = escaped_texts[text]
        return b"".join(pieces)


def escaped(text: str) -> str:
    """`markupsafe.escape(text)` as plain text: the same five entities, without building a
    `Markup` object per text (its Python constructor costs more than the escaping)."""
    if not _SPECIAL.search(text):
        return text
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("'", "&#39;")
    )


def _texts_of(result: ResultView | None) -> tuple[str, str, str, str]:
    if result is None:
        return "", "", "", ""
    return result.id, result.phrase, result.result, result.scheme_name
