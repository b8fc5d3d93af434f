"""spec/figalization.md § Words, § Transforming one word and § Examples.

Every example row of the spec is a test of its own; every rule is a named
test; properties check the rules over phrases Hypothesis makes up.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.catalogue import load_catalogue
from app.domain.figalize import figalize, figalize_word
from app.domain.phrase import PhraseError, validate
from app.domain.schemes import Scheme

CATALOGUE = load_catalogue("")


def scheme_by_id(scheme_id: str) -> Scheme:
    found = CATALOGUE.get(scheme_id)
    assert found is not None, scheme_id
    return found


FIGA = scheme_by_id("figa")
KHREN = scheme_by_id("khren")

# Written out from the spec, not taken from the code under test.
CAPITALS = "АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ"
LETTERS = CAPITALS + CAPITALS.lower()
VOWELS = "аеёиоуыэюяАЕЁИОУЫЭЮЯ"
CONSONANTS = "".join(letter for letter in LETTERS if letter not in VOWELS)
NON_LETTERS = "0123456789 .,!?:;-–—«»\"'()…№"
WORD = re.compile(f"[{LETTERS}]+")

SPEC_PREFIXES = {
    "figa": {
        "а": "Фига", "я": "Фига", "о": "Фиго", "э": "Фиге", "е": "Фиге",
        "ё": "Фигё", "у": "Фигу", "ю": "Фигу", "ы": "Фиги", "и": "Фиги",
    },
    "khren": {
        "а": "Хрена", "я": "Хрена", "о": "Хрено", "э": "Хренё", "е": "Хренё",
        "ё": "Хренё", "у": "Хрену", "ю": "Хрену", "ы": "Хрени", "и": "Хрени",
    },
}  # fmt: skip


def figalize_phrase(text: str, scheme_id: str = "figa") -> str:
    """What the product shows for a typed phrase: validated, then figalized."""
    return figalize(validate(text, max_length=200), scheme_by_id(scheme_id))


# § Examples


EXAMPLES = [
    ("Велосипед", "figa", "Фигосипед"),
    ("велосипед", "figa", "фигосипед"),
    ("ВЕЛОСИПЕД", "figa", "ФИГОСИПЕД"),
    ("Машина", "figa", "Фигина"),
    ("большая", "figa", "фигольшая"),
    ("кот", "figa", "фигот"),
    ("Ёлка", "figa", "Фигёлка"),
    ("кто-то", "figa", "фиго-то"),
    ("Привет, мир!", "figa", "Фигивет, фигир!"),
    ("кот на крыше", "figa", "фигот на фигише"),
    ("мама мыла раму", "figa", "фигама фигила фигаму"),
    ("в 2024 году", "figa", "в 2024 фигоду"),
    ("Велосипед", "khren", "Хреносипед"),
]


@pytest.mark.parametrize(
    ("phrase", "scheme_id", "expected"),
    EXAMPLES,
    ids=[f"{p} ({s}) → {e}" for p, s, e in EXAMPLES],
)
def test_spec_example(phrase: str, scheme_id: str, expected: str) -> None:
    assert figalize_phrase(phrase, scheme_id) == expected


ERROR_EXAMPLES = [("Hello", "not_russian"), ("   ", "empty")]


@pytest.mark.parametrize(
    ("phrase", "code"), ERROR_EXAMPLES, ids=[f"{p!r} → error {c}" for p, c in ERROR_EXAMPLES]
)
def test_spec_error_example(phrase: str, code: str) -> None:
    with pytest.raises(PhraseError) as error:
        figalize_phrase(phrase)
    assert error.value.code == code


# § Words


def test_everything_between_words_is_copied_unchanged() -> None:
    assert figalize(" кот, 2024 — «кот»!.. (№7) ", FIGA) == " фигот, 2024 — «фигот»!.. (№7) "


def test_a_hyphen_splits_a_word_in_two_and_is_kept() -> None:
    assert figalize("кто-то", FIGA) == "фиго-то"
    assert figalize("жили-были", FIGA) == "фигили-фигили"


def test_vowels_are_counted_case_insensitively() -> None:
    # Three vowels, all but one capital: step 2 takes the second, «И».
    assert figalize_word("мАшИнА", FIGA) == "фигинА"


# § Transforming one word — rule 1


@pytest.mark.parametrize("word", ["я", "он", "ОН", "Ёж", "ёж"])
def test_words_shorter_than_three_letters_stay(word: str) -> None:
    assert figalize_word(word, FIGA) == word


@pytest.mark.parametrize("word", ["брр", "Тсс", "ПСТ", "вжжж"])
def test_words_without_vowels_stay(word: str) -> None:
    assert figalize_word(word, FIGA) == word


# Rule 2 and 3: which vowel


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("большая", "фигольшая"),
        ("красивая", "фигасивая"),
        ("КРАСИВАЯ", "ФИГАСИВАЯ"),
        ("красивАЯ", "фигасивАЯ"),
        ("красиваЯ", "фигасиваЯ"),
    ],
)
def test_words_ending_in_aya_in_any_case_take_the_first_vowel(word: str, expected: str) -> None:
    assert figalize_word(word, FIGA) == expected


@pytest.mark.parametrize(
    ("word", "expected"), [("кот", "фигот"), ("мама", "фигама"), ("Ёлка", "Фигёлка")]
)
def test_words_with_at_most_two_vowels_take_the_first_vowel(word: str, expected: str) -> None:
    assert figalize_word(word, FIGA) == expected


@pytest.mark.parametrize(
    ("word", "expected"),
    [("Машина", "Фигина"), ("молоко", "фигоко"), ("велосипед", "фигосипед")],
)
def test_other_words_take_the_second_vowel(word: str, expected: str) -> None:
    assert figalize_word(word, FIGA) == expected


@pytest.mark.parametrize(
    ("scheme_id", "vowel", "prefix"),
    [(s, v, p) for s, prefixes in SPEC_PREFIXES.items() for v, p in prefixes.items()],
)
def test_the_chosen_vowel_is_replaced_by_the_scheme_prefix(
    scheme_id: str, vowel: str, prefix: str
) -> None:
    scheme = scheme_by_id(scheme_id)
    assert figalize_word(f"б{vowel}к", scheme) == prefix.lower() + "к"
    assert figalize_word(f"Б{vowel}к", scheme) == prefix + "к"


@pytest.mark.parametrize("vowel", ["э", "е", "ё"])
def test_khren_maps_e_and_yo_to_khrenyo(vowel: str) -> None:
    assert figalize_word(f"л{vowel}с", KHREN) == "хренёс"


# Rule 4: case


def test_an_all_capital_word_is_upper_cased_whole() -> None:
    assert figalize_word("ВЕЛОСИПЕД", FIGA) == "ФИГОСИПЕД"
    assert figalize_word("ЁЛКА", KHREN) == "ХРЕНЁЛКА"


def test_a_capitalised_word_keeps_the_capital_of_the_prefix() -> None:
    assert figalize_word("Велосипед", FIGA) == "Фигосипед"


def test_a_lower_case_word_gets_a_lower_case_prefix() -> None:
    assert figalize_word("велосипед", FIGA) == "фигосипед"


@pytest.mark.parametrize(
    ("word", "expected"),
    [("вЕлосипед", "фигосипед"), ("ВелоСИПЕД", "ФигоСИПЕД"), ("велоСИПЕД", "фигоСИПЕД")],
)
def test_a_mixed_case_word_takes_the_prefix_case_from_its_first_letter(
    word: str, expected: str
) -> None:
    assert figalize_word(word, FIGA) == expected


@pytest.mark.parametrize(
    ("word", "expected"), [("велосиПеД", "фигосиПеД"), ("ВЕЛОСИПЕд", "ФигоСИПЕд")]
)
def test_the_rest_of_the_word_keeps_its_original_case(word: str, expected: str) -> None:
    assert figalize_word(word, FIGA) == expected


# Properties over made-up phrases

phrases = st.text(alphabet=LETTERS + NON_LETTERS, min_size=1, max_size=200)
schemes = st.sampled_from([FIGA, KHREN])


def must_stay(word: str) -> bool:
    return len(word) < 3 or not any(letter in VOWELS for letter in word)


@given(phrases, schemes)
def test_figalize_never_raises_and_returns_text(phrase: str, scheme: Scheme) -> None:
    assert isinstance(figalize(phrase, scheme), str)


@given(phrases, schemes)
def test_non_letters_keep_their_places_between_words(phrase: str, scheme: Scheme) -> None:
    result = figalize(phrase, scheme)
    assert WORD.split(result) == WORD.split(phrase)


@given(phrases, schemes)
def test_the_number_of_words_is_preserved(phrase: str, scheme: Scheme) -> None:
    result = figalize(phrase, scheme)
    assert len(WORD.findall(result)) == len(WORD.findall(phrase))


@given(phrases, schemes)
def test_short_and_vowelless_words_stay_in_any_phrase(phrase: str, scheme: Scheme) -> None:
    result = figalize(phrase, scheme)
    for before, after in zip(WORD.findall(phrase), WORD.findall(result), strict=True):
        if must_stay(before):
            assert after == before


@given(st.text(alphabet=CONSONANTS, min_size=1), schemes)
def test_any_word_of_consonants_stays(word: str, scheme: Scheme) -> None:
    assert figalize_word(word, scheme) == word
