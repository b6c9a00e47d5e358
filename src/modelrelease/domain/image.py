"""Images as immutable values: descriptors, config and manifest (go-containerregistry's ``mutate``).

Everything here is pure: given the base image's config and the new layers' digests it
returns the new config and manifest, byte for byte the same on any machine. Only
``adapters.oci_registry`` pushes them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)

# Labels the builder writes and the pipeline reads.
LABEL_PREFIX = "io.modelrelease"
LABEL_MODEL_NAME = f"{LABEL_PREFIX}.model.name"
LABEL_MODEL_VERSION = f"{LABEL_PREFIX}.model.version"
LABEL_RUN_ID = f"{LABEL_PREFIX}.model.run-id"
LABEL_SOURCE = f"{LABEL_PREFIX}.model.source"
LABEL_BASE_DIGEST = "org.opencontainers.image.base.digest"
LABEL_BASE_NAME = "org.opencontainers.image.base.name"
LABEL_CREATED_BY = f"{LABEL_PREFIX}.created-by"
# Labels a serving base declares about itself.
LABEL_PYTHON_VERSION = f"{LABEL_PREFIX}.python.version"
LABEL_PYTHON_PACKAGES = f"{LABEL_PREFIX}.python.packages"
LABEL_HOST_RUNTIME = f"{LABEL_PREFIX}.host-runtime"


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys and no spaces: the same bytes for the same value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The descriptor as it appears in a manifest."""
        out: dict[str, Any] = {
            "mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(sorted(self.annotations.items()))
        return out

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Descriptor:
        """Read a descriptor from a manifest's JSON."""
        return cls(
            media_type=str(value["mediaType"]),
            digest=str(value["digest"]),
            size=int(value["size"]),
            annotations=dict(value.get("annotations") or {}),
        )


@dataclass(frozen=True)
class Layer:
    """A layer blob: its descriptor and the digest of its uncompressed tar (diff_id)."""

    descriptor: Descriptor
    diff_id: str


@dataclass(frozen=True)
class Blob:
    """A blob held in memory (configs and manifests)."""

    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        """The blob's content digest."""
        return sha256_digest(self.data)

    @property
    def descriptor(self) -> Descriptor:
        """A descriptor pointing at this blob."""
        return Descriptor(self.media_type, self.digest, len(self.data))


@dataclass(frozen=True)
class BaseImage:
    """A base image read from a registry: its manifest (as JSON) and config, pinned."""

    digest: str
    manifest: Mapping[str, Any]
    config: Mapping[str, Any]

    @property
    def layers(self) -> tuple[Descriptor, ...]:
        """The base's layer descriptors, in order."""
        return tuple(Descriptor.from_json(d) for d in self.manifest.get("layers", []))

    @property
    def labels(self) -> Mapping[str, str]:
        """The base config's labels."""
        return dict((self.config.get("config") or {}).get("Labels") or {})


@dataclass(frozen=True)
class ServingConfig:
    """How the image serves its model: the parts of the config the builder sets."""

    entrypoint: Sequence[str]
    cmd: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    prepend_paths: Mapping[str, str] = field(default_factory=dict)
    working_dir: str = "/"
    port: int | None = 8080  # None: the image serves no port (the pipeline's own image)
    user: str | None = None


def merge_env(
    base: Iterable[str], set_vars: Mapping[str, str], prepend: Mapping[str, str]
) -> list[str]:
    """Merge ``KEY=VALUE`` lists: ``set_vars`` replace, ``prepend`` go before existing paths.

    The base's order is kept; new keys follow, sorted, so the result is deterministic.
    """
    base = list(base)
    current: dict[str, str] = {}
    for item in base:
        key, _, value = item.partition("=")
        current[key] = value
    for key, value in prepend.items():
        existing = current.get(key)
        current[key] = f"{value}:{existing}" if existing else value
    current.update(set_vars)
    base_keys = [item.partition("=")[0] for item in base]
    ordered = [*dict.fromkeys(base_keys), *sorted(k for k in current if k not in base_keys)]
    return [f"{k}={current[k]}" for k in ordered]


def image_config(
    base: BaseImage,
    layers: Sequence[Layer],
    serving: ServingConfig,
    labels: Mapping[str, str],
    created: datetime,
) -> Blob:
    """The new image's config blob: the base's, plus our layers, serving setup and labels.

    ``created`` should come from the model version (not the clock), so a rebuild is
    byte-identical.
    """
    config = dict(base.config)
    inner = dict(config.get("config") or {})
    inner["Entrypoint"] = list(serving.entrypoint)
    inner["Cmd"] = list(serving.cmd) if serving.cmd else None
    inner["Env"] = merge_env(inner.get("Env") or [], serving.env, serving.prepend_paths)
    inner["WorkingDir"] = serving.working_dir
    if serving.port is not None:
        inner["ExposedPorts"] = {**(inner.get("ExposedPorts") or {}),
                                 f"{serving.port}/tcp": {}}
    if serving.user is not None:
        inner["User"] = serving.user
    inner["Labels"] = dict(sorted({**(inner.get("Labels") or {}), **labels}.items()))
    if inner["Cmd"] is None:
        del inner["Cmd"]
    rootfs = dict(config.get("rootfs") or {"type": "layers", "diff_ids": []})
    rootfs["diff_ids"] = [*rootfs.get("diff_ids", []), *(layer.diff_id for layer in layers)]
    stamp = created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    history = list(config.get("history") or [])
    history += [{"created": stamp, "created_by": labels.get(LABEL_CREATED_BY, "modelrelease")}
                for _ in layers]
    config.update(
        {
            "architecture": config.get("architecture", "amd64"),
            "os": config.get("os", "linux"),
            "created": stamp,
            "config": inner,
            "rootfs": rootfs,
            "history": history,
        }
    )
    return Blob(OCI_CONFIG, canonical_json(config))


def image_manifest(
    base: BaseImage, config: Blob, layers: Sequence[Layer], annotations: Mapping[str, str]
) -> Blob:
    """The OCI manifest: the base's layers by reference, then ours."""
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor.to_json(),
        "layers": [d.to_json() for d in base.layers]
        + [layer.descriptor.to_json() for layer in layers],
        "annotations": dict(sorted(annotations.items())),
    }
    return Blob(OCI_MANIFEST, canonical_json(body))
