"""The changelog, generated from the commits: one section per release tag `vX.Y.Z`.

    python tools/changelog.py --release v0.2.0 --output CHANGELOG.md   # before tagging v0.2.0
    python tools/changelog.py --only v0.2.0                            # that release's notes

Commits are read as Conventional Commits (`feat(scope)!: subject`, a `BREAKING CHANGE:`
footer); each lands in the section of the first release tag that contains it, or in
"Unreleased" (titled `--release`, the version about to be tagged). Commits of another
shape are not lost: they are listed under "Other changes". Merge commits and the release
commits themselves (`chore(release): …`) are left out. Stdlib only: it runs in CI's plain
Python image, and it never writes anything but `--output`.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess  # nosec B404: git, with arguments built here
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

TAG = re.compile(r"^v\d+\.\d+\.\d+$")
HEADER = re.compile(r"^(?P<type>[a-z]+)(?:\((?P<scope>[^)]+)\))?(?P<bang>!)?: (?P<subject>.+)$")
# The order the sections are printed in; a type not named here is "Other changes".
SECTIONS = {
    "breaking": "Breaking changes",
    "feat": "Features",
    "fix": "Fixes",
    "perf": "Performance",
    "docs": "Documentation",
    "other": "Other changes",
}
UNRELEASED = "Unreleased"
FIELD, RECORD = "\x1f", "\x1e"  # separators git never finds in a message


@dataclass(frozen=True)
class Commit:
    sha: str
    subject: str
    body: str

    @property
    def section(self) -> str:
        header = HEADER.match(self.subject)
        if header and (header["bang"] or "BREAKING CHANGE:" in self.body):
            return "breaking"
        if header and header["type"] in SECTIONS:
            return header["type"]
        return "other"

    @property
    def line(self) -> str:
        header = HEADER.match(self.subject)
        if header is None:
            return f"- {self.subject} ({self.sha[:8]})"
        scope = f"**{header['scope']}**: " if header["scope"] else ""
        return f"- {scope}{header['subject']} ({self.sha[:8]})"

    @property
    def is_release(self) -> bool:
        header = HEADER.match(self.subject)
        return bool(header and header["type"] == "chore" and header["scope"] == "release")


@dataclass(frozen=True)
class Release:
    title: str  # the tag, or "Unreleased"
    date: str  # the tag's commit date (YYYY-MM-DD), empty when unreleased
    commits: list[Commit]


def git(repo: Path, *args: str) -> str:
    program = shutil.which("git") or "git"
    result = subprocess.run(  # noqa: S603  # nosec B603: git, arguments built here
        [program, "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return result.stdout


def release_tags(repo: Path) -> list[str]:
    """The release tags reachable from HEAD, oldest first (by version, not by name)."""
    tags = [t for t in git(repo, "tag", "--merged", "HEAD").split() if TAG.match(t)]
    return sorted(tags, key=lambda t: tuple(int(n) for n in t[1:].split(".")))


def commits_between(repo: Path, start: str | None, end: str) -> list[Commit]:
    span = f"{start}..{end}" if start else end
    text = git(repo, "log", "--no-merges", f"--format=%H{FIELD}%s{FIELD}%b{RECORD}", span)
    commits = []
    for record in text.split(RECORD):
        if record.strip():
            sha, subject, body = record.strip("\n").split(FIELD, 2)
            commits.append(Commit(sha, subject, body))
    return [c for c in commits if not c.is_release]


def releases(repo: Path, unreleased_title: str = UNRELEASED) -> list[Release]:
    """Every release, newest first; the commits after the newest tag come first of all."""
    found: list[Release] = []
    previous: str | None = None
    for tag in release_tags(repo):
        date = git(repo, "log", "-1", "--format=%cs", tag).strip()
        found.append(Release(tag, date, commits_between(repo, previous, tag)))
        previous = tag
    pending = commits_between(repo, previous, "HEAD")
    if unreleased_title != UNRELEASED:  # the release about to be tagged: dated today
        found.append(Release(unreleased_title, datetime.now(UTC).date().isoformat(), pending))
    elif pending:
        found.append(Release(UNRELEASED, "", pending))
    return found[::-1]


def render(release: Release) -> str:
    heading = f"## {release.title}" + (f" — {release.date}" if release.date else "")
    parts = [heading]
    for key, title in SECTIONS.items():
        lines = [c.line for c in release.commits if c.section == key]
        if lines:
            parts.append(f"### {title}\n\n" + "\n".join(lines))
    if not release.commits:
        parts.append("No changes.")
    return "\n\n".join(parts) + "\n"


def changelog(repo: Path, unreleased_title: str = UNRELEASED) -> str:
    intro = "# Changelog\n\nGenerated from the commits by `tools/changelog.py`; do not edit.\n"
    return "\n".join([intro, *(render(r) for r in releases(repo, unreleased_title))])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=Path.cwd())
    parser.add_argument("--release", help="title the commits after the newest tag as this tag")
    parser.add_argument("--only", help="print only this release's section")
    parser.add_argument("--output", type=Path, help="write here instead of standard output")
    args = parser.parse_args(argv)
    for tag in (args.release, args.only):
        if tag is not None and not TAG.match(tag):
            parser.error(f"{tag!r} is not a release tag vX.Y.Z")
    if args.release and args.release in release_tags(args.repo):
        parser.error(f"{args.release} is tagged already")
    if args.only:
        chosen = [
            r for r in releases(args.repo, args.release or UNRELEASED) if r.title == args.only
        ]
        if not chosen:
            parser.error(f"no release {args.only}")
        text = render(chosen[0])
    else:
        text = changelog(args.repo, args.release or UNRELEASED)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
