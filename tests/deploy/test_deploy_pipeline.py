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
        environments[job["variables"]["DEPLOY_ENV"]] = job["variables"]["NAMESPACE"]
    assert environments == {"dev": "figachechnaya-dev", "prod": "figachechnaya"}
    assert resolved(jobs["deploy-dev"], pipeline)["needs"] == ["build-image"]


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
elif "get" in args and "deployment/figachechnaya-app" in args:
    if scenario.get("running") is None:
        print('Error from server (NotFound): deployments.apps "figachechnaya-app" not found',
              file=sys.stderr)
        sys.exit(1)
    print(scenario["running"], end="")
elif "rollout" in args and "status" in args:
    deployment = next(a for a in args if a.startswith("deployment/"))
    earlier = [json.loads(line) for line in open(os.environ["FAKE_LOG"])]
    undone = any("undo" in call and deployment in call for call in earlier)
    sys.exit(1 if deployment in scenario.get("unready", []) and not undone else 0)
elif args[:1] == ["logs"] or "logs" in args:
    print("alembic: migration failed")
"""


RUNNING = "cr.yandex/registry/figachechnaya:v0.1.0@sha256:" + "cd" * 32


@dataclass
class DeployRun:
    returncode: int
    output: str
    calls: list[list[str]]
    rendered: list[dict[str, Any]]
    previous: str  # .deploy/previous.env, the dotenv report the rollback job reads

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

    def run(
        migration: list[str],
        *,
        unready: tuple[str, ...] = (),
        kubeconfig: bool = True,
        running: str | None = RUNNING,
        job: str = ".deploy",
        env: dict[str, str] | None = None,
    ) -> DeployRun:
        scenario = tmp_path / "scenario.json"
        scenario.write_text(
            json.dumps({"migration": migration, "unready": list(unready), "running": running})
        )
        log = tmp_path / "calls.jsonl"
        log.write_text("")
        variables = {
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
            **(env or {}),
        }
        if kubeconfig:
            variables["KUBECONFIG"] = str(work / "kubeconfig")
        script = "\n".join(lines(pipeline[job]["script"]))
        result = subprocess.run(
            ["bash", "-eo", "pipefail", "-c", script],
            cwd=work, env=variables, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        calls = [json.loads(line) for line in log.read_text().splitlines()]
        rendered_path = work / ".deploy" / "rendered.yaml"
        rendered = (
            [d for d in yaml.safe_load_all(rendered_path.read_text()) if d]
            if rendered_path.exists()
            else []
        )
        previous_env = work / ".deploy" / "previous.env"
        previous = previous_env.read_text() if previous_env.exists() else ""
        previous_env.unlink(missing_ok=True)
        return DeployRun(
            result.returncode, result.stdout + result.stderr, calls, rendered, previous
        )

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
    polls = [
        i
        for i, call in enumerate(run.calls)
        if "get" in call and "job/figachechnaya-migrate" in call
    ]
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
    polls = [call for call in run.calls if "get" in call and "job/figachechnaya-migrate" in call]
    assert len(polls) == 2, "no poll after the failure"
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
    assert release["needs"] == ["build-image", "deploy-prod", "release-version"]
    assert release["release"]["description"] == "release-notes.md"
    check = " ".join(lines(jobs["release-version"]["script"]))
    assert "CI_COMMIT_TAG" in check
    assert 'tools/changelog.py --only "$CI_COMMIT_TAG" --output release-notes.md' in check
    assert jobs["release-version"]["artifacts"]["paths"] == ["release-notes.md"]
    assert jobs["release-version"]["variables"]["GIT_DEPTH"] == "0", "the notes need the tags"


# --- which jobs a pipeline has: GitLab's rules, evaluated (issue 12 item 6) ----------------

ATOM = re.compile(r"^\$(\w+)(?:\s*(==|!=|=~|!~)\s*(.+))?$")


def holds(expression: str, variables: dict[str, str]) -> bool:
    """A `rules:if` as GitLab judges it, for the forms this pipeline uses: `$A`,
    `$A == $B`, `$A == "x"`, `!=`, `$A =~ /re/`, joined by `&&` and `||` (no brackets).
    An unset variable is null: it equals only another null, and matches no pattern."""

    def value(term: str) -> str | None:
        term = term.strip()
        if term.startswith("$"):
            return variables.get(term[1:])
        return term.strip("\"'")

    def atom(text: str) -> bool:
        match = ATOM.match(text.strip())
        assert match, f"rules:if form not understood: {text!r}"
        left = variables.get(match[1])
        operator, right = match[2], match[3]
        if operator is None:
            return bool(left)
        if operator in ("=~", "!~"):
            pattern = right.strip()
            assert pattern[0] == pattern[-1] == "/", pattern
            found = left is not None and re.search(pattern[1:-1], left) is not None
            return found if operator == "=~" else not found
        equal = left == value(right)
        return equal if operator == "==" else not equal

    return any(all(atom(part) for part in branch.split("&&")) for branch in expression.split("||"))


def expand(text: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$(\w+)", lambda m: variables.get(m[1], ""), text)


def pipeline_for(
    pipeline: dict[str, Any], jobs: dict[str, dict[str, Any]], variables: dict[str, str]
) -> tuple[dict[str, str], dict[str, str]] | None:
    """(job → when, the pipeline's variables) of the pipeline GitLab would create, or None
    when `workflow:rules` creates none."""
    for rule in pipeline["workflow"]["rules"]:
        if holds(rule["if"], variables):
            extra = {k: expand(v, variables) for k, v in rule.get("variables", {}).items()}
            variables = variables | extra
            break
    else:
        return None
    chosen: dict[str, str] = {}
    for name, job in jobs.items():
        job = resolved(job, pipeline)
        rules = job.get("rules")
        if rules is None:
            chosen[name] = job.get("when", "on_success")
            continue
        for rule in rules:
            if "if" not in rule or holds(rule["if"], variables):
                if rule.get("when", "on_success") != "never":
                    chosen[name] = rule.get("when", "on_success")
                break
    return chosen, variables


def needed(job: dict[str, Any]) -> dict[str, bool]:
    """The jobs a job needs → whether it takes their artifacts (dotenv variables included)."""
    entries = job.get("needs", [])
    return {
        (e if isinstance(e, str) else e["job"]): (
            True if isinstance(e, str) else e.get("artifacts", True)
        )
        for e in entries
    }


BASE = {
    "CI_DEFAULT_BRANCH": "main",
    "CI_COMMIT_SHORT_SHA": "0123abcd",
    "CI_PIPELINE_SOURCE": "push",
}
TAG = BASE | {"CI_COMMIT_TAG": "v1.2.3", "CI_COMMIT_REF_NAME": "v1.2.3"}
MAIN = BASE | {"CI_COMMIT_BRANCH": "main", "CI_COMMIT_REF_NAME": "main"}
MERGE_REQUEST = BASE | {"CI_PIPELINE_SOURCE": "merge_request_event", "CI_COMMIT_REF_NAME": "topic"}
CHECKS = {"lint", "typecheck", "deploy-check", "bandit", "dependency-audit", "test"}


def test_a_release_tag_builds_once_deploys_dev_and_waits_for_the_promotion(
    pipeline: dict[str, Any], jobs: dict[str, dict[str, Any]]
) -> None:
    found = pipeline_for(pipeline, jobs, TAG)
    assert found is not None
    chosen, variables = found
    assert variables["IMAGE_TAG"] == "v1.2.3", "the image is tagged with the release"
    assert chosen == dict.fromkeys(CHECKS, "on_success") | {
        "release-version": "on_success",
        "build-image": "on_success",
        "deploy-dev": "on_success",  # at once
        "deploy-prod": "manual",  # the promotion
        "rollback-dev": "manual",
        "rollback-prod": "manual",
        "release": "on_success",  # after the promotion (needs)
    }
    for name in chosen:
        missing = set(needed(resolved(jobs[name], pipeline))) - set(chosen)
        assert not missing, f"{name} needs {missing}, which this pipeline does not have"
    assert resolved(jobs["deploy-prod"], pipeline)["allow_failure"] is False, "a gate, not a skip"


def test_prod_gets_the_image_dev_got_by_its_digest(
    pipeline: dict[str, Any], jobs: dict[str, dict[str, Any]]
) -> None:
    dev, prod = (needed(resolved(jobs[n], pipeline)) for n in ("deploy-dev", "deploy-prod"))
    assert dev == {"build-image": True}
    assert prod == {"build-image": True, "deploy-dev": False}, (
        "promoted after dev, with build-image's IMAGE_DIGEST and not dev's PREVIOUS_IMAGE"
    )
    builders = [n for n, j in jobs.items() if "docker build" in " ".join(lines(j.get("script")))]
    assert builders == ["build-image"], "one build per pipeline: dev and prod get its image"
    assert resolved(jobs["deploy-prod"], pipeline)["script"] == pipeline[".deploy"]["script"]


def test_main_deploys_dev_only_and_a_merge_request_deploys_nothing(
    pipeline: dict[str, Any], jobs: dict[str, dict[str, Any]]
) -> None:
    main = pipeline_for(pipeline, jobs, MAIN)
    assert main is not None
    chosen, variables = main
    assert variables["IMAGE_TAG"] == "main-0123abcd"
    assert chosen == dict.fromkeys(CHECKS, "on_success") | {
        "build-image": "on_success",
        "deploy-dev": "on_success",
        "rollback-dev": "manual",
        "terraform-plan": "on_success",
        "terraform-apply": "manual",
    }
    merge_request = pipeline_for(pipeline, jobs, MERGE_REQUEST)
    assert merge_request is not None
    assert merge_request[0] == dict.fromkeys(CHECKS, "on_success")


@pytest.mark.parametrize(
    "variables",
    [
        BASE | {"CI_COMMIT_BRANCH": "topic", "CI_COMMIT_REF_NAME": "topic"},
        BASE | {"CI_COMMIT_TAG": "nightly", "CI_COMMIT_REF_NAME": "nightly"},
        BASE | {"CI_COMMIT_TAG": "v1.2", "CI_COMMIT_REF_NAME": "v1.2"},
    ],
    ids=["a topic branch", "a tag that is no release", "an incomplete version"],
)
def test_other_pushes_make_no_pipeline(
    pipeline: dict[str, Any], jobs: dict[str, dict[str, Any]], variables: dict[str, str]
) -> None:
    assert pipeline_for(pipeline, jobs, variables) is None


def test_the_rules_evaluator_reads_gitlab_conditions_as_gitlab_does() -> None:
    """The evaluator above, held to GitLab's documented meaning (or the tests prove nothing)."""
    assert holds(r"$CI_COMMIT_TAG =~ /^v\d+\.\d+\.\d+$/", {"CI_COMMIT_TAG": "v10.0.1"})
    assert not holds(r"$CI_COMMIT_TAG =~ /^v\d+\.\d+\.\d+$/", {})
    assert not holds("$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH", {"CI_DEFAULT_BRANCH": "main"})
    assert holds("$A == $B", {})  # null == null
    assert holds('$CI_PIPELINE_SOURCE == "merge_request_event"', MERGE_REQUEST)
    assert holds("$X && $Y || $Z", {"Z": "1"})
    assert not holds("$X && $Y", {"X": "1"})
    assert holds('$A != "x"', {"A": "y"})


# --- the previous release, recorded by each deploy and put back by the rollback job --------


def test_a_deploy_records_the_release_it_replaces(deploy: Callable[..., DeployRun]) -> None:
    run = deploy(["Complete "])
    assert run.returncode == 0, run.output
    assert run.previous == f"PREVIOUS_IMAGE={RUNNING}\n"
    recorded = run.index("get", "deployment/figachechnaya-app")
    assert recorded < run.calls.index(["apply", "-f", ".deploy/rendered.yaml"])
    first = deploy(["Complete "], running=None)
    assert first.returncode == 0, first.output
    assert first.previous == "PREVIOUS_IMAGE=\n", "a first deploy has nothing to go back to"


def test_the_dotenv_report_carries_the_previous_image_to_the_rollback_jobs(
    pipeline: dict[str, Any], jobs: dict[str, dict[str, Any]]
) -> None:
    assert pipeline[".deploy"]["artifacts"]["reports"]["dotenv"] == ".deploy/previous.env"
    for env in ("dev", "prod"):
        rollback = resolved(jobs[f"rollback-{env}"], pipeline)
        deploy_job = resolved(jobs[f"deploy-{env}"], pipeline)
        assert needed(rollback) == {f"deploy-{env}": True}
        assert rollback["environment"]["name"] == deploy_job["environment"]["name"], (
            "the same environment: the same KUBECONFIG"
        )
        assert rollback["variables"] == deploy_job["variables"]
        assert rollback["resource_group"] == "$DEPLOY_ENV", "never beside a deploy"


def test_the_rollback_puts_the_previous_image_back_without_migrating(
    deploy: Callable[..., DeployRun],
) -> None:
    run = deploy([], job=".rollback", env={"PREVIOUS_IMAGE": RUNNING})
    assert run.returncode == 0, run.output
    set_image = ["-n", "figachechnaya-dev", "set", "image"]
    assert run.calls[:2] == [
        [*set_image, "deployment/figachechnaya-app", f"app={RUNNING}"],
        [*set_image, "deployment/figachechnaya-worker", f"worker={RUNNING}"],
    ]
    assert run.has("rollout", "status", "deployment/figachechnaya-worker")
    assert not run.has("apply")
    assert not run.has("job/figachechnaya-migrate")


def test_a_rollback_with_nothing_before_it_touches_nothing(
    deploy: Callable[..., DeployRun],
) -> None:
    run = deploy([], job=".rollback", env={"PREVIOUS_IMAGE": ""})
    assert run.returncode != 0
    assert "no release to roll back to" in run.output
    assert run.calls == []
