"""The rendered NetworkPolicies admit exactly the flows the system needs (issue 11).

A small evaluator of Kubernetes NetworkPolicy semantics runs over the policies
of each rendered overlay: a pod is isolated in a direction once a policy of
its namespace selects it for that direction, and an isolated pod's traffic
passes only when a rule of a selecting policy admits the peer (podSelector,
namespaceSelector, both, or ipBlock with its exceptions) and the port (number,
name of the destination's container port, range, protocol). A flow passes
when the source's egress and the destination's ingress both admit it; pods of
other namespaces (ingress-nginx, Prometheus, DNS) are not ours to restrict and
admit everything. Pod addresses are in the cluster's pod range
(terraform/modules/network), so an ipBlock meant for the internet is shown not
to open a path to other pods too.

Then a table of every flow the system needs, each asserted allowed, and of
forbidden flows — at least one per policy — each asserted denied.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

Objects = list[dict[str, Any]]
NAMESPACES = {"prod": "figachechnaya", "dev": "figachechnaya-dev"}
ALL_DIRECTIONS = ("Ingress", "Egress")


@dataclass(frozen=True)
class Pod:
    """A pod: where it runs, its labels, its address and its named container ports."""

    name: str
    namespace: str
    labels: Mapping[str, str]
    ip: str
    ports: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Address:
    """Something outside the cluster: a managed service's host, the internet."""

    name: str
    ip: str


Peer = Pod | Address


@dataclass(frozen=True)
class Flow:
    source: str
    destination: str
    port: int
    protocol: str = "TCP"
    policy: str = ""  # for a forbidden flow: the policy that must refuse it

    def __str__(self) -> str:
        return f"{self.source} -> {self.destination} {self.protocol}/{self.port}"


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A label selector: matchLabels and matchExpressions; `{}` selects everything."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def in_block(ip: str, block: Mapping[str, Any]) -> bool:
    address = ipaddress.ip_address(ip)
    if address not in ipaddress.ip_network(block["cidr"]):
        return False
    return not any(address in ipaddress.ip_network(cidr) for cidr in block.get("except", []))


def policy_types(spec: Mapping[str, Any]) -> list[str]:
    """policyTypes, or its default: Ingress, and Egress when there are egress rules."""
    if "policyTypes" in spec:
        types: list[str] = spec["policyTypes"]
        return types
    return ["Ingress", "Egress"] if "egress" in spec else ["Ingress"]


class Policies:
    """The NetworkPolicies of one namespace, and what they let through."""

    def __init__(self, namespace: str, policies: Objects) -> None:
        self.namespace = namespace
        self.specs = {p["metadata"]["name"]: p["spec"] for p in policies}

    def allows(self, source: Peer, destination: Peer, port: int, protocol: str) -> bool:
        return self._admits(source, destination, port, protocol, "Egress") and self._admits(
            destination, source, port, protocol, "Ingress"
        )

    def _admits(self, pod: Peer, peer: Peer, port: int, protocol: str, direction: str) -> bool:
        """Whether `pod`'s policies let `peer` in (Ingress) or `pod` out to it (Egress)."""
        if not isinstance(pod, Pod) or pod.namespace != self.namespace:
            return True  # not restricted by these policies
        selecting = [
            spec for spec in self.specs.values()
            if selects(spec["podSelector"], pod.labels) and direction in policy_types(spec)
        ]  # fmt: skip
        if not selecting:
            return True  # not isolated in this direction
        destination = peer if direction == "Egress" else pod
        side = "to" if direction == "Egress" else "from"
        for spec in selecting:
            for rule in spec.get(direction.lower(), []):
                peers = rule.get(side)
                peer_ok = not peers or any(self._matches(p, peer) for p in peers)
                if peer_ok and ports_match(rule.get("ports"), destination, port, protocol):
                    return True
        return False

    def _matches(self, peer_spec: Mapping[str, Any], peer: Peer) -> bool:
        if "ipBlock" in peer_spec:
            return in_block(peer.ip, peer_spec["ipBlock"])
        if not isinstance(peer, Pod):
            return False
        namespaces = peer_spec.get("namespaceSelector")
        if namespaces is None:
            namespace_ok = peer.namespace == self.namespace
        else:
            namespace_ok = selects(namespaces, {"kubernetes.io/metadata.name": peer.namespace})
        pods = peer_spec.get("podSelector")
        return namespace_ok and (pods is None or selects(pods, peer.labels))


def ports_match(
    ports: list[dict[str, Any]] | None, destination: Peer, port: int, protocol: str
) -> bool:
    if not ports:
        return True  # a rule without ports admits every port
    for entry in ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        wanted = entry.get("port")
        if wanted is None:
            return True
        if isinstance(wanted, str):  # a named port of the destination pod
            named = destination.ports if isinstance(destination, Pod) else {}
            if named.get(wanted) == port:
                return True
            continue
        if wanted <= port <= entry.get("endPort", wanted):
            return True
    return False


def template_pod(obj: dict[str, Any], namespace: str, ip: str) -> Pod:
    template = obj["spec"]["template"]
    ports = {
        p["name"]: p["containerPort"]
        for c in template["spec"]["containers"] for p in c.get("ports", []) if "name" in p
    }  # fmt: skip
    return Pod(obj["metadata"]["name"], namespace, template["metadata"]["labels"], ip, ports)


@pytest.fixture(scope="module")
def pod_range(parse_hcl: Any, repo: Path) -> ipaddress.IPv4Network:
    variables = parse_hcl(repo / "terraform/modules/network/variables.tf")
    blocks = {name: block for entry in variables["variable"] for name, block in entry.items()}
    return ipaddress.IPv4Network(blocks["pod_cidr"]["default"])


@pytest.fixture(scope="module")
def managed_hosts(terraform_variables: dict[str, Any]) -> list[ipaddress.IPv4Network]:
    """The VPC subnets where the managed PostgreSQL and Kafka hosts get their addresses."""
    subnets = terraform_variables["subnets"]["default"].values()
    return [ipaddress.IPv4Network(cidr) for cidr in subnets]


def world(
    objects: Objects,
    namespace: str,
    pod_range: ipaddress.IPv4Network,
    managed_hosts: list[ipaddress.IPv4Network],
) -> dict[str, Peer]:
    """Every party of the flows: our pods as rendered, the platform's pods as their Helm
    charts label them, and addresses outside the cluster."""
    ips = (str(pod_range.network_address + n) for n in range(10, 100))
    ours = {o["metadata"]["name"]: o for o in objects if o["kind"] in ("Deployment", "Job")}
    host = [str(subnet.network_address + 10) for subnet in managed_hosts]
    return {
        "app": template_pod(ours["figachechnaya-app"], namespace, next(ips)),
        "worker": template_pod(ours["figachechnaya-worker"], namespace, next(ips)),
        "migrate": template_pod(ours["figachechnaya-migrate"], namespace, next(ips)),
        # cert-manager's solver for an HTTP-01 challenge, made in the Ingress's namespace.
        "solver": Pod(
            "cm-acme-http-solver",
            namespace,
            {"acme.cert-manager.io/http01-solver": "true"},
            next(ips),
            {"http": 8089},
        ),
        # A pod someone adds to the namespace later, with no policy of its own.
        "stranger": Pod("debug", namespace, {"app": "debug"}, next(ips)),
        "ingress-nginx": Pod(
            "ingress-nginx-controller",
            "ingress-nginx",
            {
                "app.kubernetes.io/name": "ingress-nginx",
                "app.kubernetes.io/component": "controller",
            },
            next(ips),
        ),
        "Prometheus": Pod(
            "prometheus-kube-prometheus-stack-prometheus-0",
            "monitoring",
            {"app.kubernetes.io/name": "prometheus", "prometheus": "kube-prometheus-stack"},
            next(ips),
        ),
        "Grafana": Pod("grafana", "monitoring", {"app.kubernetes.io/name": "grafana"}, next(ips)),
        "DNS": Pod("coredns", "kube-system", {"k8s-app": "kube-dns"}, next(ips)),
        "PostgreSQL": Address("managed PostgreSQL", host[0]),
        "Kafka": Address("managed Kafka", host[1 % len(host)]),
        # Documentation ranges (RFC 5737) stand in for public addresses.
        "Object Storage": Address("storage.yandexcloud.net", "198.51.100.20"),
        "internet": Address("a client on the internet", "203.0.113.7"),
        "public DNS": Address("a public resolver", "192.0.2.53"),
    }


NEEDED = [
    Flow("ingress-nginx", "app", 8000),
    Flow("Prometheus", "app", 9101),
    Flow("Prometheus", "worker", 9100),
    Flow("ingress-nginx", "solver", 8089),
    *(Flow(pod, "DNS", 53, protocol) for pod in ("app", "worker", "migrate")
      for protocol in ("UDP", "TCP")),
    Flow("app", "PostgreSQL", 6432),
    Flow("app", "Kafka", 9091),
    Flow("app", "Object Storage", 443),
    Flow("worker", "PostgreSQL", 6432),
    Flow("worker", "Kafka", 9091),
    Flow("worker", "Object Storage", 443),
    Flow("migrate", "PostgreSQL", 6432),
]  # fmt: skip

FORBIDDEN = [
    # default-deny-all: nothing reaches a pod, nor leaves one, without a rule for it.
    Flow("internet", "app", 8000, policy="default-deny-all"),
    Flow("stranger", "app", 8000, policy="default-deny-all"),
    Flow("stranger", "Object Storage", 443, policy="default-deny-all"),
    Flow("app", "stranger", 8000, policy="default-deny-all"),
    # allow-dns: DNS only from the cluster's resolver, nothing else in kube-system.
    Flow("app", "public DNS", 53, "UDP", policy="allow-dns"),
    Flow("app", "DNS", 8080, policy="allow-dns"),
    # figachechnaya-app: each peer on its own port only.
    Flow("ingress-nginx", "app", 9101, policy="figachechnaya-app"),
    Flow("Prometheus", "app", 8000, policy="figachechnaya-app"),
    Flow("Grafana", "app", 9101, policy="figachechnaya-app"),
    Flow("app", "PostgreSQL", 5432, policy="figachechnaya-app"),
    Flow("app", "internet", 80, policy="figachechnaya-app"),
    Flow("app", "worker", 443, policy="figachechnaya-app"),
    # figachechnaya-worker: Prometheus on the metrics port, nothing else comes in.
    Flow("internet", "worker", 9100, policy="figachechnaya-worker"),
    Flow("ingress-nginx", "worker", 9100, policy="figachechnaya-worker"),
    Flow("Prometheus", "worker", 8000, policy="figachechnaya-worker"),
    Flow("worker", "app", 8000, policy="figachechnaya-worker"),
    # figachechnaya-migrate: the database, nothing else.
    Flow("migrate", "Kafka", 9091, policy="figachechnaya-migrate"),
    Flow("migrate", "Object Storage", 443, policy="figachechnaya-migrate"),
    Flow("Prometheus", "migrate", 9101, policy="figachechnaya-migrate"),
    # cert-manager-http01-solver: only ingress-nginx, only the solver's port.
    Flow("Prometheus", "solver", 8089, policy="cert-manager-http01-solver"),
    Flow("ingress-nginx", "solver", 80, policy="cert-manager-http01-solver"),
    Flow("solver", "Object Storage", 443, policy="cert-manager-http01-solver"),
]


@pytest.fixture(params=["dev", "prod"])
def env(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def evaluate(
    rendered: dict[str, Objects],
    env: str,
    flow: Flow,
    pod_range: ipaddress.IPv4Network,
    managed_hosts: list[ipaddress.IPv4Network],
) -> bool:
    objects = rendered[env]
    policies = Policies(NAMESPACES[env], [o for o in objects if o["kind"] == "NetworkPolicy"])
    parties = world(objects, NAMESPACES[env], pod_range, managed_hosts)
    return policies.allows(
        parties[flow.source], parties[flow.destination], flow.port, flow.protocol
    )


@pytest.mark.parametrize("flow", NEEDED, ids=str)
def test_every_needed_flow_is_allowed(
    rendered: dict[str, Objects],
    env: str,
    flow: Flow,
    pod_range: ipaddress.IPv4Network,
    managed_hosts: list[ipaddress.IPv4Network],
) -> None:
    assert evaluate(rendered, env, flow, pod_range, managed_hosts), f"{env}: {flow} is refused"


@pytest.mark.parametrize("flow", FORBIDDEN, ids=str)
def test_forbidden_flows_are_denied(
    rendered: dict[str, Objects],
    env: str,
    flow: Flow,
    pod_range: ipaddress.IPv4Network,
    managed_hosts: list[ipaddress.IPv4Network],
) -> None:
    assert not evaluate(rendered, env, flow, pod_range, managed_hosts), (
        f"{env}: {flow} passes; {flow.policy} should refuse it"
    )


def test_every_policy_has_a_forbidden_flow(rendered: dict[str, Objects], env: str) -> None:
    names = {o["metadata"]["name"] for o in rendered[env] if o["kind"] == "NetworkPolicy"}
    assert names == {flow.policy for flow in FORBIDDEN}


def test_every_pod_is_isolated_both_ways(rendered: dict[str, Objects], env: str) -> None:
    """The default deny selects every pod of the namespace for ingress and egress."""
    objects = rendered[env]
    policies = Policies(NAMESPACES[env], [o for o in objects if o["kind"] == "NetworkPolicy"])
    deny = policies.specs["default-deny-all"]
    assert deny["podSelector"] == {}
    assert set(policy_types(deny)) == set(ALL_DIRECTIONS)
    assert "ingress" not in deny
    assert "egress" not in deny


# The evaluator itself, on the rules whose meaning is easy to get wrong.
PEERS: dict[str, Peer] = {
    "a": Pod("a", "ns", {"role": "a"}, "10.0.0.1", {"web": 80}),
    "b": Pod("b", "ns", {"role": "b"}, "10.0.0.2"),
    "other": Pod("c", "other", {"role": "b"}, "10.0.0.3"),
    "outside": Address("outside", "203.0.113.1"),
}


def policy(spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": spec}


@pytest.mark.parametrize(
    ("rules", "source", "port", "allowed"),
    [
        ([{"from": [{"podSelector": {"matchLabels": {"role": "b"}}}]}], "b", 80, True),
        # a podSelector alone means this namespace only
        ([{"from": [{"podSelector": {"matchLabels": {"role": "b"}}}]}], "other", 80, False),
        # namespaceSelector and podSelector in one peer: both must hold
        ([{"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"role": "x"}}}]}],
         "other", 80, False),
        # ... in two peers: either may hold
        ([{"from": [{"namespaceSelector": {}}, {"podSelector": {"matchLabels": {"role": "x"}}}]}],
         "other", 80, True),
        ([{"ports": [{"port": "web"}]}], "b", 80, True),
        ([{"ports": [{"port": "web"}]}], "b", 81, False),
        ([{"ports": [{"port": 70, "endPort": 90}]}], "b", 80, True),
        ([{"ports": [{"port": 80, "protocol": "UDP"}]}], "b", 80, False),
        ([{"from": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["203.0.113.0/24"]}}]}],
         "outside", 80, False),
        ([{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}], "outside", 80, True),
        ([], "b", 80, False),  # isolated, no rule: nothing
    ],
)  # fmt: skip
def test_the_evaluator_follows_kubernetes_semantics(
    rules: list[dict[str, Any]], source: str, port: int, allowed: bool
) -> None:
    spec = {"podSelector": {"matchLabels": {"role": "a"}}, "policyTypes": ["Ingress"]}
    policies = Policies("ns", [policy({**spec, "ingress": rules})])
    assert policies.allows(PEERS[source], PEERS["a"], port, "TCP") is allowed


def test_a_pod_no_policy_selects_is_open() -> None:
    policies = Policies("ns", [policy({"podSelector": {"matchLabels": {"role": "a"}}})])
    assert policies.allows(PEERS["a"], PEERS["b"], 80, "TCP")
    assert policies.allows(PEERS["outside"], PEERS["b"], 80, "TCP")
