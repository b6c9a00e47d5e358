"""The kubelet's configuration (``KubeletConfiguration``) and command line for one node.

What this host needs (measured, see DESIGN.md): ``failCgroupV1: false`` (cgroup v1 host,
refused by 1.36 otherwise) and ``cgroupDriver: cgroupfs`` (no systemd). Everything the
kubelet writes goes under its root dir in the node's work dir where a setting allows it;
``/var/lib/kubelet/device-plugins`` and ``/var/log/containers`` are compiled-in paths
that :mod:`.hostchanges` removes again.

Security as on a real cluster: no anonymous access and no read-only port, webhook
authentication and authorization against the API server, client certificates checked
against the cluster CA, a serving certificate for the node's address. Eviction and image
garbage collection thresholds are low so a busy shared disk does not taint the node.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["CLUSTER_DNS", "CLUSTER_DOMAIN", "KubeletSettings"]

CLUSTER_DNS: Final = "10.96.0.10"
CLUSTER_DOMAIN: Final = "cluster.local"


@dataclass(frozen=True)
class KubeletSettings:
    """Everything the kubelet of one node is told.

    Args:
        binary: The kubelet executable.
        home: Its directory (root dir, pod logs, config, resolv.conf).
        node_name: The Node's name (also the client certificate's ``system:node:<name>``).
        node_ip: The address it serves on and reports as InternalIP.
        port: Its HTTPS port (logs, exec, port-forward, metrics).
        healthz_port: Its plain-http health port on 127.0.0.1.
        kubeconfig: A kubeconfig with the node's client certificate.
        client_ca: The CA that signs clients it accepts (the API server's).
        serving_cert: Its serving certificate.
        serving_key: That certificate's key.
        runtime_endpoint: containerd's CRI socket (``unix://...``).
        max_pods: The Node's pod capacity.
        verbosity: klog ``--v``.
    """

    binary: Path
    home: Path
    node_name: str
    node_ip: str
    port: int
    healthz_port: int
    kubeconfig: Path
    client_ca: Path
    serving_cert: Path
    serving_key: Path
    runtime_endpoint: str
    max_pods: int = 110
    verbosity: int = 1

    @property
    def root_dir(self) -> Path:
        """``--root-dir``: pods' volumes, plugins, checkpoints."""
        return self.home / "root"

    @property
    def pod_logs_dir(self) -> Path:
        """``podLogsDir``: container logs (``kubectl logs`` reads these)."""
        return self.home / "pod-logs"

    @property
    def config_path(self) -> Path:
        """The KubeletConfiguration file."""
        return self.home / "config.json"

    @property
    def resolv_conf(self) -> Path:
        """The resolv.conf given to ``dnsPolicy: Default`` pods: no upstream at all."""
        return self.home / "resolv.conf"

    def configuration(self) -> dict[str, object]:
        """The ``KubeletConfiguration`` (kubelet.config.k8s.io/v1beta1)."""
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "containerRuntimeEndpoint": self.runtime_endpoint,
            "imageServiceEndpoint": self.runtime_endpoint,
            "address": self.node_ip,
            "port": self.port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": self.healthz_port,
            "tlsCertFile": str(self.serving_cert),
            "tlsPrivateKeyFile": str(self.serving_key),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True, "cacheTTL": "10s"},
                "x509": {"clientCAFile": str(self.client_ca)},
            },
            "authorization": {"mode": "Webhook",
                              "webhook": {"cacheAuthorizedTTL": "10s",
                                          "cacheUnauthorizedTTL": "5s"}},
            "clusterDNS": [CLUSTER_DNS],
            "clusterDomain": CLUSTER_DOMAIN,
            "resolvConf": str(self.resolv_conf),
            "podLogsDir": str(self.pod_logs_dir),
            "protectKernelDefaults": False,
            "failSwapOn": False,
            "registerNode": True,
            "maxPods": self.max_pods,
            "serializeImagePulls": False,
            "rotateCertificates": False,
            "serverTLSBootstrap": False,
            "enableControllerAttachDetach": True,
            "nodeStatusUpdateFrequency": "5s",
            "nodeStatusReportFrequency": "1m",
            "syncFrequency": "10s",
            "fileCheckFrequency": "20s",
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                             "nodefs.inodesFree": "1%", "imagefs.available": "1%"},
            "evictionPressureTransitionPeriod": "10s",
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "containerLogMaxSize": "10Mi",
            "containerLogMaxFiles": 2,
            "shutdownGracePeriod": "0s",
            "shutdownGracePeriodCriticalPods": "0s",
            "localStorageCapacityIsolation": True,
        }

    def write(self) -> None:
        """Write the configuration and the resolv.conf."""
        for directory in (self.root_dir, self.pod_logs_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self.resolv_conf.write_text(
            "# modelrelease kubenode: pods resolve through cluster DNS only; no upstream.\n")
        self.config_path.write_text(json.dumps(self.configuration(), indent=2) + "\n")

    def argv(self) -> list[str]:
        """The command line (only what the configuration file cannot say)."""
        return [
            str(self.binary),
            f"--config={self.config_path}",
            f"--kubeconfig={self.kubeconfig}",
            f"--root-dir={self.root_dir}",
            f"--cert-dir={self.home / 'pki'}",
            f"--hostname-override={self.node_name}",
            f"--node-ip={self.node_ip}",
            f"--v={self.verbosity}",
        ]
