"""Fixtures of the offline deployment checks: rendered manifests, parsed files, checkov.

Everything here runs without a cloud, a Docker engine or network access. The
tools come from the machine (kubectl, terraform, docker-compose), from the dev
dependencies (kubernetes-validate, python-hcl2, yamllint) and from the separate
locked tool project tools/checkov. A missing tool fails the test with the
command that installs it: a skipped check would look like a passed one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

from tests.deploy.rehearsal import Processes

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = ("dev", "prod")


def require_tool(name: str, install: str) -> str:
    """The tool's path, or a failed test that says how to install it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; {install}")
    return path


def run(
    command: list[str], *, timeout: float = 120, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def kustomize(path: str) -> list[dict[str, Any]]:
    kubectl = require_tool("kubectl", "apt-get install kubectl")
    result = run([kubectl, "kustomize", path])
    assert result.returncode == 0, f"kubectl kustomize {path} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Every Kustomize entry point rendered: the two overlays and the cluster-wide objects."""
    entries = {env: kustomize(f"k8s/overlays/{env}") for env in OVERLAYS}
    entries["cluster"] = kustomize("k8s/cluster")
    return entries


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    """compose.yaml as YAML sees it (anchors and merge keys resolved)."""
    document: dict[str, Any] = yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))
    return document


# Plain values ("name", not '"name"'), no block markers, no comments.
HCL_OPTIONS = hcl2.SerializationOptions(
    strip_string_quotes=True, explicit_blocks=False, with_comments=False
)


def load_hcl(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        document: dict[str, Any] = hcl2.load(handle, serialization_options=HCL_OPTIONS)
    return document


@pytest.fixture(scope="session")
def parse_hcl() -> Any:
    """hcl2's parser as a fixture: test modules import nothing from here."""
    return load_hcl


@pytest.fixture(scope="session")
def tool() -> Any:
    """`tool(name, install_hint)` → the tool's path, or a failed test."""
    return require_tool


@pytest.fixture(scope="session")
def terraform_variables() -> dict[str, dict[str, Any]]:
    """The root module's variables: name → its block."""
    document = load_hcl(REPO / "terraform" / "variables.tf")
    return {name: block for entry in document["variable"] for name, block in entry.items()}


def uv_binary() -> str:
    """The uv of the Makefile (.tools/bin/uv), or the one named by $UV."""
    candidate = os.environ.get("UV") or str(REPO / ".tools" / "bin" / "uv")
    if not Path(candidate).is_file():
        pytest.fail(f"uv not found at {candidate}: run `make .venv/.synced` or set UV=/path/to/uv")
    return candidate


@pytest.fixture(scope="session")
def checkov_report(
    rendered: dict[str, list[dict[str, Any]]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """One checkov run over terraform/, the Dockerfile and the rendered k8s manifests.

    The manifests are checked as rendered (what is applied), so the
    `checkov.io/skipN` annotations carry the justified exceptions; terraform/
    and the Dockerfile carry theirs as `checkov:skip=ID:reason` comments.
    """
    scan = tmp_path_factory.mktemp("checkov")
    shutil.copytree(REPO / "terraform", scan / "terraform")
    shutil.copy(REPO / "Dockerfile", scan / "Dockerfile")
    for name, docs in rendered.items():
        (scan / "k8s").mkdir(exist_ok=True)
        (scan / "k8s" / f"{name}.yaml").write_text(yaml.safe_dump_all(docs), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    command = [
        uv_binary(), "run", "--quiet", "--project", str(REPO / "tools" / "checkov"), "--locked",
        "checkov", "--directory", str(scan), "--framework", "terraform", "kubernetes", "dockerfile",
        "--skip-download", "--output", "json", "--soft-fail",
    ]  # fmt: skip
    result = run(command, timeout=600, env=env)
    assert result.returncode == 0, f"checkov did not run:\n{result.stderr[-4000:]}"
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    return {"by_framework": {r["check_type"]: r for r in reports}, "stderr": result.stderr}


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    yield started
    started.stop_all()
