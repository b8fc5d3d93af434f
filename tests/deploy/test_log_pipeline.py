"""Logs collected (issue 12 § 1): the agent's rules, Loki's config and Grafana's link to them.

Alloy and Loki cannot run here (no build in Debian, PyPI or npm; the container
and Go registries are out of reach): tests/deploy/alloy_syntax.py parses the
`.alloy` files and checks their component graph, and
tests/deploy/log_pipeline.py runs their relabel rules and processing stages as
Alloy does. Discovered targets are built from what this repository deploys —
compose.yaml's services, the rendered overlays' pod templates — and the lines
are the app's own formatter's output. Real nginx access-log lines go through
the same pipelines in tests/deploy/test_running_proxy_logs.py.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.logs import JsonFormatter, request_id_var
from tests.deploy.alloy_syntax import parse
from tests.deploy.log_pipeline import Entry, Pipeline, logql_selects

REPO = Path(__file__).resolve().parents[2]
COMPOSE_AGENT = REPO / "deploy" / "alloy" / "config.alloy"
CLUSTER_AGENT = REPO / "terraform" / "modules" / "platform" / "values" / "pod-logs.alloy"
LOKI_CONFIG = REPO / "deploy" / "loki" / "config.yaml"
LOKI_DATASOURCE = REPO / "deploy" / "grafana" / "provisioning" / "datasources" / "loki.yaml"
DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"
INGRESS_VALUES = REPO / "terraform" / "modules" / "platform" / "values" / "ingress-nginx.yaml"
# The only stream labels: each has a handful of values. A request id, a pod or a
# path as a label would make one stream per value and swamp Loki's index.
LABELS = {"app", "component", "namespace", "level"}
COMPONENTS = {"proxy": "nginx", "app": "app", "worker": "worker"}  # compose service → component


def agent(path: Path) -> Pipeline:
    return Pipeline.from_text(path.read_text(encoding="utf-8"))


def app_line(logger: str, message: str, request_id: str, level: int = logging.INFO) -> str:
    """A line exactly as app/logs.py writes it for a request (or a job) with that id."""
    record = logging.LogRecord(logger, level, __file__, 1, message, None, None)
    token = request_id_var.set(request_id)
    try:
        record.request_id = request_id_var.get()  # what the handler's filter sets
        return JsonFormatter().format(record)
    finally:
        request_id_var.reset(token)


def docker_target(service: str, replica: int = 1) -> dict[str, str]:
    """What discovery.docker reports for a compose container (Docker's compose labels)."""
    name = f"figachechnaya-{service}-{replica}"
    return {
        "__meta_docker_container_id": f"{replica:064x}",
        "__meta_docker_container_name": f"/{name}",
        "__meta_docker_container_label_com_docker_compose_project": "figachechnaya",
        "__meta_docker_container_label_com_docker_compose_service": service,
        "__meta_docker_network_ip": f"172.30.80.{20 + replica}",
    }


def pod_target(namespace: str, labels: dict[str, str]) -> dict[str, str]:
    """What discovery.kubernetes (role pod) reports for a pod with these labels."""
    target = {
        "__meta_kubernetes_namespace": namespace,
        "__meta_kubernetes_pod_name": f"{labels.get('app.kubernetes.io/name', 'pod')}-7d9f-x2",
        "__meta_kubernetes_pod_container_name": "main",
    }
    for name, value in labels.items():
        target["__meta_kubernetes_pod_label_" + re.sub(r"[^A-Za-z0-9_]", "_", name)] = value
    return target


def test_both_agent_configs_parse_and_every_reference_names_a_component() -> None:
    for path in (COMPOSE_AGENT, CLUSTER_AGENT):
        pipeline = agent(path)
        assert pipeline.push_urls(), path
    text = COMPOSE_AGENT.read_text(encoding="utf-8")
    # The model rejects what Alloy rejects: a misspelt reference, a missing brace.
    with pytest.raises(SyntaxError, match="names no declared component"):
        Pipeline.from_text(text.replace("loki.write.loki.receiver", "loki.write.lok.receiver"))
    with pytest.raises(SyntaxError, match="exports no"):
        Pipeline.from_text(text.replace(".figachechnaya.output", ".figachechnaya.outputs"))
    with pytest.raises(SyntaxError, match="unknown argument"):
        Pipeline.from_text(text.replace("forward_to", "forward_too", 1))
    with pytest.raises(SyntaxError, match="missing ','"):
        parse(text.replace('request_id = "",\n', 'request_id = ""\n', 1))
    with pytest.raises(SyntaxError):
        parse(text.rstrip().removesuffix("}"))


def test_compose_agent_reads_the_proxy_app_and_worker_and_nothing_else(
    compose: dict[str, Any],
) -> None:
    pipeline = agent(COMPOSE_AGENT)
    seen = {}
    for service in compose["services"]:
        for replica in (1, 2):
            seen[service, replica] = pipeline.labels_of(docker_target(service, replica))
    for (service, replica), labels in seen.items():
        if service in COMPONENTS:
            expected = {"app": "figachechnaya", "component": COMPONENTS[service]}
            assert labels == expected | {"namespace": "compose"}, (service, replica)
        else:
            assert labels is None, f"{service} is collected: {labels}"


def test_compose_agent_reaches_loki_through_the_docker_socket(compose: dict[str, Any]) -> None:
    alloy, loki = compose["services"]["alloy"], compose["services"]["loki"]
    assert "/var/run/docker.sock:/var/run/docker.sock:ro" in alloy["volumes"]
    assert "./deploy/alloy/config.alloy:/etc/alloy/config.alloy:ro" in alloy["volumes"]
    assert alloy["command"][-1] == "/etc/alloy/config.alloy"
    assert set(alloy["networks"]) & set(loki["networks"])
    assert alloy["depends_on"]["loki"]["condition"] == "service_healthy"
    config = yaml.safe_load(LOKI_CONFIG.read_text(encoding="utf-8"))
    port = config["server"]["http_listen_port"]
    pipeline = agent(COMPOSE_AGENT)
    assert pipeline.push_urls() == [f"http://loki:{port}/loki/api/v1/push"]
    assert f"http://127.0.0.1:{port}/ready" in loki["healthcheck"]["test"]
    assert "-config.file=/etc/loki/config.yaml" in loki["command"]
    assert "./deploy/loki/config.yaml:/etc/loki/config.yaml:ro" in loki["volumes"]
    (data,) = [v for v in loki["volumes"] if v.startswith("loki-data:")]
    assert config["common"]["path_prefix"] == data.split(":")[1], "Loki's data on the volume"
    for source in (pipeline.only("discovery.docker"), pipeline.only("loki.source.docker")):
        assert source.attributes["host"] == "unix:///var/run/docker.sock"


def test_cluster_agent_reads_each_environments_app_and_worker_and_the_ingress(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    pipeline = agent(CLUSTER_AGENT)
    found = {}
    for env in ("dev", "prod"):
        for manifest in rendered[env]:
            if manifest["kind"] in ("Deployment", "Job"):
                template = manifest["spec"]["template"]["metadata"]["labels"]
                namespace = manifest["metadata"]["namespace"]
                component = template.get("app.kubernetes.io/component")
                found[namespace, component] = pipeline.labels_of(pod_target(namespace, template))
    namespaces = {namespace for namespace, _ in found}
    assert len(namespaces) == 2, namespaces  # dev's and prod's, each its own label value
    for (namespace, component), labels in found.items():
        if component in ("app", "worker"):
            assert labels == {
                "app": "figachechnaya", "component": component, "namespace": namespace
            }, (namespace, component)  # fmt: skip
        else:
            assert labels is None, (namespace, component)
    # The ingress-nginx chart's controller pods (their namespace: the platform's, main.tf).
    controller = {
        "app.kubernetes.io/name": "ingress-nginx",
        "app.kubernetes.io/component": "controller",
    }
    assert pipeline.labels_of(pod_target("ingress-nginx", controller)) == {
        "app": "figachechnaya", "component": "nginx", "namespace": "ingress-nginx"
    }  # fmt: skip
    admission = controller | {"app.kubernetes.io/component": "admission-webhook"}
    assert pipeline.labels_of(pod_target("ingress-nginx", admission)) is None
    other = {"app.kubernetes.io/name": "grafana"}
    assert pipeline.labels_of(pod_target("monitoring", other)) is None


@pytest.mark.parametrize("path", [COMPOSE_AGENT, CLUSTER_AGENT], ids=["compose", "cluster"])
def test_an_app_and_a_worker_line_keep_their_request_id_out_of_the_labels(path: Path) -> None:
    pipeline = agent(path)
    labels = {"app": "figachechnaya", "component": "app", "namespace": "figachechnaya-prod"}
    request_id = "5f1c0e2ab3d44c6f9e8d7c6b5a493827"
    stored = app_line("app.web.api", "figalization 42 stored", request_id)
    entry = pipeline.process(stored, labels)
    assert entry.labels == labels | {"level": "info"}
    assert entry.metadata == {"request_id": request_id, "logger": "app.web.api"}
    assert entry.timestamp == datetime.fromisoformat(json.loads(stored)["time"])
    assert entry.timestamp is not None
    assert entry.timestamp.tzinfo is not None
    drawn = app_line("workers.consumer", "picture 42 ready", request_id, logging.WARNING)
    worker = pipeline.process(drawn, labels | {"component": "worker"})
    assert worker.labels["level"] == "warning"
    assert worker.metadata["request_id"] == request_id
    assert "request_id" not in entry.labels | worker.labels
    # A line that is no JSON (a traceback printed before logging starts) still goes to Loki.
    plain = pipeline.process("Traceback (most recent call last):", labels)
    assert plain.labels == labels
    assert plain.metadata == {}


def test_a_line_outside_any_request_is_labelled_like_the_others() -> None:
    """The relay's and the reconciler's lines belong to no request: the same stream."""
    labels = agent(COMPOSE_AGENT).labels_of(docker_target("app")) or {}
    entry = agent(COMPOSE_AGENT).process(app_line("app.relay", "relay started", ""), labels)
    assert entry.labels == labels | {"level": "info"}
    assert entry.metadata["logger"] == "app.relay"


def test_every_label_the_agents_make_is_a_bounded_one(
    compose: dict[str, Any], rendered: dict[str, list[dict[str, Any]]]
) -> None:
    made = set()
    compose_agent = agent(COMPOSE_AGENT)
    for service in COMPONENTS:
        labels = compose_agent.labels_of(docker_target(service)) or {}
        made |= set(compose_agent.process(app_line("x", "y", "z" * 24), labels).labels)
    cluster_agent = agent(CLUSTER_AGENT)
    for manifest in rendered["prod"]:
        if manifest["kind"] == "Deployment":
            template = manifest["spec"]["template"]["metadata"]["labels"]
            labels = cluster_agent.labels_of(pod_target("figachechnaya", template)) or {}
            made |= set(cluster_agent.process(app_line("x", "y", "z" * 24), labels).labels)
    assert made == LABELS


def grafana_expanded(text: str, environment: dict[str, str]) -> str:
    """A provisioning file as Grafana reads it: `$$` is `$`, `$NAME`/`${NAME}` its environment."""

    def expand(found: re.Match[str]) -> str:
        if found.group() == "$$":
            return "$"
        return environment.get(found.group(1) or found.group(2), "")

    return re.sub(r"\$\$|\$\{([^}]*)\}|\$(\w+)", expand, text)


def loki_datasource() -> dict[str, Any]:
    text = grafana_expanded(LOKI_DATASOURCE.read_text(encoding="utf-8"), {})
    (source,) = yaml.safe_load(text)["datasources"]
    assert isinstance(source, dict)
    return source


def test_grafana_links_a_request_id_to_every_line_of_that_request(compose: dict[str, Any]) -> None:
    source = loki_datasource()
    assert (source["uid"], source["type"]) == ("loki", "loki")
    config = yaml.safe_load(LOKI_CONFIG.read_text(encoding="utf-8"))
    assert source["url"] == f"http://loki:{config['server']['http_listen_port']}"
    assert (
        "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro"
        in (compose["services"]["grafana"]["volumes"])
    )
    (derived,) = source["jsonData"]["derivedFields"]
    # matcherType label: the value of a label or structured-metadata field, here the id.
    assert (derived["matcherType"], derived["matcherRegex"]) == ("label", "request_id")
    assert derived["datasourceUid"] == source["uid"], "an internal link, to this Loki"
    query = derived["url"]
    assert "${__value.raw}" in query, "Grafana's provisioning would expand it away unescaped"
    pipeline = agent(COMPOSE_AGENT)
    ours, other = "6a0c8e1f2b3d4c5e6f708192a3b4c5d6", "0123456789abcdef01234567"
    lines = [
        ("app", app_line("app.web.api", "figalization 7 stored", ours)),
        ("worker", app_line("workers.consumer", "picture 7 ready", ours)),
        ("app", app_line("app.web.api", "figalization 8 stored", other)),
    ]
    entries: list[Entry] = []
    for service, line in lines:
        labels = pipeline.labels_of(docker_target(service)) or {}
        entries.append(pipeline.process(line, labels))
    clicked = query.replace("${__value.raw}", entries[0].metadata[derived["matcherRegex"]])
    chosen = [entry for entry in entries if logql_selects(clicked, entry)]
    assert chosen == entries[:2], clicked


def selector_labels(query: str) -> set[str]:
    (selector,) = re.findall(r"\{([^}]*)\}", query)[:1]
    return set(re.findall(r"(\w+)\s*=~?", selector))


def test_log_queries_select_only_labels_the_agents_make() -> None:
    """The derived field's query and any Loki query on a dashboard (the request-id
    panel of issue 12 § 1) name no label the agents do not make."""
    queries = [loki_datasource()["jsonData"]["derivedFields"][0]["url"]]
    for path in DASHBOARDS.glob("*.json"):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        for panel in dashboard.get("panels", []):
            for target in panel.get("targets", []):
                datasource = target.get("datasource") or panel.get("datasource") or {}
                if not isinstance(datasource, dict):
                    datasource = {"uid": datasource}  # the old spelling: its name or uid
                if datasource.get("type") == "loki" or datasource.get("uid") == "loki":
                    queries.append(target["expr"])
    for query in queries:
        assert selector_labels(query) <= LABELS, query
        assert "request_id=" not in query.split("}")[0], f"request_id is no label: {query}"


def test_loki_keeps_structured_metadata_as_long_as_prometheus_keeps_samples(
    compose: dict[str, Any],
) -> None:
    config = yaml.safe_load(LOKI_CONFIG.read_text(encoding="utf-8"))
    newest = max(config["schema_config"]["configs"], key=lambda period: str(period["from"]))
    # Structured metadata (the request id) needs the TSDB index and schema v13.
    assert (newest["store"], newest["schema"]) == ("tsdb", "v13")
    assert datetime.fromisoformat(str(newest["from"])).replace(tzinfo=UTC) < datetime.now(UTC)
    assert config["limits_config"]["allow_structured_metadata"] is True
    assert config["compactor"]["retention_enabled"] is True
    flags = compose["services"]["prometheus"]["command"]
    (days,) = [f.split("=")[1] for f in flags if f.startswith("--storage.tsdb.retention.time=")]
    assert config["limits_config"]["retention_period"] == f"{int(days.removesuffix('d')) * 24}h"
    assert config["auth_enabled"] is False, "one tenant; the port is bound to 127.0.0.1 only"
    assert compose["services"]["loki"]["ports"] == ["127.0.0.1:3100:3100"]


# --- the cluster: terraform/modules/platform ---------------------------------------------

PLATFORM = REPO / "terraform" / "modules" / "platform"
MODULE_FILE = re.compile(r'file\("\$\{path\.module\}/([^"]+)"\)')


def helm_releases(parse_hcl: Any) -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted(PLATFORM.glob("*.tf")):
        for resource in parse_hcl(path).get("resource", []):
            found.update(resource.get("helm_release", {}))
    return found


def values_files(release: dict[str, Any]) -> list[Path]:
    """The module's files a release's values read, in order (each must exist)."""
    paths = [PLATFORM / name for value in release["values"] for name in MODULE_FILE.findall(value)]
    for path in paths:
        assert path.is_file(), path
    return paths


def test_the_cluster_runs_loki_and_an_alloy_per_node_beside_grafana(parse_hcl: Any) -> None:
    releases = helm_releases(parse_hcl)
    (variables,) = [
        v["chart_versions"] for v in parse_hcl(PLATFORM / "variables.tf")["variable"]
        if "chart_versions" in v
    ]  # fmt: skip
    grafana = releases["kube_prometheus_stack"]["namespace"]
    for name in ("loki", "alloy"):
        release = releases[name]
        assert release["chart"] == name
        assert release["version"] == f"${{var.chart_versions.{name}}}"
        assert re.fullmatch(r"\d+\.\d+\.\d+", variables["default"][name]), "pinned"
        assert release["namespace"] == grafana, "Loki where Grafana reads it"
    (loki_values,) = values_files(releases["loki"])
    loki = yaml.safe_load(loki_values.read_text(encoding="utf-8"))
    newest = max(loki["loki"]["schemaConfig"]["configs"], key=lambda p: str(p["from"]))
    assert (newest["store"], newest["schema"]) == ("tsdb", "v13"), "structured metadata"
    assert loki["loki"]["limits_config"]["allow_structured_metadata"] is True
    assert loki["loki"]["compactor"]["retention_enabled"] is True
    assert loki["gateway"]["enabled"] is True
    alloy_values, config = values_files(releases["alloy"])
    assert config == CLUSTER_AGENT
    assert (
        f'content = file("${{path.module}}/{config.relative_to(PLATFORM)}")'
        in (releases["alloy"]["values"][1])
    ), "the agent's rules are the chart's alloy.configMap.content"
    alloy = yaml.safe_load(alloy_values.read_text(encoding="utf-8"))
    assert alloy["controller"]["type"] == "daemonset"
    (node,) = [e for e in alloy["alloy"]["extraEnv"] if e["name"] == "NODE_NAME"]
    assert node["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    pipeline = agent(CLUSTER_AGENT)
    (selector,) = pipeline.only("discovery.kubernetes").children("selectors")
    field = selector.attributes["field"]
    assert field.parts[0] == "spec.nodeName=", "each Alloy reads its own node's pods only"
    assert (field.parts[1].name, field.parts[1].arguments) == ("sys.env", ("NODE_NAME",))
    # The chart's gateway Service is <release>-gateway.
    gateway = f"http://{releases['loki']['name']}-gateway.{grafana}.svc.cluster.local"
    assert pipeline.push_urls() == [f"{gateway}/loki/api/v1/push"]


def test_the_clusters_grafana_gets_the_loki_datasource_of_compose(parse_hcl: Any) -> None:
    (config_map,) = [
        resource["kubernetes_config_map_v1"]["loki_datasource"]
        for resource in parse_hcl(PLATFORM / "logs.tf")["resource"]
        if "loki_datasource" in resource.get("kubernetes_config_map_v1", {})
    ]
    (metadata,) = config_map["metadata"]
    releases = helm_releases(parse_hcl)
    assert metadata["namespace"] == releases["kube_prometheus_stack"]["namespace"]
    assert metadata["labels"] == {"grafana_datasource": "1"}, "the sidecar's default label"
    ((name, value),) = config_map["data"].items()
    (path,) = MODULE_FILE.findall(value)
    text = grafana_expanded((PLATFORM / path).read_text(encoding="utf-8"), {})
    (cluster,) = yaml.safe_load(text)["datasources"]
    compose = loki_datasource()
    gateway = f"http://{releases['loki']['name']}-gateway.{metadata['namespace']}.svc.cluster.local"
    assert cluster == compose | {"url": gateway}, "one uid and one request-id link everywhere"
    assert name.endswith(".yaml")


def log_format_keys(text: str) -> list[str]:
    return re.findall(r'"(\w+)":', text)


def test_ingress_nginx_logs_json_with_the_keys_of_compose_nginx(parse_hcl: Any) -> None:
    (values,) = values_files(helm_releases(parse_hcl)["ingress_nginx"])
    assert values == INGRESS_VALUES
    config = yaml.safe_load(values.read_text(encoding="utf-8"))["controller"]["config"]
    assert config["log-format-escape-json"] == "true"
    upstream = config["log-format-upstream"]
    assert '"request_id":"$req_id"' in upstream, "the id the controller sends the app"
    assert '"namespace":"$namespace"' in upstream, "the environment of the line"
    nginx = (REPO / "deploy" / "nginx" / "nginx.conf").read_text(encoding="utf-8")
    compose_format = nginx[nginx.index("log_format figachechnaya") : nginx.index("access_log")]
    assert set(log_format_keys(compose_format)) <= set(log_format_keys(upstream))
    assert len(log_format_keys(upstream)) == len(set(log_format_keys(upstream)))
