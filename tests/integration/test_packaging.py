"""The built wheel carries everything an installed run needs (templates, catalogue, migrations)."""

from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def uv() -> str:
    return os.environ.get("UV") or str(ROOT / ".tools" / "bin" / "uv")


def test_the_wheel_contains_templates_static_files_catalogue_and_migrations(
    tmp_path: Path,
) -> None:
    subprocess.run(
        [uv(), "build", "--wheel", "--quiet", "--out-dir", str(tmp_path)], cwd=ROOT, check=True
    )
    (wheel,) = tmp_path.glob("figachechnaya-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {
        p.relative_to(ROOT / "templates").as_posix() for p in ROOT.glob("templates/**/*.html")
    }
    assert {f"app/_templates/{t}" for t in templates} <= names
    assert {
        "app/domain/schemes.toml",
        "app/web/static/site.css",
        "app/store/migrations/env.py",
        "app/store/migrations/versions/0001_initial.py",
        "workers/render.py",
    } <= names
