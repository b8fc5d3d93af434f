"""One version, in pyproject.toml: the installed app reports it, the lock agrees."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from app.version import service_version

REPO = Path(__file__).resolve().parents[2]
FIGACHECHNAYA = str(Path(sys.executable).with_name("figachechnaya"))


def pyproject_version() -> str:
    with (REPO / "pyproject.toml").open("rb") as handle:
        version: str = tomllib.load(handle)["project"]["version"]
    return version


def test_the_command_prints_the_version_of_pyproject() -> None:
    result = subprocess.run(
        [FIGACHECHNAYA, "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == pyproject_version() == service_version()


def test_the_lock_names_the_same_version() -> None:
    """`uv sync --locked` (the image build, make test) fails when the two differ: bump with
    `uv version X.Y.Z`, which writes both."""
    with (REPO / "uv.lock").open("rb") as handle:
        packages = tomllib.load(handle)["package"]
    (ours,) = [p for p in packages if p["name"] == "figachechnaya"]
    assert ours["version"] == pyproject_version()
