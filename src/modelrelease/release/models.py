"""``ReleaseModels``: the MLflow registry as a release uses it (a ``ModelRegistry``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from modelrelease.adapters.mlflow_registry import MlflowRegistry, tag_version
from modelrelease.adapters.model_files import ModelFiles
from modelrelease.domain.model import ModelUri, ModelVersion


class ReleaseModels:
    """Resolve versions, read their signature and input example, tag them."""

    def __init__(self, registry: MlflowRegistry, cache_dir: Path) -> None:
        self.registry = registry
        self.cache_dir = cache_dir

    def resolve(self, uri: ModelUri) -> ModelVersion:
        """The version ``uri`` names (retried while MLflow is unreachable)."""
        return self.registry.resolve(uri)

    def files(self, version: ModelVersion) -> ModelFiles:
        """The version's signature and input example (downloaded once, cached)."""
        cache = self.cache_dir / "models" / version.name / version.version
        return ModelFiles.read(self.registry.download(version, Path(cache)))

    def tag(self, version: ModelVersion, tags: Mapping[str, str],
            alias: str | None = None) -> None:
        """Tag the version (and move ``alias`` to it)."""
        tag_version(self.registry, version, dict(tags), alias)
