"""yamllint over every YAML file of the deployment (rules in .yamllint.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest
from yamllint import linter
from yamllint.config import YamlLintConfig

REPO = Path(__file__).resolve().parents[2]
FILES = sorted(
    [REPO / "compose.yaml", REPO / ".gitlab-ci.yml", REPO / ".yamllint.yaml"]
    + [p for folder in ("k8s", "deploy") for p in (REPO / folder).rglob("*.y*ml")]
)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_yaml_passes_yamllint(path: Path) -> None:
    config = YamlLintConfig(file=str(REPO / ".yamllint.yaml"))
    problems = list(linter.run(path.read_text(encoding="utf-8"), config, str(path)))
    assert not problems, "\n".join(f"{p.line}:{p.column} {p.rule}: {p.desc}" for p in problems)
