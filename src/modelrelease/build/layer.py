"""Reproducible layer tarballs written straight into a content-addressed blob store.

Entries are sorted, owned by 0:0 with empty names, dated at a fixed mtime, in PAX
format; gzip (when asked for) writes no name and mtime 0 in its header. The same
files therefore give the same digest on any machine, at any time.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from modelrelease.domain.image import OCI_LAYER_GZIP, OCI_LAYER_TAR, Descriptor, Layer
from modelrelease.errors import BuildError, UnsafeModelDir

FIXED_MTIME = 0
_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE
_CHUNK = 1024 * 1024


class _HashingWriter:
    """Counts and hashes what passes through, then hands it on."""

    def __init__(self, sink: BinaryIO) -> None:
        self.sink = sink
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> int:
        self.hash.update(data)
        self.size += len(data)
        self.sink.write(data)
        return len(data)

    def flush(self) -> None:
        self.sink.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


@dataclass(frozen=True)
class _Entry:
    arcname: str
    source: Path | None  # None for the parent directories we synthesise
    kind: str  # "dir" | "file" | "link"
    link_target: str = ""
    executable: bool = False
    size: int = 0


def _walk(root: Path, prefix: PurePosixPath) -> list[_Entry]:
    """Every entry below ``root``, mapped under ``prefix``, in sorted order.

    Raises:
        UnsafeModelDir: a symlink points outside ``root`` (or a special file is found).
    """
    real_root = root.resolve()
    entries: list[_Entry] = []
    parents = [prefix, *prefix.parents][:-1]
    for parent in reversed(parents):
        entries.append(_Entry(str(parent).lstrip("/") + "/", None, "dir"))
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        here = Path(dirpath)
        rel_dir = here.relative_to(root)
        names = sorted([*dirnames, *filenames])
        for name in names:
            path = here / name
            arc = str(prefix / PurePosixPath(*rel_dir.parts) / name).lstrip("/")
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(path)
                resolved = (here / target).resolve()
                if not resolved.is_relative_to(real_root):
                    raise UnsafeModelDir(
                        f"build layer from {root}: symlink {rel_dir / name} -> {target} points "
                        "outside the model directory; copy the file in or remove the link"
                    )
                if os.path.isabs(target):  # keep the image self-contained: make it relative
                    target = os.path.relpath(resolved, here.resolve())
                entries.append(_Entry(arc, path, "link", link_target=target))
                if name in dirnames:
                    dirnames.remove(name)
            elif stat.S_ISDIR(st.st_mode):
                entries.append(_Entry(arc + "/", path, "dir"))
            elif stat.S_ISREG(st.st_mode):
                entries.append(
                    _Entry(arc, path, "file", executable=bool(st.st_mode & 0o111), size=st.st_size)
                )
            else:
                raise UnsafeModelDir(
                    f"build layer from {root}: {rel_dir / name} is not a regular file, "
                    "directory or symlink; remove it from the model directory"
                )
    return sorted(entries, key=lambda e: e.arcname)


def _header(entry: _Entry) -> bytes:
    info = tarfile.TarInfo(entry.arcname.rstrip("/") if entry.kind == "dir" else entry.arcname)
    info.mtime = FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if entry.kind == "dir":
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    elif entry.kind == "link":
        info.type, info.mode, info.linkname = tarfile.SYMTYPE, 0o777, entry.link_target
    else:
        info.type, info.size = tarfile.REGTYPE, entry.size
        info.mode = 0o755 if entry.executable else 0o644
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


@dataclass(frozen=True)
class TarPlan:
    """A layer tar, planned but not written: its size is known, its bytes come on demand.

    Large uncompressed layers (model weights) are hashed from this plan, then streamed
    to the registry from it, so they are never copied to disk first.
    """

    entries: tuple[_Entry, ...]
    headers: tuple[bytes, ...]

    @property
    def size(self) -> int:
        """Bytes in the tar, end blocks and record padding included."""
        body = sum(len(h) for h in self.headers)
        body += sum(e.size + (-e.size % _BLOCK) for e in self.entries if e.kind == "file")
        end = 2 * _BLOCK
        return body + end + (-(body + end) % _RECORD)

    def chunks(self, offset: int = 0) -> Iterator[bytes]:
        """The tar's bytes from ``offset`` on, in chunks of up to 1 MiB."""
        position = 0
        for entry, header in zip(self.entries, self.headers, strict=True):
            parts: list[tuple[int, Path | bytes]] = [(len(header), header)]
            if entry.kind == "file":
                assert entry.source is not None
                parts.append((entry.size, entry.source))
                pad = -entry.size % _BLOCK
                if pad:
                    parts.append((pad, b"\0" * pad))
            for length, part in parts:
                if position + length <= offset:
                    position += length
                    continue
                skip = max(0, offset - position)
                yield from _part(part, skip, length)
                position += length
        tail = self.size - position
        skip = max(0, offset - position)
        if tail > skip:
            yield b"\0" * (tail - skip)

    def digest(self) -> str:
        """``sha256:`` of the whole tar, computed without writing it anywhere."""
        hasher = hashlib.sha256()
        for chunk in self.chunks():
            hasher.update(chunk)
        return "sha256:" + hasher.hexdigest()


def _part(part: Path | bytes, skip: int, length: int) -> Iterator[bytes]:
    if isinstance(part, bytes):
        yield part[skip:]
        return
    remaining = length - skip
    with part.open("rb") as fh:
        fh.seek(skip)
        while remaining > 0:
            chunk = fh.read(min(_CHUNK, remaining))
            if not chunk:
                raise BuildError(f"build layer: {part} shrank while being read")
            remaining -= len(chunk)
            yield chunk


def plan_layer(source: Path, target: str) -> TarPlan:
    """Plan the tar of ``source`` under the image path ``target`` (see ``write_layer``).

    Raises:
        UnsafeModelDir: ``source`` has a link out of itself or a special file.
        BuildError: ``source`` is not a directory.
    """
    if not source.is_dir():
        raise BuildError(f"build layer: {source} is not a directory")
    entries = tuple(_walk(source, PurePosixPath(target)))
    return TarPlan(entries, tuple(_header(e) for e in entries))


@dataclass(frozen=True)
class BlobStore:
    """A content-addressed directory of blobs (``ROOT/sha256/<hex>``)."""

    root: Path

    def path(self, digest: str) -> Path:
        """Where the blob with ``digest`` lives (it may not exist)."""
        algorithm, _, hexdigest = digest.partition(":")
        return self.root / algorithm / hexdigest

    def has(self, digest: str, size: int) -> bool:
        """Whether the blob is present with the expected size."""
        path = self.path(digest)
        return path.is_file() and path.stat().st_size == size


def write_layer(
    source: Path,
    target: str,
    store: BlobStore,
    *,
    compress: bool,
    annotations: dict[str, str] | None = None,
) -> Layer:
    """Tar ``source`` under the image path ``target`` into ``store``; return the layer.

    Args:
        source: A directory whose contents become ``target`` in the image.
        target: An absolute path in the image, e.g. ``/opt/ml/model``.
        store: Where the finished blob is kept, named by its digest.
        compress: gzip the tar (code and text) or store it plain (weights).
        annotations: Descriptor annotations (e.g. the layer's title).

    Raises:
        UnsafeModelDir: ``source`` has a link out of itself or a special file.
        BuildError: ``source`` is not a directory or changes while being read.
    """
    plan = plan_layer(source, target)
    (store.root / "sha256").mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=store.root / "sha256", prefix=".partial-")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb", buffering=_CHUNK) as out:
            outer = _HashingWriter(out)
            if compress:
                gz = gzip.GzipFile(filename="", mode="wb", fileobj=outer,
                                   mtime=0, compresslevel=6)
                inner = _HashingWriter(gz)  # type: ignore[arg-type]
                for chunk in plan.chunks():
                    inner.write(chunk)
                gz.close()
                diff_id = inner.digest
            else:
                for chunk in plan.chunks():
                    outer.write(chunk)
                diff_id = outer.digest
        digest, size = outer.digest, outer.size
        tmp.replace(store.path(digest))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    media_type = OCI_LAYER_GZIP if compress else OCI_LAYER_TAR
    return Layer(Descriptor(media_type, digest, size, annotations or {}), diff_id)
