"""Images of one static binary (the pod sandbox's ``pause``, small test servers).

The binary becomes a one-layer OCI image with fixed times, so its digest only changes with
the binary. :func:`write_oci_archive` writes it as an OCI archive that ``ctr images import``
loads into containerd without any registry; a registry push takes the same layer, config and
manifest (``RegistryClient.push_image`` with :data:`SCRATCH` as the base).
"""

from __future__ import annotations

import io
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from modelrelease.build.layer import BlobStore, write_layer
from modelrelease.domain.image import (
    OCI_CONFIG,
    OCI_INDEX,
    BaseImage,
    Blob,
    Layer,
    canonical_json,
    image_manifest,
)

__all__ = ["SCRATCH", "StaticImage", "build_static_image", "write_oci_archive"]

SCRATCH: Final = BaseImage(digest="", manifest={"layers": []}, config={})
"""The empty base image: no layers."""


@dataclass(frozen=True)
class StaticImage:
    """A built image: its one layer (a blob in ``store``), config and manifest."""

    layer: Layer
    config: Blob
    manifest: Blob
    store: BlobStore

    @property
    def layer_path(self) -> Path:
        """The layer blob on disk."""
        return self.store.path(self.layer.descriptor.digest)


def build_static_image(binary: Path, name: str, store_dir: Path,
                       args: tuple[str, ...] = ()) -> StaticImage:
    """Build an image holding only ``binary`` as ``/<name>``, its entrypoint.

    Args:
        binary: A static executable (no libc needed: built with ``CGO_ENABLED=0``).
        name: The file name in the image.
        store_dir: Where the layer blob is written (content-addressed).
        args: The image's default arguments (``Cmd``).
    """
    root = store_dir / f"rootfs-{name}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    shutil.copy2(binary, root / name)
    (root / name).chmod(0o755)
    store = BlobStore(store_dir / "blobs")
    layer = write_layer(root, "/", store, compress=True)
    shutil.rmtree(root)
    inner: dict[str, object] = {"Entrypoint": [f"/{name}"], "WorkingDir": "/",
                                "Env": ["PATH=/"]}
    if args:
        inner["Cmd"] = list(args)
    config = Blob(OCI_CONFIG, canonical_json({
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": inner,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": f"modelrelease: {name}"}],
    }))
    manifest = image_manifest(SCRATCH, config, [layer], {})
    return StaticImage(layer, config, manifest, store)


def _add(tar: tarfile.TarFile, name: str, data: bytes | None = None,
         source: Path | None = None) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    if source is not None:
        info.size = source.stat().st_size
        with source.open("rb") as fh:
            tar.addfile(info, fh)
        return
    payload = data or b""
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def write_oci_archive(image: StaticImage, reference: str, dest: Path) -> Path:
    """Write ``image`` as an OCI archive naming it ``reference`` (for ``ctr images import``)."""
    entry = image.manifest.descriptor.to_json()
    entry["platform"] = {"architecture": "amd64", "os": "linux"}
    entry["annotations"] = {"io.containerd.image.name": reference,
                            "org.opencontainers.image.ref.name": reference}
    index = canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]})
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _add(tar, "index.json", index)
        for blob in (image.config, image.manifest):
            _add(tar, f"blobs/sha256/{blob.digest.split(':')[1]}", blob.data)
        digest = image.layer.descriptor.digest
        _add(tar, f"blobs/sha256/{digest.split(':')[1]}", source=image.layer_path)
    tmp.replace(dest)
    return dest
