"""Pod networking: one bridge per node, one network namespace and veth pair per pod.

Pods get addresses from the node's pod CIDR (outside 127/8, so EndpointSlices and the
API server's proxy accept them); the bridge holds the gateway address, so this host
reaches every pod directly. The bridge's forward delay is 0, or its first packets
would be dropped while it "learns".
"""

from __future__ import annotations

import ipaddress
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

from modelrelease.errors import StackError

NETNS_DIR = Path("/var/run/netns")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS``; raise ``StackError`` with its output when it fails and ``check``."""
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise StackError(f"ip {' '.join(args)}: {result.stderr.strip() or result.stdout.strip()}")
    return result


def used_subnets() -> list[ipaddress.IPv4Network]:
    """IPv4 networks configured on this host's interfaces."""
    out = ip("-o", "-4", "addr", "show").stdout
    nets: list[ipaddress.IPv4Network] = []
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            nets.append(ipaddress.IPv4Interface(parts[parts.index("inet") + 1]).network)
    return nets


def free_pod_cidr(pool: str = "10.244.0.0/16", prefix: int = 24) -> str:
    """A /24 of ``pool`` that overlaps nothing configured on this host."""
    used = used_subnets()
    for net in ipaddress.ip_network(pool).subnets(new_prefix=prefix):
        if not any(net.overlaps(u) for u in used):
            return str(net)
    raise StackError(f"choose pod CIDR: every /{prefix} of {pool} is in use on this host")


class PodNetwork:
    """The bridge of one node and the namespaces of its pods.

    Args:
        cidr: The node's pod CIDR, e.g. ``10.244.3.0/24``; its first address is the gateway.
        tag: A short tag for interface and namespace names (unique per node on this host).
    """

    def __init__(self, cidr: str, tag: str) -> None:
        self.network = ipaddress.ip_network(cidr)
        hosts = list(self.network.hosts())
        self.gateway = hosts[0]
        self._free = [str(h) for h in hosts[1:]]
        self.tag = tag
        self.bridge = f"mrbr{tag}"[:15]
        self._lock = threading.Lock()
        self._assigned: dict[str, str] = {}
        self._reserved: dict[str, str] = {}

    def netns(self, pod_key: str) -> str:
        """The namespace name for a pod."""
        return f"mr{self.tag}-{pod_key}"

    def _veth(self, pod_key: str) -> str:
        return f"mv{self.tag}{pod_key}"[:15]

    def setup_bridge(self) -> None:
        """Create the bridge with the gateway address (idempotent)."""
        if ip("link", "show", self.bridge, check=False).returncode != 0:
            ip("link", "add", self.bridge, "type", "bridge", "forward_delay", "0", "stp_state", "0")
        ip("addr", "replace", f"{self.gateway}/{self.network.prefixlen}", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")

    def leftover_namespaces(self) -> list[str]:
        """Namespaces of this node left by an earlier run (e.g. after a crash)."""
        prefix = f"mr{self.tag}-"
        out = ip("netns", "list", check=False).stdout
        return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]

    def reserve(self, pod_key: str, address: str) -> None:
        """Keep ``address``, if free, for the pod's :meth:`attach`.

        It is the IP the pod had before the agent restarted: the API server refuses to
        change a pod's IP once set.
        """
        with self._lock:
            if address in self._free:
                self._free.remove(address)
                self._reserved[pod_key] = address

    def attach(self, pod_key: str) -> str:
        """Create the pod's namespace and veth on the bridge; return the pod's IP."""
        with self._lock:
            if pod_key in self._assigned:
                return self._assigned[pod_key]
            address = self._reserved.pop(pod_key, "")
            if not address and not self._free:
                raise StackError(f"assign pod IP: pod CIDR {self.network} is exhausted")
            address = address or self._free.pop(0)
            self._assigned[pod_key] = address
        ns, veth = self.netns(pod_key), self._veth(pod_key)
        try:
            ip("netns", "del", ns, check=False)
            ip("link", "del", veth, check=False)
            ip("netns", "add", ns)
            ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            ip("link", "set", veth, "master", self.bridge, "up")
            ip("-n", ns, "addr", "add", f"{address}/{self.network.prefixlen}", "dev", "eth0")
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "route", "add", "default", "via", str(self.gateway))
        except StackError:
            self.detach(pod_key)
            raise
        return address

    def detach(self, pod_key: str) -> None:
        """Remove the pod's namespace and veth, and free its address."""
        ip("link", "del", self._veth(pod_key), check=False)
        ip("netns", "del", self.netns(pod_key), check=False)
        with self._lock:
            address = self._assigned.pop(pod_key, None) or self._reserved.pop(pod_key, None)
            if address is not None:
                self._free.append(address)

    def teardown(self, extra: Sequence[str] = ()) -> None:
        """Remove every pod namespace of this node (and ``extra`` ones), then the bridge."""
        for key in list(self._assigned):
            self.detach(key)
        for ns in [*self.leftover_namespaces(), *extra]:
            ip("netns", "del", ns, check=False)
        ip("link", "del", self.bridge, check=False)
