""".gitlab-ci.yml: validate → test → build → deploy (issue 6 § CI/CD).

The pipeline must run the same commands as the README and this repository's
CI (the make targets), build the one image, deploy with the Kustomize overlay,
roll back a failed rollout, and release from git tags.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
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
    text = "\n".join(lines(pipeline[".deploy"]["script"]))
    migrate = text.index("kubectl apply -f .deploy/rendered.yaml -l")
    wait = text.index("get job/figachechnaya-migrate")
    assert migrate < wait < text.index("kubectl apply -f .deploy/rendered.yaml\n")
    assert "--timeout=600s" not in text, "a failed migration must not make the job wait 600 s"
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


def test_deploys_reach_the_cluster_with_the_kubeconfig_variable_only(
    pipeline: dict[str, Any], repo: Path
) -> None:
    deploy = pipeline[".deploy"]
    commands = lines(deploy["before_script"]) + lines(deploy["script"])
    assert not [c for c in commands if re.search(r"\byc\b", c)], "the job image has no yc CLI"
    assert "KUBECONFIG" in commands[len(lines(deploy["before_script"]))]
    # Namespace-scoped only: the CI deployer's Role cannot apply k8s/cluster.
    assert not [c for c in commands if "k8s/cluster" in c or "apply -k" in c]
    header = (repo / ".gitlab-ci.yml").read_text(encoding="utf-8").split("stages:")[0]
    assert "ci_kubeconfig" in header, "the header says where KUBECONFIG comes from"


def test_terraform_runs_with_a_key_file_and_keeps_no_plan_for_long(
    pipeline: dict[str, Any], jobs: dict[str, dict[str, Any]], repo: Path
) -> None:
    assert "YC_TOKEN" not in (repo / ".gitlab-ci.yml").read_text(encoding="utf-8")
    before = " ".join(lines(pipeline[".terraform"]["before_script"]))
    assert 'test -f "$YC_SERVICE_ACCOUNT_KEY_FILE"' in before
    plan = jobs["terraform-plan"]
    assert plan["artifacts"]["paths"] == ["terraform/plan.tfplan"]
    assert plan["artifacts"]["expire_in"] == "1 hour"
    assert plan["artifacts"]["access"] == "developer"
    assert "terraform show -no-color plan.tfplan" in lines(plan["script"])
    assert lines(jobs["terraform-apply"]["script"])[-1].endswith(" plan.tfplan")


def test_the_checks_have_promtool_and_the_migration_rule_is_written_down(
    pipeline: dict[str, Any], repo: Path
) -> None:
    tools = " ".join(lines(pipeline[".deploy-tools"]))
    assert re.search(r"apt-get install .*\bprometheus\b", tools)
    assert re.search(r"apt-get install .*\bprometheus\b", (repo / ".ci/run").read_text())
    header = (repo / ".gitlab-ci.yml").read_text(encoding="utf-8").split("stages:")[0]
    assert "expand/contract" in header
    assert "test_migrations_expand_contract.py" in header


# --- the deploy script, run against a stand-in kubectl ------------------------------------

FAKE_KUBECTL = """\
import json, os, subprocess, sys

args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[:1] == ["kustomize"]:
    sys.exit(subprocess.call([os.environ["REAL_KUBECTL"], *args]))
scenario = json.load(open(os.environ["FAKE_SCENARIO"]))
if "get" in args and "job/figachechnaya-migrate" in args:
    polls = scenario["migration"]
    count = sum(1 for line in open(os.environ["FAKE_LOG"]) if "job/figachechnaya-migrate" in line
                and '"get"' in line)
    print(polls[min(count, len(polls)) - 1], end="")
elif "rollout" in args and "status" in args:
    deployment = next(a for a in args if a.startswith("deployment/"))
    earlier = [json.loads(line) for line in open(os.environ["FAKE_LOG"])]
    undone = any("undo" in call and deployment in call for call in earlier)
    sys.exit(1 if deployment in scenario.get("unready", []) and not undone else 0)
elif args[:1] == ["logs"] or "logs" in args:
    print("alembic: migration failed")
"""


@dataclass
class DeployRun:
    returncode: int
    output: str
    calls: list[list[str]]
    rendered: list[dict[str, Any]]

    def index(self, *words: str) -> int:
        """Position of the first kubectl call that has all these words."""
        for position, call in enumerate(self.calls):
            if all(word in call for word in words):
                return position
        raise AssertionError(f"no kubectl call with {words}: {self.calls}")

    def has(self, *words: str) -> bool:
        return any(all(word in call for word in words) for call in self.calls)


@pytest.fixture
def deploy(
    pipeline: dict[str, Any], repo: Path, tmp_path: Path, tool: Any
) -> Callable[..., DeployRun]:
    """Run the deploy job's script in bash (as GitLab does) with a kubectl stand-in."""
    real_kubectl = tool("kubectl", "apt-get install kubectl")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(f"#!{sys.executable}\n{FAKE_KUBECTL}", encoding="utf-8")
    sleep = bin_dir / "sleep"  # the poll loop's pause, skipped
    sleep.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    for script in (kubectl, sleep):
        script.chmod(0o755)
    work = tmp_path / "project"
    work.mkdir()
    (work / "k8s").symlink_to(repo / "k8s")
    (work / "kubeconfig").write_text("apiVersion: v1\nkind: Config\n", encoding="utf-8")
    script = "\n".join(lines(pipeline[".deploy"]["script"]))

    def run(
        migration: list[str], *, unready: tuple[str, ...] = (), kubeconfig: bool = True
    ) -> DeployRun:
        scenario = tmp_path / "scenario.json"
        scenario.write_text(json.dumps({"migration": migration, "unready": list(unready)}))
        log = tmp_path / "calls.jsonl"
        log.write_text("")
        env = {
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "HOME": str(tmp_path),
            "FAKE_LOG": str(log),
            "FAKE_SCENARIO": str(scenario),
            "REAL_KUBECTL": real_kubectl,
            "DEPLOY_ENV": "dev",
            "NAMESPACE": "figachechnaya-dev",
            "IMAGE_REPOSITORY": "cr.yandex/registry/figachechnaya",
            "IMAGE_TAG": "main-0123abcd",
            "IMAGE_DIGEST": "sha256:" + "ab" * 32,
        }
        if kubeconfig:
            env["KUBECONFIG"] = str(work / "kubeconfig")
        result = subprocess.run(
            ["bash", "-eo", "pipefail", "-c", script],
            cwd=work, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        calls = [json.loads(line) for line in log.read_text().splitlines()]
        rendered_path = work / ".deploy" / "rendered.yaml"
        rendered = (
            [d for d in yaml.safe_load_all(rendered_path.read_text()) if d]
            if rendered_path.exists()
            else []
        )
        return DeployRun(result.returncode, result.stdout + result.stderr, calls, rendered)

    return run


def selected_by_the_migration_step(obj: dict[str, Any]) -> bool:
    """`-l 'app.kubernetes.io/component notin (app,worker)'`, as the API server reads it."""
    component = obj["metadata"].get("labels", {}).get("app.kubernetes.io/component")
    return component not in ("app", "worker")


def test_a_deploy_migrates_then_rolls_out_the_image_it_built(
    deploy: Callable[..., DeployRun],
) -> None:
    run = deploy(["", "", "Complete SuccessCriteriaMet "])
    assert run.returncode == 0, run.output
    delete = run.index("delete", "job", "figachechnaya-migrate")
    migrate = run.index("apply", "-l")
    polls = [i for i, call in enumerate(run.calls) if "get" in call]
    everything = run.calls.index(["apply", "-f", ".deploy/rendered.yaml"])
    app = run.index("rollout", "status", "deployment/figachechnaya-app")
    worker = run.index("rollout", "status", "deployment/figachechnaya-worker")
    assert delete < migrate < polls[0]
    assert len(polls) == 3
    assert polls[-1] < everything < app < worker
    assert not run.has("undo")
    image = "cr.yandex/registry/figachechnaya:main-0123abcd@sha256:" + "ab" * 32
    templates = [o for o in run.rendered if o["kind"] in ("Deployment", "Job")]
    assert len(templates) == 3
    for obj in templates:
        for container in obj["spec"]["template"]["spec"]["containers"]:
            assert container["image"] == image, obj["metadata"]["name"]
    first_step = {o["kind"] for o in run.rendered if selected_by_the_migration_step(o)}
    assert "Job" in first_step
    assert "Deployment" not in first_step


def test_a_failed_migration_fails_the_deploy_at_once(deploy: Callable[..., DeployRun]) -> None:
    run = deploy(["", "FailureTarget ", "Failed "])
    assert run.returncode != 0
    assert "migration failed" in run.output
    assert len([call for call in run.calls if "get" in call]) == 2, "no poll after the failure"
    assert run.has("logs", "job/figachechnaya-migrate"), "the failed migration's log is shown"
    assert ["apply", "-f", ".deploy/rendered.yaml"] not in run.calls, "the release is untouched"
    assert not run.has("rollout")


def test_a_rollout_that_does_not_become_ready_is_undone(
    deploy: Callable[..., DeployRun],
) -> None:
    run = deploy(["Complete "], unready=("deployment/figachechnaya-app",))
    assert run.returncode != 0
    assert "rolling back" in run.output
    for deployment in ("deployment/figachechnaya-app", "deployment/figachechnaya-worker"):
        assert run.has("rollout", "undo", deployment)
    assert run.index("rollout", "undo") > run.calls.index(["apply", "-f", ".deploy/rendered.yaml"])


def test_a_deploy_without_a_kubeconfig_stops_before_touching_the_cluster(
    deploy: Callable[..., DeployRun],
) -> None:
    run = deploy(["Complete "], kubeconfig=False)
    assert run.returncode != 0
    assert "KUBECONFIG" in run.output
    assert run.calls == []


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
