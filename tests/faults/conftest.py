"""Fixtures of the network-fault tests: the cluster of test hosts, one a module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.cluster import Cluster, start_cluster


@pytest.fixture(scope="module")
def cluster_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """PostgreSQL, the broker and S3 on hosts of their own (needs root: fails without)."""
    yield from start_cluster(Path(tmp_path_factory.mktemp("cluster")))


@pytest.fixture
def cluster(cluster_servers: Cluster) -> Iterator[Cluster]:
    """The module's cluster; this test's processes stopped and its cuts restored after it."""
    yield cluster_servers
    cluster_servers.stop_processes()
    cluster_servers.hosts.restore_all()
