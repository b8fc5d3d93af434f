"""k8s/: Kustomize base + dev/prod overlays (issues 6 and 11 § Kubernetes).

Both overlays and the cluster-wide objects are rendered with `kubectl
kustomize`; every object is validated against the Kubernetes JSON schemas of
the cluster's version (kubernetes-validate, strict: unknown fields fail), and
the custom resources that have no schema there (kube-prometheus, cert-manager)
are checked by structure. Then the promises: namespace-scoped objects only
(what the CI deployer may apply), locked-down pods, probes, resources, pinned
images, HPAs that own the replica counts and stay within the topic's
partitions and the database's connection limits (docs/capacity.md), disruption
budgets, the operations ports, the Kafka CA, secrets referenced by name only.
The NetworkPolicies have their own evaluator (test_network_policies.py), and
the processes these manifests describe are run by test_k8s_rehearsal.py.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from app.domain.schemes import parse_catalogue
from app.settings import PREFIX, Settings, variable
from tests.deploy.rehearsal import Objects, settings_of

# The managed cluster's minor version (terraform/variables.tf kubernetes_version).
KUBERNETES_VERSION = "1.32.0"
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule", "AlertmanagerConfig", "ClusterIssuer"}
POD_OWNERS = {"Deployment", "Job"}
SECRET_NAME = "figachechnaya-secrets"
# The keys terraform/modules/namespace writes into it (test_k8s_rehearsal fills the same).
SECRET_KEYS = {
    "FIGA_DATABASE_URL",
    "FIGA_KAFKA_BOOTSTRAP_SERVERS",
    "FIGA_KAFKA_SASL_USERNAME",
    "FIGA_KAFKA_SASL_PASSWORD",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "FIGA_SECRET_KEY",
}
KAFKA_CA_NAME = "figachechnaya-kafka-ca"
NAMESPACES = {"prod": "figachechnaya", "dev": "figachechnaya-dev"}
# Kinds a namespace-scoped deployer can never apply (terraform/ makes these).
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "ClusterIssuer"}
HPA_MANAGED = ("figachechnaya-app", "figachechnaya-worker")
# docs/capacity.md: 5,000 polls/s and 200 figalizations/s at peak, the unit costs of
# docs/benchmarks.md (polls 70 µs, htmx form 175 µs, a page 230 µs, 200 µs for the rest;
# a picture 15 to 30 ms), on a cloud core taken as 2× slower than the bench machine's.
CLOUD_SLOWDOWN = 2
PEAK_APP_CORES = CLOUD_SLOWDOWN * (5_000 * 70e-6 + 200 * 175e-6 + 200 * 230e-6 + 200 * 200e-6)
PEAK_WORKER_CORES = (CLOUD_SLOWDOWN * 200 * 15e-3, CLOUD_SLOWDOWN * 200 * 30e-3)
# Kept for the managed PostgreSQL's own users and an operator's psql.
RESERVED_CONNECTIONS = 15
ALL_ADDRESSES = "0.0.0.0"  # noqa: S104 - a value read from the manifests, nothing bound


def by_kind(objects: Objects, kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def overlays(rendered: dict[str, Objects]) -> list[tuple[str, Objects]]:
    return [(env, rendered[env]) for env in ("dev", "prod")]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_the_cluster_version_is_the_one_terraform_creates(
    terraform_variables: dict[str, Any],
) -> None:
    assert KUBERNETES_VERSION.startswith(terraform_variables["kubernetes_version"]["default"] + ".")


@pytest.mark.parametrize("entry", ["dev", "prod", "cluster"])
def test_every_object_matches_the_kubernetes_schema(
    rendered: dict[str, Objects], entry: str
) -> None:
    objects = rendered[entry]
    assert objects, f"{entry} renders nothing"
    for obj in objects:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{entry}: {obj['kind']}/{obj['metadata']['name']}: {error.message}")


def test_only_known_custom_resources_skip_the_schema(rendered: dict[str, Objects]) -> None:
    kinds = {o["kind"] for objects in rendered.values() for o in objects}
    assert kinds & CUSTOM_KINDS == CUSTOM_KINDS
    assert by_kind(rendered["cluster"], "ClusterIssuer"), "cluster issuers live in k8s/cluster"
    for obj in rendered["cluster"]:
        assert "namespace" not in obj["metadata"], "cluster-scoped objects carry no namespace"


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_each_overlay_has_every_component(rendered: dict[str, Objects], env: str) -> None:
    objects = rendered[env]
    for obj in objects:
        assert obj["kind"] not in CLUSTER_SCOPED, f"{env}: {obj['kind']} is terraform's"
        assert obj["metadata"]["namespace"] == NAMESPACES[env], obj["metadata"]["name"]
    assert set(by_kind(objects, "Deployment")) == {"figachechnaya-app", "figachechnaya-worker"}
    assert set(by_kind(objects, "Job")) == {"figachechnaya-migrate"}
    assert set(by_kind(objects, "Service")) == {"figachechnaya-app", "figachechnaya-worker"}
    assert set(by_kind(objects, "HorizontalPodAutoscaler")) == {
        "figachechnaya-app",
        "figachechnaya-worker",
    }
    assert set(by_kind(objects, "PodDisruptionBudget")) == {
        "figachechnaya-app",
        "figachechnaya-worker",
    }
    for kind in ("Ingress", "NetworkPolicy", "ServiceMonitor", "PrometheusRule", "ServiceAccount"):
        assert by_kind(objects, kind), f"{env} has no {kind}"


def test_terraform_makes_what_the_overlays_only_name(
    parse_hcl: Any, repo: Path, terraform_variables: dict[str, Any]
) -> None:
    """The Namespaces, the Secret (with the keys the rehearsal fills) and the Kafka CA
    ConfigMap are terraform's: the overlays name them and the pods fail without them."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in (repo / "terraform").rglob("*.tf"))
    for namespace in NAMESPACES.values():
        assert re.search(rf'namespace\s*=\s*"{namespace}"', text), f"terraform makes {namespace}"
    for name in (SECRET_NAME, KAFKA_CA_NAME):
        assert re.search(rf'name\s*=\s*"{name}"', text), f"terraform makes {name}"
    module = parse_hcl(repo / "terraform/modules/namespace/main.tf")
    resources = {
        (kind, block["metadata"][0]["name"]): block
        for entry in module["resource"] for kind, named in entry.items()
        for block in named.values() if "metadata" in block
    }  # fmt: skip
    secret = resources["kubernetes_secret_v1", SECRET_NAME]
    assert set(secret["data"]) == SECRET_KEYS
    assert set(resources["kubernetes_config_map_v1", KAFKA_CA_NAME]["data"]) == {"ca.crt"}


def pod_templates(objects: Objects) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"])
        for o in objects if o["kind"] in POD_OWNERS
    ]  # fmt: skip


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_every_pod_is_locked_down(rendered: dict[str, Objects], env: str) -> None:
    templates = pod_templates(rendered[env])
    assert len(templates) == 3
    for where, template in templates:
        spec = template["spec"]
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, where
        assert pod["runAsUser"] >= 10000, where
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", where
        assert spec["automountServiceAccountToken"] is False, where
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in spec["containers"]:
            at = f"{where} container {container['name']}"
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, at
            assert context["readOnlyRootFilesystem"] is True, at
            assert context["capabilities"]["drop"] == ["ALL"], at
            assert "add" not in context["capabilities"], at
            assert context.get("privileged", False) is False, at
            assert context.get("runAsNonRoot", pod["runAsNonRoot"]) is True, at
            assert context["seccompProfile"]["type"] == "RuntimeDefault", at
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], f"{at}: /tmp must be a writable emptyDir"
            for need in ("requests", "limits"):
                assert set(container["resources"][need]) >= {"cpu", "memory"}, f"{at}: {need}"


def container_of(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    (container,) = by_kind(objects, kind)[name]["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = container
    return result


def probe_target(container: dict[str, Any], probe: str) -> tuple[str, int]:
    """The path and the container port number a probe calls (named ports resolved)."""
    get = container[probe]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    port = get["port"]
    return get["path"], ports[port] if isinstance(port, str) else port


def container_settings(objects: Objects, container: dict[str, Any]) -> dict[str, str]:
    """The container's variables that the manifests know (ConfigMaps and `env` values;
    the Secret's values are terraform's): `env` wins over `envFrom`, as in Kubernetes."""
    config_maps = by_kind(objects, "ConfigMap")
    values: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            values |= config_maps[source["configMapRef"]["name"]]["data"]
    values |= {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    return values


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_deployments_have_probes(rendered: dict[str, Objects], env: str) -> None:
    for name, deployment in by_kind(rendered[env], "Deployment").items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert container[probe]["httpGet"]["path"], f"{name}: {probe}"
    app = container_of(rendered[env], "Deployment", "figachechnaya-app")
    # The public port: liveness of the event loop, readiness = started and not draining.
    assert probe_target(app, "startupProbe") == ("/healthz", 8000)
    assert probe_target(app, "livenessProbe") == ("/healthz", 8000)
    assert probe_target(app, "readinessProbe") == ("/readyz", 8000)
    worker = container_of(rendered[env], "Deployment", "figachechnaya-worker")
    # The worker's operations port: /healthz follows its consume loop's heartbeat.
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert probe_target(worker, probe) == ("/healthz", 9100), probe
    liveness = worker["livenessProbe"]
    stall = float(container_settings(rendered[env], worker)["FIGA_WORKER_STALL_SECONDS"])
    assert liveness["timeoutSeconds"] < stall, "a stall must be seen before the probe gives up"


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_hpas_own_the_replica_counts(rendered: dict[str, Objects], env: str) -> None:
    """A Deployment's spec.replicas would be reset to its value on every apply,
    undoing what its HPA decided: the HPA-managed Deployments set none."""
    deployments = by_kind(rendered[env], "Deployment")
    hpas = by_kind(rendered[env], "HorizontalPodAutoscaler")
    for name in HPA_MANAGED:
        assert hpas[name]["spec"]["scaleTargetRef"]["name"] == name
        assert "replicas" not in deployments[name]["spec"], name


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_metrics_have_their_own_port_behind_the_service_monitor(
    rendered: dict[str, Objects], env: str
) -> None:
    """The public port serves no metrics; each process's operations port is the one the
    settings open, the Services name it `metrics`, and only that port is scraped."""
    objects = rendered[env]
    services = by_kind(objects, "Service")
    expected = {
        "figachechnaya-app": ("FIGA_METRICS_PORT", "FIGA_METRICS_HOST", 9101),
        "figachechnaya-worker": ("FIGA_WORKER_METRICS_PORT", "FIGA_WORKER_METRICS_HOST", 9100),
    }
    for name, (port_variable, host_variable, number) in expected.items():
        container = container_of(objects, "Deployment", name)
        settings = container_settings(objects, container)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["metrics"] == int(settings[port_variable]) == number, name
        assert settings[host_variable] == ALL_ADDRESSES, f"{name}: scraped from other pods"
        (metrics,) = [p for p in services[name]["spec"]["ports"] if p["name"] == "metrics"]
        assert metrics["targetPort"] == "metrics"
        assert metrics["port"] == number
    app_ports = {p["name"]: p for p in services["figachechnaya-app"]["spec"]["ports"]}
    assert app_ports["http"]["targetPort"] == "http"
    (monitor,) = by_kind(objects, "ServiceMonitor").values()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_kafka_ca_is_mounted_where_the_setting_points(
    rendered: dict[str, Objects], env: str
) -> None:
    objects = rendered[env]
    for name in ("figachechnaya-app", "figachechnaya-worker"):
        spec = by_kind(objects, "Deployment")[name]["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        settings = container_settings(objects, container)
        assert settings["FIGA_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        cafile = settings["FIGA_KAFKA_SSL_CAFILE"]
        assert cafile == "/etc/figachechnaya/kafka-ca/ca.crt"
        (volume,) = [v for v in spec["volumes"] if "configMap" in v and
                     v["configMap"]["name"] == KAFKA_CA_NAME]  # fmt: skip
        assert volume["configMap"].get("optional", False) is False, "no CA, no TLS: fail to start"
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
        assert mount["readOnly"] is True
        assert cafile == f"{mount['mountPath']}/ca.crt", name


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_a_failing_migration_fails_fast(rendered: dict[str, Objects], env: str) -> None:
    """The deploy job waits for the Job: a broken migration must fail it within minutes
    (one retry for a database failover), not after 600 s and four attempts."""
    (job,) = by_kind(rendered[env], "Job").values()
    assert job["spec"]["backoffLimit"] <= 1
    assert job["spec"]["activeDeadlineSeconds"] <= 300
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_images_carry_a_tag_and_prod_never_latest(rendered: dict[str, Objects], env: str) -> None:
    for where, template in pod_templates(rendered[env]):
        for container in template["spec"]["containers"]:
            name, _, tag = container["image"].rpartition(":")
            assert name == "figachechnaya", (
                f"{where}: the deployer sets the registry, not the manifests"
            )
            assert tag, where
            assert tag != "latest", where
            if env == "prod":
                assert re.fullmatch(r"v\d+\.\d+\.\d+", tag), f"{where}: prod runs a release tag"


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_worker_autoscaling_stays_within_the_topic_partitions(
    rendered: dict[str, Objects], env: str, terraform_variables: dict[str, Any]
) -> None:
    hpas = by_kind(rendered[env], "HorizontalPodAutoscaler")
    worker = hpas["figachechnaya-worker"]
    partitions = int(worker["metadata"]["annotations"]["figachechnaya.ru/kafka-topic-partitions"])
    topic = settings_of(rendered[env])["FIGA_KAFKA_TOPIC"]
    assert partitions == terraform_variables["kafka_topics"]["default"][topic]
    assert 1 <= worker["spec"]["minReplicas"] <= worker["spec"]["maxReplicas"] <= partitions
    assert int(settings_of(rendered[env])["FIGA_KAFKA_TOPIC_PARTITIONS"]) == partitions
    app = hpas["figachechnaya-app"]
    ((metric,),) = [app["spec"]["metrics"]]
    assert metric["resource"]["name"] == "cpu"
    for hpa in hpas.values():
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment"
        assert target["name"] == hpa["metadata"]["name"]


def cores(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def test_the_prod_hpas_carry_the_peak_of_the_capacity_model(rendered: dict[str, Objects]) -> None:
    """docs/capacity.md: at the HPA maxima, pods at their CPU target carry the estimated
    peak of the app, and the workers' limits the high estimate of the pictures."""
    objects = rendered["prod"]
    hpas = by_kind(objects, "HorizontalPodAutoscaler")
    for name, (at_target, at_limits) in {
        "figachechnaya-app": (PEAK_APP_CORES, PEAK_APP_CORES),
        "figachechnaya-worker": PEAK_WORKER_CORES,
    }.items():
        spec = hpas[name]["spec"]
        resources = container_of(objects, "Deployment", name)["resources"]
        ((metric,),) = [spec["metrics"]]
        target = metric["resource"]["target"]["averageUtilization"] / 100
        request, limit = cores(resources["requests"]["cpu"]), cores(resources["limits"]["cpu"])
        assert spec["maxReplicas"] * request * target >= at_target, name
        assert spec["maxReplicas"] * limit >= at_limits, name
    assert hpas["figachechnaya-app"]["spec"]["minReplicas"] >= 3, "one app pod per zone"
    assert hpas["figachechnaya-worker"]["spec"]["minReplicas"] >= 2


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_database_connections_stay_within_the_users_limit(
    rendered: dict[str, Objects], env: str, terraform_variables: dict[str, Any]
) -> None:
    """Every pod at its HPA maximum plus the rolling update's surge, each process with a
    full pool, its overflow and the connections it keeps outside the pool (the app's group
    commit and the relay's deletes, `store.own_connection`; one for a worker, to be safe),
    and the migrate Job beside them: within the connection limit terraform gives the
    environment's database user."""
    objects = rendered[env]
    hpas = by_kind(objects, "HorizontalPodAutoscaler")
    own_connections = {"figachechnaya-app": 2, "figachechnaya-worker": 1}
    used = {}
    for name, deployment in by_kind(objects, "Deployment").items():
        settings = container_settings(objects, container_of(objects, "Deployment", name))
        per_process = (
            int(settings["FIGA_DB_POOL_SIZE"])
            + int(settings["FIGA_DB_POOL_OVERFLOW"])
            + own_connections[name]
        )
        surge = deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
        assert isinstance(surge, int), f"{name}: a count, so that it adds up here"
        used[name] = (hpas[name]["spec"]["maxReplicas"] + surge) * per_process
    for name, job in by_kind(objects, "Job").items():
        used[name] = job["spec"].get("parallelism", 1)  # alembic: one connection
    limits = terraform_variables["database_connection_limits"]["default"]
    assert sum(used.values()) <= limits[env], used
    maximum = terraform_variables["postgresql_max_connections"]["default"]
    assert sum(limits.values()) + RESERVED_CONNECTIONS <= maximum


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_every_deployment_has_a_disruption_budget(rendered: dict[str, Objects], env: str) -> None:
    budgets = by_kind(rendered[env], "PodDisruptionBudget").values()
    for name, deployment in by_kind(rendered[env], "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert any(selects(b["spec"]["selector"]["matchLabels"], labels) for b in budgets), name


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_network_policies_deny_by_default_and_open_only_what_is_needed(
    rendered: dict[str, Objects], env: str, repo: Path
) -> None:
    policies = by_kind(rendered[env], "NetworkPolicy")
    deny = policies["default-deny-all"]["spec"]
    assert deny["podSelector"] == {}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny
    assert "egress" not in deny
    for where, template in pod_templates(rendered[env]):
        labels = template["metadata"]["labels"]
        own = [
            p for name, p in policies.items()
            if name not in ("default-deny-all", "allow-dns")
            and selects(p["spec"]["podSelector"].get("matchLabels", {}), labels)
        ]  # fmt: skip
        assert len(own) == 1, f"{where} needs exactly one policy of its own"
    platform = (repo / "terraform/modules/platform/main.tf").read_text(encoding="utf-8")
    peers = {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for policy in policies.values() for rule in policy["spec"].get("ingress", [])
        for peer in rule["from"]
    }  # fmt: skip
    assert peers == {"ingress-nginx", "monitoring"}
    for namespace in peers:
        assert f'namespace        = "{namespace}"' in platform, (
            f"terraform installs into {namespace}"
        )


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_secrets_are_referenced_never_committed(rendered: dict[str, Objects], env: str) -> None:
    assert not by_kind(rendered[env], "Secret")
    for where, template in pod_templates(rendered[env]):
        for container in template["spec"]["containers"]:
            names = [s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s]
            assert names == [SECRET_NAME], where
            for variable_ in container.get("env", []):
                assert "valueFrom" not in variable_ or "secretKeyRef" not in variable_["valueFrom"]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_settings_are_real_settings_with_production_defaults(
    rendered: dict[str, Objects], env: str, terraform_variables: dict[str, Any]
) -> None:
    settings = settings_of(rendered[env])
    known = {variable(name) for name in Settings.model_fields}
    for name in settings:
        assert not name.startswith(PREFIX) or name in known, (
            f"{name} is no setting of app/settings.py"
        )
    assert Settings.from_env(settings).kafka_idempotence is True
    for where, template in pod_templates(rendered[env]):
        for container in template["spec"]["containers"]:
            own = container_settings(rendered[env], container)
            for name in own:
                assert not name.startswith(PREFIX) or name in known, f"{where}: {name}"
            Settings.from_env(own)  # every container's values are valid together
    assert settings["FIGA_LOG_FORMAT"] == "json"
    bucket = re.fullmatch(r"s3://([^/]+)/.+", settings["FIGA_IMAGE_STORE_URL"])
    assert bucket is not None
    assert bucket.group(1) == terraform_variables["bucket_name"]["default"]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_scheme_catalogue_config_map_is_a_valid_catalogue(
    rendered: dict[str, Objects], env: str
) -> None:
    (config_map,) = [
        o for o in rendered[env]
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("figachechnaya-schemes")
    ]  # fmt: skip
    text = config_map["data"]["schemes.toml"]
    assert parse_catalogue(text, source="k8s/base/schemes.toml").schemes
    path = settings_of(rendered[env])["FIGA_SCHEMES_FILE"]
    for _, template in pod_templates(rendered[env]):
        spec = template["spec"]
        mounts = {m["name"]: m["mountPath"] for c in spec["containers"] for m in c["volumeMounts"]}
        for volume in spec["volumes"]:
            if volume.get("configMap", {}).get("name") == config_map["metadata"]["name"]:
                assert path == f"{mounts[volume['name']]}/schemes.toml"
    assert tomllib.loads(text)["scheme"]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_services_reach_named_container_ports(rendered: dict[str, Objects], env: str) -> None:
    deployments = by_kind(rendered[env], "Deployment").values()
    for name, service in by_kind(rendered[env], "Service").items():
        (target,) = [
            d for d in deployments
            if selects(service["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
        ]  # fmt: skip
        ports = {
            p["name"] for c in target["spec"]["template"]["spec"]["containers"] for p in c["ports"]
        }
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"{name}: {port}"


def test_ingresses_serve_https_with_a_cert_manager_issuer(
    rendered: dict[str, Objects], terraform_variables: dict[str, Any]
) -> None:
    issuers = by_kind(rendered["cluster"], "ClusterIssuer")
    domain = terraform_variables["domain"]["default"]
    expected_hosts = {"prod": domain, "dev": f"dev.{domain}"}
    for env, objects in overlays(rendered):
        ingresses = by_kind(objects, "Ingress")
        main = ingresses["figachechnaya"]
        assert main["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] in issuers
        for ingress in ingresses.values():
            spec = ingress["spec"]
            ((tls_host,),) = [t["hosts"] for t in spec["tls"]]
            ((rule_host,),) = [[r["host"] for r in spec["rules"]]]
            assert tls_host == rule_host == expected_hosts[env], ingress["metadata"]["name"]
            assert spec["ingressClassName"] == "nginx"
        # Defence in depth only (the public port serves no metrics): /metrics and below.
        denied = ingresses["figachechnaya-metrics-denied"]
        ((path,),) = [r["http"]["paths"] for r in denied["spec"]["rules"]]
        assert (path["path"], path["pathType"]) == ("/metrics", "Prefix")
        assert (
            denied["metadata"]["annotations"]["nginx.ingress.kubernetes.io/denylist-source-range"]
            == "0.0.0.0/0,::/0"
        )
        for ingress in ingresses.values():
            for rule in ingress["spec"]["rules"]:
                for backend in rule["http"]["paths"]:
                    assert backend["backend"]["service"]["port"] == {"name": "http"}


def test_cluster_issuers_use_lets_encrypt_over_the_ingress(rendered: dict[str, Objects]) -> None:
    issuers = by_kind(rendered["cluster"], "ClusterIssuer")
    assert set(issuers) == {"letsencrypt-prod", "letsencrypt-staging"}
    for name, issuer in issuers.items():
        assert issuer["apiVersion"] == "cert-manager.io/v1"
        acme = issuer["spec"]["acme"]
        assert re.fullmatch(
            r"https://acme(-staging)?-v02\.api\.letsencrypt\.org/directory", acme["server"]
        )
        assert ("staging" in acme["server"]) == ("staging" in name)
        assert "@" in acme["email"]
        assert acme["privateKeySecretRef"]["name"]
        ((solver,),) = [acme["solvers"]]
        assert solver["http01"]["ingress"]["ingressClassName"] == "nginx"


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_prometheus_scrapes_app_and_worker_through_the_service_monitor(
    rendered: dict[str, Objects], env: str
) -> None:
    (monitor,) = by_kind(rendered[env], "ServiceMonitor").values()
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    services = [
        s for s in by_kind(rendered[env], "Service").values()
        if selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
    ]  # fmt: skip
    service_ports = {p["name"] for s in services for p in s["spec"]["ports"]}
    assert {s["metadata"]["name"] for s in services} == {
        "figachechnaya-app",
        "figachechnaya-worker",
    }
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in service_ports
        assert endpoint["path"] == "/metrics"


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_alert_rules_are_the_same_as_in_compose(
    rendered: dict[str, Objects], env: str, repo: Path
) -> None:
    (rule,) = by_kind(rendered[env], "PrometheusRule").values()
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    compose_rules = yaml.safe_load((repo / "deploy/prometheus/rules/figachechnaya.yml").read_text())
    assert rule["spec"] == compose_rules
    for group in rule["spec"]["groups"]:
        for alert in group["rules"]:
            if "record" in alert:  # an SLO recording rule: a name and an expression
                assert set(alert) == {"record", "expr"}, alert
                continue
            assert {"alert", "expr", "for"} <= set(alert), alert
            assert alert["labels"]["severity"] in ("warning", "critical")
            assert alert["annotations"]["summary"]
