"""A palette for a picture of flat colours and antialiased text: one ramp per colour pair.

Antialiased text only ever blends one text colour into one background, and Pillow
blends the values of an 8-bit image exactly as it blends each channel of an RGB
one: linearly, by the glyph's coverage. So when a background's palette index is
one end of a ramp of `steps` entries whose other end is the text colour, text drawn
with that other end's index lands on the ramp entry nearest its coverage — the RGB
picture to within half a step. A background index can start two ramps, one counting
down and one counting up, so an area holds at most two text colours.

Pure: colour names in, palette bytes and indices out. It never draws and never
reads anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from PIL import ImageColor

MAX_ENTRIES = 256  # an 8-bit PNG palette


@dataclass(frozen=True, slots=True)
class Area:
    """Part of a picture: one background and the one or two text colours drawn on it."""

    background: str
    inks: tuple[str] | tuple[str, str]


@dataclass(frozen=True, slots=True)
class Palette:
    colours: bytes  # RGB triples in index order, as `Image.putpalette` takes them
    steps: int
    indexes: Mapping[Area, Mapping[str, int]]

    @classmethod
    def of(cls, areas: Sequence[Area], steps: int) -> Palette:
        """Per area: the first ink's ramp up to the background, then the second ink's from it."""
        channels: list[int] = []
        indexes: dict[Area, dict[str, int]] = {}
        for area in areas:
            first, *second = area.inks
            start = len(channels) // 3
            channels += _ramp(first, area.background, steps)
            where = {first: start, area.background: start + steps}
            if second:
                channels += _ramp(area.background, second[0], steps)[3:]  # shares the background
                where[second[0]] = start + 2 * steps
            indexes[area] = where
        if len(channels) // 3 > MAX_ENTRIES:
            raise ValueError(f"{len(channels) // 3} palette entries: at most {MAX_ENTRIES} fit")
        return cls(bytes(channels), steps, indexes)

    def index(self, area: Area, colour: str) -> int:
        return self.indexes[area][colour]

    def worst_error(self) -> float:
        """The most a channel can differ from the RGB picture: half a step of the widest ramp,
        plus the rounding of the ramp's entry and of the RGB blend (half a level each)."""
        widest = max(
            abs(a - b)
            for area in self.indexes
            for ink in area.inks
            for a, b in zip(_rgb(area.background), _rgb(ink), strict=True)
        )
        return widest / (2 * self.steps) + 1


def _ramp(start: str, end: str, steps: int) -> list[int]:
    """`steps + 1` colours from `start` to `end`, evenly spaced, as flat RGB channels."""
    a, b = _rgb(start), _rgb(end)
    return [
        round(x + (y - x) * k / steps) for k in range(steps + 1) for x, y in zip(a, b, strict=True)
    ]


def _rgb(colour: str) -> tuple[int, ...]:
    return ImageColor.getrgb(colour)[:3]
