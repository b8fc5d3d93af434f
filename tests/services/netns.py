"""Separate test hosts on one machine: network namespaces on a bridge, and links to cut.

On loopback a stopped server is refused at once; in a cluster the usual fault is a
link that silently drops packets. So the fault tests put PostgreSQL, the broker,
S3, the app and each worker in a network namespace of its own, each with one
address on a bridge in the root namespace (where the test itself runs, at `.1`):

    test (root ns, 10.213.N.1) ── bridge ── pg .2 │ kafka .3 │ s3 .4 │ app .10 │ worker-a .20 …

`cut(a, b)` adds iptables DROP rules in host `a`'s namespace for everything to
and from `b`: packets vanish, nobody sends a RST or an ICMP error, both ends keep
their sockets and learn only from their own timeouts. `restore(a, b)` removes
exactly those rules. `vanish(a)` drops everything of `a` but its loopback: a
node gone without closing its sockets. The test's own view of every host is
never cut, so it can always check what was stored.

Everything is named after our pid (`fg<pid>…`), removed by `close()`, and the
leftovers of a test run that was killed are removed by the next one. The
processes of a parallel test run (pytest-xdist) may make their hosts at the
same time, so N is chosen under a machine-wide lock among the subnets no bridge
holds yet. Needs root (CI runs as root); without it `TestHosts` raises
`HostsUnavailable` — the fault tests fail with that message, they are not skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

from tests.services.locks import machine_lock

_IP = "ip"
_IPTABLES = "iptables"
_PREFIX = "fg"
_TAG = "figa-cut"  # the comment on every rule we add, so `restore` removes only ours
_SUBNETS = 250  # 10.213.N.0/24 for N below this


class HostsUnavailable(RuntimeError):
    """This machine cannot make network namespaces here (not root, no iproute2/iptables)."""


def _run(argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    if check and result.returncode != 0:
        raise HostsUnavailable(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result


def remove_stale() -> None:
    """Remove the namespaces and links of earlier test runs whose process is gone."""
    listed = _run([_IP, "netns", "list"], check=False).stdout
    for name in re.findall(rf"^({_PREFIX}(\d+)-\S+)", listed, flags=re.MULTILINE):
        namespace, owner = name
        if not _alive(int(owner)):
            _run([_IP, "netns", "delete", namespace], check=False)
    links = _run([_IP, "-o", "link", "show"], check=False).stdout
    for link, owner in re.findall(rf"^\d+: ({_PREFIX}(\d+)[a-z]\w*)[@:]", links, re.MULTILINE):
        if not _alive(int(owner)):
            _run([_IP, "link", "delete", link], check=False)


def _free_subnet(pid: int) -> str:
    """`10.213.N` that no address of this (the root) namespace is in: N from our pid on."""
    listed = _run([_IP, "-o", "-4", "addr", "show"], check=False).stdout
    taken = {int(n) for n in re.findall(r"\binet 10\.213\.(\d+)\.", listed)}
    for offset in range(_SUBNETS):
        candidate = (pid + offset) % _SUBNETS
        if candidate not in taken:
            return f"10.213.{candidate}"
    raise HostsUnavailable(f"all of 10.213.0-{_SUBNETS - 1}.0/24 are taken by other test hosts")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


@dataclass(frozen=True)
class Host:
    name: str
    namespace: str
    address: str

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` run inside this host's namespace (the same process: `ip netns exec` execs)."""
        return [_IP, "netns", "exec", self.namespace, *argv]


@dataclass
class TestHosts:
    """The namespaces of one test: `hosts[name]`, `cut`, `restore`, `vanish`, `close`."""

    names: Sequence[str]
    hosts: dict[str, Host] = field(default_factory=dict)
    test_address: str = ""
    _bridge: str = ""
    _cuts: set[tuple[str, str, bool]] = field(default_factory=set)

    def __post_init__(self) -> None:
        if os.name != "posix" or os.geteuid() != 0:
            raise HostsUnavailable(
                "network-namespace test hosts need root (CI runs the tests as root)"
            )
        for tool in (_IP, _IPTABLES):
            if shutil.which(tool) is None:
                raise HostsUnavailable(f"{tool} not found: apt-get install iproute2 iptables")
        pid = os.getpid()
        self._bridge = f"{_PREFIX}{pid}br"
        try:
            # Another test process may be choosing a subnet right now: one at a time, and
            # the bridge holds its address before the next one looks.
            with machine_lock("netns"):
                remove_stale()
                subnet = _free_subnet(pid)
                self.test_address = f"{subnet}.1"
                _run([_IP, "link", "add", self._bridge, "type", "bridge"])
                _run([_IP, "addr", "add", f"{self.test_address}/24", "dev", self._bridge])
            _run([_IP, "link", "set", self._bridge, "up"])
            for index, name in enumerate(self.names):
                self.hosts[name] = self._add_host(pid, index, name, f"{subnet}.{index + 2}")
        except BaseException:
            self.close()
            raise

    def _add_host(self, pid: int, index: int, name: str, address: str) -> Host:
        namespace = f"{_PREFIX}{pid}-{name}"
        outside, inside = f"{_PREFIX}{pid}h{index}", f"{_PREFIX}{pid}n{index}"
        _run([_IP, "netns", "add", namespace])
        _run([_IP, "link", "add", outside, "type", "veth", "peer", "name", inside])
        _run([_IP, "link", "set", inside, "netns", namespace])
        _run([_IP, "link", "set", outside, "master", self._bridge])
        _run([_IP, "link", "set", outside, "up"])
        host = Host(name, namespace, address)
        _run(host.command([_IP, "addr", "add", f"{address}/24", "dev", inside]))
        _run(host.command([_IP, "link", "set", inside, "up"]))
        _run(host.command([_IP, "link", "set", "lo", "up"]))
        return host

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def cut(self, a: str, b: str, *, replies_only: bool = False) -> None:
        """Drop every packet between hosts `a` and `b`, silently, in both directions; or,
        `replies_only`, just what `b` sends to `a`: `a`'s requests arrive and are carried
        out, and `a` never learns (a commit whose answer is lost)."""
        for rule in self._rules(a, b, replies_only=replies_only):
            _run(self.hosts[a].command([_IPTABLES, "-I", *rule]))
        self._cuts.add((a, b, replies_only))

    def restore(self, a: str, b: str) -> None:
        """Let `a` and `b` talk again; sockets that outlived the cut carry on."""
        for replies_only in (False, True):
            if (a, b, replies_only) in self._cuts:
                for rule in self._rules(a, b, replies_only=replies_only):
                    _run(self.hosts[a].command([_IPTABLES, "-D", *rule]))
                self._cuts.discard((a, b, replies_only))

    def vanish(self, a: str) -> None:
        """Host `a` drops everything but its loopback: gone, its processes still alive."""
        for chain in ("INPUT", "OUTPUT"):
            rule = [chain, "!", "-i" if chain == "INPUT" else "-o", "lo"]
            _run(self.hosts[a].command([_IPTABLES, "-I", *rule, *self._drop()]))

    def restore_all(self) -> None:
        """Every host's rules removed (only ours exist there): all links up again."""
        for host in self.hosts.values():
            for chain in ("INPUT", "OUTPUT"):
                _run(host.command([_IPTABLES, "-F", chain]))
        self._cuts.clear()

    def _rules(self, a: str, b: str, *, replies_only: bool) -> list[list[str]]:
        peer = self.hosts[b].address
        rules = [["INPUT", "-s", peer, *self._drop()]]
        if not replies_only:
            rules.append(["OUTPUT", "-d", peer, *self._drop()])
        return rules

    @staticmethod
    def _drop() -> list[str]:
        return ["-m", "comment", "--comment", _TAG, "-j", "DROP"]

    def close(self) -> None:
        """Delete every namespace (their rules and veths go with them) and the bridge."""
        for host in self.hosts.values():
            _run([_IP, "netns", "delete", host.namespace], check=False)
        self.hosts.clear()
        if self._bridge:
            _run([_IP, "link", "delete", self._bridge], check=False)
