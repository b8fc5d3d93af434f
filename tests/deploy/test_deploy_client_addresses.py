"""The deployment names the proxies the app believes and the address clients use (issue 14).

`FIGA_FORWARDED_ALLOW_IPS` must be exactly the hop in front of the app (compose's
nginx, at a fixed address; the cluster's pod network, where the ingress controller
runs) and `FIGA_PUBLIC_BASE_URL` the address a browser uses: the host the Ingress
serves over TLS, or the port compose publishes. Running the proxy rule itself:
tests/integration/test_hostile_clients_proxy.py and test_running_configs.py.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from app.settings import Settings
from tests.deploy.rehearsal import Objects, settings_of


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_cluster_believes_only_its_pod_network_and_links_name_the_ingress_host(
    rendered: dict[str, Objects], env: str, parse_hcl: Any, repo: Path
) -> None:
    settings = Settings.from_env(settings_of(rendered[env]))
    network = parse_hcl(repo / "terraform/modules/network/variables.tf")
    variables = {name: block for entry in network["variable"] for name, block in entry.items()}
    assert settings.forwarded_allow_ips == variables["pod_cidr"]["default"]
    (ingress,) = [
        o for o in rendered[env]
        if o["kind"] == "Ingress" and o["metadata"]["name"] == "figachechnaya"
    ]  # fmt: skip
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] in ingress["spec"]["tls"][0]["hosts"], "the host is served over TLS"
    assert settings.public_base_url == f"https://{rule['host']}"


def test_compose_believes_only_the_proxy_at_its_fixed_address(compose: dict[str, Any]) -> None:
    app = compose["services"]["app"]
    settings = Settings.from_env(
        {k: v for k, v in app["environment"].items() if k == "FIGA_FORWARDED_ALLOW_IPS"}
    )
    proxy = compose["services"]["proxy"]["networks"]["edge"]["ipv4_address"]
    assert settings.forwarded_allow_ips == proxy
    (subnet,) = [c["subnet"] for c in compose["networks"]["edge"]["ipam"]["config"]]
    assert ipaddress.ip_address(proxy) in ipaddress.ip_network(subnet)
    assert "edge" in app["networks"], "the app meets the proxy on that network"
