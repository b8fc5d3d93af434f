"""The alert rules and the compose scrape config, checked by Prometheus's own promtool.

`promtool check rules` parses both rule sources (deploy/prometheus/rules for
compose, the `spec` of k8s/base/prometheusrule.yaml for the operator) the way
Prometheus loads them; `promtool test rules` runs deploy/prometheus/tests/,
one file per alert, each showing its alert firing on series that should fire
it and silent on series that should not; `promtool check config` loads the
compose Prometheus configuration. promtool comes from Debian's `prometheus`
package (.ci/run installs it); without it the tests fail and say so.

One Prometheus watches several environments (the Kubernetes namespaces dev and
prod; compose labels its one `namespace="compose"`), so each alert's test file
also has a case with two namespaces, one broken and one healthy, where the alert
fires for the broken one only; the SLO recording rules are checked by value
(`promql_expr_test`) in the test files of the burn-rate alerts that read them.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
PROMETHEUS_RULE = REPO / "k8s" / "base" / "prometheusrule.yaml"
NAMESPACE = re.compile(r'namespace="([^"]+)"')
ENVIRONMENTS = {"figachechnaya", "figachechnaya-dev"}  # the prod and dev namespaces of k8s/overlays
INSTALL = "apt-get install prometheus (Debian's package ships promtool)"


@pytest.fixture(scope="module")
def promtool(tool: Any) -> str:
    path: str = tool("promtool", INSTALL)
    return path


def run_promtool(promtool: str, *args: str, cwd: Path = REPO) -> str:
    result = subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout + result.stderr


def alerts(groups: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


def recordings(groups: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {rule["record"]: rule for group in groups for rule in group["rules"] if "record" in rule}


def compose_groups() -> list[dict[str, Any]]:
    (rules,) = RULE_FILES
    groups: list[dict[str, Any]] = yaml.safe_load(rules.read_text(encoding="utf-8"))["groups"]
    return groups


def compose_alerts() -> dict[str, dict[str, Any]]:
    return alerts(compose_groups())


def rule_count(groups: list[dict[str, Any]]) -> int:
    return len(alerts(groups)) + len(recordings(groups))


def kubernetes_rule() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(PROMETHEUS_RULE.read_text(encoding="utf-8"))
    return document


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_accepts_the_compose_rules(promtool: str, path: Path) -> None:
    output = run_promtool(promtool, "check", "rules", str(path))
    assert f"{rule_count(compose_groups())} rules found" in output


def test_promtool_accepts_the_kubernetes_rules(promtool: str, tmp_path: Path) -> None:
    # The operator loads `spec` as a Prometheus rule file: check exactly that.
    rule = kubernetes_rule()
    assert rule["kind"] == "PrometheusRule"
    spec = tmp_path / "prometheusrule-spec.yml"
    spec.write_text(yaml.safe_dump(rule["spec"], allow_unicode=True), encoding="utf-8")
    output = run_promtool(promtool, "check", "rules", str(spec))
    assert f"{rule_count(rule['spec']['groups'])} rules found" in output


def test_both_rule_sources_hold_the_same_rules() -> None:
    assert kubernetes_rule()["spec"]["groups"] == compose_groups()


def alerts_under_test(path: Path) -> set[str]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {
        test["alertname"] for case in document["tests"] for test in case.get("alert_rule_test", [])
    }


def expressions_under_test(path: Path) -> str:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    tests = [test for case in document["tests"] for test in case.get("promql_expr_test", [])]
    return " ".join(test["expr"] for test in tests)


def test_every_alert_has_its_test_file() -> None:
    tested = {alert: path.name for path in RULE_TESTS for alert in alerts_under_test(path)}
    assert set(tested) == set(compose_alerts()), "one file in deploy/prometheus/tests per alert"
    for path in RULE_TESTS:
        assert len(alerts_under_test(path)) == 1, f"{path.name} tests more than one alert"


def test_every_recording_rule_is_checked_by_value() -> None:
    checked = " ".join(expressions_under_test(path) for path in RULE_TESTS)
    names = set(recordings(compose_groups()))
    assert len(names) == 12, "3 SLOs x 4 windows"
    assert {name for name in names if name not in checked} == set()


def test_every_alert_aggregates_or_keeps_the_namespace() -> None:
    # A `sum(...)`/`max(...)` without `by (namespace, ...)` would merge the environments;
    # the per-environment cases below prove the behaviour, this names the culprit.
    for name, rule in compose_alerts().items():
        expr = " ".join(str(rule["expr"]).split())
        assert "namespace" in expr or name == "FigachechnayaTargetDown", name
        for merging in ("on ()", "vector(", "absent("):  # drop the namespace label
            assert merging not in expr, name


@pytest.mark.parametrize("path", RULE_TESTS, ids=lambda p: p.name)
def test_each_alert_fires_for_the_broken_environment_only(path: Path) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    two_environments = [
        case
        for case in document["tests"]
        if {NAMESPACE.search(s["series"])[1] for s in case["input_series"]} == ENVIRONMENTS  # type: ignore[index]
    ]
    assert two_environments, f"{path.name}: no case with prod and dev side by side"
    for case in two_environments:
        fired = [a for test in case["alert_rule_test"] for a in test["exp_alerts"]]
        assert fired, f"{path.name}: the broken environment's alert is not expected"
        assert {a["exp_labels"]["namespace"] for a in fired} == {"figachechnaya"}, path.name


@pytest.mark.parametrize("path", RULE_TESTS, ids=lambda p: p.name)
def test_each_alert_fires_when_it_should_and_only_then(promtool: str, path: Path) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert document["rule_files"] == ["../rules/figachechnaya.yml"]
    expectations = [test for case in document["tests"] for test in case["alert_rule_test"]]
    assert any(test["exp_alerts"] for test in expectations), f"{path.name}: never fires"
    assert any(not test["exp_alerts"] for test in expectations), f"{path.name}: never silent"
    output = run_promtool(promtool, "test", "rules", path.name, cwd=path.parent)
    assert "SUCCESS" in output


def test_promtool_accepts_the_compose_scrape_config(promtool: str, tmp_path: Path) -> None:
    # The config names its rules by their path in the container
    # (/etc/prometheus/rules, compose.yaml's volume); point it at the repository's.
    config = (PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8")
    in_container = "/etc/prometheus/rules/"
    assert in_container in config
    local = tmp_path / "prometheus.yml"
    local.write_text(config.replace(in_container, f"{PROMETHEUS / 'rules'}/"), encoding="utf-8")
    output = run_promtool(promtool, "check", "config", str(local))
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in output
    assert "is valid prometheus config file syntax" in output


CLOUD_SCRAPE_JOBS = PROMETHEUS / "cloud" / "managed-services.yml.tftpl"


def test_promtool_accepts_the_managed_services_scrape_jobs(promtool: str, tmp_path: Path) -> None:
    # terraform's templatefile() fills in the folder id; the API key stays in a file.
    template = CLOUD_SCRAPE_JOBS.read_text(encoding="utf-8")
    assert set(re.findall(r"\$\{(\w+)\}", template)) == {"folder_id"}
    jobs = yaml.safe_load(template.replace("${folder_id}", "b1g0example0folder"))
    secret = "/etc/prometheus/secrets/yc-monitoring/api-key"
    for job in jobs:
        assert job["authorization"] == {"type": "Bearer", "credentials_file": secret}, job
        assert job["params"]["folderId"] == ["b1g0example0folder"]
        ((static,),) = [job["static_configs"]]
        assert static["targets"] == ["monitoring.api.cloud.yandex.net"]
        assert static["labels"]["namespace"] == "figachechnaya-platform"
    services = {job["params"]["service"][0] for job in jobs}
    assert services == {"managed-postgresql", "managed-kafka"}
    config = tmp_path / "prometheus.yml"
    (tmp_path / "api-key").write_text("not-a-key", encoding="utf-8")
    config.write_text(
        yaml.safe_dump({"scrape_configs": jobs}).replace(secret, str(tmp_path / "api-key")),
        encoding="utf-8",
    )
    output = run_promtool(promtool, "check", "config", str(config))
    assert "is valid prometheus config file syntax" in output
