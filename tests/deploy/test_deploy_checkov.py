"""checkov (SAST) over terraform/, the rendered k8s/ manifests and the Dockerfile.

Without a Prisma Cloud key checkov reports no severities, so the rule is the
strictest one: every failed check fails the build, unless it is skipped
inline with its reason (`checkov:skip=ID:reason` in code, `checkov.io/skipN:
ID=reason` annotations on Kubernetes objects). A check that crashes does not
count as passed either.
"""

from __future__ import annotations

from typing import Any

import pytest

FRAMEWORKS = ("terraform", "kubernetes", "dockerfile")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_checkov_scanned_the_files(checkov_report: dict[str, Any], framework: str) -> None:
    report = checkov_report["by_framework"][framework]
    summary = report["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] > 0
    assert summary["passed"] > 0


def test_no_check_crashed(checkov_report: dict[str, Any]) -> None:
    crashes = [
        line for line in checkov_report["stderr"].splitlines() if "Failed to run check" in line
    ]
    assert not crashes, "\n".join(crashes)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_no_check_fails(checkov_report: dict[str, Any], framework: str) -> None:
    failed = checkov_report["by_framework"][framework]["results"]["failed_checks"]
    assert not failed, "\n".join(
        f"{c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path']})" for c in failed
    )


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_every_exception_is_justified(checkov_report: dict[str, Any], framework: str) -> None:
    for check in checkov_report["by_framework"][framework]["results"]["skipped_checks"]:
        reason = (check.get("check_result") or {}).get("suppress_comment", "")
        assert len(reason.split()) >= 5, f"{check['check_id']} on {check['resource']}: say why"
