"""tools/changelog.py on a real git repository of conventional (and other) commits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "changelog.py"


class History:
    """A new git repository in which a test makes commits and tags."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        env = {
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org",
            "GIT_COMMITTER_DATE": "2026-12-01T12:00:00Z", "GIT_AUTHOR_DATE": "2026-12-01T12:00:00Z",
            "HOME": str(self.path), "PATH": "/usr/bin:/bin",
        }  # fmt: skip
        result = subprocess.run(
            ["git", "-C", str(self.path), *args], env=env, capture_output=True, text=True,
            check=True,
        )  # fmt: skip
        return result.stdout

    def commit(self, message: str) -> str:
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "--short=8", "HEAD").strip()

    def changelog(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(TOOL), "--repo", str(self.path), *args],
            capture_output=True, text=True, check=False, timeout=30,
        )  # fmt: skip


@pytest.fixture
def history(tmp_path: Path) -> History:
    return History(tmp_path)


def test_commits_land_in_their_release_and_section(history: History) -> None:
    first = history.commit("feat: figalize phrases")
    history.commit("chore(release): v0.1.0")
    history.git("tag", "v0.1.0")
    fix = history.commit("fix(worker): commit the offset after the record")
    feat = history.commit("feat(api)!: v2 answers 200 when not stored")
    perf = history.commit("perf: one statement per group commit")
    other = history.commit("Benchmark report of the second run")
    breaking = history.commit("refactor: settings in one object\n\nBREAKING CHANGE: FIGA_X gone")
    history.git("merge", "--no-ff", "-q", "-m", "Merge branch 'x'", "HEAD")

    result = history.changelog("--release", "v0.2.0")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.index("## v0.2.0") < text.index("## v0.1.0 — 2026-12-01")
    newest, oldest = text.split("## v0.1.0")
    assert f"### Features\n\n- figalize phrases ({first})" in oldest
    assert "### Breaking changes\n\n" in newest
    breaking_part = newest.split("### Breaking changes\n\n")[1].split("###")[0]
    assert f"- **api**: v2 answers 200 when not stored ({feat})" in breaking_part
    assert f"- settings in one object ({breaking})" in breaking_part
    assert f"### Fixes\n\n- **worker**: commit the offset after the record ({fix})" in newest
    assert f"### Performance\n\n- one statement per group commit ({perf})" in newest
    assert f"### Other changes\n\n- Benchmark report of the second run ({other})" in newest
    assert "release" not in newest.replace("## v0.2.0", ""), "release commits are left out"
    assert "Merge branch" not in text
    sections = [line for line in newest.splitlines() if line.startswith("### ")]
    assert sections == [
        "### Breaking changes", "### Fixes", "### Performance", "### Other changes"
    ]  # fmt: skip


def test_only_prints_one_release_for_the_release_notes(history: History) -> None:
    history.commit("feat: one")
    history.git("tag", "v1.0.0")
    history.commit("fix: two")
    history.git("tag", "v1.0.1")
    history.commit("docs: three")
    notes = history.changelog("--only", "v1.0.1")
    assert notes.returncode == 0, notes.stderr
    assert notes.stdout.startswith("## v1.0.1 — 2026-12-01\n")
    assert "- two (" in notes.stdout
    assert "one" not in notes.stdout
    assert "three" not in notes.stdout
    unreleased = history.changelog()
    assert unreleased.stdout.index("## Unreleased") < unreleased.stdout.index("## v1.0.1")


def test_versions_sort_as_numbers_and_other_tags_are_ignored(history: History) -> None:
    history.commit("feat: nine")
    history.git("tag", "v0.9.0")
    history.commit("feat: ten")
    history.git("tag", "v0.10.0")
    history.commit("feat: experiment")
    history.git("tag", "experiment-1")
    text = history.changelog().stdout
    assert text.index("## Unreleased") < text.index("## v0.10.0") < text.index("## v0.9.0")
    assert "experiment-1" not in text
    assert "- experiment (" in text.split("## v0.10.0")[0]


@pytest.mark.parametrize("arguments", [["--release", "0.2.0"], ["--release", "v1.0.0"]])
def test_a_bad_or_taken_release_tag_is_refused(history: History, arguments: list[str]) -> None:
    history.commit("feat: one")
    history.git("tag", "v1.0.0")
    refused = history.changelog(*arguments)
    assert refused.returncode == 2
    assert "v1.0.0 is tagged already" in refused.stderr or "not a release tag" in refused.stderr


def test_the_output_file_is_written_and_the_repository_changelog_is_the_tools(
    history: History, tmp_path: Path
) -> None:
    history.commit("feat: one")
    out = tmp_path / "CHANGELOG.md"
    assert history.changelog("--release", "v0.1.0", "--output", str(out)).returncode == 0
    assert out.read_text(encoding="utf-8").startswith("# Changelog\n")
    # The repository's own CHANGELOG.md was made by the tool: every section has a heading.
    ours = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert ours.startswith("# Changelog\n\nGenerated from the commits by `tools/changelog.py`")
    assert "\n## v0.1.0" in ours
