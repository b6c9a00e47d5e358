"""``LocalNode``: the node agent as a process of the local stack, waited for until Ready."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

from modelrelease.localstack.nodeagent.network import free_pod_cidr
from modelrelease.localstack.process import Service


class LocalNode:
    """One node agent (see ``modelrelease.localstack.nodeagent.agent``).

    Args:
        workdir: The agent's state: image cache, pod bundles, runc state, log.
        kubeconfig: An admin kubeconfig of the control plane.
        name: The Node's name.
        pod_cidr: The node's pod /24; a free one of 10.244.0.0/16 by default.
        gpus: ``nvidia.com/gpu`` capacity, so GPU scheduling is real.
        cpu: CPU capacity.
        memory: Memory capacity.
        registry_ca: A CA bundle the agent trusts when pulling.
        detached: Let the agent outlive this Python process (``modelrelease dev up``).
        backoff_initial: First restart / image pull back-off in seconds (kubelet: 10).
    """

    def __init__(self, workdir: Path, kubeconfig: Path, *, name: str = "node-1",
                 pod_cidr: str | None = None, gpus: int = 0, cpu: str = "2",
                 memory: str = "16Gi", registry_ca: Path | None = None, detached: bool = False,
                 backoff_initial: float = 10.0) -> None:
        self.workdir = workdir
        self.kubeconfig = kubeconfig
        self.name = name
        self.pod_cidr = pod_cidr
        self.gpus = gpus
        self.cpu = cpu
        self.memory = memory
        self.registry_ca = registry_ca
        self.detached = detached
        self.backoff_initial = backoff_initial
        self.service: Service | None = None

    @property
    def pid(self) -> int | None:
        """The agent's PID."""
        return self.service.pid if self.service else None

    @property
    def log(self) -> Path:
        """The agent's log."""
        return self.workdir / "node-agent.log"

    def _ready(self) -> bool:
        from kubernetes import client, config

        api = config.new_client_from_config(config_file=str(self.kubeconfig))
        try:
            node = client.CoreV1Api(api).read_node(self.name)
        finally:
            api.close()
        conditions = {c.type: c.status for c in node.status.conditions or []}
        taints = [t.key for t in node.spec.taints or []]
        return conditions.get("Ready") == "True" and not any(
            t.startswith("node.kubernetes.io/not-ready") for t in taints)

    def start(self, timeout: float = 60) -> float:
        """Start the agent; return seconds until the Node was Ready."""
        self.pod_cidr = self.pod_cidr or free_pod_cidr()
        tag = str(ipaddress.ip_network(self.pod_cidr).network_address).split(".")[2]
        env = {}
        if self.registry_ca is not None:
            env["MODELRELEASE_REGISTRY__CA_FILE"] = str(self.registry_ca)
        argv = [sys.executable, "-m", "modelrelease.localstack.nodeagent.agent",
                "--kubeconfig", str(self.kubeconfig), "--node-name", self.name,
                "--workdir", str(self.workdir), "--pod-cidr", self.pod_cidr, "--tag", tag,
                "--gpus", str(self.gpus), "--cpu", self.cpu, "--memory", self.memory,
                "--backoff-initial", str(self.backoff_initial)]
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.service = Service("node-agent", argv, self.workdir, env=env,
                               detached=self.detached)
        self.service.start()
        return self.service.wait_ready(self._ready, timeout, f"Node {self.name} Ready")

    def stop(self) -> None:
        """Stop the agent; it stops every pod and removes its namespaces and bridge."""
        if self.service is not None:
            self.service.stop(grace=45)
            self.service = None

    def __enter__(self) -> LocalNode:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
