"""Dockerfile and .dockerignore: the one image of app and worker (issue 6 § container image).

No Docker engine runs here, so the build itself is checked by checkov and by
these structural rules: multi-stage, pinned slim base, the Makefile's uv and
the lock file, nothing but the virtual environment in the final stage, a
non-root user and a HEALTHCHECK.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def stages(repo: Path) -> list[list[str]]:
    """The Dockerfile's instructions, continuation lines joined, split per stage."""
    text = (repo / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    instructions = [
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    ]
    result: list[list[str]] = []
    for instruction in instructions:
        if instruction.startswith("FROM "):
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def test_two_stages_on_the_same_pinned_slim_base(stages: list[list[str]]) -> None:
    assert len(stages) == 2
    bases = {stage[0].split()[1] for stage in stages}
    (base,) = bases
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base)
    assert stages[0][0].endswith(" AS builder")
    assert stages[1][0].endswith(" AS runtime")


def test_dependencies_come_from_the_lock_with_the_makefiles_uv(
    stages: list[list[str]], repo: Path
) -> None:
    builder = "\n".join(stages[0])
    uv_version = re.search(r"^UV_VERSION := (\S+)$", (repo / "Makefile").read_text(), re.MULTILINE)
    assert uv_version is not None
    assert f"pip install uv=={uv_version.group(1)}" in builder
    syncs = re.findall(r"uv sync [^\n]*", builder)
    assert syncs
    assert all("--locked" in s and "--no-dev" in s for s in syncs)
    assert "--no-editable" in syncs[-1], "the project is installed as a wheel, not linked to /src"


def test_the_final_stage_holds_only_the_virtual_environment(stages: list[list[str]]) -> None:
    runtime = "\n".join(stages[1])
    assert re.findall(r"^COPY (.*)$", runtime, re.MULTILINE) == [
        "--from=builder /opt/venv /opt/venv"
    ]
    assert not re.search(
        r"\b(pip|uv|apt-get|gcc|build-essential)\b",
        " ".join(i for i in stages[1] if i.startswith("RUN ")),
    )


def test_the_process_runs_as_a_non_root_user_with_a_healthcheck(stages: list[list[str]]) -> None:
    runtime = stages[1]
    (user,) = [i for i in runtime if i.startswith("USER ")]
    uid = user.split()[1].split(":")[0]
    assert uid.isdigit(), "numeric, so runAsNonRoot can verify it"
    assert int(uid) >= 10000
    assert any(i.startswith("HEALTHCHECK ") and "/healthz" in i for i in runtime)
    assert 'ENTRYPOINT ["figachechnaya"]' in runtime
    assert 'CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]' in runtime


def test_the_build_context_is_only_what_the_image_needs(repo: Path) -> None:
    rules = [
        line.strip() for line in (repo / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]  # fmt: skip
    assert rules[0] == "*"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    assert allowed == {"pyproject.toml", "uv.lock", "README.md", "app", "workers", "templates"}
