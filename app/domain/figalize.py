"""The transformation of spec/figalization.md § Words and § Transforming one word.

Hot path: every request runs it, so it is one regex pass over the phrase and
string slicing per word, no allocation beyond the result.
"""

from __future__ import annotations

import re

from app.domain.phrase import RUSSIAN_LETTERS
from app.domain.schemes import VOWELS, Scheme

_WORD = re.compile(rf"[{RUSSIAN_LETTERS}]+")
_VOWELS = frozenset(VOWELS + VOWELS.upper())


def figalize(phrase: str, scheme: Scheme) -> str:
    """Figalize every word; everything between words is copied unchanged."""
    return _WORD.sub(lambda match: figalize_word(match.group(), scheme), phrase)


def figalize_word(word: str, scheme: Scheme) -> str:
    """One maximal run of Cyrillic letters, by rules 1–4."""
    vowel_positions = [i for i, letter in enumerate(word) if letter in _VOWELS]
    if len(word) < 3 or not vowel_positions:
        return word
    step = 1 if len(vowel_positions) <= 2 or word[-2:].lower() == "ая" else 2
    index = vowel_positions[step - 1]
    prefix = scheme.prefixes[word[index].lower()]
    rest = word[index + 1 :]
    if word.isupper():
        return (prefix + rest).upper()
    if word[0].isupper():
        return prefix + rest
    return prefix.lower() + rest
