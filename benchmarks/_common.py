"""Shared by the benchmark scripts (run as ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import contextlib
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from modelrelease.adapters.kube import KubeCluster
from modelrelease.settings import KubeConfig, PipelineSettings

try:  # a tree from before the local stack became its own distribution (release_path --baseline)
    from modelrelease.localstack.demo import demo_endpoint  # type: ignore
    from modelrelease.localstack.stack import Stack  # type: ignore
except ImportError:
    from modelrelease_localstack.demo import demo_endpoint
    from modelrelease_localstack.stack import Stack

REPO = Path(__file__).resolve().parents[1]
#: the benchmarks' endpoint: the demo's iris model, in its own namespace
NAMESPACE, ENDPOINT, MODEL = "bench", "iris", "bench-iris"


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so cleanup (finally blocks, stack stops) runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def bench_endpoint(kubeconfig: Path, document: dict[str, Any], spec_file: Path
                   ) -> KubeCluster:
    """Install the CRD and the endpoint's namespace, and write its file to ``spec_file``."""
    cluster = KubeCluster(KubeConfig(kubeconfig=kubeconfig))
    cluster.apply(yaml.safe_load((REPO / "deployments/kubernetes/crd.yaml").read_text()))
    cluster.apply({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": document["metadata"]["namespace"]}})
    time.sleep(1.0)  # the CRD's REST mapping settles
    spec_file.write_text(yaml.safe_dump(document))
    return cluster


@dataclass(frozen=True)
class BenchStack:
    """A local stack with the benchmarks' endpoint installed (see ``bench_stack``)."""

    stack: Any
    env: dict[str, str]
    spec_file: Path
    cluster: KubeCluster
    cache_dir: Path

    @property
    def tracking_uri(self) -> str:
        return self.env["MLFLOW_TRACKING_URI"]

    @property
    def settings_env(self) -> dict[str, str]:
        """The pipeline's settings for this stack, as environment variables."""
        return {"MODELRELEASE_KUBE__KUBECONFIG": str(self.stack.kubeconfig),
                "MODELRELEASE_MLFLOW__TRACKING_URI": self.tracking_uri,
                "MODELRELEASE_BUILD__CACHE_DIR": str(self.cache_dir),
                "MODELRELEASE_RELEASE__LOAD_RATE": "30"}

    def settings(self) -> PipelineSettings:
        return PipelineSettings(mlflow={"tracking_uri": self.tracking_uri},
                                kube={"kubeconfig": self.stack.kubeconfig},
                                build={"cache_dir": self.cache_dir},
                                release={"load_rate": 30})


@contextlib.contextmanager
def bench_stack(prefix: str) -> Iterator[BenchStack]:
    """A local stack in a temporary directory (in-process, stopped at the end), with the
    ModelEndpoint CRD and the demo endpoint ``iris`` (model ``bench-iris``) installed."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp, \
            Stack(Path(tmp) / "stack", progress=log) as stack:
        env = stack.env()
        spec_file = Path(tmp) / f"{ENDPOINT}.yaml"
        cluster = bench_endpoint(
            stack.kubeconfig,
            demo_endpoint(env, name=ENDPOINT, namespace=NAMESPACE, model=MODEL), spec_file)
        try:
            yield BenchStack(stack, env, spec_file, cluster, Path(tmp) / "cache")
        finally:
            cluster.close()
