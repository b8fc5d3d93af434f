"""The benchmark's picture: requests/s and p99 latency against connections, drawn with Pillow.

Two panels side by side share one legend; the x axis is logarithmic (16, 64,
256 connections are equally spaced), each y axis starts at zero with "nice"
ticks. Drawn at twice the size and scaled down, which smooths the lines.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import font_source_sans_pro
from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 1400, 620
SCALE = 2  # supersampling
PAPER, INK, GRID, MUTED = "#FFFFFF", "#222222", "#E3E3E3", "#666666"
COLOURS = ("#7F7F7F", "#E5512B", "#2B7BB9", "#3A9E4F", "#9B59B6")


@dataclass(frozen=True, slots=True)
class Line:
    label: str
    points: Sequence[tuple[float, float]]  # (x, y)


@dataclass(frozen=True, slots=True)
class Panel:
    title: str
    y_label: str
    lines: Sequence[Line]
    target: tuple[str, float] | None = None  # a dashed horizontal line: its label and value


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Ticks from 0 to at least `top`, in steps of 1, 2, 2.5 or 5 × a power of ten."""
    if top <= 0 or not math.isfinite(top):
        return [0.0, 1.0]
    rough = top / count
    power = 10 ** math.floor(math.log10(rough))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= rough)
    return [i * step for i in range(math.ceil(top / step - 1e-9) + 1)]


def tick_label(value: float) -> str:
    """`20 000`, `2.5`, `0` — a thin space groups thousands."""
    if value == int(value):
        return f"{int(value):,}".replace(",", "\u2009")
    return f"{value:g}"


def draw(panels: Sequence[Panel], x_label: str, title: str, out: Path) -> None:
    image = Image.new("RGB", (WIDTH * SCALE, HEIGHT * SCALE), PAPER)
    canvas = ImageDraw.Draw(image)
    canvas.text((40 * SCALE, 18 * SCALE), title, font=_font("Semibold", 26), fill=INK)
    labels = [line.label for line in panels[0].lines]
    _legend(canvas, labels, top=58)
    width = (WIDTH - 60) // len(panels)
    for index, panel in enumerate(panels):
        left = 30 + index * width
        _panel(canvas, panel, x_label, box=(left + 70, 150, left + width - 20, HEIGHT - 70))
    image.resize((WIDTH, HEIGHT), Image.Resampling.LANCZOS).save(out, optimize=True)


def _font(weight: str, size: int) -> ImageFont.FreeTypeFont:
    path = os.path.join(font_source_sans_pro.font_directory, f"SourceSansPro-{weight}.ttf")
    return ImageFont.truetype(path, size * SCALE)


def _legend(canvas: ImageDraw.ImageDraw, labels: Sequence[str], *, top: int) -> None:
    font = _font("Regular", 18)
    x = 40.0
    for index, label in enumerate(labels):
        colour = COLOURS[index % len(COLOURS)]
        y = top + 14
        canvas.line(_s(x, y, x + 34, y), fill=colour, width=4 * SCALE)
        _dot(canvas, x + 17, y, colour)
        canvas.text(_xy(x + 44, top), label, font=font, fill=INK)
        x += 44 + canvas.textlength(label, font=font) / SCALE + 36


def _panel(
    canvas: ImageDraw.ImageDraw, panel: Panel, x_label: str, box: tuple[int, int, int, int]
) -> None:
    left, top, right, bottom = box
    xs = sorted({x for line in panel.lines for x, _ in line.points})
    ys = [y for line in panel.lines for _, y in line.points if math.isfinite(y)]
    ys += [panel.target[1]] if panel.target else []
    y_ticks = nice_ticks(max(ys, default=1.0))
    small, label_font = _font("Regular", 16), _font("Semibold", 18)

    def at(x: float, y: float) -> tuple[float, float]:
        span = math.log2(xs[-1] / xs[0]) if len(xs) > 1 else 1.0
        share = math.log2(x / xs[0]) / span if len(xs) > 1 else 0.5
        inner = (right - left) * 0.08  # the first and last points are not on the frame
        return (
            left + inner + share * (right - left - 2 * inner),
            bottom - (y / y_ticks[-1]) * (bottom - top),
        )

    for tick in y_ticks:
        _, y = at(xs[0], tick)
        canvas.line(_s(left, y, right, y), fill=GRID, width=SCALE)
        text = tick_label(tick)
        width = canvas.textlength(text, font=small) / SCALE
        canvas.text(_xy(left - 10 - width, y - 11), text, font=small, fill=MUTED)
    for x in xs:
        px, _ = at(x, 0)
        canvas.line(_s(px, bottom, px, bottom + 6), fill=INK, width=SCALE)
        text = tick_label(x)
        width = canvas.textlength(text, font=small) / SCALE
        canvas.text(_xy(px - width / 2, bottom + 10), text, font=small, fill=INK)
    canvas.line(_s(left, top, left, bottom, right, bottom), fill=INK, width=2 * SCALE)
    canvas.text(_xy(left, top - 40), f"{panel.title}, {panel.y_label}", font=label_font, fill=INK)
    width = canvas.textlength(x_label, font=small) / SCALE
    canvas.text(_xy((left + right) / 2 - width / 2, bottom + 34), x_label, font=small, fill=MUTED)
    if panel.target:
        _target(canvas, panel.target, at(xs[0], panel.target[1])[1], left, right)
    for index, line in enumerate(panel.lines):
        colour = COLOURS[index % len(COLOURS)]
        points = [at(x, y) for x, y in line.points if math.isfinite(y)]
        if len(points) > 1:
            canvas.line(_s(*(c for p in points for c in p)), fill=colour, width=4 * SCALE)
        for x, y in points:
            _dot(canvas, x, y, colour)


def _target(
    canvas: ImageDraw.ImageDraw, target: tuple[str, float], y: float, left: int, right: int
) -> None:
    for x in range(left, right, 14):
        canvas.line(_s(x, y, min(x + 8, right), y), fill=INK, width=2 * SCALE)
    font = _font("Regular", 15)
    canvas.text(_xy(left + 8, y - 22), target[0], font=font, fill=INK)


def _dot(canvas: ImageDraw.ImageDraw, x: float, y: float, colour: str) -> None:
    canvas.ellipse(_s(x - 6, y - 6, x + 6, y + 6), fill=colour, outline=PAPER, width=2 * SCALE)


def _s(*values: float) -> list[float]:
    return [value * SCALE for value in values]


def _xy(x: float, y: float) -> tuple[float, float]:
    return x * SCALE, y * SCALE
