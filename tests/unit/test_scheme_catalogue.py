"""spec/figalization.md § Schemes: the built-in catalogue, and refusing a bad one at start-up."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from app.asgi import create_app
from app.catalogue import load_catalogue
from app.cli import main
from app.domain.schemes import CatalogueError, parse_catalogue
from app.settings import Settings

SPEC_TABLE = [
    ("figa", "Фигачечная", {
        "а": "Фига", "я": "Фига", "о": "Фиго", "э": "Фиге", "е": "Фиге",
        "ё": "Фигё", "у": "Фигу", "ю": "Фигу", "ы": "Фиги", "и": "Фиги",
    }),
    ("khren", "Хреначечная", {
        "а": "Хрена", "я": "Хрена", "о": "Хрено", "э": "Хренё", "е": "Хренё",
        "ё": "Хренё", "у": "Хрену", "ю": "Хрену", "ы": "Хрени", "и": "Хрени",
    }),
]  # fmt: skip
ALL_VOWELS = dict.fromkeys("аеёиоуыэюя", "Бла")
SOURCE = "operator.toml"


def scheme_toml(
    scheme_id: str = "bla", name: str = "Блачечная", prefixes: dict[str, str] = ALL_VOWELS
) -> str:
    lines = ["[[scheme]]", f'id = "{scheme_id}"', f'name = "{name}"', "[scheme.prefixes]"]
    lines += [f'"{vowel}" = "{prefix}"' for vowel, prefix in prefixes.items()]
    return "\n".join(lines) + "\n"


def problem_with(text: str) -> CatalogueError:
    with pytest.raises(CatalogueError) as error:
        parse_catalogue(text, source=SOURCE)
    assert error.value.source == SOURCE
    assert SOURCE in str(error.value)
    return error.value


# The built-in catalogue


def test_the_builtin_catalogue_is_the_spec_table() -> None:
    catalogue = load_catalogue("")
    assert [(s.id, s.name, dict(s.prefixes)) for s in catalogue.schemes] == SPEC_TABLE


def test_the_first_scheme_is_the_default() -> None:
    assert load_catalogue("").default.id == "figa"


def test_a_scheme_is_found_by_its_id_and_an_unknown_id_is_not() -> None:
    catalogue = load_catalogue("")
    assert catalogue.get("khren") is catalogue.schemes[1]
    assert catalogue.get("nope") is None


# A catalogue that cannot be used names the source and the problem


def test_invalid_toml_is_refused() -> None:
    assert "not valid TOML" in problem_with("[[scheme]\nid = ").problem


@pytest.mark.parametrize("text", ["", 'title = "schemes"\n', "scheme = []\n"], ids=repr)
def test_a_catalogue_without_schemes_is_refused(text: str) -> None:
    assert "no [[scheme]] entries" in problem_with(text).problem


def test_a_duplicate_scheme_id_is_refused() -> None:
    text = scheme_toml("bla") + scheme_toml("bla", name="Другая")
    assert "duplicate scheme id 'bla'" in problem_with(text).problem


def test_a_scheme_leaving_vowels_unmapped_is_refused_listing_them() -> None:
    prefixes = {v: p for v, p in ALL_VOWELS.items() if v not in "ёю"}
    assert problem_with(scheme_toml(prefixes=prefixes)).problem.endswith("unmapped: ё, ю")


@pytest.mark.parametrize("prefix", ["", "   "], ids=repr)
def test_a_blank_prefix_leaves_its_vowel_unmapped(prefix: str) -> None:
    text = scheme_toml(prefixes={**ALL_VOWELS, "у": prefix})
    assert problem_with(text).problem.endswith("unmapped: у")


@pytest.mark.parametrize("key", ["б", "А", "a"])
def test_a_prefix_for_a_non_vowel_is_refused(key: str) -> None:
    text = scheme_toml(prefixes={**ALL_VOWELS, key: "Бла"})
    assert f"maps non-vowels: {key}" in problem_with(text).problem


@pytest.mark.parametrize("name", ["", "   "], ids=repr)
def test_a_scheme_without_a_name_is_refused(name: str) -> None:
    assert "needs a non-empty name" in problem_with(scheme_toml(name=name)).problem


@pytest.mark.parametrize("scheme_id", ["", "Figa", "фига", "-figa", "fi ga", "f" * 33], ids=repr)
def test_a_scheme_id_that_is_not_a_slug_is_refused(scheme_id: str) -> None:
    assert "needs an id slug" in problem_with(scheme_toml(scheme_id)).problem


# The operator's file


def test_a_valid_replacement_catalogue_file_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "schemes.toml"
    path.write_text(scheme_toml("bla") + scheme_toml("figa", name="Фигачечная"), encoding="utf-8")
    catalogue = load_catalogue(str(path))
    assert [s.id for s in catalogue.schemes] == ["bla", "figa"]
    assert catalogue.default.name == "Блачечная"


def test_prefixes_are_kept_with_a_capital_first_letter(tmp_path: Path) -> None:
    path = tmp_path / "schemes.toml"
    path.write_text(scheme_toml(prefixes=dict.fromkeys(ALL_VOWELS, "бла")), encoding="utf-8")
    assert set(load_catalogue(str(path)).default.prefixes.values()) == {"Бла"}


@pytest.mark.parametrize("kind", ["missing", "a folder", "not UTF-8"])
def test_an_unreadable_catalogue_file_is_refused_naming_the_path(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "schemes.toml"
    if kind == "a folder":
        path.mkdir()
    elif kind == "not UTF-8":
        path.write_bytes(scheme_toml().encode("cp1251"))
    with pytest.raises(CatalogueError) as error:
        load_catalogue(str(path))
    assert str(path) in str(error.value)
    assert "cannot be read" in error.value.problem


# A bad catalogue stops start-up


@pytest.fixture
def bad_schemes_file(tmp_path: Path) -> Path:
    path = tmp_path / "broken-schemes.toml"
    path.write_text(scheme_toml(prefixes={"а": "Фига"}), encoding="utf-8")
    return path


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """`main` configures the root logger; give the next test the one it had."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_the_app_factory_refuses_a_bad_catalogue(bad_schemes_file: Path, tmp_path: Path) -> None:
    settings = Settings(
        schemes_file=str(bad_schemes_file),
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}",
    )
    with pytest.raises(CatalogueError, match=re.escape(bad_schemes_file.name)):
        create_app(settings)


@pytest.mark.usefixtures("restored_logging")
def test_serve_exits_with_status_2_and_names_the_problem(
    bad_schemes_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FIGA_SCHEMES_FILE", str(bad_schemes_file))
    monkeypatch.setenv("FIGA_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}")

    def server_started(*args: object, **kwargs: object) -> None:
        pytest.fail("the server started despite a bad scheme catalogue")

    monkeypatch.setattr(uvicorn, "run", server_started)  # a tripwire, so a regression cannot hang
    assert main(["serve", "--port", "0"]) == 2
    stderr = capsys.readouterr().err
    assert f"scheme catalogue {bad_schemes_file}" in stderr
    assert "leaves vowels unmapped" in stderr
