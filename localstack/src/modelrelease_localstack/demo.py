"""The demo: real releases on the local stack, one promoted and one rolled back.

Starts the local stack in a temporary directory (control plane, a real node, registry,
MLflow, Prefect), installs the ModelEndpoint CRD, then releases the demo iris model:
version 1 becomes primary, version 2 (retrained) is canaried beside it and promoted,
and version 3 (answers 3x slower) is canaried and rolled back while the primary keeps
serving. Everything stops at the end.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from modelrelease.adapters.kube import KubeCluster
from modelrelease.release.driver import run_release
from modelrelease.render import crd_yaml
from modelrelease.settings import KubeConfig, PipelineSettings
from modelrelease.spec import ReleaseRequest
from modelrelease_localstack.demo_model import register_faulty_model, register_iris_model
from modelrelease_localstack.stack import DEMO_ALIAS, DEMO_MODEL, Stack

NAMESPACE = "demo"


def demo_endpoint(env: Mapping[str, str], *, name: str, namespace: str, model: str,
                  hold: str = "10s") -> dict[str, Any]:
    """A small ModelEndpoint document for the local stack (``env``: ``Stack.env()``)."""
    return {
        "apiVersion": "modelrelease.io/v1alpha1", "kind": "ModelEndpoint",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"model": {"name": model, "alias": DEMO_ALIAS},
                 "image": {"repository": f"{env['LOCAL_REGISTRY']}/{namespace}/{name}",
                           "base": env["MODELRELEASE_BUILD__BASE_IMAGE"]},
                 "resources": {"cpu": "250m", "memory": "512Mi"},
                 "autoscaling": {"minReplicas": 1, "maxReplicas": 2},
                 "canary": {"steps": [{"weight": 50, "hold": hold}],
                            "checks": {"latency": {"maxRegression": 0.5},
                                       "maxErrorRate": 0.01, "minRequests": 100}}},
    }


def run_demo(workdir: Path | None = None, say: Callable[[str], None] = print) -> None:
    """Run the demo end to end, printing each step."""
    root = workdir or Path(tempfile.mkdtemp(prefix="modelrelease-demo-"))
    say(f"demo workdir: {root}")
    # sqlite: the demo's embedded default, one process less than the stack's PostgreSQL
    with Stack(root / "stack", progress=lambda line: say(f"  {line}"),
               database="sqlite") as stack:
        env = stack.env()
        cluster = KubeCluster(KubeConfig(kubeconfig=stack.kubeconfig))
        try:
            cluster.apply(yaml.safe_load(crd_yaml()))
            cluster.apply({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": NAMESPACE}})
            time.sleep(1.0)  # let the new CRD be served
        finally:
            cluster.close()
        endpoint = demo_endpoint(env, name="iris", namespace=NAMESPACE, model=DEMO_MODEL)
        spec_file = root / "iris.yaml"
        spec_file.write_text(yaml.safe_dump(endpoint))
        say(f"endpoint file: {spec_file}")
        settings = PipelineSettings(mlflow={"tracking_uri": env["MLFLOW_TRACKING_URI"]},
                                    kube={"kubeconfig": stack.kubeconfig},
                                    build={"cache_dir": root / "cache"})
        tracking = env["MLFLOW_TRACKING_URI"]

        def release(title: str, version: int | None = None) -> None:
            say(f"== {title}")
            result = run_release(ReleaseRequest(endpoint=str(spec_file), version=version),
                                 settings, say=lambda line: say(f"  {line}"))
            say(f"   -> {result.summary()}")

        release("release 1: the demo model's first version becomes primary")
        register_iris_model(tracking, DEMO_MODEL, alias=DEMO_ALIAS, c=0.3)
        release("release 2: a retrained version, canaried beside the primary")
        slow = register_faulty_model(tracking, DEMO_MODEL, "slow", delay_s=0.06)
        release(f"release 3: version {slow} answers 3x slower, so it must be rolled back",
                version=int(slow))
    say("demo finished; every process of the stack stopped")
