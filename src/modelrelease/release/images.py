"""Where a release's image comes from (an ``ImageStore``): built and pushed daemonlessly."""

from __future__ import annotations

from modelrelease.adapters.mlflow_registry import MlflowRegistry
from modelrelease.build.builder import BuildRequest, ImageBuilder
from modelrelease.domain.model import ModelVersion
from modelrelease.release.ports import Image
from modelrelease.settings import PipelineSettings
from modelrelease.spec import ModelEndpoint


class RegistryImages:
    """Builds a version's serving image daemonlessly and pushes it (or finds it pushed)."""

    def __init__(self, endpoint: ModelEndpoint, settings: PipelineSettings,
                 models: MlflowRegistry) -> None:
        self.endpoint = endpoint
        self.settings = settings
        self.models = models

    def image_for(self, version: ModelVersion) -> Image:
        """Build and push the version's image onto the spec's base and repository."""
        builder = ImageBuilder(self.settings, models=self.models, progress=lambda line: None)
        try:
            built = builder.build(BuildRequest(model=version.uri,
                                               base=self.endpoint.spec.image.base,
                                               to=self.endpoint.spec.image.repository))
        finally:
            builder.registry.close()
        return Image(built.image, built.digest, built.reused, built.seconds,
                     built.stats.bytes_uploaded)
