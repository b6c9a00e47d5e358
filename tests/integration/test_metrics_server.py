"""metrics-server on the session's stack: ``metrics.k8s.io``, ``kubectl top``, an HPA on CPU.

Everything is real: the stack's metrics-server scrapes the real kubelet, the API server's
aggregation layer serves its API, and the controller manager's HorizontalPodAutoscaler
controller reads it. The load is a pod of the serving base (already in the stack's registry)
spinning a Python loop, held to 200m by its CPU limit, with a 50m request: 400% of it.

A new pod shows in ``metrics.k8s.io`` once metrics-server holds two scrapes of it (10 s apart,
:mod:`modelrelease_localstack.metrics_server`), so tests poll for its metrics with a deadline;
the ``metrics_server`` fixture (tests/conftest.py) already waited for the metrics-server itself.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client
from kubernetes.utils import parse_quantity

from modelrelease_localstack.controlplane import kube_assets_dir
from modelrelease_localstack.metrics_server import API_SERVICE
from modelrelease_localstack.stack import Stack
from tests.kube import admin_http, api, available, eventually, namespace
from tests.support import Cluster

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("metrics_server")]

NAME = "burner"
CPU_REQUEST, CPU_LIMIT = "50m", "200m"
TARGET_UTILIZATION = 50
"""Percent of the request; the loop uses about 400%."""
METRICS_TIMEOUT_S = 60.0
"""A new pod's metrics: two scrapes 10 s apart, plus its first scrape's wait."""
SCALE_UP_TIMEOUT_S = 90.0


@dataclass
class Burner:
    """The CPU-burning Deployment's namespace and the clients to look at it."""

    namespace: str
    core: client.CoreV1Api
    apps: client.AppsV1Api
    autoscaling: client.AutoscalingV2Api
    available_s: float
    """Seconds from its creation until it was Available."""

    def pods(self) -> list[client.V1Pod]:
        """Its pods that are not terminating."""
        return [p for p in self.core.list_namespaced_pod(
            self.namespace, label_selector=f"app={NAME}").items
            if p.metadata.deletion_timestamp is None]


def _burner(image: str) -> dict[str, Any]:
    container = {
        "name": NAME, "image": image,
        "command": ["python3", "-c", "while True: pass"],
        "resources": {"requests": {"cpu": CPU_REQUEST, "memory": "32Mi"},
                      "limits": {"cpu": CPU_LIMIT, "memory": "64Mi"}},
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": NAME},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": NAME}},
                 "template": {"metadata": {"labels": {"app": NAME}},
                              "spec": {"containers": [container],
                                       "terminationGracePeriodSeconds": 1}}},
    }


def _hpa() -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": NAME},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": NAME},
            "minReplicas": 1, "maxReplicas": 2,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": TARGET_UTILIZATION}}}],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 10}},
        },
    }


@pytest.fixture(scope="module")
def burner(stack: Stack, cluster: Cluster) -> Iterator[Burner]:
    """One replica of the loop, Available, in a namespace of its own."""
    assert stack.state is not None and stack.state.serving_base is not None
    with api(cluster) as api_client:
        core = client.CoreV1Api(api_client)
        apps = client.AppsV1Api(api_client)
        with namespace(core, "hpa") as ns:
            began = time.monotonic()
            apps.create_namespaced_deployment(ns, _burner(stack.state.serving_base))
            eventually(lambda: available(apps, ns, NAME), 120,
                       f"Deployment {ns}/{NAME} Available")
            yield Burner(ns, core, apps, client.AutoscalingV2Api(api_client),
                         time.monotonic() - began)


def _pod_usage(cluster: Cluster, ns: str, pod: str) -> tuple[float, float] | None:
    """(CPU cores, memory bytes) of ``pod`` from ``metrics.k8s.io``; None until it has them."""
    with admin_http(cluster) as http:
        response = http.get(f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/{pod}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, (response.status_code, response.text[:500])
    containers = response.json().get("containers") or []
    if not containers:
        return None
    cpu = sum(float(parse_quantity(c["usage"]["cpu"])) for c in containers)
    memory = sum(float(parse_quantity(c["usage"]["memory"])) for c in containers)
    return cpu, memory


def test_the_metrics_api_is_registered_with_verified_tls(cluster: Cluster) -> None:
    with admin_http(cluster) as http:
        found = http.get(f"/apis/apiregistration.k8s.io/v1/apiservices/{API_SERVICE}").json()
    conditions = {c["type"]: c for c in found["status"]["conditions"]}
    assert conditions["Available"]["status"] == "True", conditions
    assert not found["spec"].get("insecureSkipTLSVerify")
    assert found["spec"]["caBundle"]


def test_metrics_api_and_kubectl_top_show_a_pods_cpu_and_memory(
        burner: Burner, cluster: Cluster, stack: Stack) -> None:
    [pod] = burner.pods()
    name = pod.metadata.name
    began = time.monotonic()
    cpu, memory = eventually(lambda: _pod_usage(cluster, burner.namespace, name),
                             METRICS_TIMEOUT_S,
                             f"metrics.k8s.io to list pod {burner.namespace}/{name} (see "
                             f"{stack.root}/metrics-server/metrics-server.log)")
    waited = time.monotonic() - began
    print(f"\n[metrics-server] pod {name}: Available {burner.available_s:.1f}s after its "
          f"Deployment, then metrics.k8s.io data {waited:.1f}s later: "
          f"{cpu * 1000:.0f}m CPU, {memory / 2**20:.1f} MiB")
    # spinning: above its request (an idle pod shows ~0), at most its limit (the numbers are
    # the pod's cgroup's, not the node's); below the limit when the host's 2 cores are busy
    assert 0.05 <= cpu <= 0.25, f"{cpu * 1000:.0f}m CPU for a loop limited to {CPU_LIMIT}"
    assert 1 * 2**20 < memory < 64 * 2**20, f"{memory / 2**20:.1f} MiB"

    kubectl = str(kube_assets_dir() / "kubectl")
    top = subprocess.run([kubectl, "--kubeconfig", str(stack.kubeconfig), "top", "pod",
                          "-n", burner.namespace, "--no-headers"],
                         capture_output=True, text=True, timeout=30, check=False)
    assert top.returncode == 0, top.stderr
    rows = {line.split()[0]: line.split()[1:] for line in top.stdout.splitlines()}
    assert name in rows, top.stdout
    shown_cpu, shown_memory = rows[name]
    assert shown_cpu.endswith("m") and int(shown_cpu[:-1]) >= 50, top.stdout
    assert shown_memory.endswith("Mi") and int(shown_memory[:-2]) >= 1, top.stdout


def _scaling(burner: Burner) -> str:
    """What the HPA and the Deployment say now (for a failure message)."""
    hpa = burner.autoscaling.read_namespaced_horizontal_pod_autoscaler(NAME, burner.namespace)
    status = hpa.status
    metrics = [(m.resource.current.average_utilization, m.resource.current.average_value)
               for m in status.current_metrics or [] if m.resource is not None]
    conditions = [f"{c.type}={c.status} ({c.reason}: {c.message})"
                  for c in status.conditions or []]
    dep = burner.apps.read_namespaced_deployment(NAME, burner.namespace)
    return (f"Deployment replicas {dep.spec.replicas} ({dep.status.available_replicas} "
            f"available); HPA desired {status.desired_replicas}, current CPU "
            f"(utilization %, average) {metrics}; {'; '.join(conditions)}")


def test_an_hpa_on_cpu_scales_the_deployment_from_1_to_2(burner: Burner) -> None:
    assert len(burner.pods()) == 1
    began = time.monotonic()
    burner.autoscaling.create_namespaced_horizontal_pod_autoscaler(burner.namespace, _hpa())

    def scaled() -> bool:
        dep = burner.apps.read_namespaced_deployment(NAME, burner.namespace)
        return bool(dep.spec.replicas == 2)

    deadline = began + SCALE_UP_TIMEOUT_S
    while not scaled():
        assert time.monotonic() < deadline, (
            f"the HPA did not scale {burner.namespace}/{NAME} to 2 replicas within "
            f"{SCALE_UP_TIMEOUT_S:.0f}s under a load of ~{CPU_LIMIT} against a "
            f"{CPU_REQUEST} request (target {TARGET_UTILIZATION}%): {_scaling(burner)}")
        time.sleep(1)
    scaled_s = time.monotonic() - began
    eventually(lambda: available(burner.apps, burner.namespace, NAME), 60,
               f"the second replica of {burner.namespace}/{NAME} Available")
    hpa = burner.autoscaling.read_namespaced_horizontal_pod_autoscaler(NAME, burner.namespace)
    [cpu] = [m.resource.current for m in hpa.status.current_metrics or []
             if m.resource is not None and m.resource.name == "cpu"]
    print(f"\n[metrics-server] HPA scaled 1 -> 2 {scaled_s:.1f}s after it was created, "
          f"both Available {time.monotonic() - began:.1f}s after; CPU at "
          f"{cpu.average_utilization}% of the request")
    assert cpu.average_utilization > TARGET_UTILIZATION, _scaling(burner)
    assert len(burner.pods()) == 2
