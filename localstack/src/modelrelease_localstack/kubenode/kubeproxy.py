"""kube-proxy for one node: iptables mode, its own kubeconfig, health and metrics on loopback.

NodePorts open only on the node's own address (``nodePortAddresses``), never on the host's
real interfaces, and not on 127.0.0.1 (``localhostNodePorts: false`` keeps
``route_localnet`` untouched); conntrack sysctls are left as they are (zeros). ``--cleanup``
(run at stop) removes the chains it made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["KubeProxySettings"]


@dataclass(frozen=True)
class KubeProxySettings:
    """Everything kube-proxy of one node is told.

    Args:
        binary: The kube-proxy executable.
        home: Its directory (config).
        node_name: The Node it serves.
        node_ip: The node's address (NodePorts listen there only).
        cluster_cidr: The node's pod CIDR (traffic from elsewhere is masqueraded).
        kubeconfig: A kubeconfig for ``system:kube-proxy``.
        healthz_port: ``/healthz`` on 127.0.0.1.
        metrics_port: ``/metrics`` on 127.0.0.1.
        verbosity: klog ``--v``.
    """

    binary: Path
    home: Path
    node_name: str
    node_ip: str
    cluster_cidr: str
    kubeconfig: Path
    healthz_port: int
    metrics_port: int
    verbosity: int = 1

    @property
    def config_path(self) -> Path:
        """The KubeProxyConfiguration file."""
        return self.home / "config.json"

    def configuration(self) -> dict[str, object]:
        """The ``KubeProxyConfiguration`` (kubeproxy.config.k8s.io/v1alpha1)."""
        return {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "iptables",
            "clientConnection": {"kubeconfig": str(self.kubeconfig)},
            "hostnameOverride": self.node_name,
            "bindAddress": self.node_ip,
            "clusterCIDR": self.cluster_cidr,
            "healthzBindAddress": f"127.0.0.1:{self.healthz_port}",
            "metricsBindAddress": f"127.0.0.1:{self.metrics_port}",
            "nodePortAddresses": [f"{self.node_ip}/32"],
            "iptables": {"localhostNodePorts": False, "masqueradeAll": False,
                         "syncPeriod": "30s", "minSyncPeriod": "0s"},
            "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                          "tcpCloseWaitTimeout": "0s"},
        }

    def write(self) -> None:
        """Write the configuration."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.configuration(), indent=2) + "\n")

    def argv(self) -> list[str]:
        """The command line."""
        return [str(self.binary), f"--config={self.config_path}", f"--v={self.verbosity}"]

    def cleanup_argv(self) -> list[str]:
        """``kube-proxy --cleanup``: remove its iptables (and nftables) rules, then exit."""
        return [str(self.binary), f"--config={self.config_path}", "--cleanup", "--v=0"]
