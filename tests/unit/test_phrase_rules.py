"""spec/figalization.md § Input: normalize the phrase, then accept or refuse it."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.phrase import PhraseError, validate

EMPTY = "Введите слово или фразу"
NOT_RUSSIAN = "Пишите по-русски: у нас заведение культурное"

# Written out from the spec, not taken from the code under test.
CAPITALS = "АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ"
LETTERS = CAPITALS + CAPITALS.lower()
PUNCTUATION = ".,!?:;-–—«»\"'()…№"
ALLOWED = set(LETTERS + "0123456789 " + PUNCTUATION)


def refusal(text: str, *, max_length: int = 200) -> PhraseError:
    with pytest.raises(PhraseError) as error:
        validate(text, max_length=max_length)
    return error.value


# Rule 1: normalization


@pytest.mark.parametrize(
    ("decomposed", "composed"),
    [("и\u0306од", "йод"), ("е\u0308лка", "ёлка"), ("Е\u0308ж", "Ёж")],
    ids=["й", "ё", "Ё"],
)
def test_decomposed_letters_are_composed_to_nfc(decomposed: str, composed: str) -> None:
    assert validate(decomposed, max_length=200) == composed


def test_surrounding_whitespace_is_stripped() -> None:
    assert validate("  \t кот на крыше \n ", max_length=200) == "кот на крыше"


# What Python's `\s` matches: ASCII tab/LF/VT/FF/CR, NBSP and the other Unicode spaces.
GAPS = {
    "spaces": "  ",
    "tab": "\t",
    "LF": "\n",
    "CRLF": "\r\n",
    "VT": "\v",
    "FF": "\f",
    "NBSP": "\u00a0",
    "em space": "\u2003",
    "narrow NBSP": "\u202f",
    "ideographic space": "\u3000",
    "mixed": " \t\n ",
}


@pytest.mark.parametrize("gap", GAPS.values(), ids=GAPS.keys())
def test_every_run_of_whitespace_collapses_to_one_space(gap: str) -> None:
    assert validate(f"кот{gap}на{gap}крыше", max_length=200) == "кот на крыше"


@pytest.mark.parametrize("control", ["\x1c", "\x1d", "\x1e", "\x1f"])
def test_control_characters_that_unicode_does_not_call_whitespace_are_refused(
    control: str,
) -> None:
    assert refusal(f"кот{control}кот").code == "not_russian"


# Rule 2: length


@pytest.mark.parametrize("text", ["", " ", "\t\n", "\u00a0 \u3000"], ids=repr)
def test_an_empty_phrase_is_refused(text: str) -> None:
    error = refusal(text)
    assert (error.code, error.message) == ("empty", EMPTY)


@pytest.mark.parametrize(("limit", "text"), [(200, "а" * 201), (5, "котики")])
def test_a_phrase_over_the_limit_is_refused_naming_the_limit(limit: int, text: str) -> None:
    error = refusal(text, max_length=limit)
    assert (error.code, error.message) == ("too_long", f"Не больше {limit} символов")


@pytest.mark.parametrize(("limit", "text"), [(200, "а" * 200), (5, "котик"), (1, "я")])
def test_a_phrase_exactly_at_the_limit_passes(limit: int, text: str) -> None:
    assert validate(text, max_length=limit) == text


def test_the_length_is_counted_after_normalization() -> None:
    assert validate("  и\u0306и\u0306и\u0306  ", max_length=3) == "ййй"
    assert validate("кот \t\n кот", max_length=7) == "кот кот"


# Rules 3 and 4: characters


def test_every_letter_of_the_russian_alphabet_passes() -> None:
    assert validate(LETTERS, max_length=200) == LETTERS


@pytest.mark.parametrize("mark", list(PUNCTUATION + "0123456789"))
def test_every_allowed_punctuation_mark_and_digit_passes(mark: str) -> None:
    assert validate(f"кот{mark}кот", max_length=200) == f"кот{mark}кот"


@pytest.mark.parametrize(
    "text",
    [
        "Hello",
        "кот cat",
        "Київ",
        "єнот",
        "іній",
        "ґанок",
        "ўсё",
        "ΑΒΓ кот",
        "кот 😀",
        "кот\x00",
        "кот\x07",
        "кот\x1b",
        "кот\x7f",
        "кот\u200b",
        "<кот>",
        "кот & пёс",
        "кот_пёс",
        "кот/пёс",
        "кот@пёс",
        "а\u0301том",
    ],
    ids=repr,
)
def test_anything_but_russian_is_refused(text: str) -> None:
    error = refusal(text)
    assert (error.code, error.message) == ("not_russian", NOT_RUSSIAN)


@pytest.mark.parametrize("text", ["2024", "!!!", "— 42 —", "№5", "«…»"])
def test_a_phrase_without_a_cyrillic_letter_is_refused(text: str) -> None:
    error = refusal(text)
    assert (error.code, error.message) == ("not_russian", NOT_RUSSIAN)


# Property: validate either returns a phrase that keeps every rule, or says why not.

texts = st.one_of(
    st.text(),
    st.text(alphabet=[*sorted(ALLOWED), "\t", "\n", "\u00a0", "\u0306", "\u0308", "Z"]),
)
MESSAGES = {"empty": EMPTY, "not_russian": NOT_RUSSIAN}


def outcome(text: str, limit: int) -> str | PhraseError:
    try:
        return validate(text, max_length=limit)
    except PhraseError as error:
        return error


@given(texts, st.integers(min_value=1, max_value=300))
def test_validate_returns_a_valid_phrase_or_one_of_three_errors(text: str, limit: int) -> None:
    phrase = outcome(text, limit)
    if isinstance(phrase, PhraseError):
        assert phrase.code in ("empty", "too_long", "not_russian")
        assert phrase.message == MESSAGES.get(phrase.code, f"Не больше {limit} символов")
        return
    assert phrase == unicodedata.normalize("NFC", phrase)
    assert phrase == phrase.strip()
    assert "  " not in phrase
    assert 1 <= len(phrase) <= limit
    assert set(phrase) <= ALLOWED
    assert any(letter in LETTERS for letter in phrase)
    assert validate(phrase, max_length=limit) == phrase
