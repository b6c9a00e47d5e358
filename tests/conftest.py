"""Session-wide real services: one MLflow server and registries for the whole test run.

Everything binds to 127.0.0.1; every process is stopped by its PID at session end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from modelrelease.adapters.oci_registry import RegistryClient
from modelrelease.build.base import build_dev_base
from modelrelease.localstack.controlplane import ControlPlane
from modelrelease.localstack.mlflow_server import LocalMlflow
from modelrelease.localstack.node import LocalNode
from modelrelease.localstack.registry import LocalRegistry
from modelrelease.settings import RegistryConfig
from tests.support import REGISTRY_PASSWORD, REGISTRY_USER, Cluster, Services

# Keep MLflow's client from retrying for minutes when a test points it at nothing.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    root = tmp_path_factory.mktemp("services")
    mlflow = LocalMlflow(root / "mlflow")
    registry = LocalRegistry(root / "registry")
    secure = LocalRegistry(root / "secure-registry", tls=True,
                           users={REGISTRY_USER: REGISTRY_PASSWORD})
    started: list[LocalMlflow | LocalRegistry] = []
    try:
        for service in (registry, secure, mlflow):
            service.start()
            started.append(service)
        cache = root / "cache"
        with RegistryClient(RegistryConfig()) as client:
            base_digest, _ = build_dev_base(f"{registry.host}/ml/serving-base:dev", client, cache)
        secure_config = RegistryConfig(username=REGISTRY_USER, password=REGISTRY_PASSWORD,  # type: ignore[arg-type]
                                       ca_file=secure.ca_cert)
        with RegistryClient(secure_config) as client:
            secure_digest, _ = build_dev_base(f"{secure.host}/ml/serving-base:dev", client, cache)
        yield Services(
            mlflow=mlflow, registry=registry, secure_registry=secure,
            base=f"{registry.host}/ml/serving-base@{base_digest}",
            secure_base=f"{secure.host}/ml/serving-base@{secure_digest}", cache=cache,
        )
    finally:
        for service in reversed(started):
            service.stop()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The session's real Kubernetes: control plane plus one node agent (1 GPU)."""
    root = tmp_path_factory.mktemp("cluster")
    plane = ControlPlane(root / "control-plane")
    plane.start()
    node = LocalNode(root / "node", plane.kubeconfig, gpus=1, backoff_initial=1.0)
    try:
        node.start()
        yield Cluster(plane=plane, node=node)
    finally:
        node.stop()
        plane.stop()
