""".gitlab-ci.yml: validate → test → build → deploy (issue 6 § CI/CD).

The pipeline must run the same commands as the README and this repository's
CI (the make targets), build the one image, deploy with the Kustomize overlay,
roll back a failed rollout, and release from git tags.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

STAGES = ["validate", "test", "build", "deploy"]
GITLAB_KEYWORDS = {"stages", "workflow", "variables", "default", "include", "image", "services"}


@pytest.fixture(scope="module")
def pipeline(repo: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((repo / ".gitlab-ci.yml").read_text(encoding="utf-8"))
    return document


@pytest.fixture(scope="module")
def jobs(pipeline: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: job for name, job in pipeline.items()
        if name not in GITLAB_KEYWORDS and not name.startswith(".")
    }  # fmt: skip


def resolved(job: dict[str, Any], pipeline: dict[str, Any]) -> dict[str, Any]:
    """The job with its `extends` template merged in, as GitLab does (one level)."""
    base = pipeline.get(job.get("extends", ""), {})
    return {**base, **job}


def lines(value: Any) -> list[str]:
    if isinstance(value, list):
        return [line for item in value for line in lines(item)]
    return [value] if isinstance(value, str) else []


def make_targets(repo: Path) -> set[str]:
    makefile = (repo / "Makefile").read_text(encoding="utf-8")
    phony = re.search(r"^\.PHONY:(.*)$", makefile, re.MULTILINE)
    declared = set(phony.group(1).split()) if phony else set()
    rules = set(re.findall(r"^([A-Za-z0-9_.$()/-]+):", makefile, re.MULTILINE))
    return declared | {rule.replace("$(VENV)", ".venv") for rule in rules}


def test_stages_run_in_order(pipeline: dict[str, Any], jobs: dict[str, dict[str, Any]]) -> None:
    assert pipeline["stages"] == STAGES
    for name, job in jobs.items():
        assert resolved(job, pipeline)["stage"] in STAGES, name


@pytest.mark.parametrize(
    ("job", "command"),
    [("lint", "make lint"), ("typecheck", "make typecheck"), ("deploy-check", "make deploy-check"),
     ("test", "make test")],
)  # fmt: skip
def test_checks_call_the_make_targets(
    jobs: dict[str, dict[str, Any]], job: str, command: str
) -> None:
    assert lines(jobs[job]["script"]) == [command]


def test_every_make_call_names_a_makefile_target(
    pipeline: dict[str, Any], jobs: dict[str, dict[str, Any]], repo: Path
) -> None:
    targets = make_targets(repo)
    for name, job in jobs.items():
        for line in lines(resolved(job, pipeline).get("script")):
            for target in re.findall(r"\bmake\s+([\w./-]+)", line):
                assert target in targets, f"{name}: make {target} is not in the Makefile"


def test_validate_runs_the_linters_and_the_sast(jobs: dict[str, dict[str, Any]]) -> None:
    validate = {name for name, job in jobs.items() if job.get("stage") == "validate"}
    assert {"lint", "typecheck", "deploy-check", "bandit"} <= validate
    assert any("bandit" in line for line in lines(jobs["bandit"]["script"]))


def test_every_image_is_pinned(pipeline: dict[str, Any]) -> None:
    images = [pipeline["variables"]["PYTHON_IMAGE"]]
    for job in pipeline.values():
        if isinstance(job, dict) and "image" in job:
            image = job["image"]
            images.append(image["name"] if isinstance(image, dict) else image)
        if isinstance(job, dict):
            images += job.get("services", [])
    for image in images:
        if image == "$PYTHON_IMAGE":
            continue
        tag = image.rsplit(":", 1)[-1]
        assert re.fullmatch(r"[^:]+:[\w.-]*\d[\w.-]*", image), f"{image} is not pinned"
        assert tag != "latest", image


def test_the_image_is_built_once_and_deployed_by_digest(
    pipeline: dict[str, Any], jobs: dict[str, dict[str, Any]]
) -> None:
    build = jobs["build-image"]
    assert build["stage"] == "build"
    script = " ".join(lines(build["script"]))
    assert 'docker push "$IMAGE_REPOSITORY:$IMAGE_TAG"' in script
    assert build["artifacts"]["reports"]["dotenv"] == "image.env"
    deploy = " ".join(lines(pipeline[".deploy"]["script"]))
    assert "digest: ${IMAGE_DIGEST}" in deploy
    assert "../k8s/overlays/${DEPLOY_ENV}" in deploy


def test_deploys_migrate_first_and_roll_back_a_failed_rollout(
    pipeline: dict[str, Any], jobs: dict[str, dict[str, Any]]
) -> None:
    script = lines(pipeline[".deploy"]["script"])
    text = "\n".join(script)
    wait = text.index("wait --for=condition=complete --timeout=600s job/figachechnaya-migrate")
    assert wait < text.index("kubectl apply -f .deploy/rendered.yaml\n")
    for deployment in ("figachechnaya-app", "figachechnaya-worker"):
        assert f"rollout status deployment/{deployment}" in text
        assert f"rollout undo deployment/{deployment}" in text
    environments = {}
    for name in ("deploy-dev", "deploy-prod"):
        job = resolved(jobs[name], pipeline)
        assert job["stage"] == "deploy"
        assert job["needs"] == ["build-image"]
        environments[job["variables"]["DEPLOY_ENV"]] = job["variables"]["NAMESPACE"]
    assert environments == {"dev": "figachechnaya-dev", "prod": "figachechnaya"}


def test_releases_come_from_git_tags(
    pipeline: dict[str, Any], jobs: dict[str, dict[str, Any]]
) -> None:
    tag_rule = r"$CI_COMMIT_TAG =~ /^v\d+\.\d+\.\d+$/"
    assert pipeline["workflow"]["rules"][0]["if"] == tag_rule
    assert pipeline["workflow"]["rules"][0]["variables"]["IMAGE_TAG"] == "$CI_COMMIT_TAG"
    assert [rule["if"] for rule in jobs["deploy-prod"]["rules"]] == [tag_rule]
    release = jobs["release"]
    assert release["release"]["tag_name"] == "$CI_COMMIT_TAG"
    assert release["needs"] == ["deploy-prod"]
    assert "CI_COMMIT_TAG" in " ".join(lines(jobs["release-version"]["script"]))
