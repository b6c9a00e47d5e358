"""An OCI image layout directory (``oci:DIR``) as a build destination."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from modelrelease.domain.image import OCI_INDEX, Blob, canonical_json


class OciLayout:
    """Writes blobs and tagged manifests into an OCI image layout directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')

    def blob_path(self, digest: str) -> Path:
        """Where a blob lives in the layout."""
        return self.root / "blobs" / "sha256" / digest.split(":", 1)[1]

    def has(self, digest: str) -> bool:
        """Whether the layout holds the blob."""
        return self.blob_path(digest).is_file()

    def put(self, digest: str, source: Path | bytes | Callable[[int], Iterator[bytes]]) -> None:
        """Add a blob from a file (hard link when possible) or from a stream of its bytes."""
        dest = self.blob_path(digest)
        if dest.exists():
            return
        tmp = dest.with_name(dest.name + ".partial")
        if isinstance(source, bytes):
            tmp.write_bytes(source)
        elif isinstance(source, Path):
            try:
                tmp.hardlink_to(source)
            except OSError:
                shutil.copyfile(source, tmp)
        else:
            with tmp.open("wb") as out:
                for chunk in source(0):
                    out.write(chunk)
        tmp.replace(dest)

    def put_bytes(self, blob: Blob) -> None:
        """Write an in-memory blob."""
        dest = self.blob_path(blob.digest)
        if not dest.exists():
            dest.write_bytes(blob.data)

    def tag(self, manifest: Blob, names: list[str]) -> None:
        """Record the manifest in ``index.json`` under each name (replacing older ones)."""
        index_path = self.root / "index.json"
        index: dict[str, Any] = (
            json.loads(index_path.read_text()) if index_path.exists()
            else {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
        ref_key = "org.opencontainers.image.ref.name"
        kept = [m for m in index["manifests"]
                if (m.get("annotations") or {}).get(ref_key) not in names]
        for name in names:
            entry = manifest.descriptor.to_json()
            entry["annotations"] = {ref_key: name}
            kept.append(entry)
        index["manifests"] = sorted(kept, key=lambda m: m["annotations"][ref_key])
        index_path.write_bytes(canonical_json(index))
