"""An OCI image layout directory (``oci:DIR``) as a build destination."""

from __future__ import annotations

import json
import shutil
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

    def put_file(self, digest: str, source: Path) -> None:
        """Copy a blob file in (hard link when on the same file system)."""
        dest = self.blob_path(digest)
        if dest.exists():
            return
        tmp = dest.with_name(dest.name + ".partial")
        try:
            tmp.hardlink_to(source)
        except OSError:
            shutil.copyfile(source, tmp)
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
