"""Alertmanager's config: rendered from the environment, loaded by Debian's amtool.

deploy/alertmanager/alertmanager.yml is a template that render.sh fills in from
the environment (compose's `alertmanager` service runs it before Alertmanager):
each channel (webhook, Telegram, e-mail) exists exactly when its variables are
set, values land in the YAML as written whatever they hold, and a channel with a
missing companion variable stops the start with its name. `amtool check-config`
loads every rendering as Alertmanager would; `amtool config routes test` shows
where each severity goes. The Kubernetes AlertmanagerConfig keeps the same
routes. The delivery itself is run in test_running_monitoring.py.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
RENDER = REPO / "deploy" / "alertmanager" / "render.sh"
ALERTMANAGER_CONFIG = REPO / "k8s" / "base" / "alertmanagerconfig.yaml"
INSTALL = "apt-get install -y prometheus-alertmanager (Debian's package ships amtool)"
EVERY_CHANNEL = {
    "ALERT_WEBHOOK_URL": 'https://hooks.example/alerts?token=a"b\\c',  # quote and backslash
    "ALERT_TELEGRAM_BOT_TOKEN": "123456:ABC-secret",
    "ALERT_TELEGRAM_CHAT_ID": "-1001234567890",
    "ALERT_EMAIL_TO": "oncall@example.org",
    "ALERT_EMAIL_FROM": "alertmanager@example.org",
    "ALERT_SMTP_SMARTHOST": "smtp.example.org:587",
    "ALERT_SMTP_USERNAME": "alertmanager",
    "ALERT_SMTP_PASSWORD": "pa ss: #word",  # YAML's own characters
}


@pytest.fixture(scope="module")
def amtool(tool: Any) -> str:
    path: str = tool("amtool", INSTALL)
    return path


def render(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", str(RENDER), str(TEMPLATE), str(tmp_path / "alertmanager.yml")],
        env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True, timeout=10,
        check=False,
    )  # fmt: skip


def rendered(tmp_path: Path, env: dict[str, str]) -> dict[str, Any]:
    result = render(tmp_path, env)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load((tmp_path / "alertmanager.yml").read_text())
    return config


def check_config(amtool: str, path: Path) -> str:
    result = subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def receivers(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {receiver.pop("name"): receiver for receiver in config["receivers"]}


def test_with_nothing_set_every_receiver_exists_and_reaches_nobody(
    amtool: str, tmp_path: Path
) -> None:
    config = rendered(tmp_path, {})
    assert receivers(config) == {"critical": {}, "warning": {}}
    assert "smtp_smarthost" not in config["global"]
    assert "SUCCESS" in check_config(amtool, tmp_path / "alertmanager.yml")


def test_every_channel_gets_its_values_exactly_as_set(amtool: str, tmp_path: Path) -> None:
    config = rendered(tmp_path, EVERY_CHANNEL)
    assert "SUCCESS" in check_config(amtool, tmp_path / "alertmanager.yml")
    webhook = {"url": EVERY_CHANNEL["ALERT_WEBHOOK_URL"], "send_resolved": True}
    email = {"to": EVERY_CHANNEL["ALERT_EMAIL_TO"], "send_resolved": True}
    telegram = {
        "bot_token": EVERY_CHANNEL["ALERT_TELEGRAM_BOT_TOKEN"],
        "chat_id": int(EVERY_CHANNEL["ALERT_TELEGRAM_CHAT_ID"]),
        "send_resolved": True,
    }
    assert receivers(config) == {
        # A page goes everywhere; a warning (a ticket) not to the phone.
        "critical": {
            "webhook_configs": [webhook],
            "telegram_configs": [telegram],
            "email_configs": [email],
        },
        "warning": {"webhook_configs": [webhook], "email_configs": [email]},
    }
    assert config["global"] == {
        "resolve_timeout": "5m",
        "smtp_smarthost": EVERY_CHANNEL["ALERT_SMTP_SMARTHOST"],
        "smtp_from": EVERY_CHANNEL["ALERT_EMAIL_FROM"],
        "smtp_auth_username": EVERY_CHANNEL["ALERT_SMTP_USERNAME"],
        "smtp_auth_password": EVERY_CHANNEL["ALERT_SMTP_PASSWORD"],
    }


def test_only_the_webhook_set_leaves_the_other_channels_out(tmp_path: Path) -> None:
    config = rendered(tmp_path, {"ALERT_WEBHOOK_URL": "http://127.0.0.1:9/alerts"})
    assert {name: set(r) for name, r in receivers(config).items()} == {
        "critical": {"webhook_configs"},
        "warning": {"webhook_configs"},
    }


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"ALERT_TELEGRAM_BOT_TOKEN": "123:abc"}, "ALERT_TELEGRAM_CHAT_ID"),
        ({"ALERT_EMAIL_TO": "oncall@example.org"}, "ALERT_SMTP_SMARTHOST"),
        ({"ALERT_EMAIL_TO": "a@example.org", "ALERT_SMTP_SMARTHOST": "s:25"}, "ALERT_EMAIL_FROM"),
        ({"ALERT_SMTP_USERNAME": "alertmanager"}, "ALERT_SMTP_PASSWORD"),
    ],
)
def test_a_half_configured_channel_stops_the_start_and_names_what_is_missing(
    tmp_path: Path, env: dict[str, str], missing: str
) -> None:
    result = render(tmp_path, env)
    assert result.returncode != 0
    assert f"{missing} is not set" in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == [], "no config, not even half of one"


def test_a_value_with_a_line_break_is_refused(tmp_path: Path) -> None:
    result = render(tmp_path, {"ALERT_WEBHOOK_URL": "http://a/\nroute: {}"})
    assert result.returncode != 0
    assert "ALERT_WEBHOOK_URL holds a line break" in result.stderr, result.stderr


def test_render_then_runs_the_command_that_follows(tmp_path: Path) -> None:
    # compose: entrypoint render.sh TEMPLATE OUTPUT, command /bin/alertmanager …
    output = tmp_path / "alertmanager.yml"
    result = subprocess.run(
        ["/bin/sh", str(RENDER), str(TEMPLATE), str(output), "/bin/cat", str(output)],
        env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == output.read_text()


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ("severity=critical", "critical"),
        ("severity=warning", "warning"),
        ("severity=info", "warning"),  # anything else: the default, never dropped
    ],
)
def test_each_severity_has_its_route(
    amtool: str, tmp_path: Path, labels: str, receiver: str
) -> None:
    rendered(tmp_path, EVERY_CHANNEL)
    result = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={tmp_path / 'alertmanager.yml'}",
         "alertname=FigachechnayaNoWorkers", "namespace=figachechnaya", labels],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == receiver


def template_variables() -> set[str]:
    text = TEMPLATE.read_text(encoding="utf-8")
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return set(re.findall(r"\$\{(\w+)\}", code)) | set(re.findall(r"# if (\w+)", code))


def test_compose_passes_every_variable_and_starts_alertmanager_after_rendering(
    compose: dict[str, Any],
) -> None:
    service = compose["services"]["alertmanager"]
    variables = template_variables()
    assert variables == set(EVERY_CHANNEL)
    # Each from the .env, unset → empty → the channel is left out.
    assert service["environment"] == {name: f"${{{name}:-}}" for name in sorted(variables)}
    volumes = service["volumes"]
    assert "./deploy/alertmanager/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro" in volumes
    assert "./deploy/alertmanager/render.sh:/etc/alertmanager/render.sh:ro" in volumes
    _, script, template, output = service["entrypoint"]
    assert (script, template) == (
        "/etc/alertmanager/render.sh",
        "/etc/alertmanager/alertmanager.yml",
    )
    assert service["command"][0] == "/bin/alertmanager"
    assert f"--config.file={output}" in service["command"]
    prometheus = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    (alertmanagers,) = prometheus["alerting"]["alertmanagers"]
    assert alertmanagers["static_configs"] == [{"targets": ["alertmanager:9093"]}]
    assert "--web.listen-address=:9093" in service["command"]
    assert set(service["networks"]) & set(compose["services"]["prometheus"]["networks"])


def matchers(items: list[dict[str, str]]) -> list[str]:
    """AlertmanagerConfig's matcher objects as Alertmanager's matcher strings."""
    return [f'{m["name"]}{m.get("matchType", "=")}"{m["value"]}"' for m in items]


def test_kubernetes_routes_alerts_as_compose_does(tmp_path: Path) -> None:
    compose = rendered(tmp_path, {})
    (document,) = yaml.safe_load_all(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))
    assert document["kind"] == "AlertmanagerConfig"
    spec = document["spec"]
    timing = {"groupBy": "group_by", "groupWait": "group_wait", "repeatInterval": "repeat_interval"}
    timing |= {"groupInterval": "group_interval"}
    route, expected = spec["route"], compose["route"]
    assert route["receiver"] == expected["receiver"]
    assert {timing[k]: v for k, v in route.items() if k in timing} == {
        v: expected[v] for v in timing.values()
    }
    assert len(route["routes"]) == len(expected["routes"])
    for ours, theirs in zip(route["routes"], expected["routes"], strict=True):
        assert matchers(ours["matchers"]) == theirs["matchers"]
        assert ours["receiver"] == theirs["receiver"]
        assert {timing[k]: v for k, v in ours.items() if k in timing} == {
            k: v for k, v in theirs.items() if k in timing.values()
        }
    ((inhibit,), (theirs,)) = spec["inhibitRules"], compose["inhibit_rules"]
    assert matchers(inhibit["sourceMatch"]) == theirs["source_matchers"]
    assert matchers(inhibit["targetMatch"]) == theirs["target_matchers"]
    assert inhibit["equal"] == theirs["equal"]
    # Every receiver of compose, each with the webhook from the namespace's Secret.
    assert {r["name"] for r in spec["receivers"]} == {r["name"] for r in compose["receivers"]}
    for receiver in spec["receivers"]:
        (webhook,) = receiver["webhookConfigs"]
        assert webhook["urlSecret"] == {"name": "figachechnaya-alerting", "key": "webhook-url"}
        assert webhook["sendResolved"] is True
