"""Where every piece of text goes on the 1200×630 card, the size link previews use.

`layout_card` is pure geometry, so the rule "nothing overflows the canvas or
overlaps" is tested on boxes, not pixels; `workers/render.py` paints the layout.
The only thing this module ever reads is the font files of the installed
`font_source_sans_pro` package; it must never touch the network, the settings,
the clock or any other file, and the same words must always give the same layout.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from typing import Literal

import font_source_sans_pro
from PIL import ImageFont

WIDTH, HEIGHT = 1200, 630
MARGIN = 72
FOOTER_HEIGHT = 96  # the accent band carrying the brand and the scheme
# Left, top, right, bottom of the phrase and result: a little less room on top,
# where nothing sits above the text, and a clear strip above the band.
BODY = (MARGIN, MARGIN - 16, WIDTH - MARGIN, HEIGHT - FOOTER_HEIGHT - 40)
GAP = 28  # between the original phrase and the result
PHRASE_HEIGHT = 116  # two lines at the largest size; the result gets the rest of the body
PHRASE_SIZES, RESULT_SIZES, SCHEME_SIZES = (22, 46), (28, 168), (18, 30)  # smallest, largest
BRAND_SIZE = 44

# The card's own words. The brand is the service's name, not the scheme's.
BRAND = "фигачечная"
ARROW = "↓"
NO_BREAK = "\u00a0"  # glues the arrow to the last word, so it never hangs alone
SCHEME_LABEL = "схема"
ELLIPSIS = "…"

Weight = Literal["Light", "Semibold", "Black"]
Role = Literal["phrase", "result", "brand", "scheme"]
Align = Literal["left", "centre", "right"]
Box = tuple[int, int, int, int]  # left, top, right, bottom, as Pillow's bboxes


@dataclass(frozen=True, slots=True)
class Line:
    """One line of text: where the pen starts and the box the line occupies."""

    text: str
    origin: tuple[int, int]
    box: Box


@dataclass(frozen=True, slots=True)
class TextBlock:
    """A piece of the card (the result, the original, …) in one font and size."""

    role: Role
    weight: Weight
    size: int
    lines: tuple[Line, ...]

    @property
    def font(self) -> ImageFont.FreeTypeFont:
        return _font(self.weight, self.size)

    @property
    def box(self) -> Box:
        lefts, tops, rights, bottoms = zip(*(line.box for line in self.lines), strict=True)
        return min(lefts), min(tops), max(rights), max(bottoms)


@dataclass(frozen=True, slots=True)
class CardLayout:
    """Every text block of a card, and the safe area all of them stay inside."""

    blocks: tuple[TextBlock, ...]
    safe_area: Box

    def block(self, role: Role) -> TextBlock:
        return next(block for block in self.blocks if block.role == role)


# --- fonts and measuring -----------------------------------------------------


@functools.cache
def _font(weight: Weight, size: int) -> ImageFont.FreeTypeFont:
    path = os.path.join(font_source_sans_pro.font_directory, f"SourceSansPro-{weight}.ttf")
    # BASIC layout: Cyrillic needs no shaping, and it does not depend on whether
    # libraqm is installed, so the bytes are the same on every machine.
    return ImageFont.truetype(path, size, layout_engine=ImageFont.Layout.BASIC)


def _line_height(font: ImageFont.FreeTypeFont) -> int:
    ascent, descent = font.getmetrics()
    return ascent + descent  # room for Й and Ё above, descenders below: lines never touch


def _room(font: ImageFont.FreeTypeFont, width: int) -> float:
    """The advance a line may use: the ink of a few letters (Black «А», «Л») overhangs
    their advance by up to 2% of the size, so keep 4% spare."""
    return width - font.size / 25


# --- fitting text into a box -------------------------------------------------


def _break_word(word: str, font: ImageFont.FreeTypeFont, room: float) -> list[str]:
    pieces, used = [""], 0.0
    for letter in word:
        advance = font.getlength(letter)
        if pieces[-1] and used + advance > room:
            pieces, used = [*pieces, ""], 0.0
        pieces[-1] += letter
        used += advance
    return pieces


def _one_line(text: str) -> str:
    """Words separated by single spaces: the only break `_wrap` knows."""
    return " ".join(text.split())


def _wrap(
    text: str, font: ImageFont.FreeTypeFont, width: int, *, break_words: bool = False
) -> list[str] | None:
    """Greedy wrap on spaces; None when a word alone is too wide and may not be broken."""
    # Advances are summed word by word: measuring whole lines again and again was
    # most of the render time, and without kerning across spaces the sum is exact.
    room, space = _room(font, width), font.getlength(" ")
    lines: list[str] = []
    used = 0.0
    for word in text.split(" "):
        advance = font.getlength(word)
        if lines and used + space + advance <= room:
            lines[-1], used = f"{lines[-1]} {word}", used + space + advance
        elif advance <= room:
            lines, used = [*lines, word], advance
        elif break_words:
            pieces = _break_word(word, font, room)
            lines, used = [*lines, *pieces], font.getlength(pieces[-1])
        else:
            return None
    return lines or [""]


def _balance(lines: list[str], font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """The same number of lines, as even as they go: no lonely word on the last one."""
    if len(lines) < 2:
        return lines
    text = " ".join(lines)
    narrowest, best = math.floor(max(font.getlength(word) for word in text.split(" "))), lines
    while narrowest < width:
        middle = (narrowest + width) // 2
        candidate = _wrap(text, font, middle)
        if candidate is not None and len(candidate) <= len(lines):
            best, width = candidate, middle
        else:
            narrowest = middle + 1
    return best


def _squeeze(text: str, font: ImageFont.FreeTypeFont, width: int, height: int) -> list[str]:
    """Last resort at the smallest size: break words by letters, cut the rest with «…»."""
    lines = _wrap(text, font, width, break_words=True) or [""]  # never None when breaking
    fitting = max(1, height // _line_height(font))
    if len(lines) <= fitting:
        return lines
    last = lines[fitting - 1]
    while last and font.getlength(last + ELLIPSIS) > _room(font, width):
        last = last[:-1]
    return [*lines[: fitting - 1], last.rstrip() + ELLIPSIS]


def _fit(text: str, weight: Weight, area: Box, sizes: tuple[int, int]) -> tuple[int, list[str]]:
    """The largest size in `sizes` at which `text`, wrapped on spaces, fits `area`;
    when even the smallest does not, the smallest, `_squeeze`d."""
    width, height = area[2] - area[0], area[3] - area[1]
    smallest, largest = sizes
    found: tuple[int, list[str]] | None = None
    while smallest <= largest:  # a smaller size never needs more lines, so bisect
        size = (smallest + largest) // 2
        font = _font(weight, size)
        lines = _wrap(text, font, width)
        if lines is not None and len(lines) * _line_height(font) <= height:
            found, smallest = (size, lines), size + 1
        else:
            largest = size - 1
    if found is None:
        return sizes[0], _squeeze(text, _font(weight, sizes[0]), width, height)
    size, lines = found
    return size, _balance(lines, _font(weight, size), width)


# --- placing blocks on the card ----------------------------------------------


def _place(
    role: Role, weight: Weight, size: int, lines: list[str], *, area: Box, top: int, align: Align
) -> TextBlock:
    font = _font(weight, size)
    step, placed = _line_height(font), []
    for index, text in enumerate(lines):
        ink_left, _, ink_right, _ = font.getbbox(text)  # reaches the advance at least
        overhang = min(0, math.floor(ink_left))
        width = math.ceil(ink_right) - overhang
        left = {
            "left": area[0],
            "centre": (area[0] + area[2] - width) // 2,
            "right": area[2] - width,
        }[align]
        y = top + index * step
        placed.append(Line(text, (left - overhang, y), (left, y, left + width, y + step)))
    return TextBlock(role, weight, size, tuple(placed))


def _footer(scheme_name: str, area: Box) -> tuple[TextBlock, TextBlock]:
    """The brand on the left, the scheme on the right, sharing one baseline."""
    baseline = HEIGHT - FOOTER_HEIGHT // 2 + 14  # lowercase looks centred when its x-height is
    brand_top = baseline - _font("Black", BRAND_SIZE).getmetrics()[0]
    brand = _place("brand", "Black", BRAND_SIZE, [BRAND], area=area, top=brand_top, align="left")
    label = f"{SCHEME_LABEL} «{_one_line(scheme_name)}»"
    # One line tall at the largest size, and two of the smallest are taller:
    # a long scheme name shrinks, then ends with «…», but never wraps.
    tallest = _line_height(_font("Semibold", SCHEME_SIZES[1]))
    room = (brand.box[2] + 48, area[1], area[2], area[1] + tallest)
    size, lines = _fit(label, "Semibold", room, SCHEME_SIZES)
    top = baseline - _font("Semibold", size).getmetrics()[0]
    return brand, _place("scheme", "Semibold", size, lines, area=room, top=top, align="right")


def layout_card(*, phrase: str, result: str, scheme_name: str) -> CardLayout:
    """Where each text goes: the original over the large result, centred together; the footer."""
    left, top, right, bottom = BODY
    original = f"{_one_line(phrase)}{NO_BREAK}{ARROW}"
    said_size, said_lines = _fit(
        original, "Light", (left, top, right, top + PHRASE_HEIGHT), PHRASE_SIZES
    )
    said_height = len(said_lines) * _line_height(_font("Light", said_size))
    result_area = (left, top + said_height + GAP, right, bottom)
    size, lines = _fit(_one_line(result), "Black", result_area, RESULT_SIZES)
    # The pair is centred as one group, so a short word sits right under its original.
    spare = result_area[3] - result_area[1] - len(lines) * _line_height(_font("Black", size))
    said = _place(
        "phrase", "Light", said_size, said_lines, area=BODY, top=top + spare // 2, align="centre"
    )
    shown = _place("result", "Black", size, lines, area=BODY, top=said.box[3] + GAP, align="centre")
    brand, scheme = _footer(scheme_name, (left, HEIGHT - FOOTER_HEIGHT, right, HEIGHT))
    return CardLayout((said, shown, brand, scheme), safe_area=(left, top, right, HEIGHT))
