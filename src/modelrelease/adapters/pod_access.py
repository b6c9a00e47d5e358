"""``PodAccess``: URLs and clients for an endpoint's pods, by the path ``domain.pod_access`` picks.

The path is decided once, on first use, from the endpoint's own Service (the one users
call): its ClusterIP, this host's routing table and whether the pipeline runs in a pod.
On the ClusterIP path requests go straight to ``http://CLUSTER_IP:PORT/...``; in a pod, to
the Service's cluster DNS name, ``http://SERVICE.NAMESPACE.svc:PORT/...``, as the endpoint's
clients in the cluster call it (a pod's metrics to ``http://POD_IP:PORT/...`` on both),
carrying no credentials; on the proxy path they go through the API server with the
kubeconfig's identity (``ServiceProxy``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from modelrelease.adapters.kube import KubeCluster
from modelrelease.adapters.probe import ServiceProxy
from modelrelease.domain.pod_access import AccessMode, PodPath, choose_path, local_route
from modelrelease.errors import InvalidInput

log = logging.getLogger(__name__)
ROUTES = Path("/proc/net/route")
ROUTED_WITHIN_S = 20.0
"""How long the first call to a Service whose pods just became Ready may find no route.

The pods are Ready before every path to them knows: kube-proxy programs a Service's new
endpoints a moment later (until then the ClusterIP refuses the connection), and an API
server that has just restarted answers its service proxy with 503 until its endpoint
cache is filled. Usually a second; longer while a node's iptables lock is busy or the API
server is coming back."""


def _routes() -> str:
    try:
        return ROUTES.read_text()
    except OSError:  # not Linux: no table to read, so only the default route is assumed
        return ""


class PodAccess:
    """Reaches one endpoint's Services and pods (the ``PodRoute`` of smoke, load, scraping).

    Args:
        cluster: The cluster the endpoint is in.
        mode: ``auto`` (default), ``direct`` or ``proxy`` (``MODELRELEASE_KUBE__POD_ACCESS``).
        namespace: The endpoint's namespace.
        service: The endpoint's Service (``E``), whose ClusterIP decides the path.
        routes: Reads the routing table (``/proc/net/route``).
        in_cluster: Whether the pipeline runs in a pod (default: ``KUBERNETES_SERVICE_HOST``).
    """

    def __init__(self, cluster: KubeCluster, mode: AccessMode, namespace: str, service: str,
                 *, routes: Callable[[], str] = _routes, in_cluster: bool | None = None
                 ) -> None:
        self.cluster = cluster
        self.mode = mode
        self.namespace = namespace
        self.service = service
        self.proxy = ServiceProxy(cluster._api.configuration)
        self._routes = routes
        self.in_cluster = (bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
                           if in_cluster is None else in_cluster)
        self.path: PodPath | None = None
        self.reason = ""
        self._ports: dict[tuple[str, str, str], str] = {}

    def decide(self) -> PodPath:
        """The path (decided on first call once the endpoint's Service exists)."""
        if self.path is not None:
            return self.path
        found = self.cluster.get("v1", "Service", self.service, self.namespace)
        ip = _cluster_ip(found)
        path, reason = choose_path(self.mode, in_cluster=self.in_cluster,
                                   route=local_route(self._routes(), ip) if ip else None,
                                   cluster_ip=ip)
        if found is None and self.mode is not AccessMode.PROXY:
            return path  # no Service yet: ask again once the release has applied it
        self.path, self.reason = path, reason
        log.info("pods of %s/%s reached through %s: %s", self.namespace, self.service,
                 path.value, reason)
        return path

    @property
    def via(self) -> str:
        """The path taken and why, for the report (undecided: not used yet)."""
        return f"{self.path.value} ({self.reason})" if self.path else "not used yet"

    def url(self, namespace: str, service: str, path: str = "", port: str = "http") -> str:
        """The URL of ``path`` on ``service``'s named ``port``."""
        if self.decide() is PodPath.API_PROXY:
            return self.proxy.url(namespace, service, path, port)
        key = (namespace, service, port)
        if key not in self._ports:
            found = self.cluster.get("v1", "Service", service, namespace)
            ip = _cluster_ip(found)
            number = next((p.get("port") for p in ((found or {}).get("spec") or {}).get(
                "ports") or [] if p.get("name") == port), None)
            if ip is None or number is None:
                raise InvalidInput(f"reach service {namespace}/{service}: no ClusterIP or no "
                                   f"port named {port}; use MODELRELEASE_KUBE__POD_ACCESS=proxy")
            host = f"{service}.{namespace}.svc" if self.path is PodPath.CLUSTER_DNS else ip
            self._ports[key] = f"http://{host}:{number}"
        return f"{self._ports[key]}/{path.lstrip('/')}"

    def pod_url(self, namespace: str, pod: str, port: int, path: str = "") -> str:
        """The URL of ``path`` on one pod's ``port``."""
        if self.decide() is PodPath.API_PROXY:
            return self.proxy.pod_url(namespace, pod, port, path)
        found = self.cluster.get("v1", "Pod", pod, namespace) or {}
        ip = (found.get("status") or {}).get("podIP")
        if not ip:
            raise InvalidInput(f"reach pod {namespace}/{pod}: it has no IP yet")
        return f"http://{ip}:{port}/{path.lstrip('/')}"

    def client(self, timeout: float = 10.0) -> httpx.Client:
        """A client for these URLs (the kubeconfig's identity only on the proxy path)."""
        if self.decide() is PodPath.API_PROXY:
            return self.proxy.client(timeout)
        return httpx.Client(timeout=timeout, trust_env=False)

    def transport(self) -> Callable[[], httpx.AsyncBaseTransport] | None:
        """The load generator's lane factory: the proxy's, or None (the plain-http lane)."""
        if self.decide() is PodPath.API_PROXY:
            return self.proxy.async_transport
        return None


def _cluster_ip(service: dict[str, Any] | None) -> str | None:
    ip = ((service or {}).get("spec") or {}).get("clusterIP")
    return str(ip) if ip and ip != "None" else None


def get_once_routed(http: httpx.Client, url: str,
                    within: float = ROUTED_WITHIN_S) -> httpx.Response:
    """``GET url``, retrying a refused connection or a 503 for up to ``within`` s.

    For the first call to a Service whose pods just became Ready (the smoke test), on
    either path (see :data:`ROUTED_WITHIN_S`). Any other answer is returned at once;
    a 503 that lasts the whole window is returned as it is.

    Raises:
        httpx.HTTPError: Any other transport error at once; a refused connection once
            ``within`` has passed.
    """
    deadline = time.monotonic() + within
    misses = 0
    while True:
        try:
            answer = http.get(url)
        except httpx.ConnectError:
            if time.monotonic() >= deadline:
                raise
        else:
            if answer.status_code != 503 or time.monotonic() >= deadline:
                if misses:
                    log.info("%s answered %d after %d refused connection(s) or 503s: "
                             "its route was not ready yet", url, answer.status_code,
                             misses)
                return answer
        misses += 1
        time.sleep(0.25)
