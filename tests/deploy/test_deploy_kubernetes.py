"""k8s/: Kustomize base + dev/prod overlays (issue 6 § Kubernetes).

Both overlays and the cluster-wide objects are rendered with `kubectl
kustomize`; every object is validated against the Kubernetes JSON schemas of
the cluster's version (kubernetes-validate, strict: unknown fields fail), and
the custom resources that have no schema there (kube-prometheus, cert-manager)
are checked by structure. Then the promises: locked-down pods, probes,
resources, pinned images, HPAs within the topic's partitions, disruption
budgets, NetworkPolicies, secrets referenced by name only.
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

# The managed cluster's minor version (terraform/variables.tf kubernetes_version).
KUBERNETES_VERSION = "1.32.0"
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule", "ClusterIssuer"}
POD_OWNERS = {"Deployment", "Job"}
SECRET_NAME = "figachechnaya-secrets"
Objects = list[dict[str, Any]]


def by_kind(objects: Objects, kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def overlays(rendered: dict[str, Objects]) -> list[tuple[str, Objects]]:
    return [(env, rendered[env]) for env in ("dev", "prod")]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def settings_of(objects: Objects) -> dict[str, str]:
    (config_map,) = [
        o for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("figachechnaya-settings")
    ]  # fmt: skip
    data: dict[str, str] = config_map["data"]
    return data


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
    (namespace,) = by_kind(objects, "Namespace").values()
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for obj in objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == namespace["metadata"]["name"]
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


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_deployments_have_probes(rendered: dict[str, Objects], env: str) -> None:
    for name, deployment in by_kind(rendered[env], "Deployment").items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert container[probe]["httpGet"]["path"], f"{name}: {probe}"
    app = by_kind(rendered[env], "Deployment")["figachechnaya-app"]
    (container,) = app["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


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
    app = hpas["figachechnaya-app"]
    ((metric,),) = [app["spec"]["metrics"]]
    assert metric["resource"]["name"] == "cpu"
    for hpa in hpas.values():
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment"
        assert target["name"] == hpa["metadata"]["name"]


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
def test_secrets_are_referenced_never_committed(
    rendered: dict[str, Objects], env: str, repo: Path
) -> None:
    assert not by_kind(rendered[env], "Secret")
    for where, template in pod_templates(rendered[env]):
        for container in template["spec"]["containers"]:
            names = [s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s]
            assert names == [SECRET_NAME], where
    app_module = (repo / "terraform/modules/app/main.tf").read_text(encoding="utf-8")
    assert f'name      = "{SECRET_NAME}"' in app_module, (
        "terraform creates the Secret the pods name"
    )


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
        denied = ingresses["figachechnaya-metrics-denied"]
        assert denied["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/metrics"


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
            assert {"alert", "expr", "for"} <= set(alert), alert
            assert alert["labels"]["severity"] in ("warning", "critical")
            assert alert["annotations"]["summary"]
