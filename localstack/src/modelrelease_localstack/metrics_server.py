"""metrics-server for the local node: ``kubectl top`` and HorizontalPodAutoscalers on CPU.

A real metrics-server (``sigs.k8s.io/metrics-server``, built by
``scripts/metrics-server-assets``) runs as a host process beside the node's, as Prometheus
does: it scrapes the kubelet's ``/metrics/resource`` with a client certificate of the cluster
CA (user ``system:metrics-server``; the kubelet authorizes it as ``nodes/metrics`` through the
API server) and serves ``metrics.k8s.io/v1beta1`` through the API server's aggregation layer.

How the API server reaches it: it listens on the node's address (the bridge's gateway,
``10.245.N.1``; an EndpointSlice may not name a loopback address) with a serving certificate
of the cluster CA for ``metrics-server.kube-system.svc``. ``Service kube-system/metrics-server``
has no selector; its EndpointSlice names that address and port, and ``APIService
v1beta1.metrics.k8s.io`` points at the Service with the cluster CA as its ``caBundle`` (TLS is
verified, never skipped). The API server runs with ``--enable-aggregator-routing``, so it
dials the slice's address, and presents its front-proxy client certificate
(:class:`~modelrelease_localstack.controlplane.ControlPlane`).

Two kinds of ready: :meth:`MetricsServer.start` returns once the process answers and the
APIService is ``Available`` (about a second: the API works, lists may still be empty);
:meth:`MetricsServer.wait_ready` waits until ``/readyz`` answers, i.e. it holds two scrapes of
the node and its pods (one resolution, 10 s, after the start), so ``kubectl top`` shows data.
A pod created later appears one to two resolutions after it starts.

:meth:`MetricsServer.stop` deletes the APIService first (an APIService left unavailable
breaks discovery of ``metrics.k8s.io``: namespaces then stay Terminating and kubectl prints
discovery errors), then the EndpointSlice, the Service and the RBAC, then stops the process.
"""

from __future__ import annotations

import base64
import contextlib
import ssl
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import httpx

from modelrelease.errors import StackError
from modelrelease_localstack.assets import built_binary
from modelrelease_localstack.controlplane import ControlPlane
from modelrelease_localstack.kubenode import dns
from modelrelease_localstack.pki import Pki
from modelrelease_localstack.process import Service, free_ports, reap_stale

__all__ = ["API_SERVICE", "NAME", "NAMESPACE", "VERSION", "MetricsServer",
           "metrics_server_binary", "objects"]

VERSION: Final = "v0.9.0"
"""The metrics-server ``scripts/metrics-server-assets`` builds; part of the cache path."""
NAME: Final = "metrics-server"
NAMESPACE: Final = "kube-system"
USER: Final = "system:metrics-server"
"""The identity it scrapes kubelets and calls the API server with (client certificate CN)."""
API_SERVICE: Final = "v1beta1.metrics.k8s.io"
MANAGER: Final = "modelrelease-metrics-server"
"""Server-side apply field manager (and EndpointSlice ``managed-by``) of its objects."""
RESOLUTION: Final = timedelta(seconds=10)
"""Scrape interval (metrics-server's minimum; its default is 60 s)."""
KUBELET_TIMEOUT: Final = timedelta(seconds=5)
"""Per-scrape timeout; metrics-server wants it under 90% of the resolution."""


def metrics_server_binary() -> Path:
    """The binary: ``METRICS_SERVER`` when set, else ``scripts/metrics-server-assets``' cache.

    Raises:
        StackError: It is missing, with the command that builds it.
    """
    return built_binary("METRICS_SERVER", "metrics-server", VERSION, "metrics-server",
                        script="metrics-server-assets",
                        otherwise="set METRICS_SERVER to a metrics-server binary")


def _seconds(value: timedelta) -> str:
    return f"{int(value.total_seconds())}s"


def objects(address: str, port: int, ca_bundle: bytes) -> list[dict[str, Any]]:
    """Every object metrics-server needs in the cluster, in apply order (the APIService last).

    Args:
        address: Where it listens (the node's address).
        port: Its HTTPS port there.
        ca_bundle: PEM of the CA that signed its serving certificate (the cluster CA).
    """
    labels = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/managed-by": MANAGER}
    user = [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}]

    def role_ref(kind: str, name: str) -> dict[str, str]:
        return {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name}

    rbac = "rbac.authorization.k8s.io/v1"
    return [
        # upstream's manifests/base/rbac.yaml, bound to the user instead of a ServiceAccount
        {"apiVersion": rbac, "kind": "ClusterRole",
         "metadata": {"name": "system:aggregated-metrics-reader",
                      "labels": {**labels,
                                 "rbac.authorization.k8s.io/aggregate-to-admin": "true",
                                 "rbac.authorization.k8s.io/aggregate-to-edit": "true",
                                 "rbac.authorization.k8s.io/aggregate-to-view": "true"}},
         "rules": [{"apiGroups": ["metrics.k8s.io"], "resources": ["pods", "nodes"],
                    "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": rbac, "kind": "ClusterRole",
         "metadata": {"name": USER, "labels": labels},
         "rules": [{"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
                   {"apiGroups": [""], "resources": ["pods", "nodes"],
                    "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": rbac, "kind": "ClusterRoleBinding",
         "metadata": {"name": USER, "labels": labels},
         "roleRef": role_ref("ClusterRole", USER), "subjects": user},
        {"apiVersion": rbac, "kind": "ClusterRoleBinding",
         "metadata": {"name": f"{NAME}:system:auth-delegator", "labels": labels},
         "roleRef": role_ref("ClusterRole", "system:auth-delegator"), "subjects": user},
        {"apiVersion": rbac, "kind": "RoleBinding",
         "metadata": {"name": f"{NAME}-auth-reader", "namespace": NAMESPACE, "labels": labels},
         "roleRef": role_ref("Role", "extension-apiserver-authentication-reader"),
         "subjects": user},
        # no selector: the slice below is the Service's only endpoint, written by us
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels},
         "spec": {"ports": [{"name": "https", "port": 443, "protocol": "TCP",
                             "targetPort": port}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": NAME, "namespace": NAMESPACE,
                      "labels": {**labels, "kubernetes.io/service-name": NAME,
                                 "endpointslice.kubernetes.io/managed-by":
                                     f"{MANAGER}.modelrelease.io"}},
         "addressType": "IPv4",
         "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
         # the name must be the Service port's: the aggregator matches slice ports by name
         "ports": [{"name": "https", "port": port, "protocol": "TCP"}]},
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
         "metadata": {"name": API_SERVICE, "labels": labels},
         "spec": {"group": "metrics.k8s.io", "version": "v1beta1",
                  "service": {"name": NAME, "namespace": NAMESPACE, "port": 443},
                  "caBundle": base64.b64encode(ca_bundle).decode(),
                  "groupPriorityMinimum": 100, "versionPriority": 100}},
    ]


class MetricsServer:
    """One metrics-server process for ``plane``'s node, and its objects in the cluster.

    Its log, pidfile, serving certificate and key live under ``workdir``.

    Args:
        workdir: Its files.
        plane: The started control plane (its CA signs the serving certificate).
        node_ip: The node's address: where it listens. Needed by :meth:`start` only
            (:meth:`stop` of another process's metrics-server needs none).
        port: Its HTTPS port on that address; a free one by default.
        detached: Let the process outlive this one (``modelrelease dev up``).
    """

    def __init__(self, workdir: Path, plane: ControlPlane, *, node_ip: str | None = None,
                 port: int | None = None, detached: bool = False) -> None:
        self.workdir = Path(workdir).absolute()
        self.plane = plane
        self.node_ip = node_ip
        self.port = port or free_ports(1)[0]
        self.detached = detached
        self.service: Service | None = None
        self._began: float | None = None

    @property
    def url(self) -> str:
        """Its HTTPS base URL on the node's address."""
        if self.node_ip is None:
            raise StackError(f"read address of {NAME}: no node address given")
        return f"https://{self.node_ip}:{self.port}"

    @property
    def pidfile(self) -> Path:
        """Where the running process's PID is written."""
        return self.workdir / f"{NAME}.pid"

    @property
    def log(self) -> Path:
        """Its log file."""
        return self.workdir / f"{NAME}.log"

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> float:
        """Start it and register its API; return the seconds until the APIService was Available.

        Raises:
            StackError: The binary is missing, the process exits, the API server refuses an
                object, or a wait times out; the message carries the log's last lines or
                the APIService's condition.
        """
        binary = metrics_server_binary()
        if self.node_ip is None:
            raise StackError(f"start {NAME}: no node address given (it listens there)")
        began = self._began = time.monotonic()
        deadline = began + timeout
        self.workdir.mkdir(parents=True, exist_ok=True)
        pki = Pki(self.plane.workdir / "pki")
        serving = pki.issue(NAME, f"{NAME}.{NAMESPACE}.svc", server=True,
                            dns_names=[f"{NAME}.{NAMESPACE}.svc",
                                       f"{NAME}.{NAMESPACE}.svc.cluster.local"],
                            ips=[self.node_ip])
        kubeconfig = str(self.plane.client_kubeconfig(USER, []))
        made = objects(self.node_ip, self.port, self.plane.ca_cert.read_bytes())
        argv = [
            str(binary),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={self.node_ip}",
            f"--secure-port={self.port}",
            f"--tls-cert-file={serving.cert}",
            f"--tls-private-key-file={serving.key}",
            # the kubelet's serving certificate is the cluster CA's, for the node's address
            f"--kubelet-certificate-authority={self.plane.ca_cert}",
            "--kubelet-use-node-status-port",  # the kubelet listens on a free port, not 10250
            "--kubelet-preferred-address-types=InternalIP",  # node names do not resolve here
            f"--metric-resolution={_seconds(RESOLUTION)}",
            f"--kubelet-request-timeout={_seconds(KUBELET_TIMEOUT)}",
            "--v=1",
        ]
        try:
            with self._api() as api:
                for obj in made:  # RBAC first: it reads its authentication config at start
                    if obj["kind"] in ("Service", "EndpointSlice", "APIService"):
                        continue
                    dns.apply(api, obj, MANAGER)
                self.service = Service(NAME, argv, self.workdir, log=self.log,
                                       pidfile=self.pidfile, detached=self.detached)
                self.service.start()
                self.service.wait_ready(self._live, max(0.0, deadline - time.monotonic()),
                                        f"/livez on {self.url}")
                for obj in made:
                    if obj["kind"] in ("Service", "EndpointSlice", "APIService"):
                        dns.apply(api, obj, MANAGER)
                self.service.wait_ready(lambda: self._available(api) is None,
                                        max(0.0, deadline - time.monotonic()),
                                        f"APIService {API_SERVICE} Available")
        except StackError as exc:
            if "timed out" in exc.message and "APIService" in exc.message:
                with contextlib.suppress(httpx.HTTPError, OSError), self._api() as api:
                    exc.add_note(f"APIService {API_SERVICE}: {self._available(api)}")
            with contextlib.suppress(StackError):
                self.stop()
            raise
        except BaseException:
            with contextlib.suppress(StackError):
                self.stop()
            raise
        return time.monotonic() - began

    def wait_ready(self, timeout: float = 60) -> float:
        """Wait until ``/readyz`` answers: two scrapes of the node and its pods are held.

        Returns:
            Seconds from :meth:`start` until then.

        Raises:
            StackError: Not started here, the process exited, or ``timeout`` passed (with the
                log's last lines: a kubelet it cannot scrape says why there).
        """
        if self.service is None or self._began is None:
            raise StackError(f"wait for {NAME}: not started by this process")
        self.service.wait_ready(self._ready, timeout,
                                f"/readyz on {self.url} (its first two kubelet scrapes)")
        return time.monotonic() - self._began

    def stop(self) -> None:
        """Delete its objects, the APIService first, then stop the process.

        Deleting is best effort: with the API server gone there is nothing left to break.
        Safe to call twice; stops a process another Python process started in ``workdir``
        (by its pidfile) too.

        Raises:
            StackError: The process would not stop.
        """
        with contextlib.suppress(httpx.HTTPError, OSError, StackError), self._api() as api:
            for obj in reversed(objects(self.node_ip or "0.0.0.0", self.port, b"")):
                dns.delete(api, obj)
        if self.service is not None:
            self.service.stop()
            self.service = None
        else:
            reap_stale(self.pidfile)

    # -- probes -----------------------------------------------------------------------------

    def _api(self) -> httpx.Client:
        pki = self.plane.workdir / "pki"
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        return httpx.Client(base_url=self.plane.server, verify=ctx, timeout=10, trust_env=False)

    def _get(self, path: str) -> bool:
        ctx = ssl.create_default_context(cafile=str(self.plane.ca_cert))
        response = httpx.get(f"{self.url}{path}", verify=ctx, timeout=2, trust_env=False)
        return response.status_code == 200

    def _live(self) -> bool:
        return self._get("/livez")

    def _ready(self) -> bool:
        return self._get("/readyz")

    @staticmethod
    def _available(api: httpx.Client) -> str | None:
        """None when the APIService is Available, else why not (its condition)."""
        response = api.get(f"/apis/apiregistration.k8s.io/v1/apiservices/{API_SERVICE}")
        if response.status_code != 200:
            return f"{response.status_code} {response.text[:200]}"
        for condition in (response.json().get("status") or {}).get("conditions") or []:
            if condition.get("type") == "Available":
                if condition.get("status") == "True":
                    return None
                return f"{condition.get('reason')}: {condition.get('message')}"
        return "no Available condition yet"
