"""The picture of one figalization: a 1200×630 PNG where nothing overflows or overlaps.

"Fits" is checked on the layout's boxes (`layout_card`), and once more on the
painted pixels, so a drawing that strays from its layout is caught too. The card
is a palette image; on every card of this module it is compared, pixel by pixel,
with the same layout drawn in plain RGB (`paint_rgb`).
"""

from __future__ import annotations

import io
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageColor

from bench.phrases import PHRASES
from bench.pictures import naive_card
from workers.layout import BRAND, FOOTER_HEIGHT, HEIGHT, MARGIN, WIDTH, Box, CardLayout, layout_card
from workers.palette import Area, Palette
from workers.render import ACCENT, INK, PALETTE, PAPER, paint, paint_rgb, render_card

LONG_PHRASE = (
    "Съешь же ещё этих мягких французских булок, да выпей чаю — и так много раз подряд, "
    "пока не надоест, а потом ещё немного, потому что булки очень вкусные и чай горячий!"
)
LONG_RESULT = (
    "Фигешь фиге фигё фигих фигагких фигуфигафигских фигулок, фига фигапей фигаю — "
    "фига фигак фигаго фигаз фигадряд, фигока фиге фигадоест, фига фиготом фигё фигемного, "
    "фиготому фигато фигулки фигочень фигакусные фига фигай фигорячий!"
)
LONGEST_WORD = "Превысокомногорассмотрительствующий"
# Every character a phrase may hold (spec/figalization.md § Input), capitals first:
# Й, Ё and the descenders at the largest sizes are where ink reaches furthest.
EVERY_CHARACTER = (
    "ЙЁ АБВГДЕЖЗИКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ абвгдеёжзийклмнопрстуфхцчшщъыьэюя 0123456789 "
    ".,!?:;-–—«»\"'()…№"
)
# The widest ramp, paper to ink, spans 216 levels of green in 50 steps: coverage rounded to
# the nearest step is off by at most 2.16 levels, and each picture rounds once more (½ each).
MAX_CHANNEL_ERROR = 3
TEST_CARDS = [
    ("Велосипед", "Фигосипед", "Фигачечная"),
    (LONG_PHRASE, LONG_RESULT, "Фигачечная"),
    (LONG_PHRASE.upper(), LONG_RESULT.upper(), "Хреначечная"),
    (LONGEST_WORD, "Фиге" + LONGEST_WORD[3:], "Фигачечная"),
    ("Я и ты", "Фига фиги фигы", "Фигачечная"),
    ("А" * 200, "Фига" * 60, "Фигачечная"),
    ("Кот", "Фигот", "Очень длинное название схемы, " * 5),
    ("Ёж", "ЙЁЩ", "Фигачечная"),
    (EVERY_CHARACTER, EVERY_CHARACTER.upper(), EVERY_CHARACTER),
    *((phrase, phrase.upper(), "Фигачечная") for phrase in PHRASES),
]


def _card(
    phrase: str = "Велосипед", result: str = "Фигосипед", scheme: str = "Фигачечная"
) -> bytes:
    return render_card(phrase=phrase, result=result, scheme_name=scheme)


def _layout(phrase: str, result: str, scheme: str = "Фигачечная") -> CardLayout:
    return layout_card(phrase=phrase, result=result, scheme_name=scheme)


def _inside(inner: Box, outer: Box) -> bool:
    return (
        outer[0] <= inner[0]
        and outer[1] <= inner[1]
        and inner[2] <= outer[2]
        and inner[3] <= outer[3]
    )


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def assert_fits(layout: CardLayout) -> None:
    """Every line inside the safe area, the body above the footer band, nothing overlapping."""
    band_top = HEIGHT - FOOTER_HEIGHT
    assert _inside(layout.safe_area, (0, 0, WIDTH, HEIGHT))
    for block in layout.blocks:
        for line in block.lines:
            assert _inside(line.box, layout.safe_area), (block.role, line)
        in_footer = block.role in ("brand", "scheme")
        assert (block.box[1] >= band_top) if in_footer else (block.box[3] <= band_top), block
    lines = [line.box for block in layout.blocks for line in block.lines]
    for a, b in itertools.combinations(lines, 2):
        assert not _overlap(a, b), (a, b)


def _words_on_lines(layout: CardLayout, role: str) -> list[str]:
    block = next(block for block in layout.blocks if block.role == role)
    return " ".join(line.text for line in block.lines).split(" ")


# --- the picture -------------------------------------------------------------


def test_card_is_a_1200_by_630_png_with_a_palette_of_at_most_256_colours() -> None:
    image = Image.open(io.BytesIO(_card()))
    assert (image.format, image.size, image.mode) == ("PNG", (1200, 630), "P")
    assert len(image.getpalette() or []) // 3 <= 256
    assert image.convert("RGB").size == (1200, 630)  # decodes whole


def test_same_input_gives_identical_bytes() -> None:
    assert _card(LONG_PHRASE, LONG_RESULT) == _card(LONG_PHRASE, LONG_RESULT)


def test_png_carries_no_timestamp_or_text() -> None:
    png = _card()
    chunks, offset = [], 8
    while offset < len(png):
        length = int.from_bytes(png[offset : offset + 4], "big")
        chunks.append(png[offset + 4 : offset + 8].decode("ascii"))
        offset += 12 + length
    assert set(chunks) == {"IHDR", "PLTE", "IDAT", "IEND"}


@pytest.mark.parametrize(
    "other",
    [
        {"phrase": "Велосипеды"},
        {"result": "Хреносипед"},
        {"scheme": "Хреначечная"},
    ],
)
def test_different_inputs_give_different_bytes(other: dict[str, str]) -> None:
    assert _card(**other) != _card()


def test_ink_stays_inside_the_margins() -> None:
    image = Image.open(io.BytesIO(_card(LONG_PHRASE, LONG_RESULT))).convert("RGB")
    band_top = HEIGHT - FOOTER_HEIGHT
    paper = Image.new("RGB", (1, 1), PAPER).getpixel((0, 0))
    for strip in [(0, 0, MARGIN, band_top), (WIDTH - MARGIN, 0, WIDTH, band_top)]:
        assert image.crop(strip).getcolors() == [(MARGIN * band_top, paper)], strip


def _channel_error(phrase: str, result: str, scheme: str) -> int:
    """The largest difference of any channel of any pixel: palette card against RGB card."""
    layout = _layout(phrase, result, scheme)
    difference = ImageChops.difference(paint(layout).convert("RGB"), paint_rgb(layout))
    return max(high for _, high in difference.getextrema())


@pytest.mark.parametrize(("phrase", "result", "scheme"), TEST_CARDS)
def test_the_palette_card_looks_like_the_rgb_card(phrase: str, result: str, scheme: str) -> None:
    assert _channel_error(phrase, result, scheme) <= MAX_CHANNEL_ERROR


def test_the_encoded_card_is_the_palette_card() -> None:
    decoded = Image.open(io.BytesIO(_card(LONG_PHRASE, LONG_RESULT))).convert("RGB")
    painted = paint(_layout(LONG_PHRASE, LONG_RESULT)).convert("RGB")
    assert ImageChops.difference(decoded, painted).getbbox() is None


def test_the_benchmarks_naive_card_is_the_rgb_drawing_with_pillows_default_png() -> None:
    naive = naive_card(phrase=LONG_PHRASE, result=LONG_RESULT, scheme_name="Фигачечная")
    image = Image.open(io.BytesIO(naive))
    assert (image.format, image.size, image.mode) == ("PNG", (1200, 630), "RGB")
    reference = paint_rgb(_layout(LONG_PHRASE, LONG_RESULT))
    assert ImageChops.difference(image, reference).getbbox() is None
    assert len(_card(LONG_PHRASE, LONG_RESULT)) < len(naive)


def test_the_error_bound_is_half_a_step_of_the_widest_ramp_plus_rounding() -> None:
    assert PALETTE.worst_error() == pytest.approx(216 / (2 * 50) + 1)
    assert int(PALETTE.worst_error()) == MAX_CHANNEL_ERROR


def test_each_ramp_ends_in_its_exact_colours() -> None:
    entries = [tuple(PALETTE.colours[i : i + 3]) for i in range(0, len(PALETTE.colours), 3)]
    for area, indexes in PALETTE.indexes.items():
        for colour, index in indexes.items():
            assert entries[index] == ImageColor.getrgb(colour), (area, colour)


def test_ramps_that_do_not_fit_in_256_colours_are_refused() -> None:
    areas = [Area(PAPER, (INK, ACCENT)), Area(ACCENT, (INK, PAPER)), Area(INK, (PAPER, ACCENT))]
    assert len(Palette.of(areas, 42).colours) == 3 * 3 * (2 * 42 + 1)
    with pytest.raises(ValueError, match="at most 256"):
        Palette.of(areas, 43)


# --- the layout --------------------------------------------------------------


def test_a_short_word_is_large_and_centred_under_its_original() -> None:
    layout = _layout("Велосипед", "Фигосипед")
    assert_fits(layout)
    phrase, result = layout.block("phrase"), layout.block("result")
    assert result.size > 2 * phrase.size
    assert phrase.box[3] <= result.box[1]
    assert abs((result.box[0] + result.box[2]) - WIDTH) <= 1


def test_the_brand_is_on_every_card() -> None:
    for phrase, result in [("Кот", "Фигот"), (LONG_PHRASE, LONG_RESULT)]:
        assert [line.text for line in _layout(phrase, result).block("brand").lines] == [BRAND]


def test_the_scheme_name_is_shown() -> None:
    scheme = _layout("Кот", "Хренот", "Хреначечная").block("scheme")
    assert "Хреначечная" in scheme.lines[0].text


def test_long_phrase_fits_inside_the_margins() -> None:
    layout = _layout(LONG_PHRASE, LONG_RESULT)
    assert_fits(layout)
    assert len(layout.block("result").lines) > 1


def test_long_phrase_wraps_on_word_boundaries() -> None:
    layout = _layout(LONG_PHRASE, LONG_RESULT)
    assert _words_on_lines(layout, "result") == LONG_RESULT.split(" ")
    assert _words_on_lines(layout, "phrase")[:-1] == LONG_PHRASE.split(" ")[:-1]


def test_all_caps_fits() -> None:
    assert_fits(_layout(LONG_PHRASE.upper(), LONG_RESULT.upper()))
    assert_fits(_layout(LONGEST_WORD.upper(), "ФИГЕ" + LONGEST_WORD.upper()[3:]))


def test_only_short_words_fit() -> None:
    layout = _layout("Я и ты", "Фига фиги фигы")
    assert_fits(layout)
    assert _words_on_lines(layout, "result") == ["Фига", "фиги", "фигы"]


def test_a_long_word_shrinks_rather_than_breaks() -> None:
    result = "Фиге" + LONGEST_WORD[3:]
    layout = _layout(LONGEST_WORD, result)
    assert_fits(layout)
    assert [line.text for line in layout.block("result").lines] == [result]


def test_single_very_long_word_fits() -> None:
    layout = _layout("А" * 200, "Фига" * 60)
    assert_fits(layout)
    assert "".join(line.text for line in layout.block("result").lines) == "Фига" * 60


def test_a_long_scheme_name_stays_on_one_line() -> None:
    layout = _layout("Кот", "Фигот", "Очень длинное название схемы, " * 5)
    assert_fits(layout)
    assert len(layout.block("scheme").lines) == 1


RUSSIAN_WORDS = st.text(alphabet="абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВЖЩЫЮЯ,!—", min_size=1)


@settings(max_examples=60, deadline=None)
@given(phrase=st.lists(RUSSIAN_WORDS, min_size=1, max_size=60), prefix=st.sampled_from(["", "Ф"]))
def test_any_phrase_up_to_the_limit_fits(phrase: list[str], prefix: str) -> None:
    text = " ".join(phrase)[:200].strip() or "а"
    assert_fits(_layout(text, prefix + text.replace("а", "Фига")))


@settings(max_examples=25, deadline=None)
@given(phrase=st.lists(RUSSIAN_WORDS, min_size=1, max_size=60))
def test_any_phrase_looks_the_same_on_the_palette_card(phrase: list[str]) -> None:
    text = " ".join(phrase)[:200].strip() or "а"
    assert _channel_error(text, text.upper(), "Фигачечная") <= MAX_CHANNEL_ERROR
