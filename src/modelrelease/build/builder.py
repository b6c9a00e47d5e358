"""Build and push a model version's serving image: base + dependency layer + model layer.

    resolve (MLflow) -> read base (manifest + config, pinned) -> layers -> config ->
    manifest -> push (blobs, config, manifest, tags) -> digest

A finished build is recorded in the cache under a key made of the model version's
identity, the base digest and the options, so rebuilding an unchanged version only
checks the registry (HEAD) and uploads nothing. Without the cache the same inputs still
give the same digest, byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from modelrelease import __version__
from modelrelease.adapters.mlflow_registry import MlflowRegistry, ModelRegistry
from modelrelease.adapters.oci_layout import OciLayout
from modelrelease.adapters.oci_registry import BlobSource, PushStats, RegistryClient
from modelrelease.build.deps import DEPS_PATH, dependency_layer
from modelrelease.build.layer import BlobStore, plan_layer, write_layer
from modelrelease.domain import image as img
from modelrelease.domain.model import ModelUri, ModelVersion
from modelrelease.domain.reference import ImageRef
from modelrelease.domain.requirements import (
    DependencySet,
    missing_requirements,
    parse_requirements,
)
from modelrelease.errors import ImageNotFound, InvalidInput
from modelrelease.settings import PipelineSettings

Progress = Callable[[str], None]
SERVE_ENTRYPOINT = ("python", "-m", "modelrelease.serving")
ENV_MODEL_PATH = "MODELRELEASE_MODEL_PATH"
ENV_PORT = "MODELRELEASE_PORT"


@dataclass(frozen=True)
class BuildRequest:
    """What to build.

    Attributes:
        model: ``models:/NAME/VERSION``, ``models:/NAME@ALIAS``, ``models:/NAME/STAGE`` or a
            local MLflow model directory.
        base: The serving base image reference.
        to: ``REGISTRY/REPO[:TAG]`` or ``oci:DIR``.
        tags: Extra tags besides the model version.
        compress_model: gzip the model layer (default from settings: off).
        port: The port the scoring server listens on (default from settings).
    """

    model: str
    base: str
    to: str
    tags: tuple[str, ...] = ()
    compress_model: bool | None = None
    port: int | None = None


@dataclass(frozen=True)
class BuildResult:
    """A finished build."""

    image: str
    digest: str
    base_digest: str
    model: ModelVersion
    tags: tuple[str, ...]
    layers: tuple[img.Descriptor, ...]
    stats: PushStats
    reused: bool
    deps_cache_hit: bool | None
    seconds: float
    config: dict[str, Any] = field(default_factory=dict)


def _local_version(path: Path) -> ModelVersion:
    mlmodel = path / "MLmodel"
    if not mlmodel.is_file():
        raise InvalidInput(f"read model directory {path}: no MLmodel file; pass an MLflow model "
                           "directory or a models:/ URI")
    meta = yaml.safe_load(mlmodel.read_text()) or {}
    created_text = str(meta.get("utc_time_created") or "1970-01-01 00:00:00")
    try:
        created = datetime.fromisoformat(created_text).replace(tzinfo=UTC)
    except ValueError:
        created = datetime.fromtimestamp(0, UTC)
    name = path.resolve().name.lower().replace("_", "-")
    return ModelVersion(name=name, version="local", source=str(path.resolve()),
                        run_id=meta.get("run_id"), created=created)


def _build_key(version: ModelVersion, base_digest: str, options: dict[str, Any]) -> str:
    identity = {
        "builder": __version__,
        "model": [version.name, version.version, version.source, version.run_id,
                  version.created.isoformat()],
        "base": base_digest,
        "options": options,
    }
    return hashlib.sha256(img.canonical_json(identity)).hexdigest()[:32]


class ImageBuilder:
    """Builds serving images; the function the CLI and the flows call.

    Args:
        settings: Pipeline settings (registry credentials, cache, defaults).
        models: The model registry (MLflow by default).
        registry: The OCI registry client.
        progress: Called with one line per step.
    """

    def __init__(self, settings: PipelineSettings | None = None, *,
                 models: ModelRegistry | None = None, registry: RegistryClient | None = None,
                 progress: Progress | None = None) -> None:
        self.settings = settings or PipelineSettings()
        self._models = models
        self.progress: Progress = progress or (lambda line: None)
        self.registry = registry or RegistryClient(self.settings.registry, progress=self.progress)
        cache = self.settings.build.cache_dir
        self.cache_dir = cache
        self.store = BlobStore(cache / "blobs")

    @property
    def models(self) -> ModelRegistry:
        """The model registry, connected on first use."""
        if self._models is None:
            self._models = MlflowRegistry(self.settings.mlflow)
        return self._models

    def build(self, request: BuildRequest) -> BuildResult:
        """Build, push and tag the image; return its digest and what was done.

        Raises:
            InvalidInput: a reference, URI or directory is malformed.
            ModelNotFound: the model version cannot be resolved.
            ArtifactsMissing: its artifacts cannot be downloaded.
            ImageNotFound: the base image does not exist.
            RegistryError: the registry failed after retries; no tag was written.
        """
        start = time.monotonic()
        layout = OciLayout(Path(request.to[4:])) if request.to.startswith("oci:") else None
        target = None if layout else ImageRef.parse(request.to)
        if target is not None and target.digest:
            raise InvalidInput(f"build image: --to {request.to} has a digest; give a repository "
                               "(and optionally a tag): the digest is what the build returns")
        local = Path(request.model)
        if not request.model.startswith("models:/"):
            if not local.is_dir():
                raise InvalidInput(f"build image: --model {request.model!r} is neither a "
                                   "models:/ URI nor a model directory")
            version = _local_version(local)
        else:
            version = self.models.resolve(ModelUri.parse(request.model))
        self.progress(f"model {request.model} -> {version.name} version {version.version} "
                      f"(run {version.run_id}, source {version.source})")

        base_ref = ImageRef.parse(request.base)
        try:
            base = self.registry.read_image(base_ref)
        except ImageNotFound as exc:
            raise ImageNotFound(
                f"read base image {base_ref}: not found ({exc.message}); push the serving base "
                "first (`modelrelease image base --to REPO`) or fix --base "
                "(spec.image.base in a ModelEndpoint)",
                status=exc.status, code=exc.code) from exc
        self.progress(f"base {base_ref} pinned at {base.digest}")

        options = self._options(request)
        compress, port, model_path = options["compress"], options["port"], options["path"]
        tags = tuple(dict.fromkeys([
            *([version.version] if version.version != "local" else []),
            *([target.tag] if target and target.tag else []),
            *request.tags,
        ]))
        key = None if version.version == "local" else _build_key(
            version, base.digest, options)

        if key is not None:
            reused = self._reuse(key, target, layout, base_ref, base, tags)
            if reused is not None:
                digest, old_layers, stats, old_config = reused
                self.progress(f"unchanged since the last build: {digest} "
                              f"({stats.bytes_uploaded} bytes uploaded)")
                return self._result(target, layout, digest, base.digest, version, tags,
                                    old_layers, stats, True, None, start, old_config)

        model_dir = local if version.version == "local" else self.models.download(
            version, self.cache_dir / "models" / version.name / version.version)
        layers, deps_hit = self._layers(model_dir, base, model_path, compress)
        serving = img.ServingConfig(
            entrypoint=SERVE_ENTRYPOINT,
            env={ENV_MODEL_PATH: model_path, ENV_PORT: str(port)},
            prepend_paths={"PYTHONPATH": DEPS_PATH} if deps_hit is not None else {},
            working_dir=model_path,
            port=port,
        )
        labels = {
            img.LABEL_MODEL_NAME: version.name,
            img.LABEL_MODEL_VERSION: version.version,
            img.LABEL_RUN_ID: version.run_id or "",
            img.LABEL_SOURCE: version.source,
            img.LABEL_BASE_DIGEST: base.digest,
            img.LABEL_BASE_NAME: str(base_ref.with_tag(base_ref.tag)),
            img.LABEL_CREATED_BY: f"modelrelease {__version__}",
        }
        new_layers = [layer for layer, _ in layers]
        config = img.image_config(base, new_layers, serving, labels, version.created)
        annotations = {
            "org.opencontainers.image.created": version.created.astimezone(UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"),
            "org.opencontainers.image.title": version.name,
            "org.opencontainers.image.version": version.version,
            img.LABEL_BASE_DIGEST: base.digest,
            img.LABEL_BASE_NAME: labels[img.LABEL_BASE_NAME],
        }
        manifest = img.image_manifest(base, config, new_layers, annotations)
        pushed = [(layer.descriptor, path) for layer, path in layers]
        digest, stats = self._push(target, layout, base_ref, base, pushed, config, manifest, tags)
        if key is not None:
            self._save_record(key, manifest, config, new_layers)
        return self._result(target, layout, digest, base.digest, version, tags,
                            [layer.descriptor for layer in new_layers], stats, False, deps_hit,
                            start, json.loads(config.data))

    def find_built(self, request: BuildRequest) -> tuple[str | None, str]:
        """Whether ``build(request)`` would push a new image; reads only, changes nothing.

        Returns ``(image@digest, how it was found)`` when the image is already in the
        target repository (a dry run shows that digest), else ``(None, why a build is
        needed)``. Found either by this machine's build record (the digest the build
        would return, HEAD in the target) or, from another machine's build, by the
        version's tag whose config names this model version and base digest.

        Raises:
            InvalidInput: ``request.to`` is not a registry repository.
            ModelNotFound, ImageNotFound, RegistryError: as :meth:`build`.
        """
        target = ImageRef.parse(request.to)
        version = self.models.resolve(ModelUri.parse(request.model))
        base_ref = ImageRef.parse(request.base)
        base = self.registry.read_image(base_ref)
        key = _build_key(version, base.digest, self._options(request))
        where = f"{target.registry}/{target.repository}"
        record = self._record_path(key)
        if record.is_file():
            manifest = img.Blob(img.OCI_MANIFEST, base64.b64decode(
                json.loads(record.read_text())["manifest"]))
            if self.registry.manifest_exists(target, manifest.digest):
                return (f"{where}@{manifest.digest}",
                        "already built: this machine's build record, present in the registry")
        try:
            found = self.registry.read_image(target.with_tag(version.version))
        except ImageNotFound:
            return None, (f"would be built: {where} has no tag {version.version} and no "
                          f"recorded build of version {version.version} on base {base.digest}")
        labels = found.labels
        if (labels.get(img.LABEL_MODEL_VERSION) == version.version
                and labels.get(img.LABEL_BASE_DIGEST) == base.digest):
            return (f"{where}@{found.digest}",
                    f"already built: tag {version.version} holds version {version.version} "
                    f"on base {base.digest}")
        return None, (f"would be built: tag {version.version} of {where} holds version "
                      f"{labels.get(img.LABEL_MODEL_VERSION)} on base "
                      f"{labels.get(img.LABEL_BASE_DIGEST)}, not version {version.version} on "
                      f"base {base.digest}")

    def _options(self, request: BuildRequest) -> dict[str, Any]:
        """The build options that go into the build key."""
        compress = (self.settings.build.compress_model if request.compress_model is None
                    else request.compress_model)
        return {"compress": compress, "port": request.port or self.settings.build.port,
                "path": self.settings.build.model_path}

    # -- steps ------------------------------------------------------------------------------

    def _layers(self, model_dir: Path, base: img.BaseImage, model_path: str,
                compress: bool) -> tuple[list[tuple[img.Layer, BlobSource]], bool | None]:
        layers: list[tuple[img.Layer, BlobSource]] = []
        deps_hit: bool | None = None
        requirements_file = model_dir / "requirements.txt"
        if requirements_file.is_file():
            reqs = parse_requirements(requirements_file.read_text(), str(requirements_file))
            labels = base.labels
            provided = json.loads(labels.get(img.LABEL_PYTHON_PACKAGES, "{}") or "{}")
            missing = missing_requirements(reqs, provided)
            if missing:
                deps = DependencySet(
                    requirements=tuple(missing),
                    python_version=labels.get(img.LABEL_PYTHON_VERSION, "3.11"),
                    platform=f"{base.config.get('os', 'linux')}/"
                             f"{base.config.get('architecture', 'amd64')}",
                )
                self.progress(f"dependency layer for {', '.join(missing)}")
                result = dependency_layer(deps, self.cache_dir, self.store)
                deps_hit = result.cache_hit
                self.progress(f"dependency layer {result.layer.descriptor.digest[:19]} "
                              f"({'cached' if deps_hit else 'installed'})")
                layers.append((result.layer, self.store.path(result.layer.descriptor.digest)))
        t0 = time.monotonic()
        title = {"org.opencontainers.image.title": "model"}
        if compress:
            model_layer = write_layer(model_dir, model_path, self.store, compress=True,
                                      annotations=title)
            source: BlobSource = self.store.path(model_layer.descriptor.digest)
        else:  # weights: hashed in place, then streamed from the files; never copied
            plan = plan_layer(model_dir, model_path)
            digest = plan.digest()
            model_layer = img.Layer(img.Descriptor(img.OCI_LAYER_TAR, digest, plan.size, title),
                                    digest)
            source = plan.chunks
        self.progress(f"model layer {model_layer.descriptor.digest[:19]} "
                      f"({model_layer.descriptor.size / 1e6:.1f} MB, "
                      f"{'gzip' if compress else 'uncompressed'}, {time.monotonic() - t0:.2f}s)")
        layers.append((model_layer, source))
        return layers, deps_hit

    def _push(self, target: ImageRef | None, layout: OciLayout | None, base_ref: ImageRef,
              base: img.BaseImage, layers: list[tuple[img.Descriptor, BlobSource]],
              config: img.Blob,
              manifest: img.Blob, tags: tuple[str, ...]) -> tuple[str, PushStats]:
        if layout is not None:
            stats = PushStats()
            for desc in base.layers:
                if not layout.has(desc.digest):
                    self.registry.download_blob(base_ref, desc.digest,
                                                layout.blob_path(desc.digest))
            for desc, source in layers:
                layout.put(desc.digest, source)
            layout.put_bytes(config)
            layout.put_bytes(manifest)
            layout.tag(manifest, list(tags) or ["latest"])
            return manifest.digest, stats
        assert target is not None
        return self.registry.push_image(target, base_ref, base, layers, config, manifest,
                                        list(tags))

    def _record_path(self, key: str) -> Path:
        return self.cache_dir / "builds" / f"{key}.json"

    def _save_record(self, key: str, manifest: img.Blob, config: img.Blob,
                     layers: list[img.Layer]) -> None:
        path = self._record_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "manifest": base64.b64encode(manifest.data).decode(),
            "config": base64.b64encode(config.data).decode(),
            "layers": [layer.descriptor.to_json() for layer in layers],
        }
        tmp = path.with_suffix(".partial")
        tmp.write_text(json.dumps(record))
        tmp.replace(path)

    def _reuse(self, key: str, target: ImageRef | None, layout: OciLayout | None,
               base_ref: ImageRef, base: img.BaseImage, tags: tuple[str, ...]
               ) -> tuple[str, list[img.Descriptor], PushStats, dict[str, Any]] | None:
        """Re-use a recorded build: check the destination, re-send only what it lacks."""
        path = self._record_path(key)
        if not path.is_file():
            return None
        record = json.loads(path.read_text())
        manifest = img.Blob(img.OCI_MANIFEST, base64.b64decode(record["manifest"]))
        config = img.Blob(img.OCI_CONFIG, base64.b64decode(record["config"]))
        layers = [img.Descriptor.from_json(d) for d in record["layers"]]
        config_json = json.loads(config.data)
        if target is not None and self.registry.manifest_exists(target, manifest.digest):
            stats = PushStats(skipped=[manifest.digest])
            for tag in tags:
                if not self._tag_points_at(target, tag, manifest.digest):
                    self.registry.put_manifest(target, tag, manifest)
            return manifest.digest, layers, stats, config_json
        if not all(self.store.has(d.digest, d.size) for d in layers):
            return None
        pushed: list[tuple[img.Descriptor, BlobSource]] = [
            (d, self.store.path(d.digest)) for d in layers]
        digest, stats = self._push(target, layout, base_ref, base, pushed, config, manifest, tags)
        return digest, layers, stats, config_json

    def _tag_points_at(self, target: ImageRef, tag: str, digest: str) -> bool:
        try:
            found, _, _ = self.registry.get_manifest(target.with_tag(tag))
        except ImageNotFound:
            return False
        return found == digest

    @staticmethod
    def _result(target: ImageRef | None, layout: OciLayout | None, digest: str, base_digest: str,
                version: ModelVersion, tags: tuple[str, ...], layers: list[img.Descriptor],
                stats: PushStats, reused: bool, deps_hit: bool | None, start: float,
                config: dict[str, Any]) -> BuildResult:
        where = f"oci:{layout.root}" if layout else f"{target.registry}/{target.repository}"  # type: ignore[union-attr]
        return BuildResult(image=f"{where}@{digest}", digest=digest, base_digest=base_digest,
                           model=version, tags=tags, layers=tuple(layers), stats=stats,
                           reused=reused, deps_cache_hit=deps_hit,
                           seconds=time.monotonic() - start, config=config)


def build_image(request: BuildRequest, settings: PipelineSettings | None = None,
                progress: Progress | None = None) -> BuildResult:
    """Build and push one image (see ``ImageBuilder.build``)."""
    builder = ImageBuilder(settings, progress=progress)
    try:
        return builder.build(request)
    finally:
        builder.registry.close()
