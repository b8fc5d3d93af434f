"""Schemes and their catalogue (spec/figalization.md § Schemes).

A catalogue arrives as TOML text; `parse_catalogue` turns it into frozen
values or raises `CatalogueError` naming the source and the problem, so a bad
operator file stops start-up with a message instead of failing per request.
Reading the file is the caller's job: this module never touches the disk.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

VOWELS = "аеёиоуыэюя"
_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


class CatalogueError(ValueError):
    """A scheme catalogue that cannot be used; the message names file and problem."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"scheme catalogue {source}: {problem}")
        self.source = source
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Scheme:
    """One way to figalize: a stable slug, a display name, a prefix per vowel."""

    id: str
    name: str
    prefixes: Mapping[str, str]  # lower-case vowel → prefix, capitalised as in the spec table


@dataclass(frozen=True, slots=True)
class Catalogue:
    """Schemes in the operator's order; the first one is the default."""

    schemes: tuple[Scheme, ...]

    @property
    def default(self) -> Scheme:
        return self.schemes[0]

    def get(self, scheme_id: str) -> Scheme | None:
        return next((s for s in self.schemes if s.id == scheme_id), None)


def parse_catalogue(text: str, *, source: str) -> Catalogue:
    """Validate a whole catalogue: the first problem found is the error."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise CatalogueError(source, f"not valid TOML ({error})") from error
    entries = document.get("scheme")
    if not isinstance(entries, list) or not entries:
        raise CatalogueError(source, "no [[scheme]] entries")
    schemes: list[Scheme] = []
    for position, entry in enumerate(entries, start=1):
        scheme = _parse_scheme(entry, source=source, position=position)
        if any(s.id == scheme.id for s in schemes):
            raise CatalogueError(source, f"duplicate scheme id {scheme.id!r}")
        schemes.append(scheme)
    return Catalogue(tuple(schemes))


def _parse_scheme(entry: Any, *, source: str, position: int) -> Scheme:
    where = f"scheme #{position}"
    if not isinstance(entry, dict):
        raise CatalogueError(source, f"{where} is not a table")
    scheme_id, name, prefixes = entry.get("id"), entry.get("name"), entry.get("prefixes")
    if not isinstance(scheme_id, str) or not _SLUG.fullmatch(scheme_id):
        raise CatalogueError(source, f"{where} needs an id slug like 'figa', got {scheme_id!r}")
    where = f"scheme {scheme_id!r}"
    if not isinstance(name, str) or not name.strip():
        raise CatalogueError(source, f"{where} needs a non-empty name")
    if not isinstance(prefixes, dict):
        raise CatalogueError(source, f"{where} needs a [prefixes] table")
    missing = [v for v in VOWELS if not str(prefixes.get(v) or "").strip()]
    if missing:
        raise CatalogueError(source, f"{where} leaves vowels unmapped: {', '.join(missing)}")
    bad = [v for v in VOWELS if not _is_prefix(prefixes[v])]
    if bad:
        raise CatalogueError(
            source, f"{where} needs Russian letters only as prefixes of: {', '.join(bad)}"
        )
    unknown = sorted(set(prefixes) - set(VOWELS))
    if unknown:
        raise CatalogueError(source, f"{where} maps non-vowels: {', '.join(unknown)}")
    capitalised = {v: p[:1].upper() + p[1:] for v, p in prefixes.items()}
    return Scheme(id=scheme_id, name=name.strip(), prefixes=MappingProxyType(capitalised))


_PREFIX = re.compile(r"[А-Яа-яЁё]+")


def _is_prefix(value: object) -> bool:
    """Letters only: a space or sign inside a prefix would split the figalized word."""
    return isinstance(value, str) and bool(_PREFIX.fullmatch(value))
