"""The alert rules and the compose scrape config, checked by Prometheus's own promtool.

`promtool check rules` parses both rule sources (deploy/prometheus/rules for
compose, the `spec` of k8s/base/prometheusrule.yaml for the operator) the way
Prometheus loads them; `promtool test rules` runs deploy/prometheus/tests/,
one file per alert, each showing its alert firing on series that should fire
it and silent on series that should not; `promtool check config` loads the
compose Prometheus configuration. promtool comes from Debian's `prometheus`
package (.ci/run installs it); without it the tests fail and say so.
"""

from __future__ import annotations

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


def compose_alerts() -> dict[str, dict[str, Any]]:
    (rules,) = RULE_FILES
    return alerts(yaml.safe_load(rules.read_text(encoding="utf-8"))["groups"])


def kubernetes_rule() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(PROMETHEUS_RULE.read_text(encoding="utf-8"))
    return document


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_accepts_the_compose_rules(promtool: str, path: Path) -> None:
    output = run_promtool(promtool, "check", "rules", str(path))
    assert f"{len(compose_alerts())} rules found" in output


def test_promtool_accepts_the_kubernetes_rules(promtool: str, tmp_path: Path) -> None:
    # The operator loads `spec` as a Prometheus rule file: check exactly that.
    rule = kubernetes_rule()
    assert rule["kind"] == "PrometheusRule"
    spec = tmp_path / "prometheusrule-spec.yml"
    spec.write_text(yaml.safe_dump(rule["spec"], allow_unicode=True), encoding="utf-8")
    output = run_promtool(promtool, "check", "rules", str(spec))
    assert f"{len(alerts(rule['spec']['groups']))} rules found" in output


def test_both_rule_sources_hold_the_same_alerts() -> None:
    assert alerts(kubernetes_rule()["spec"]["groups"]) == compose_alerts()


def alerts_under_test(path: Path) -> set[str]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {
        test["alertname"] for case in document["tests"] for test in case.get("alert_rule_test", [])
    }


def test_every_alert_has_its_test_file() -> None:
    tested = {alert: path.name for path in RULE_TESTS for alert in alerts_under_test(path)}
    assert set(tested) == set(compose_alerts()), "one file in deploy/prometheus/tests per alert"
    for path in RULE_TESTS:
        assert len(alerts_under_test(path)) == 1, f"{path.name} tests more than one alert"


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
