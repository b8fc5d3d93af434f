"""docs/operations.md: every procedure names the tests that back it, and they exist.

A runbook whose tests were renamed away points the operator at nothing; this keeps
each `test_….py` and `test_….py::test_…` it names real.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUNBOOK = REPO / "docs" / "operations.md"
REFERENCE = re.compile(r"`(?:tests/[\w/]+/)?(test_\w+\.py)(?:::(test_\w+))?`")
PROCEDURES = {
    "Backups", "Restore to a point in time", "Replay of pictures after a restore",
    "A broker that lost its topic", "Rotating secrets", "Scaling workers",
    "Rolling a release back",
}  # fmt: skip


def sections() -> dict[str, str]:
    parts = re.split(r"^## (.+)$", RUNBOOK.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_every_procedure_is_there_and_names_its_tests() -> None:
    found = sections()
    assert set(found) == PROCEDURES
    for title, text in found.items():
        assert "**Backed by**" in text, f"§ {title} names no test"
        assert REFERENCE.search(text.split("**Backed by**", 1)[1]), f"§ {title}: no test file"


def test_every_named_test_exists() -> None:
    files = {path.name: path for path in (REPO / "tests").rglob("test_*.py")}
    named = REFERENCE.findall(RUNBOOK.read_text(encoding="utf-8"))
    assert len(named) > 20
    for file, function in named:
        assert file in files, f"{file} is no test file"
        if function:
            source = files[file].read_text(encoding="utf-8")
            assert re.search(rf"def {function}\b", source), f"{file} has no {function}"
