"""Pull images by digest and unpack them for the node: layers once per digest, rootfs per pod.

Layers are extracted once each into ``ROOT/layers/<diff_id>`` (whiteout markers kept),
then composed in order into a pod's root file system with hard links, honouring
``.wh.<name>`` (delete) and ``.wh..wh..opq`` (opaque directory) whiteouts.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelrelease.adapters.oci_registry import RegistryClient
from modelrelease.domain.image import DOCKER_LAYER_GZIP, OCI_LAYER_GZIP, Descriptor
from modelrelease.domain.reference import ImageRef

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


@dataclass(frozen=True)
class PulledImage:
    """An image whose layers are unpacked in the cache."""

    ref: ImageRef
    config: dict[str, Any]
    layer_dirs: tuple[Path, ...]


def _extract(blob: Path, media_type: str, dest: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=dest.parent))
    try:
        opener = gzip.open if media_type in (OCI_LAYER_GZIP, DOCKER_LAYER_GZIP) else open
        with opener(blob, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
            tar.extractall(tmp, filter="tar")
        tmp.replace(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def compose(layer_dirs: tuple[Path, ...], rootfs: Path) -> None:
    """Apply unpacked layers in order onto ``rootfs`` (hard links; whiteouts honoured)."""
    rootfs.mkdir(parents=True, exist_ok=True)
    for layer in layer_dirs:
        for dirpath, dirnames, filenames in os.walk(layer):
            rel = Path(dirpath).relative_to(layer)
            target_dir = rootfs / rel
            if OPAQUE in filenames and target_dir.is_dir():
                for child in list(target_dir.iterdir()):
                    _remove(child)
            for name in sorted(dirnames):
                src, dst = Path(dirpath) / name, target_dir / name
                if src.is_symlink():
                    if dst.exists() or dst.is_symlink():
                        _remove(dst)
                    dst.symlink_to(os.readlink(src))
                    dirnames.remove(name)
                elif not dst.is_dir():
                    if dst.exists() or dst.is_symlink():
                        _remove(dst)
                    dst.mkdir()
                    shutil.copymode(src, dst)
            for name in sorted(filenames):
                if name == OPAQUE:
                    continue
                src = Path(dirpath) / name
                if name.startswith(WHITEOUT):
                    victim = target_dir / name[len(WHITEOUT) :]
                    if victim.exists() or victim.is_symlink():
                        _remove(victim)
                    continue
                dst = target_dir / name
                if dst.exists() or dst.is_symlink():
                    _remove(dst)
                if src.is_symlink():
                    dst.symlink_to(os.readlink(src))
                else:
                    os.link(src, dst)


class ImageCache:
    """Pulled images, unpacked once per layer digest under ``root``."""

    def __init__(self, root: Path, registry: RegistryClient) -> None:
        self.root = root
        self.registry = registry
        (root / "layers").mkdir(parents=True, exist_ok=True)
        (root / "blobs").mkdir(parents=True, exist_ok=True)

    def pull(self, ref: ImageRef) -> PulledImage:
        """Fetch the manifest, config and any layer not yet unpacked.

        Raises:
            ImageNotFound: the image or one of its blobs does not exist.
            RegistryAuthError: the registry refused us.
        """
        image = self.registry.read_image(ref)
        dirs: list[Path] = []
        diff_ids = list(image.config.get("rootfs", {}).get("diff_ids", []))
        for desc, diff_id in zip(image.layers, diff_ids, strict=True):
            dirs.append(self._layer(ref, desc, diff_id))
        return PulledImage(ref.with_digest(image.digest), dict(image.config), tuple(dirs))

    def _layer(self, ref: ImageRef, desc: Descriptor, diff_id: str) -> Path:
        dest = self.root / "layers" / diff_id.split(":", 1)[1]
        if dest.is_dir():
            return dest
        blob = self.root / "blobs" / desc.digest.split(":", 1)[1]
        if not blob.is_file():
            self.registry.download_blob(ref, desc.digest, blob)
        _extract(blob, desc.media_type, dest)
        blob.unlink(missing_ok=True)
        return dest

    def rootfs(self, ref: ImageRef, dest: Path) -> PulledImage:
        """Pull ``ref`` and compose its root file system at ``dest``."""
        image = self.pull(ref)
        compose(image.layer_dirs, dest)
        return image
