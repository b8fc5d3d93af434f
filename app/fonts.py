"""The page's three faces of Source Sans Pro as WOFF2 subsets, built from the font package.

The TrueType files of `font-source-sans-pro` are ~290 KiB each: the first
load of the page was three of them. A subset to the characters the page can
show — Basic Latin and Latin-1 (the API link, digits, «»), Russian Cyrillic
with Ё, and the punctuation the templates and the figalizations use (dashes,
quotes, …, →, the narrow no-break space that groups the counter's digits) —
compressed as WOFF2 is ~16 KiB. A character outside it (a user may type
Ukrainian і or an emoji) falls back to the next font of the CSS stack.

Nothing built is committed: `woff2(face)` builds a face with fontTools the
first time it is asked for and keeps it in memory for the process (~0.4 s
of CPU per face, and fontTools is imported only then, so a process that
never serves a font never pays). Its URL
must be known before that, when the first page is rendered, so a face's
`version` is a hash of what determines the bytes — the source file, the
subset below, the fontTools and Brotli versions — and the build keeps the
source's timestamps, so the same version is the same bytes in every process.
What it must never do: change the bytes under a version (browsers cache a
version for a year).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import io
import threading
from dataclasses import dataclass
from pathlib import Path

import font_source_sans_pro

RANGES = (
    (0x0020, 0x007E),  # Basic Latin
    (0x00A0, 0x00FF),  # Latin-1: no-break space, «», ©, ·
    (0x0400, 0x045F),  # Cyrillic: А–я, Ё ё and the other letters of the block's core
    (0x2010, 0x2027),  # hyphens, dashes, quotes „“”‘’, bullet, ellipsis
    (0x202F, 0x202F),  # narrow no-break space: the counter's digit groups
    (0x2116, 0x2116),  # №
    (0x2190, 0x2193),  # arrows: Велосипед → Фигосипед
)
UNICODES = tuple(code for first, last in RANGES for code in range(first, last + 1))
# Kerning, ligatures and the Cyrillic locale forms; no hinting (browsers ignore it on WOFF2).
_FEATURES = ("kern", "liga", "calt", "ccmp", "locl", "mark", "mkmk", "tnum")


@dataclass(frozen=True, slots=True)
class Face:
    weight: int
    source: str  # file name in the font package

    @property
    def path(self) -> Path:
        return Path(font_source_sans_pro.font_directory) / self.source


FACES = {
    "regular": Face(400, "SourceSansPro-Regular.ttf"),
    "bold": Face(700, "SourceSansPro-Bold.ttf"),
    "black": Face(900, "SourceSansPro-Black.ttf"),
}
FAMILY = "Source Sans Pro"


@functools.cache
def version(name: str) -> str:
    """What the face's bytes are made of, hashed: the part of its URL that changes with them."""
    digest = hashlib.sha256(FACES[name].path.read_bytes())
    for part in (
        repr(UNICODES),
        repr(_FEATURES),
        importlib.metadata.version("fonttools"),
        importlib.metadata.version("brotli"),
    ):
        digest.update(part.encode())
    return digest.hexdigest()[:16]


_BUILDING = threading.Lock()  # concurrent first requests build each face once


def woff2(name: str) -> bytes:
    """The face `name` as a WOFF2 subset, built on first use (blocking: call from a thread)."""
    with _BUILDING:
        return _build(name)


@functools.cache
def _build(name: str) -> bytes:
    # Imported here: fontTools takes ~0.3–0.7 s to import, which only a process that
    # serves a font should pay (not every test app, not the worker).
    from fontTools import subset
    from fontTools.ttLib import TTFont

    options = subset.Options()
    options.layout_features = list(_FEATURES)
    options.hinting = False
    options.desubroutinize = True
    options.name_IDs = [0, 1, 2, 3, 4, 5, 6, 13, 14]  # names, copyright and the OFL itself
    font = TTFont(FACES[name].path, recalcTimestamp=False)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=UNICODES)
    subsetter.subset(font)
    font.flavor = "woff2"
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()
