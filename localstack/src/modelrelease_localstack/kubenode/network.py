"""The node's pod network: one bridge with the gateway address, a CNI conflist, a service route.

Pods get addresses of a free /24 in ``10.245.0.0/16``. The bridge ``knbr<N>`` is created here,
before the CNI bridge plugin sees it, with ``forward_delay 0`` (a new bridge otherwise drops
the first seconds of traffic); its gateway address ``10.245.N.1`` is also the node's
InternalIP, an address the project owns. The Service CIDR is routed onto the bridge, so a
packet to a ClusterIP that kube-proxy has not (yet) translated stays on this host instead of
taking the default route.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from modelrelease.errors import StackError

__all__ = ["CNI_BIN_DIR", "POD_POOL", "PodNetwork", "free_pod_cidr"]

POD_POOL: Final = "10.245.0.0/16"
CNI_BIN_DIR: Final = Path("/usr/lib/cni")
CNI_PLUGINS: Final = ("bridge", "host-local", "loopback")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise StackError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def _used_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    used: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for line in _ip("-4", "-o", "addr", "show").stdout.splitlines():
        parts = line.split()
        if "inet" in parts:
            used.append(ipaddress.ip_interface(parts[parts.index("inet") + 1]).network)
    for line in _ip("-4", "route", "show", "table", "all").stdout.splitlines():
        first = line.split()[0] if line.split() else ""
        if first in ("local", "broadcast", "unreachable", "blackhole", "prohibit"):
            first = line.split()[1]
        if first and first != "default" and first[0].isdigit():
            used.append(ipaddress.ip_network(first, strict=False))
    return used


def free_pod_cidr(pool: str = POD_POOL, prefix: int = 24) -> str:
    """A /``prefix`` of ``pool`` that no address or route on this host overlaps.

    Raises:
        StackError: every subnet of the pool is taken.
    """
    used = _used_networks()
    for candidate in ipaddress.ip_network(pool).subnets(new_prefix=prefix):
        if candidate.network_address.packed[2] == 0:
            continue  # keep .0.x for nobody: easier to read addresses in logs
        if not any(candidate.overlaps(u) for u in used):
            return str(candidate)
    raise StackError(f"choose pod CIDR in {pool}: every /{prefix} overlaps an address or route "
                     "on this host; stop an old node (`modelrelease dev down`)")


@dataclass(frozen=True)
class PodNetwork:
    """One node's pod network.

    Args:
        cidr: The node's pod subnet, e.g. ``10.245.7.0/24``.
        service_cidr: The cluster's Service CIDR, routed onto the bridge.
    """

    cidr: str
    service_cidr: str

    @property
    def network(self) -> ipaddress.IPv4Network:
        """The pod subnet."""
        return ipaddress.IPv4Network(self.cidr)

    @property
    def gateway(self) -> str:
        """The bridge's address: the pods' gateway and the node's InternalIP."""
        return str(self.network.network_address + 1)

    @property
    def bridge(self) -> str:
        """The bridge's name, ``knbr<third octet>``."""
        return f"knbr{self.network.network_address.packed[2]}"

    @property
    def name(self) -> str:
        """The CNI network's name."""
        return f"kubenode-{self.network.network_address.packed[2]}"

    def conflist(self, ipam_dir: Path) -> dict[str, object]:
        """The CNI conflist: bridge (gateway, host-local IPAM in ``ipam_dir``).

        No ``ipMasq`` and no ``portmap`` (no ``hostPort``): neither makes iptables chains,
        so the only chains on the host are the kubelet's and kube-proxy's ``KUBE-*``.
        """
        return {
            "cniVersion": "1.0.0",
            "name": self.name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": str(ipam_dir),
                        "ranges": [[{"subnet": self.cidr, "gateway": self.gateway}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
            ],
        }

    def write_conf(self, conf_dir: Path, ipam_dir: Path) -> Path:
        """Write the conflist into ``conf_dir`` (the only file there)."""
        conf_dir.mkdir(parents=True, exist_ok=True)
        ipam_dir.mkdir(parents=True, exist_ok=True)
        for old in conf_dir.glob("*"):
            old.unlink()
        path = conf_dir / "10-kubenode.conflist"
        path.write_text(json.dumps(self.conflist(ipam_dir), indent=2) + "\n")
        return path

    def up(self) -> None:
        """Create the bridge (forward delay 0, STP off) with its address, and the route.

        Raises:
            StackError: ``ip`` refused (the message has its error).
        """
        if _ip("link", "show", self.bridge, check=False).returncode != 0:
            _ip("link", "add", self.bridge, "type", "bridge", "forward_delay", "0",
                "stp_state", "0")
        _ip("addr", "replace", f"{self.gateway}/{self.network.prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        _ip("route", "replace", self.service_cidr, "dev", self.bridge, "src", self.gateway)

    def down(self) -> list[str]:
        """Delete the veths left on the bridge, then the bridge (its routes go with it).

        Returns:
            What could not be removed.
        """
        problems = []
        listed = _ip("-o", "link", "show", "master", self.bridge, check=False).stdout
        for line in listed.splitlines():
            name = line.split(":")[1].strip().split("@")[0]
            _ip("link", "delete", name, check=False)
        if _ip("link", "show", self.bridge, check=False).returncode == 0:
            result = _ip("link", "delete", self.bridge, check=False)
            if result.returncode != 0:
                problems.append(f"ip link delete {self.bridge}: {result.stderr.strip()}")
        return problems
