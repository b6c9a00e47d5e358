"""The demo: the demo model from MLflow to a serving pod on the local Kubernetes stack.

Starts the local stack in a temporary directory (control plane, node agent, registry,
MLflow, Prefect), builds the demo model's image without a daemon, deploys it, asks it
for predictions through the API server's service proxy, rebuilds the image (nothing
uploaded), and stops everything. The release flow (canary, judge, promote/rollback)
will take over the deploy step when it lands.
"""

from __future__ import annotations

import json
import ssl
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from modelrelease.adapters.kube import KubeCluster
from modelrelease.build.builder import BuildRequest, ImageBuilder
from modelrelease.domain.readiness import RolloutState, assess
from modelrelease.errors import RolloutTimeout
from modelrelease.localstack.stack import DEMO_ALIAS, DEMO_MODEL, Stack
from modelrelease.settings import KubeConfig, PipelineSettings

NAMESPACE = "demo"


def _objects(image: str) -> list[dict[str, object]]:
    labels = {"app.kubernetes.io/name": "iris"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "iris", "namespace": NAMESPACE},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": {
                      "automountServiceAccountToken": False,
                      "containers": [{"name": "model", "image": image,
                                      "ports": [{"name": "http", "containerPort": 8080}],
                                      "readinessProbe": {"httpGet": {"path": "/ping",
                                                                     "port": "http"},
                                                         "periodSeconds": 1}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "iris",
                                                             "namespace": NAMESPACE},
         "spec": {"selector": labels, "ports": [{"name": "http", "port": 80,
                                                 "targetPort": "http"}]}},
    ]


def run_demo(workdir: Path | None = None, say: Callable[[str], None] = print) -> None:
    """Run the demo end to end, printing each step."""
    root = workdir or Path(tempfile.mkdtemp(prefix="modelrelease-demo-"))
    say(f"demo workdir: {root}")
    with Stack(root / "stack", progress=lambda line: say(f"  {line}")) as stack:
        env = stack.env()
        settings = PipelineSettings(mlflow={"tracking_uri": env["MLFLOW_TRACKING_URI"]},
                                    build={"cache_dir": root / "cache"})
        builder = ImageBuilder(settings, progress=lambda line: say(f"  {line}"))
        request = BuildRequest(model=f"models:/{DEMO_MODEL}@{DEMO_ALIAS}",
                               base=env["MODELRELEASE_BUILD__BASE_IMAGE"],
                               to=f"{env['LOCAL_REGISTRY']}/ml/iris")
        first = builder.build(request)
        say(f"built {first.image} in {first.seconds:.2f}s "
            f"({first.stats.bytes_uploaded} bytes uploaded)")
        again = builder.build(request)
        say(f"rebuilt the unchanged version in {again.seconds:.2f}s: same digest "
            f"{again.digest == first.digest}, {again.stats.bytes_uploaded} bytes uploaded")
        builder.registry.close()

        cluster = KubeCluster(KubeConfig(kubeconfig=stack.kubeconfig))
        try:
            start = time.monotonic()
            for obj in _objects(first.image):
                cluster.apply(obj)
            deadline = start + 120
            while True:
                deployment = cluster.get("apps/v1", "Deployment", "iris", NAMESPACE) or {}
                pods = cluster.pods(NAMESPACE, "app.kubernetes.io/name=iris")
                readiness = assess(deployment, pods)
                if readiness.state == RolloutState.READY:
                    break
                if readiness.state == RolloutState.FAILED or time.monotonic() > deadline:
                    raise RolloutTimeout(f"deploy demo model: {readiness.reason}")
                time.sleep(0.5)
            say(f"deployment {NAMESPACE}/iris available in {time.monotonic() - start:.1f}s: "
                f"{readiness.reason}")
            pki = stack.kubeconfig.parent / "pki"
            ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
            ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
            body = {"dataframe_split": {
                "columns": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
                "data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}}
            url = (f"{stack.state.api_server if stack.state else ''}/api/v1/namespaces/"
                   f"{NAMESPACE}/services/iris:http/proxy/invocations")
            answer = httpx.post(url, json=body, verify=ctx, timeout=30, trust_env=False)
            say(f"POST /invocations through the API server's service proxy -> "
                f"{answer.status_code} {json.dumps(answer.json())}")
        finally:
            cluster.close()
    say("demo finished; every process of the stack stopped")
