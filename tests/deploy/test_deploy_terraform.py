"""terraform/: the Yandex Cloud footprint (issue 6 § Terraform, issue 11).

`terraform init`/`validate` need the providers from the registry, which is out
of reach here; so the checks are what works offline: `terraform fmt`, a full
parse of every file with python-hcl2, the module contract (variables and
outputs documented), pinned providers, a remote state backend, and no secret
written into the code. And the platform's contract with the rest (issue 11):
Terraform applies no release (CI does), makes each namespace's Secret, Kafka
CA and CI deployer, gives that deployer exactly the access the rendered
overlays need, and admits every database connection the overlays' HPA maxima
may open.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.settings import PREFIX, Settings

TERRAFORM = Path(__file__).resolve().parents[2] / "terraform"
TF_FILES = sorted(TERRAFORM.rglob("*.tf"))
MODULES = sorted(p for p in (TERRAFORM / "modules").iterdir() if p.is_dir())
SECRET_NAMES = re.compile(r"password|secret|token|private_key|access_key", re.IGNORECASE)
SECRET_LOOKS = re.compile(
    r"-----BEGIN|AKIA[0-9A-Z]{16}|\bt1\.[A-Za-z0-9_-]{20,}|\bAQVN[A-Za-z0-9_-]{20,}|YC[A-Za-z0-9_-]{38}"
)


def relative(path: Path) -> str:
    return str(path.relative_to(TERRAFORM))


def test_terraform_code_is_formatted(tool: Any) -> None:
    terraform = tool("terraform", "install Terraform 1.11 (the machine image has it)")
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", TF_FILES, ids=relative)
def test_every_file_parses(path: Path, parse_hcl: Any) -> None:
    assert isinstance(parse_hcl(path), dict)


def blocks(document: dict[str, Any], kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for entry in document.get(kind, []):
        yield from entry.items()


@pytest.mark.parametrize("module", [TERRAFORM, *MODULES], ids=relative)
def test_every_module_documents_its_variables_and_outputs(module: Path, parse_hcl: Any) -> None:
    variables = parse_hcl(module / "variables.tf")
    outputs = parse_hcl(module / "outputs.tf")
    assert variables.get("variable"), f"{module.name} has no variables"
    assert outputs.get("output"), f"{module.name} has no outputs"
    for name, variable in blocks(variables, "variable"):
        assert variable.get("description"), f"variable {name}"
        assert variable.get("type"), f"variable {name}"
    for name, output in blocks(outputs, "output"):
        assert output.get("description"), f"output {name}"
        if (SECRET_NAMES.search(name) and not name.endswith("_name")) or name == "database_urls":
            assert output.get("sensitive") is True, f"output {name} must be sensitive"
    versions = parse_hcl(module / "versions.tf")
    ((required,),) = [[b["required_providers"] for b in versions["terraform"]]]
    for name, provider in required[0].items():
        assert "/" in provider["source"], f"{module.name}: provider {name} needs an explicit source"


def test_the_root_module_uses_every_module(parse_hcl: Any) -> None:
    main = parse_hcl(TERRAFORM / "main.tf")
    sources = {block["source"] for _, block in blocks(main, "module")}
    assert sources == {f"./modules/{m.name}" for m in MODULES}


def test_providers_are_pinned_and_the_state_is_remote(parse_hcl: Any) -> None:
    (settings,) = parse_hcl(TERRAFORM / "versions.tf")["terraform"]
    (providers,) = settings["required_providers"]
    assert settings["required_version"]
    for name, provider in providers.items():
        assert re.match(r"~> \d+\.\d+", provider["version"]), (
            f"{name} is not pinned to a minor line"
        )
    assert providers["yandex"]["source"] == "yandex-cloud/yandex"
    ((backend,),) = [parse_hcl(TERRAFORM / "backend.tf")["terraform"][0]["backend"]]
    s3 = backend["s3"]
    assert s3["use_lockfile"] is True
    assert s3["key"]
    assert not {"access_key", "secret_key", "token", "bucket"} & set(s3), (
        "given at init, not in code"
    )


def literal_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from literal_strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from literal_strings(item, f"{path}[{index}]")
    elif isinstance(value, str):
        yield path, value


@pytest.mark.parametrize("path", TF_FILES, ids=relative)
def test_no_secret_is_written_in_the_code(path: Path, parse_hcl: Any) -> None:
    text = path.read_text(encoding="utf-8")
    assert not SECRET_LOOKS.search(text), (
        f"{relative(path)} contains something shaped like a credential"
    )
    for where, value in literal_strings(parse_hcl(path)):
        name = where.rsplit(".", 1)[-1]
        if not SECRET_NAMES.search(name) or name in ("description", "sensitive"):
            continue
        # A secret-named attribute may only be computed (${…}), never a literal.
        is_expression = value.startswith("${") or value.startswith("random_password")
        assert is_expression, f"{relative(path)}{where} = {value!r} is a literal secret"
    for name, variable in blocks(parse_hcl(path), "variable"):
        if SECRET_NAMES.search(name):
            assert "default" not in variable, f"variable {name}"
            assert variable.get("sensitive") is True, f"variable {name}"


def test_the_kafka_topics_have_room_for_the_workers(terraform_variables: dict[str, Any]) -> None:
    topics = terraform_variables["kafka_topics"]["default"]
    assert topics == {"figachechnaya.images": 12, "figachechnaya.images.dev": 3}


# --- one owner of the app: the platform here, the releases in CI (issue 11) ----------------

NAMESPACE_MODULE = TERRAFORM / "modules" / "namespace" / "main.tf"
SECRET_KEYS = {
    "FIGA_DATABASE_URL", "FIGA_KAFKA_BOOTSTRAP_SERVERS", "FIGA_KAFKA_SASL_USERNAME",
    "FIGA_KAFKA_SASL_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "FIGA_SECRET_KEY",
}  # fmt: skip
# What the overlays may hold, as the API server names it: kind → (API group, resource).
APPLIED_KINDS = {
    "ConfigMap": ("", "configmaps"),
    "Service": ("", "services"),
    "ServiceAccount": ("", "serviceaccounts"),
    "Deployment": ("apps", "deployments"),
    "Job": ("batch", "jobs"),
    "HorizontalPodAutoscaler": ("autoscaling", "horizontalpodautoscalers"),
    "PodDisruptionBudget": ("policy", "poddisruptionbudgets"),
    "Ingress": ("networking.k8s.io", "ingresses"),
    "NetworkPolicy": ("networking.k8s.io", "networkpolicies"),
    "ServiceMonitor": ("monitoring.coreos.com", "servicemonitors"),
    "PrometheusRule": ("monitoring.coreos.com", "prometheusrules"),
    "AlertmanagerConfig": ("monitoring.coreos.com", "alertmanagerconfigs"),
}
APPLY_VERBS = {"get", "list", "watch", "create", "update", "patch"}
# Read-only extras: `rollout status|undo` read ReplicaSets, a failed migration's log is shown.
FOLLOW = {("apps", "replicasets"), ("", "pods"), ("", "pods/log")}


def resources(path: Path, kind: str, parse_hcl: Any) -> dict[str, dict[str, Any]]:
    return dict(blocks({"r": [r[kind] for r in parse_hcl(path)["resource"] if kind in r]}, "r"))


def only(items: list[Any]) -> Any:
    (item,) = items
    return item


def test_terraform_makes_the_platform_and_never_a_release(
    parse_hcl: Any, terraform_variables: dict[str, Any]
) -> None:
    assert not (TERRAFORM / "modules" / "app").exists()
    assert not {name for name in terraform_variables if "image" in name}, "CI picks the image"
    for path in TF_FILES:
        document = parse_hcl(path)
        for where, value in literal_strings(document):
            if not where.endswith(".description"):
                assert "overlays" not in value, f"{relative(path)}{where}: an overlay is CI's job"
        data = {kind for entry in document.get("data", []) for kind in entry}
        assert "kustomization_overlay" not in data, relative(path)
    main = parse_hcl(TERRAFORM / "main.tf")
    platform = dict(blocks(main, "module"))["platform"]
    assert platform["cluster_issuers"] == "${path.root}/../k8s/cluster"


def test_each_namespace_gets_its_secret_kafka_ca_and_ci_deployer(
    parse_hcl: Any, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    main = parse_hcl(TERRAFORM / "main.tf")
    (environments,) = [entry["environments"] for entry in main["locals"] if "environments" in entry]
    for env, objects in rendered.items():
        if env in environments:
            namespaces = {o["metadata"].get("namespace") for o in objects}
            assert namespaces == {environments[env]["namespace"]}, env
    assert dict(blocks(main, "module"))["namespace"]["for_each"] == "${local.environments}"
    (namespace,) = resources(NAMESPACE_MODULE, "kubernetes_namespace_v1", parse_hcl).values()
    labels = only(namespace["metadata"])["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    secrets = resources(NAMESPACE_MODULE, "kubernetes_secret_v1", parse_hcl)
    assert only(secrets["settings"]["metadata"])["name"] == "figachechnaya-secrets"
    assert set(secrets["settings"]["data"]) == SECRET_KEYS
    token = secrets["deployer_token"]
    assert token["type"] == "kubernetes.io/service-account-token"
    assert "kubernetes.io/service-account.name" in only(token["metadata"])["annotations"]
    (ca,) = resources(NAMESPACE_MODULE, "kubernetes_config_map_v1", parse_hcl).values()
    assert only(ca["metadata"])["name"] == "figachechnaya-kafka-ca"
    assert set(ca["data"]) == {"ca.crt"}
    (account,) = resources(NAMESPACE_MODULE, "kubernetes_service_account_v1", parse_hcl).values()
    assert account["automount_service_account_token"] is False


def test_the_kafka_ca_is_the_one_the_cloud_publishes(
    parse_hcl: Any, terraform_variables: dict[str, Any]
) -> None:
    url = terraform_variables["kafka_ca_url"]["default"]
    assert url == "https://storage.yandexcloud.net/cloud-certs/CA.pem"
    assert terraform_variables["kafka_ca_certificate"]["default"] is None, "an override only"
    main = parse_hcl(TERRAFORM / "main.tf")
    (fetch,) = [entry["http"]["kafka_ca"] for entry in main["data"] if "http" in entry]
    (postcondition,) = fetch["lifecycle"][0]["postcondition"]
    assert "BEGIN CERTIFICATE" in postcondition["condition"]
    namespace = dict(blocks(main, "module"))["namespace"]
    assert namespace["kafka_ca_certificate"] == "${local.kafka_ca_certificate}"


def role_rules(parse_hcl: Any) -> dict[tuple[str, str], set[str]]:
    (role,) = resources(NAMESPACE_MODULE, "kubernetes_role_v1", parse_hcl).values()
    assert "dynamic" not in role, "rules written out, so that they can be read and checked"
    rules: dict[tuple[str, str], set[str]] = {}
    for rule in role["rule"]:
        for group in rule["api_groups"]:
            for resource in rule["resources"]:
                rules.setdefault((group, resource), set()).update(rule["verbs"])
    return rules


def test_the_ci_deployer_may_apply_the_overlays_and_nothing_more(
    parse_hcl: Any, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    rules = role_rules(parse_hcl)
    for env in ("dev", "prod"):
        for obj in rendered[env]:
            where = f"{env}: {obj['kind']}/{obj['metadata']['name']}"
            assert obj["kind"] in APPLIED_KINDS, f"{where}: the CI deployer may not apply it"
            group, resource = APPLIED_KINDS[obj["kind"]]
            api_group = obj["apiVersion"].rpartition("/")[0]
            assert api_group == group, where
            assert rules.get((group, resource), set()) >= APPLY_VERBS, where
    assert set(rules) == set(APPLIED_KINDS.values()) | FOLLOW, "no access beyond the overlays"
    for key in FOLLOW:
        assert rules[key] == {"get", "list", "watch"}, key
    deleters = {key for key, verbs in rules.items() if "delete" in verbs}
    assert deleters == {("batch", "jobs")}, "only the migrate Job is replaced"
    for (group, resource), verbs in rules.items():
        assert "*" not in verbs | {group, resource}
        assert not {"escalate", "bind", "impersonate"} & verbs


def test_ci_gets_one_kubeconfig_per_environment(parse_hcl: Any) -> None:
    outputs = dict(blocks(parse_hcl(TERRAFORM / "outputs.tf"), "output"))
    kubeconfig = outputs["ci_kubeconfig"]
    assert kubeconfig["sensitive"] is True
    value = kubeconfig["value"]
    assert "for env, namespace in module.namespace" in value
    assert "namespace.deployer_token" in value
    assert "namespace = namespace.namespace" in value
    assert "module.kubernetes.endpoint" in value


def connections_per_pod(deployment: dict[str, Any], settings: dict[str, str]) -> int:
    """What one pod's process may open: pool + overflow, plus the two connections an app
    keeps outside its pool (the group commit's and the relay's deletes')."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    fields = Settings.model_fields

    def setting(name: str) -> int:
        default = fields[name].default
        key = PREFIX + name.upper()
        return int(env.get(key, settings.get(key, default)))

    own = 2 if deployment["metadata"]["name"] == "figachechnaya-app" else 0
    return setting("db_pool_size") + setting("db_pool_overflow") + own


def surge(deployment: dict[str, Any], replicas: int) -> int:
    """Extra pods a rolling update may start (Kubernetes' default: 25 %, rounded up)."""
    strategy = deployment["spec"].get("strategy", {})
    value = strategy.get("rollingUpdate", {}).get("maxSurge", "25%")
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(replicas * int(value[:-1]) / 100)
    return int(value)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_database_admits_every_connection_the_environment_may_open(
    env: str, rendered: dict[str, list[dict[str, Any]]], terraform_variables: dict[str, Any]
) -> None:
    objects = rendered[env]
    (settings,) = [
        o["data"] for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("figachechnaya-settings")
    ]  # fmt: skip
    hpas = {
        o["spec"]["scaleTargetRef"]["name"]: o
        for o in objects if o["kind"] == "HorizontalPodAutoscaler"
    }  # fmt: skip
    budget = 1  # the migrate Job, which may still run while pods roll out
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        maximum = hpas[deployment["metadata"]["name"]]["spec"]["maxReplicas"]
        pods = maximum + surge(deployment, maximum)
        budget += pods * connections_per_pod(deployment, settings)
    limits = terraform_variables["database_connection_limits"]["default"]
    assert budget <= limits[env], (
        f"{env} may open {budget} connections, its user allows {limits[env]}"
    )


def test_the_connection_limits_fit_the_database(
    terraform_variables: dict[str, Any], parse_hcl: Any
) -> None:
    limits = terraform_variables["database_connection_limits"]["default"]
    maximum = terraform_variables["postgresql_max_connections"]["default"]
    assert sum(limits.values()) + 15 <= maximum
    postgresql = TERRAFORM / "modules" / "postgresql" / "main.tf"
    (user,) = resources(postgresql, "yandex_mdb_postgresql_user", parse_hcl).values()
    assert user["conn_limit"] == "${var.connection_limits[each.key]}"
    (cluster,) = resources(postgresql, "yandex_mdb_postgresql_cluster", parse_hcl).values()
    config = only(cluster["config"])["postgresql_config"]
    assert config["max_connections"] == "${var.max_connections}"


# --- backups and point-in-time recovery (issue 12 item 5) ----------------------------------

POSTGRESQL_MODULE = TERRAFORM / "modules" / "postgresql"


def test_the_cluster_keeps_backups_for_the_root_modules_retention(
    parse_hcl: Any, terraform_variables: dict[str, Any]
) -> None:
    (cluster,) = resources(
        POSTGRESQL_MODULE / "main.tf", "yandex_mdb_postgresql_cluster", parse_hcl
    ).values()
    config = only(cluster["config"])
    assert config["backup_retain_period_days"] == "${var.backup_retention_days}"
    assert only(config["backup_window_start"])["hours"] == "${var.backup_window_start_hour}"
    assert cluster["deletion_protection"] is True
    dynamic = {name: block for entry in cluster.get("dynamic", []) for name, block in entry.items()}
    restore = dynamic.get("restore")
    assert restore is not None, "point-in-time recovery: a dynamic restore block"
    assert only(restore["content"])["time"] == "${restore.value.time}"
    assert restore["for_each"] == "${var.restore == null ? [] : [var.restore]}"
    module = dict(blocks(parse_hcl(TERRAFORM / "main.tf"), "module"))["postgresql"]
    assert module["backup_retention_days"] == "${var.postgresql_backup_retention_days}"
    assert module["restore"] == "${var.postgresql_restore}"
    assert terraform_variables["postgresql_backup_retention_days"]["default"] == 14
    assert terraform_variables["postgresql_restore"]["default"] is None


@pytest.fixture(scope="module")
def plan_variables(tmp_path_factory: pytest.TempPathFactory, tool: Any) -> Any:
    """`plan(variables_tf, **values)` → (ok, output): Terraform itself judges the values.

    A folder holding only the variables (no provider, no resource) plans offline, so the
    validations run exactly as `terraform plan` runs them on the real configuration."""
    terraform = tool("terraform", "install Terraform 1.11 (the machine image has it)")

    def plan(variables_tf: Path, values: dict[str, Any]) -> tuple[bool, str]:
        folder = tmp_path_factory.mktemp("variables")
        (folder / "variables.tf").write_text(variables_tf.read_text(encoding="utf-8"))
        (folder / "values.auto.tfvars.json").write_text(json.dumps(values))
        for command in (["init", "-input=false"], ["plan", "-input=false", "-no-color"]):
            result = subprocess.run(
                [terraform, *command], cwd=folder, capture_output=True, text=True,
                timeout=60, check=False,
            )  # fmt: skip
            if result.returncode != 0:
                return False, result.stdout + result.stderr
        return True, result.stdout

    return plan


MODULE_VALUES = {
    "name": "figachechnaya", "network_id": "n", "subnet_ids": {}, "security_group_ids": [],
    "preset": "s3-c2-m8", "databases": {}, "max_connections": 200, "connection_limits": {},
    "labels": {},
}  # fmt: skip


@pytest.mark.parametrize(
    ("values", "refused"),
    [
        ({"backup_retention_days": 14}, None),
        ({"backup_retention_days": 6}, "from 7 to 60"),
        ({"backup_retention_days": 61}, "from 7 to 60"),
        ({"backup_retention_days": 7.5}, "from 7 to 60"),
        ({"backup_retention_days": 7, "backup_window_start_hour": 24}, "from 0 to 23"),
        ({"backup_retention_days": 7, "restore": {"backup_id": "c9q:b1"}}, None),
        (
            {"backup_retention_days": 7,
             "restore": {"backup_id": "c9q:b1", "time": "2026-12-01T17:05:00"}},
            None,
        ),
        (
            {"backup_retention_days": 7,
             "restore": {"backup_id": "c9q:b1", "time": "2026-12-01 17:05"}},
            "YYYY-MM-DDTHH:MM:SS",
        ),
    ],
)  # fmt: skip
def test_terraform_refuses_a_retention_or_restore_time_the_service_would_not_take(
    plan_variables: Any, values: dict[str, Any], refused: str | None
) -> None:
    ok, output = plan_variables(POSTGRESQL_MODULE / "variables.tf", MODULE_VALUES | values)
    if refused is None:
        assert ok, output
    else:
        assert not ok
        assert refused in output, output


@pytest.mark.parametrize(("days", "accepted"), [(None, True), (30, True), (3, False)])
def test_the_root_modules_retention_default_passes_its_own_validation(
    plan_variables: Any, days: int | None, accepted: bool
) -> None:
    values: dict[str, Any] = {"cloud_id": "c", "folder_id": "f"}
    if days is not None:
        values["postgresql_backup_retention_days"] = days
    ok, output = plan_variables(TERRAFORM / "variables.tf", values)
    assert ok is accepted, output
