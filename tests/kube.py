"""Small helpers for tests against the local cluster: clients, namespaces, waiting."""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

import httpx
from kubernetes import client, config

from tests.support import Cluster

T = TypeVar("T")


def api(cluster: Cluster) -> client.ApiClient:
    """An admin API client for the session's cluster."""
    return config.new_client_from_config(config_file=str(cluster.plane.kubeconfig))


def admin_http(cluster: Cluster) -> httpx.Client:
    """httpx against the API server with the admin client certificate."""
    pki = cluster.plane.workdir / "pki"
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    return httpx.Client(base_url=cluster.plane.server, verify=ctx, timeout=30, trust_env=False)


def eventually(fn: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``fn`` until it returns something truthy; fail naming ``what``."""
    end = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = fn()
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last error
            value, last = None, exc
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}"
                                 + (f" (last error: {last})" if last else ""))
        time.sleep(0.25)


@contextmanager
def namespace(core: client.CoreV1Api, prefix: str = "t") -> Iterator[str]:
    """A namespace labelled created-by=tests, deleted afterwards."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"created-by": "tests"}}})
    try:
        yield name
    finally:
        with suppress(client.ApiException):
            core.delete_namespace(name)


def deployment(name: str, image: str, *, replicas: int = 1, command: list[str] | None = None,
               resources: dict[str, Any] | None = None, probe: bool = True) -> dict[str, Any]:
    """A model-serving Deployment manifest."""
    container: dict[str, Any] = {"name": "model", "image": image,
                                 "ports": [{"name": "http", "containerPort": 8080}]}
    if probe:
        container["readinessProbe"] = {"httpGet": {"path": "/ping", "port": "http"},
                                       "periodSeconds": 1}
    if command:
        container["command"] = command
    if resources:
        container["resources"] = resources
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [container],
                                       "terminationGracePeriodSeconds": 5}}},
    }


def service(name: str) -> dict[str, Any]:
    """A Service for ``deployment(name, ...)``."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name},
                     "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}


def available(apps: client.AppsV1Api, ns: str, name: str) -> bool:
    """Whether the Deployment is rolled out and Available."""
    dep = apps.read_namespaced_deployment(name, ns)
    status = dep.status
    conditions = {c.type: c.status for c in status.conditions or []}
    return bool(conditions.get("Available") == "True"
                and status.updated_replicas == dep.spec.replicas
                and status.available_replicas == dep.spec.replicas
                and status.observed_generation >= dep.metadata.generation
                and (status.replicas or 0) == dep.spec.replicas)
