"""The demo: a real sklearn model from MLflow to a pushed, reproducible serving image.

Starts Debian's docker-registry and an MLflow server on loopback, registers the iris
model, builds its image without a daemon, builds it again (nothing uploaded), and stops
everything. Later stages of the product (the local Kubernetes stack and the release
flow) extend this with a real canary release and a rolled-back bad one.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from modelrelease.adapters.oci_registry import RegistryClient
from modelrelease.build.base import build_dev_base
from modelrelease.build.builder import BuildRequest, ImageBuilder
from modelrelease.localstack.demo_model import register_iris_model
from modelrelease.localstack.mlflow_server import LocalMlflow
from modelrelease.localstack.registry import LocalRegistry
from modelrelease.settings import PipelineSettings


def run_demo(workdir: Path | None = None, say: Callable[[str], None] = print) -> None:
    """Run the demo end to end, printing each step."""
    root = workdir or Path(tempfile.mkdtemp(prefix="modelrelease-demo-"))
    say(f"demo workdir: {root}")
    with LocalRegistry(root / "registry") as registry, LocalMlflow(root / "mlflow") as mlflow:
        say(f"registry {registry.url} and MLflow {mlflow.url} are up")
        version = register_iris_model(mlflow.url, "iris-clf", alias="champion")
        say(f"registered iris-clf version {version} with alias 'champion'")
        settings = PipelineSettings(mlflow={"tracking_uri": mlflow.url},
                                    build={"cache_dir": root / "cache"})
        with RegistryClient(settings.registry) as client:
            base_digest, _ = build_dev_base(f"{registry.host}/ml/serving-base:dev", client,
                                            root / "cache")
        base = f"{registry.host}/ml/serving-base@{base_digest}"
        say(f"serving base pushed: {base}")
        builder = ImageBuilder(settings, progress=lambda line: say(f"  {line}"))
        request = BuildRequest(model="models:/iris-clf@champion", base=base,
                               to=f"{registry.host}/ml/iris")
        first = builder.build(request)
        say(f"built {first.image} in {first.seconds:.2f}s "
            f"({first.stats.bytes_uploaded} bytes uploaded)")
        again = builder.build(request)
        say(f"rebuilt unchanged version in {again.seconds:.2f}s: same digest "
            f"{again.digest == first.digest}, {again.stats.bytes_uploaded} bytes uploaded")
        builder.registry.close()
    say("demo finished; services stopped")
