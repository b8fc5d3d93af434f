"""Loads the scheme catalogue: the built-in file, or the operator's `FIGA_SCHEMES_FILE`."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from app.domain.schemes import Catalogue, CatalogueError, parse_catalogue


def load_catalogue(schemes_file: str) -> Catalogue:
    """Raises `CatalogueError` naming the file and the problem; start-up stops on it."""
    if not schemes_file:
        builtin = resources.files("app.domain").joinpath("schemes.toml")
        return parse_catalogue(builtin.read_text(encoding="utf-8"), source="(built-in)")
    path = Path(schemes_file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CatalogueError(str(path), f"cannot be read ({error})") from error
    return parse_catalogue(text, source=str(path))
