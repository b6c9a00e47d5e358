"""Shared by the benchmark scripts (run as ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from modelrelease.adapters.kube import KubeCluster
from modelrelease.settings import KubeConfig

REPO = Path(__file__).resolve().parents[1]


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
