"""Cluster DNS for the local node: CoreDNS, built from its Go module, run in the cluster.

``scripts/coredns-assets`` builds ``github.com/coredns/coredns@v1.15.0`` (``CGO_ENABLED=0``)
into ``${MODELRELEASE_BUILD__CACHE_DIR:-~/.cache/modelrelease}/coredns/v1.15.0/coredns``; the
binary becomes a one-layer image (:mod:`.static_image`), cached as an OCI archive beside it,
and the node imports that archive into its containerd (no registry involved). :func:`objects`
are what runs it the usual way: ServiceAccount ``kube-system/coredns`` with a ClusterRole to
list and watch services, endpointslices, namespaces and pods, a ConfigMap with the Corefile,
a one-replica Deployment and the ``kube-dns`` Service at the kubelet's ``clusterDNS``
(10.96.0.10). CoreDNS reaches the API server through the ``kubernetes`` Service (the node's
API relay), like any in-cluster client.

Nothing is forwarded upstream: the Corefile answers ``cluster.local`` and the reverse zones
from the ``kubernetes`` plugin, and REFUSED for every other name (``acl`` blocks them), so no
query leaves this host.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Final

import httpx

from modelrelease.errors import StackError
from modelrelease_localstack.assets import built_binary
from modelrelease_localstack.kubenode.kubelet import CLUSTER_DNS, CLUSTER_DOMAIN
from modelrelease_localstack.kubenode.static_image import build_static_image, write_oci_archive

__all__ = [
    "COREDNS_IMAGE",
    "COREDNS_VERSION",
    "DNS_MANAGER",
    "apply",
    "coredns_archive",
    "coredns_binary",
    "corefile",
    "delete",
    "deployment_available",
    "objects",
    "why_not_available",
]

COREDNS_VERSION: Final = "v1.15.0"
COREDNS_IMAGE: Final = f"localhost/modelrelease/coredns:{COREDNS_VERSION}"
"""The image's name in containerd (``localhost``: never pulled; ``imagePullPolicy: Never``)."""
DNS_MANAGER: Final = "modelrelease-kubenode"
"""Server-side apply field manager of the DNS objects."""
NAMESPACE: Final = "kube-system"
NAME: Final = "coredns"
_HEALTH_PORT: Final = 8080
_READY_PORT: Final = 8181


def coredns_binary() -> Path:
    """The CoreDNS executable: ``COREDNS`` when set, else ``scripts/coredns-assets``' cache.

    Raises:
        StackError: It is missing, with the command that builds it.
    """
    return built_binary("COREDNS", "coredns", COREDNS_VERSION, "coredns",
                        script="coredns-assets", otherwise="start the node with dns=False")


def coredns_archive(binary: Path) -> Path:
    """The CoreDNS image as an OCI archive, built once per binary and cached beside it.

    Built under a lock and renamed into place, so concurrent nodes share one build.
    """
    stat = binary.stat()
    cache = binary.parent
    if not os.access(cache, os.W_OK):
        cache = Path(tempfile.gettempdir()) / "modelrelease-coredns"
        cache.mkdir(parents=True, exist_ok=True)
    archive = cache / f"coredns-image-{stat.st_size}-{stat.st_mtime_ns}.oci.tar"
    if archive.exists():
        return archive
    with (cache / ".image.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if archive.exists():
            return archive
        work = Path(tempfile.mkdtemp(prefix=".image-build.", dir=cache))
        try:
            image = build_static_image(binary, "coredns", work,
                                       args=("-conf", "/etc/coredns/Corefile"))
            write_oci_archive(image, COREDNS_IMAGE, archive)
        finally:
            for path in sorted(work.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    path.rmdir() if path.is_dir() else path.unlink()
            with contextlib.suppress(OSError):
                work.rmdir()
        for old in cache.glob("coredns-image-*.oci.tar"):
            if old != archive:
                old.unlink(missing_ok=True)
    return archive


def corefile(domain: str = CLUSTER_DOMAIN) -> str:
    """The Corefile: the cluster's zones from the API; every other name REFUSED, no upstream."""
    return f"""\
{domain}:53 in-addr.arpa:53 ip6.arpa:53 {{
    errors
    health :{_HEALTH_PORT}
    ready :{_READY_PORT}
    kubernetes {domain} in-addr.arpa ip6.arpa {{
        pods insecure
        ttl 30
    }}
    cache 30
}}
.:53 {{
    errors
    acl {{
        block
    }}
}}
"""


def objects(dns_ip: str = CLUSTER_DNS) -> list[dict[str, Any]]:
    """Every object that runs cluster DNS, in apply order."""
    labels = {"k8s-app": "kube-dns", "app.kubernetes.io/name": NAME}
    meta = {"name": NAME, "namespace": NAMESPACE, "labels": labels}
    container = {
        "name": NAME,
        "image": COREDNS_IMAGE,
        "imagePullPolicy": "Never",
        "args": ["-conf", "/etc/coredns/Corefile"],
        "ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                  {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"}],
        "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns", "readOnly": True}],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": _READY_PORT},
                           "periodSeconds": 1, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/health", "port": _HEALTH_PORT},
                          "periodSeconds": 10, "failureThreshold": 5},
        "resources": {"requests": {"cpu": "10m", "memory": "30Mi"},
                      "limits": {"memory": "170Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}},
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "system:coredns", "labels": labels},
         "rules": [
             {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
              "verbs": ["list", "watch"]},
             {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
              "verbs": ["list", "watch"]},
         ]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "system:coredns", "labels": labels},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "system:coredns"},
         "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
         "data": {"Corefile": corefile()}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
         "spec": {
             "replicas": 1,
             "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
             "strategy": {"type": "RollingUpdate",
                          "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
             "template": {
                 "metadata": {"labels": labels},
                 "spec": {
                     "serviceAccountName": NAME,
                     "priorityClassName": "system-cluster-critical",
                     "dnsPolicy": "Default",
                     "terminationGracePeriodSeconds": 1,
                     "containers": [container],
                     "volumes": [{"name": "config", "configMap": {
                         "name": NAME, "items": [{"key": "Corefile", "path": "Corefile"}]}}],
                 },
             },
         }},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "kube-dns", "namespace": NAMESPACE, "labels": labels},
         "spec": {"selector": {"k8s-app": "kube-dns"}, "clusterIP": dns_ip,
                  "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                            {"name": "dns-tcp", "port": 53, "protocol": "TCP",
                             "targetPort": 53}]}},
    ]


def path_of(obj: dict[str, Any]) -> str:
    """The API path of ``obj`` (one of :func:`objects`, or the ``kubernetes`` endpoints)."""
    group_version = obj["apiVersion"]
    kind = obj["kind"]
    plural = {"Endpoints": "endpoints", "ClusterRole": "clusterroles",
              "ClusterRoleBinding": "clusterrolebindings"}.get(kind, kind.lower() + "s")
    prefix = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    namespace = obj["metadata"].get("namespace")
    where = f"/namespaces/{namespace}" if namespace else ""
    return f"{prefix}{where}/{plural}/{obj['metadata']['name']}"


def apply(api: httpx.Client, obj: dict[str, Any], manager: str = DNS_MANAGER) -> None:
    """Server-side apply ``obj`` (forcing: the node owns these fields).

    Raises:
        StackError: The API server refused it.
    """
    response = api.patch(path_of(obj), params={"fieldManager": manager, "force": "true"},
                         content=json.dumps(obj),
                         headers={"Content-Type": "application/apply-patch+yaml"})
    if response.status_code not in (200, 201):
        raise StackError(f"apply {obj['kind'].lower()} {obj['metadata'].get('namespace', '')}/"
                         f"{obj['metadata']['name']}: {response.status_code} "
                         f"{response.text[:300]}")


def delete(api: httpx.Client, obj: dict[str, Any]) -> None:
    """Delete ``obj`` (gone already is fine); errors are left to the caller's cleanup."""
    api.request("DELETE", path_of(obj),
                content=json.dumps({"propagationPolicy": "Background",
                                    "gracePeriodSeconds": 0}))


def deployment_available(api: httpx.Client) -> bool:
    """Whether the CoreDNS Deployment has a ready replica of its current template."""
    response = api.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{NAME}")
    if response.status_code != 200:
        return False
    body = response.json()
    status = body.get("status") or {}
    return (status.get("observedGeneration") == body["metadata"].get("generation")
            and (status.get("updatedReplicas") or 0) >= 1
            and (status.get("availableReplicas") or 0) >= 1)


def why_not_available(api: httpx.Client) -> str:
    """What the CoreDNS pods say: phase, unready containers' reasons (for an error message)."""
    response = api.get(f"/api/v1/namespaces/{NAMESPACE}/pods",
                       params={"labelSelector": "k8s-app=kube-dns"})
    pods = response.json().get("items", []) if response.status_code == 200 else []
    if not pods:
        return "no pod was created (see the Deployment's and ReplicaSet's events)"
    said = []
    for pod in pods:
        status = pod.get("status") or {}
        reasons = [c.get("message") or c.get("reason") or "" for c in
                   status.get("conditions") or [] if c.get("status") == "False"]
        for container in status.get("containerStatuses") or []:
            for state in (container.get("state") or {}).values():
                if state.get("reason"):
                    reasons.append(f"{state['reason']}: {state.get('message', '')}".strip(": "))
        said.append(f"pod {pod['metadata']['name']} {status.get('phase', '?')}"
                    + (f" ({'; '.join(r for r in reasons if r)})" if reasons else ""))
    return ", ".join(said)
