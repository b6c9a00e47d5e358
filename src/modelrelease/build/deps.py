"""The dependency layer: what a model needs that its base lacks, installed with pip --target.

No container and no daemon: pip installs into a directory on this machine, which is
tarred (gzip, reproducibly) to ``/opt/ml/deps``. Layers are cached by the hash of the
requirement set and platform, so a second model with the same needs re-uses the layer.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from modelrelease.build.layer import BlobStore, write_layer
from modelrelease.domain.image import Descriptor, Layer
from modelrelease.domain.requirements import DependencySet
from modelrelease.errors import BuildError

DEPS_PATH = "/opt/ml/deps"


@dataclass(frozen=True)
class DepsLayer:
    """A dependency layer and whether it came from the cache."""

    layer: Layer
    cache_hit: bool


def _pip_command(deps: DependencySet, target: Path) -> list[str]:
    command = [sys.executable, "-m", "pip", "install", "--no-input", "--quiet",
               "--disable-pip-version-check", "--no-compile", "--no-warn-script-location",
               "--target", str(target)]
    host = f"{sys.version_info.major}.{sys.version_info.minor}"
    if deps.python_version != host:
        arch = deps.platform.split("/")[-1].replace("amd64", "x86_64").replace("arm64", "aarch64")
        command += ["--python-version", deps.python_version, "--implementation", "cp",
                    "--only-binary=:all:"]
        for tag in ("manylinux_2_28", "manylinux_2_17", "manylinux2014", "linux"):
            command += ["--platform", f"{tag}_{arch}"]
    return [*command, *deps.requirements]


def dependency_layer(deps: DependencySet, cache_dir: Path, store: BlobStore) -> DepsLayer:
    """The layer holding ``deps``, from the cache or freshly installed.

    Raises:
        BuildError: pip failed (its last output lines are in the message).
    """
    record = cache_dir / "deps" / f"{deps.key}.json"
    if record.is_file():
        saved = json.loads(record.read_text())
        desc = Descriptor(saved["mediaType"], saved["digest"], saved["size"])
        if store.has(desc.digest, desc.size):
            return DepsLayer(Layer(desc, saved["diffID"]), cache_hit=True)
    record.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="deps-", dir=record.parent))
    try:
        target = work / "site"
        result = subprocess.run(_pip_command(deps, target), capture_output=True, text=True)
        if result.returncode != 0:
            lines = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
            raise BuildError(
                f"install dependencies {' '.join(deps.requirements)}: pip exited "
                f"{result.returncode}:\n{lines}"
            )
        for cache in target.rglob("__pycache__"):
            shutil.rmtree(cache, ignore_errors=True)
        layer = write_layer(target, DEPS_PATH, store, compress=True,
                            annotations={"org.opencontainers.image.title": "dependencies"})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record.write_text(json.dumps({"mediaType": layer.descriptor.media_type,
                                  "digest": layer.descriptor.digest,
                                  "size": layer.descriptor.size, "diffID": layer.diff_id,
                                  "requirements": list(deps.requirements)}))
    return DepsLayer(layer, cache_hit=False)
