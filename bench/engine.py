"""The figalization engine alone, in this process: microseconds per word and per phrase.

Times `app.domain.figalize.figalize` with the built-in catalogue, best of
several rounds (timeit's advice: the minimum is the cost, the rest is noise
from the rest of the machine). One process, one thread: "words/s on one core".
"""

from __future__ import annotations

import re
import timeit
from collections.abc import Callable
from dataclasses import dataclass

from app.catalogue import load_catalogue
from app.domain.figalize import figalize
from app.domain.phrase import RUSSIAN_LETTERS
from bench.phrases import PHRASES

PHRASE_LENGTH = 200  # FIGA_MAX_PHRASE_LENGTH: the longest phrase the app accepts
ROUNDS = 5
_WORD = re.compile(rf"[{RUSSIAN_LETTERS}]+")


@dataclass(frozen=True, slots=True)
class EngineResult:
    us_per_word: float  # one word per call
    us_per_phrase: float  # one 200-character phrase per call
    words_per_phrase: int

    @property
    def words_per_second(self) -> float:
        """Words figalized per second inside 200-character phrases (the engine's real work)."""
        return self.words_per_phrase / self.us_per_phrase * 1e6


def long_phrase(length: int = PHRASE_LENGTH) -> str:
    """Phrases joined by spaces, cut at a word boundary to at most `length` characters."""
    text = " ".join(PHRASES * 10)[: length + 1]
    return text[: text.rfind(" ")] if len(text) > length else text


def measure_engine() -> EngineResult:
    scheme = load_catalogue("").default
    words = [word for phrase in PHRASES for word in _WORD.findall(phrase)]
    phrase = long_phrase()

    def each_word() -> None:
        for word in words:
            figalize(word, scheme)

    def one_phrase() -> None:
        figalize(phrase, scheme)

    return EngineResult(
        us_per_word=_best_us(each_word) / len(words),
        us_per_phrase=_best_us(one_phrase),
        words_per_phrase=len(_WORD.findall(phrase)),
    )


def _best_us(call: Callable[[], None]) -> float:
    timer = timeit.Timer(call)
    number, _ = timer.autorange()  # enough calls for at least 0.2 s
    return min(timer.repeat(repeat=ROUNDS, number=number)) / number * 1e6
