"""The picture of one figalization: a 1200×630 PNG card, the size link previews use.

`paint` draws a card's layout (`workers/layout.py`) as a palette image and
`render_card` encodes it; `paint_rgb` draws the same layout in plain RGB — the
reference the palette card is tested against, and the naive card the benchmark
compares with. This module reads nothing but the fonts (through the layout); it
must never touch the network, the settings, the clock or any file, and the same
words must always give the same bytes.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable

from PIL import Image, ImageDraw

from workers.layout import ARROW, FOOTER_HEIGHT, HEIGHT, WIDTH, CardLayout, Role, TextBlock
from workers.layout import layout_card as layout_card
from workers.palette import Area, Palette

PAPER = "#FFF3E2"
INK = "#2B1B14"
MUTED = "#7A5846"
ACCENT = "#E5512B"
ON_ACCENT = "#FFF3E2"
ON_ACCENT_SOFT = "#FFD2BF"

# The card is drawn as a palette image: its few flat colours and, per text colour,
# a ramp of RAMP_STEPS antialiasing shades from its background (workers/palette.py).
# One byte a pixel, and long runs of one index, encode several times faster than
# RGB and give smaller files; every channel stays within 3/255 of the RGB card.
# Each area has its own background index (the same PAPER colour for the first
# two): the phrase's rows carry two text colours, the phrase and its arrow, and a
# background index can start only two ramps.

RAMP_STEPS = 50  # 5 ramps of 50 steps + 3 backgrounds = 253 of the 256 entries
# zlib level, measured on the bench's cards: 1 and 2 are no faster and 7–12% bigger,
# 4 and 6 take 1.7–2.2× as long for 11–17% less.
PNG_COMPRESS_LEVEL = 3

_COLOURS: dict[Role, str] = {
    "phrase": MUTED,
    "result": INK,
    "brand": ON_ACCENT,
    "scheme": ON_ACCENT_SOFT,
}
_SAID = Area(PAPER, (MUTED, ACCENT))
_SHOWN = Area(PAPER, (INK,))
_BAND = Area(ACCENT, (ON_ACCENT_SOFT, ON_ACCENT))
_AREA: dict[Role, Area] = {"phrase": _SAID, "result": _SHOWN, "brand": _BAND, "scheme": _BAND}
PALETTE = Palette.of((_SAID, _SHOWN, _BAND), RAMP_STEPS)


def _draw_block(
    draw: ImageDraw.ImageDraw, block: TextBlock, fill: Callable[[str], int | str]
) -> None:
    font = block.font
    for line in block.lines:
        text, arrow = line.text, ""
        if block.role == "phrase" and text.endswith(ARROW):
            text, arrow = text.removesuffix(ARROW), ARROW  # the arrow wears the accent
        draw.text(line.origin, text, font=font, fill=fill(_COLOURS[block.role]))
        if arrow:
            x, y = line.origin
            draw.text((x + font.getlength(text), y), arrow, font=font, fill=fill(ACCENT))


def _rows(layout: CardLayout) -> dict[Area, tuple[int, int]]:
    """Top and bottom row of each area. The phrase's and the result's meet in the middle of
    the gap between them, which their ink never crosses."""
    split = (layout.block("phrase").box[3] + layout.block("result").box[1]) // 2
    band = HEIGHT - FOOTER_HEIGHT
    return {_SAID: (0, split), _SHOWN: (split, band), _BAND: (band, HEIGHT)}


def paint(layout: CardLayout) -> Image.Image:
    """The card as a palette ("P") image: each area's rows in its own background index,
    each text in its area's ramp."""
    image = Image.new("P", (WIDTH, HEIGHT))
    image.putpalette(PALETTE.colours)
    for area, (top, bottom) in _rows(layout).items():
        image.paste(PALETTE.index(area, area.background), (0, top, WIDTH, bottom))
    draw = ImageDraw.Draw(image)
    draw.fontmode = "L"  # antialiased: Pillow draws aliased text on "P" images by default
    for block in layout.blocks:
        _draw_block(draw, block, functools.partial(PALETTE.index, _AREA[block.role]))
    return image


def paint_rgb(layout: CardLayout) -> Image.Image:
    """The same card drawn straight in RGB: the reference `paint` is tested against."""
    image = Image.new("RGB", (WIDTH, HEIGHT), PAPER)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, HEIGHT - FOOTER_HEIGHT, WIDTH, HEIGHT), fill=ACCENT)
    for block in layout.blocks:
        _draw_block(draw, block, str)
    return image


def render_card(*, phrase: str, result: str, scheme_name: str) -> bytes:
    """PNG bytes, 1200×630 with a 253-colour palette: `result` large, `phrase` above it,
    brand and scheme below."""
    image = paint(layout_card(phrase=phrase, result=result, scheme_name=scheme_name))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()
