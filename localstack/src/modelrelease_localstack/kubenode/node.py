"""``KubeNode``: a real Kubernetes node on this host (containerd, kubelet, kube-proxy, CNI).

Joined to a :class:`~modelrelease_localstack.controlplane.ControlPlane`: the kubelet's client
certificate says ``system:node:<name>`` in ``system:nodes`` (so the Node authorizer and
NodeRestriction apply), kube-proxy's says ``system:kube-proxy``, and the kubelet serves
``logs``/``exec``/``port-forward`` with a certificate of the cluster CA on the node's
address, authenticating and authorizing the API server through webhooks.

Start order: the pod network (bridge, CNI conflist) and its egress guard (:mod:`.egress`:
forwarded pod traffic may leave only by the bridge), containerd (then the pause image, and
CoreDNS's, are imported), the API relay (:mod:`.relay`: the node's address to the API
server's loopback port), the kubelet and kube-proxy; once the Node is ``Ready`` with the
node's InternalIP and kube-proxy answers ``/healthz``, the ``kubernetes`` Service's
Endpoints and EndpointSlice are pointed at the relay, and cluster DNS (:mod:`.dns`) is
applied and waited for (its Deployment Available). Stop order: the DNS objects and the
``kubernetes`` endpoints go, pods on the node are deleted, kube-proxy stops and cleans its
rules, the relay, the kubelet and containerd stop, leftover shims and pod processes are
killed, then the egress guard goes and :func:`~.hostchanges.undo` puts the host back as it
was before start (mounts, cgroups, namespaces, iptables/nftables, sysctls, directories) and
the bridge goes. The host snapshot is kept in the work dir, so a node that crashed, or one
started by another process (``detached``), is cleaned by :meth:`KubeNode.stop` (or the next
:meth:`KubeNode.start`) of a new object on the same directory.

Fault tests restart one component with :meth:`KubeNode.stop_component` and
:meth:`KubeNode.start_component`; pods keep running meanwhile (measured here: 0 requests of a
client calling a ClusterIP lost over a containerd or a kubelet restart, a few over a
kube-proxy restart).

Example:
    >>> with ControlPlane(Path("/tmp/cp")) as cp:  # doctest: +SKIP
    ...     with KubeNode(Path("/tmp/node"), cp, registries=["127.0.0.1:5000"]) as node:
    ...         node.set_gpus(2)
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import httpx

from modelrelease.errors import StackError
from modelrelease_localstack.controlplane import SERVICE_CIDR, ControlPlane, kube_assets_dir
from modelrelease_localstack.kubenode import dns, hostchanges, relay
from modelrelease_localstack.kubenode.containerd import CONTAINERD, RUNC, Containerd
from modelrelease_localstack.kubenode.diagnosis import start_failure
from modelrelease_localstack.kubenode.egress import EgressGuard
from modelrelease_localstack.kubenode.hostlock import host_for_one_node
from modelrelease_localstack.kubenode.kubelet import KubeletSettings
from modelrelease_localstack.kubenode.kubeproxy import KubeProxySettings
from modelrelease_localstack.kubenode.network import (
    CNI_BIN_DIR,
    CNI_PLUGINS,
    PodNetwork,
    free_pod_cidr,
)
from modelrelease_localstack.kubenode.static_image import build_static_image, write_oci_archive
from modelrelease_localstack.pki import Pki
from modelrelease_localstack.process import Service, free_ports, reap_stale

__all__ = ["GPU_RESOURCE", "NODE_BINARIES", "PAUSE_IMAGE", "KubeNode", "node_assets"]

GPU_RESOURCE: Final = "nvidia.com/gpu"
NODE_BINARIES: Final = ("kubelet", "kube-proxy", "pause")
"""What ``scripts/kube-assets`` builds for a node, beside the control plane."""
PAUSE_IMAGE: Final = "localhost/modelrelease/pause:1.0"
"""The sandbox image's name in containerd (``localhost``: a pull, if ever tried, stays here)."""

_SNAPSHOT_FILE: Final = "host-before.json"
_DRAIN_TIMEOUT_S: Final = 30.0
_RELAY: Final = "api-relay"
_LONGEST_SOCKET: Final = "kubelet/root/pod-resources/1234567890"
"""The longest unix socket path the kubelet makes under the node's work dir (a temporary
name while it binds its podResources socket)."""
UNIX_PATH_MAX: Final = 107
"""Bytes a unix socket path may hold on Linux (``sun_path`` is 108, with the NUL)."""


def node_assets() -> dict[str, Path]:
    """Every binary a node runs, by name.

    Raises:
        StackError: One is missing, naming it and the command that provides it.
    """
    directory = kube_assets_dir()
    found = {name: directory / name for name in NODE_BINARIES}
    found |= {"containerd": Path(CONTAINERD), "runc": Path(RUNC)}
    found |= {f"cni/{p}": CNI_BIN_DIR / p for p in CNI_PLUGINS}
    missing = [name for name, path in found.items() if not os.access(path, os.X_OK)]
    if missing:
        built = [m for m in missing if m in NODE_BINARIES]
        apt = [m for m in missing if m not in NODE_BINARIES]
        fixes = []
        if built and os.environ.get("KUBE_ASSETS"):
            fixes.append(f"put {', '.join(built)} into KUBE_ASSETS={directory}, or unset "
                         "KUBE_ASSETS and run `scripts/kube-assets` (builds them into its cache)")
        elif built:
            fixes.append(f"run `scripts/kube-assets` (builds {', '.join(built)} into {directory})")
        if apt:
            fixes.append("run `scripts/bootstrap` (apt: containerd, runc, "
                         "containernetworking-plugins)")
        raise StackError(f"find node binaries: {', '.join(missing)} missing; "
                         + " and ".join(fixes))
    return found


def _snapshot_to_json(snap: hostchanges.HostSnapshot) -> str:
    data = asdict(snap)
    return json.dumps({k: sorted(v) if isinstance(v, frozenset) else v for k, v in data.items()})


def _snapshot_from_json(text: str) -> hostchanges.HostSnapshot:
    data = json.loads(text)
    return hostchanges.HostSnapshot(
        sysctls=dict(data["sysctls"]),
        existing_dirs=frozenset(data["existing_dirs"]),
        chains=frozenset(tuple(c) for c in data["chains"]),
        rules=frozenset(tuple(r) for r in data["rules"]),
        nft_tables=frozenset(tuple(t) for t in data["nft_tables"]),
        cgroups=frozenset(data["cgroups"]),
        netns=frozenset(data["netns"]),
    )


class KubeNode:
    """One real node: containerd, kubelet, kube-proxy and a CNI bridge, joined to ``plane``.

    Args:
        workdir: Everything of the node: configs, containerd's root and state, the kubelet's
            root dir, pod logs, its logs (``logs/``) and pidfiles (``run/``).
        plane: A started control plane.
        name: The Node's name.
        gpus: ``nvidia.com/gpu`` capacity advertised (extended-resource patch of the status).
        registries: ``host:port`` of registries containerd pulls from over plain http.
        pod_cidr: The node's pod /24; a free one of ``10.245.0.0/16`` by default.
        kubelet_port: The kubelet's HTTPS port on the node's address; a free one by default.
        verbosity: klog ``--v`` of the kubelet and kube-proxy.
        detached: Let the processes outlive this Python process (``modelrelease dev up``).
        api_relay: Let pods reach the API server through the ``kubernetes`` Service (a relay
            process on the node's address; the Service's endpoints point at it).
        dns: Run cluster DNS (CoreDNS, built by ``scripts/coredns-assets``) and wait for it
            in :meth:`start`; needs ``api_relay``. Off: pods resolve nothing (faster start).
        host_ports: Host services on loopback that pods may reach, by name (``{"prefect":
            4200}``): the relay process also listens on the node's address for each, and
            :meth:`host_address` says where. Needs ``api_relay``.
        registry_host_ports: The names of ``host_ports`` that are registries: containerd
            pulls from their relay address over plain http too.
    """

    def __init__(self, workdir: Path, plane: ControlPlane, *, name: str = "kubenode-1",
                 gpus: int = 0, registries: Iterable[str] = (), pod_cidr: str | None = None,
                 kubelet_port: int | None = None, verbosity: int = 1,
                 detached: bool = False, api_relay: bool = True, dns: bool = True,
                 host_ports: Mapping[str, int] | None = None,
                 registry_host_ports: Iterable[str] = ()) -> None:
        if dns and not api_relay:
            raise StackError(f"configure node {name}: dns=True needs api_relay=True (CoreDNS "
                             "reaches the API server through the kubernetes Service)")
        if host_ports and not api_relay:
            raise StackError(f"configure node {name}: host_ports needs api_relay=True (the "
                             "relay process carries them)")
        self.workdir = Path(workdir).absolute()
        self.plane = plane
        self.name = name
        self.gpus = gpus
        self.registries = list(registries)
        self.verbosity = verbosity
        self.detached = detached
        self.api_relay = api_relay
        self.dns = dns
        self._relay_port: int | None = None
        self.host_ports = dict(host_ports or {})
        self.registry_host_ports = list(registry_host_ports)
        unknown = sorted(set(self.registry_host_ports) - set(self.host_ports))
        if unknown:
            raise StackError(f"configure node {name}: registry_host_ports {unknown} are not "
                             f"host_ports ({', '.join(self.host_ports) or 'none'})")
        self._host_relays: dict[str, int] = {}
        self._dns_applied = False
        self._requested_cidr = pod_cidr
        self._requested_port = kubelet_port
        self.network: PodNetwork | None = None
        self.containerd: Containerd | None = None
        self._services: dict[str, Service] = {}
        self._stopped: set[str] = set()
        self._health: dict[str, Callable[[], bool]] = {}
        self._proxy: KubeProxySettings | None = None
        self._lock = threading.Lock()
        self._atexit_registered = False
        self.ready_seconds: float | None = None
        """Seconds from :meth:`start` until the Node was Ready, and cluster DNS Available when
        ``dns`` (last successful start)."""
        self.dns_seconds: float | None = None
        """Of :attr:`ready_seconds`, the seconds spent applying and waiting for cluster DNS."""

    # -- public properties ------------------------------------------------------------------

    @property
    def node_ip(self) -> str:
        """The node's InternalIP (the bridge's gateway address)."""
        if self.network is None:
            raise StackError(f"read address of node {self.name}: not started")
        return self.network.gateway

    @property
    def pod_cidr(self) -> str:
        """The node's pod subnet."""
        if self.network is None:
            raise StackError(f"read pod CIDR of node {self.name}: not started")
        return self.network.cidr

    @property
    def relay_address(self) -> tuple[str, int]:
        """Where the API relay listens (the ``kubernetes`` Service's endpoint)."""
        if self.network is None or self._relay_port is None:
            raise StackError(f"read API relay address of node {self.name}: not started with "
                             "api_relay")
        return self.network.gateway, self._relay_port

    def host_address(self, name: str) -> str:
        """``address:port`` where pods reach the host service ``name`` of ``host_ports``.

        Raises:
            StackError: The node is not started, or ``name`` is not one of ``host_ports``.
        """
        if self.network is None or name not in self._host_relays:
            raise StackError(f"read in-cluster address of host service {name!r} of node "
                             f"{self.name}: " + ("not started" if self.network is None else
                                                 "not one of host_ports "
                                                 f"({', '.join(self.host_ports) or 'none'})"))
        return f"{self.network.gateway}:{self._host_relays[name]}"

    @property
    def host_addresses(self) -> dict[str, str]:
        """:meth:`host_address` of each of ``host_ports`` (empty until started)."""
        return {name: self.host_address(name) for name in self._host_relays}

    @property
    def egress_guard(self) -> EgressGuard:
        """The rule that keeps the pods' forwarded traffic on this host."""
        if self.network is None:
            raise StackError(f"read egress guard of node {self.name}: not started")
        return EgressGuard(self.network.cidr, self.network.bridge)

    @property
    def logs(self) -> dict[str, Path]:
        """Log file of each component."""
        return {name: self.workdir / "logs" / f"{name}.log"
                for name in ("containerd", "kubelet", "kube-proxy", _RELAY)}

    @property
    def pids(self) -> dict[str, int]:
        """PID of each running component."""
        return {name: s.pid for name, s in self._services.items() if s.pid is not None}

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> KubeNode:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self, timeout: float = 120, *, host_wait: float = 0.0) -> float:
        """Start the node; return the seconds until its Node was Ready.

        Args:
            timeout: Seconds for the start itself (not counting ``host_wait``).
            host_wait: Seconds to wait while another node runs on this host (one node per
                host: see :mod:`.hostlock`); 0 fails at once.

        Raises:
            StackError: A binary is missing, another node runs on this host, or a component
                did not start: the message names the component, its last error line and the
                fix. Everything started is stopped and the host is put back before raising.
        """
        with self._lock:
            if self._services:
                raise StackError(f"start node {self.name}: already started")
            longest = self.workdir / _LONGEST_SOCKET
            if len(str(longest).encode()) > UNIX_PATH_MAX:
                raise StackError(
                    f"start node {self.name}: its work dir {self.workdir} is too long for the "
                    f"kubelet's unix sockets ({len(str(longest).encode())} bytes for "
                    f"{longest}; Linux allows {UNIX_PATH_MAX}); use a shorter directory, "
                    "e.g. `modelrelease dev up --root /tmp/mr`")
            binaries = node_assets()
            if self.dns:
                binaries["coredns"] = dns.coredns_binary()
            with host_for_one_node(self.name, self.workdir, host_wait):
                began = time.monotonic()
                for sub in ("logs", "run"):
                    (self.workdir / sub).mkdir(parents=True, exist_ok=True)
                self._undo_crashed_run()
                before = hostchanges.snapshot()
                (self.workdir / _SNAPSHOT_FILE).write_text(_snapshot_to_json(before))
                if not self._atexit_registered and not self.detached:
                    atexit.register(self.stop)
                    self._atexit_registered = True
                try:
                    self._launch(binaries, began + timeout)
                except BaseException as exc:
                    try:
                        self._stop_locked()
                    except StackError as undo:
                        exc.add_note(f"then, stopping what had started: {undo}")
                    raise
                self.ready_seconds = time.monotonic() - began
                return self.ready_seconds

    def stop(self) -> None:
        """Stop every component and put the host back as it was before :meth:`start`.

        Safe to call twice and from :mod:`atexit`; the work dir (logs) stays.

        Raises:
            StackError: Something could not be undone (listed in the message).
        """
        with self._lock:
            self._stop_locked()
            if self._atexit_registered:
                atexit.unregister(self.stop)
                self._atexit_registered = False

    def stop_component(self, name: str) -> None:
        """Stop one component (a fault test); :meth:`start_component` brings it back.

        Pods keep running: containerd's shims outlive containerd, and a kubelet that stops
        does not stop its pods. The host stays as it is until :meth:`stop`.

        Raises:
            StackError: No such component runs, or it would not stop.
        """
        with self._lock:
            self._component(name).stop()
            self._stopped.add(name)

    def start_component(self, name: str, timeout: float = 60) -> int:
        """Start a stopped component again with the same config; its PID once it is healthy.

        Healthy: containerd answers on its socket, the kubelet and kube-proxy on ``/healthz``.

        Raises:
            StackError: No such component, or it did not become healthy (as :meth:`start`).
        """
        with self._lock:
            service = self._component(name)
            service.start()
            self._stopped.discard(name)
            self._wait(name, time.monotonic() + timeout, "healthy again", self._health[name])
            assert service.pid is not None
            return service.pid

    def _component(self, name: str) -> Service:
        if name not in self._services:
            raise StackError(f"find component {name} of node {self.name}: not started here "
                             f"(started: {', '.join(self._services) or 'none'})")
        return self._services[name]

    def set_gpus(self, count: int) -> None:
        """Advertise ``count`` ``nvidia.com/gpu`` (the documented extended-resource patch).

        Raises:
            StackError: The API server refused the patch.
        """
        self.gpus = count
        patch = {"status": {"capacity": {GPU_RESOURCE: str(count)},
                            "allocatable": {GPU_RESOURCE: str(count)}}}
        with self._api() as api:
            response = api.patch(f"/api/v1/nodes/{self.name}/status", content=json.dumps(patch),
                                 headers={"Content-Type": "application/merge-patch+json"})
        if response.status_code != 200:
            raise StackError(f"patch node {self.name} status: {response.status_code} "
                             f"{response.text[:300]}")

    # -- starting ---------------------------------------------------------------------------

    def _launch(self, binaries: dict[str, Path], deadline: float) -> None:
        w = self.workdir
        cidr = self._requested_cidr or free_pod_cidr()
        network = self.network = PodNetwork(cidr, SERVICE_CIDR)
        network.up()
        EgressGuard(network.cidr, network.bridge).install()  # before the first pod
        network.write_conf(w / "cni" / "net.d", w / "cni" / "ipam")
        kubelet_port, kubelet_healthz, proxy_healthz, proxy_metrics, relay_port, *hosts = \
            free_ports(5 + len(self.host_ports))
        self._host_relays = dict(zip(self.host_ports, hosts, strict=True))
        # a registry pods reach through the relay is pulled from at that address too (the
        # images a flow run in a pod pushes are named by it)
        relayed = [f"{network.gateway}:{self._host_relays[name]}"
                   for name in self.registry_host_ports]
        containerd = self.containerd = Containerd(
            w / "containerd", PAUSE_IMAGE, w / "cni" / "net.d", CNI_BIN_DIR,
            [*self.registries, *relayed])
        containerd.write()
        self._spawn("containerd", containerd.argv())
        self._wait("containerd", deadline, f"its socket {containerd.socket}", containerd.serving)
        if not containerd.has_image(PAUSE_IMAGE):
            image = build_static_image(binaries["pause"], "pause", w / "images")
            containerd.import_archive(write_oci_archive(image, PAUSE_IMAGE,
                                                        w / "images" / "pause.tar"))
        if self.dns and not containerd.has_image(dns.COREDNS_IMAGE):
            containerd.import_archive(dns.coredns_archive(binaries["coredns"]))
        if self.api_relay:
            self._start_relay(relay_port, deadline)
        pki = Pki(self.plane.workdir / "pki")
        serving = pki.issue(f"kubelet-{self.name}", self.name, server=True,
                            dns_names=[self.name], ips=[network.gateway])
        kubelet = KubeletSettings(
            binary=binaries["kubelet"], home=w / "kubelet", node_name=self.name,
            node_ip=network.gateway, port=self._requested_port or kubelet_port,
            healthz_port=kubelet_healthz,
            kubeconfig=self.plane.client_kubeconfig(f"system:node:{self.name}",
                                                    ["system:nodes"]),
            client_ca=self.plane.ca_cert, serving_cert=serving.cert, serving_key=serving.key,
            runtime_endpoint=containerd.endpoint, verbosity=self.verbosity)
        kubelet.write()
        proxy = self._proxy = KubeProxySettings(
            binary=binaries["kube-proxy"], home=w / "kube-proxy", node_name=self.name,
            node_ip=network.gateway, cluster_cidr=cidr,
            kubeconfig=self.plane.client_kubeconfig("system:kube-proxy", []),
            healthz_port=proxy_healthz, metrics_port=proxy_metrics, verbosity=self.verbosity)
        proxy.write()
        self._health = {
            "containerd": containerd.serving,
            "kubelet": lambda: self._healthz(f"http://127.0.0.1:{kubelet.healthz_port}/healthz"),
            "kube-proxy": lambda: self._healthz(f"http://127.0.0.1:{proxy_healthz}/healthz"),
        }
        self._spawn("kubelet", kubelet.argv())
        self._spawn("kube-proxy", proxy.argv())
        self._wait("kubelet", deadline, f"Node {self.name} Ready with InternalIP "
                   f"{network.gateway}", self._node_ready)
        self._wait("kube-proxy", deadline, "/healthz", self._health["kube-proxy"])
        if self.gpus:
            self.set_gpus(self.gpus)
        if self.api_relay:
            self._point_kubernetes_service()
        if self.dns:
            self._start_dns(deadline)

    def _start_relay(self, port: int, deadline: float) -> None:
        assert self.network is not None
        self._relay_port = port
        ready = self.workdir / "run" / f"{_RELAY}.ready"
        ready.unlink(missing_ok=True)
        api_port = int(self.plane.server.rsplit(":", 1)[1])
        self._spawn(_RELAY, [os.path.realpath(sys.executable), "-I",
                             str(Path(relay.__file__)),
                             f"--listen={self.network.gateway}:{port}",
                             f"--to=127.0.0.1:{api_port}", f"--ready-file={ready}",
                             *(arg for name, listen in self._host_relays.items() for arg in (
                                 f"--listen={self.network.gateway}:{listen}",
                                 f"--to=127.0.0.1:{self.host_ports[name]}"))])
        self._health[_RELAY] = self._relay_answers
        self._wait(_RELAY, deadline, f"listening on {self.network.gateway}:{port}",
                   self._relay_answers)

    def _relay_answers(self) -> bool:
        with socket.create_connection(self.relay_address, timeout=2):
            return True

    def _point_kubernetes_service(self) -> None:
        """Write the ``kubernetes`` Service's Endpoints and EndpointSlice: the relay."""
        address, port = self.relay_address
        with self._api() as api:
            for obj in (relay.kubernetes_endpoints(address, port),
                        relay.kubernetes_endpointslice(address, port)):
                dns.apply(api, obj, relay.ENDPOINTS_MANAGER)

    def _unpoint_kubernetes_service(self, api: httpx.Client) -> None:
        """Delete the ``kubernetes`` endpoints if they still name this node's relay."""
        if self.network is None:
            return
        address = self.network.gateway
        sliced = relay.kubernetes_endpointslice(address, 0)
        found = api.get(dns.path_of(sliced))
        if found.status_code != 200:
            return
        addresses = [a for e in found.json().get("endpoints") or [] for a in e["addresses"]]
        if addresses == [address]:
            dns.delete(api, sliced)
            dns.delete(api, relay.kubernetes_endpoints(address, 0))

    def _start_dns(self, deadline: float) -> None:
        began = time.monotonic()
        with self._api() as api:
            for obj in dns.objects():
                dns.apply(api, obj)
            self._dns_applied = True
            try:
                self._wait("kubelet", deadline, "cluster DNS (Deployment kube-system/coredns "
                           "Available)", lambda: dns.deployment_available(api))
            except StackError as exc:
                if "timed out" not in str(exc):
                    raise  # a component exited: its own error says why
                raise StackError(
                    f"start cluster DNS of node {self.name}: Deployment kube-system/coredns not "
                    f"Available after {time.monotonic() - began:.0f}s: "
                    f"{dns.why_not_available(api)}; fix: read `kubectl -n kube-system logs "
                    "deploy/coredns` and the node's logs/kubelet.log, or start the node with "
                    "dns=False") from exc
        self.dns_seconds = time.monotonic() - began

    def _spawn(self, name: str, argv: list[str]) -> None:
        service = Service(name, argv, self.workdir, log=self.logs[name],
                          pidfile=self.workdir / "run" / f"{name}.pid",
                          death_signal=signal.SIGTERM, detached=self.detached)
        service.start()
        self._services[name] = service

    def _wait(self, name: str, deadline: float, what: str, check: Callable[[], bool]) -> None:
        """Poll ``check``; fail fast, naming the component, if any component exits."""
        delay = 0.1
        while True:
            for other, service in self._services.items():
                if other in self._stopped:
                    continue
                if service.popen is not None and service.popen.poll() is not None:
                    raise start_failure(other, self.name, self.logs[other],
                                        f"exited with {service.popen.returncode} while "
                                        f"waiting for {name}: {what}")
            with contextlib.suppress(Exception):
                if check():
                    return
            if time.monotonic() > deadline:
                raise start_failure(name, self.name, self.logs[name],
                                    f"timed out waiting for {what}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    @staticmethod
    def _healthz(url: str) -> bool:
        return httpx.get(url, timeout=2, trust_env=False).status_code == 200

    def _api(self) -> httpx.Client:
        pki = self.plane.workdir / "pki"
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        return httpx.Client(base_url=self.plane.server, verify=ctx, timeout=10, trust_env=False)

    def _node(self) -> dict[str, Any] | None:
        with self._api() as api:
            response = api.get(f"/api/v1/nodes/{self.name}")
        if response.status_code != 200:
            return None
        found: dict[str, Any] = response.json()
        return found

    def _node_ready(self) -> bool:
        node = self._node()
        if node is None or self.network is None:
            return False
        status = node.get("status") or {}
        conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
        addresses = {(a["type"], a["address"]) for a in status.get("addresses") or []}
        return (conditions.get("Ready") == "True"
                and ("InternalIP", self.network.gateway) in addresses)

    # -- stopping ---------------------------------------------------------------------------

    def _drain(self) -> None:
        """Delete the pods bound to this node and wait until containerd runs no task."""
        if self.containerd is None or "kubelet" not in self._services:
            return
        end = time.monotonic() + _DRAIN_TIMEOUT_S
        with contextlib.suppress(httpx.HTTPError, OSError, StackError), self._api() as api:
            api.patch(f"/api/v1/nodes/{self.name}", content='{"spec":{"unschedulable":true}}',
                      headers={"Content-Type": "application/merge-patch+json"})
            while time.monotonic() < end:
                listed = api.get("/api/v1/pods",
                                 params={"fieldSelector": f"spec.nodeName={self.name}"})
                pods = listed.json().get("items", []) if listed.status_code == 200 else []
                for pod in pods:
                    meta = pod["metadata"]
                    api.request("DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/"
                                f"{meta['name']}", content='{"gracePeriodSeconds":0}')
                if not pods and not self.containerd.task_ids():
                    return
                time.sleep(0.5)

    def _remove_cluster_objects(self) -> None:
        """Delete cluster DNS and the ``kubernetes`` endpoints this node made (best effort)."""
        if not self._dns_applied and self._relay_port is None:
            return
        with contextlib.suppress(httpx.HTTPError, OSError, StackError), self._api() as api:
            if self._dns_applied:
                for obj in reversed(dns.objects()):
                    dns.delete(api, obj)
                self._dns_applied = False
            self._unpoint_kubernetes_service(api)
            self._relay_port = None
            self._host_relays = {}

    def _stop_locked(self) -> None:
        problems: list[str] = []
        self._remove_cluster_objects()
        self._drain()
        for name in ("kube-proxy", _RELAY, "kubelet", "containerd"):
            service = self._services.pop(name, None)
            if (name == "containerd" and service is not None and service.running()
                    and self.containerd is not None):
                with contextlib.suppress(OSError, subprocess.SubprocessError):
                    self.containerd.kill_tasks()
            try:
                if service is not None:
                    service.stop()
                else:  # started by another process (``dev up``), or left by a crashed run
                    reap_stale(self.workdir / "run" / f"{name}.pid")
            except StackError as exc:
                problems.append(str(exc))
            if name == "kube-proxy":
                self._proxy_cleanup()
        self._stopped.clear()
        socket = self.workdir / "containerd" / "containerd.sock"
        survivors = hostchanges.kill_pids(hostchanges.pids_with_arg(str(socket)))
        problems += [f"containerd shim {pid} survived SIGKILL" for pid in survivors]
        self._undo_host(problems)
        with contextlib.suppress(httpx.HTTPError, OSError, StackError), self._api() as api:
            api.delete(f"/api/v1/nodes/{self.name}")
        if problems:
            raise StackError(f"stop node {self.name}: could not undo: " + "; ".join(problems))

    def _proxy_cleanup(self) -> None:
        """``kube-proxy --cleanup``: its own removal of its rules (hostchanges checks after)."""
        config = self.workdir / "kube-proxy" / "config.json"
        binary = self._proxy.binary if self._proxy is not None else None
        if binary is None:
            with contextlib.suppress(StackError):
                binary = kube_assets_dir() / "kube-proxy"
        if binary is None or not config.exists() or not os.access(binary, os.X_OK):
            return
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run([str(binary), f"--config={config}", "--cleanup", "--v=0"],
                           capture_output=True, timeout=60, check=False)

    def _undo_host(self, problems: list[str]) -> None:
        snapshot_file = self.workdir / _SNAPSHOT_FILE
        if not snapshot_file.exists():
            return
        before = _snapshot_from_json(snapshot_file.read_text())
        network = self.network
        if network is None:  # a crashed run: find its bridge from the CNI conflist
            with contextlib.suppress(OSError, ValueError, KeyError, IndexError):
                conf = json.loads((self.workdir / "cni" / "net.d" /
                                   "10-kubenode.conflist").read_text())
                subnet = conf["plugins"][0]["ipam"]["ranges"][0][0]["subnet"]
                network = PodNetwork(subnet, SERVICE_CIDR)
        markers = [f"{network.name}-"] if network is not None else []
        for where in ("root", "state"):  # libcni caches results per sandbox id
            sandboxes = self.workdir / "containerd" / where / "io.containerd.grpc.v1.cri"
            with contextlib.suppress(OSError):
                markers += [f"-{d.name}-" for d in (sandboxes / "sandboxes").iterdir()]
        if network is not None:  # first: iptables-nft's tables go only once they are empty
            problems += EgressGuard(network.cidr, network.bridge).remove()
        problems += hostchanges.undo(before, mount_roots=[self.workdir], stale_markers=markers)
        if network is not None:
            problems += network.down()
        if not problems:
            snapshot_file.unlink()

    def _undo_crashed_run(self) -> None:
        """Reap processes and undo host changes an earlier, crashed run here left."""
        if not (self.workdir / _SNAPSHOT_FILE).exists():
            return
        problems: list[str] = []

        for pidfile in sorted((self.workdir / "run").glob("*.pid")):
            reap_stale(pidfile)
        socket = self.workdir / "containerd" / "containerd.sock"
        hostchanges.kill_pids(hostchanges.pids_with_arg(str(socket)))
        self._undo_host(problems)
        if problems:
            raise StackError(f"start node {self.name}: an earlier run in {self.workdir} left "
                             "changes that could not be undone: " + "; ".join(problems))
