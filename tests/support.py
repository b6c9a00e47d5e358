"""Shared test helpers: the session services' handle and test credentials."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelrelease.localstack.controlplane import ControlPlane
from modelrelease.localstack.mlflow_server import LocalMlflow
from modelrelease.localstack.node import LocalNode
from modelrelease.localstack.registry import LocalRegistry
from modelrelease.settings import PipelineSettings, RegistryConfig

REGISTRY_USER, REGISTRY_PASSWORD = "ci-pusher", "pa55-w0rd-for-tests"


@dataclass(frozen=True)
class Services:
    """The session's real services."""

    mlflow: LocalMlflow
    registry: LocalRegistry
    secure_registry: LocalRegistry
    base: str
    secure_base: str
    cache: Path

    def settings(self, cache: Path, **registry: object) -> PipelineSettings:
        """Settings pointing at these services, with a cache of the test's own."""
        return PipelineSettings(
            mlflow={"tracking_uri": self.mlflow.url},
            registry=RegistryConfig(**registry),  # type: ignore[arg-type]
            build={"cache_dir": cache},
        )


@dataclass(frozen=True)
class Cluster:
    """The session's control plane and node."""

    plane: ControlPlane
    node: LocalNode
