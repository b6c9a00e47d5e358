"""Reproducible layer tarballs of a whole root filesystem (or part of one).

Unlike ``layer.write_layer`` (model and code directories: everything owned by 0:0, modes
normalised), a rootfs keeps what the package manager set: numeric owners, setuid/setgid
and sticky bits (``/tmp`` is 1777), absolute symlinks (``/usr/bin/python3`` points at
``python3.11``) and hard links. What would make two builds differ is fixed:

- entries are sorted by path; owner names are empty (numeric ids only); PAX format;
- a file's mtime is kept when it predates the build (it came from a ``.deb`` and is
  part of the input) and set to ``epoch`` (``SOURCE_DATE_EPOCH``) when the build made it;
- gzip writes no file name and mtime 0 in its header;
- device nodes, FIFOs and sockets are left out (the container runtime provides ``/dev``).
"""

from __future__ import annotations

import gzip
import os
import stat
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from modelrelease.build.layer import BlobStore, _HashingWriter
from modelrelease.domain.image import OCI_LAYER_GZIP, Descriptor, Layer
from modelrelease.errors import BuildError

_CHUNK = 1024 * 1024

Select = Callable[[str], bool]


def _entries(root: Path, select: Select) -> list[str]:
    """Relative paths below ``root`` that ``select`` keeps, with their parents, sorted."""
    chosen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = os.path.relpath(dirpath, root)
        for name in [*dirnames, *filenames]:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if select(rel):
                chosen.add(rel)
                parent = os.path.dirname(rel)
                while parent and parent not in chosen:
                    chosen.add(parent)
                    parent = os.path.dirname(parent)
    return sorted(chosen)


def _info(root: Path, rel: str, epoch: int, started: float,
          links: dict[tuple[int, int], str]) -> tarfile.TarInfo | None:
    path = root / rel
    st = path.lstat()
    info = tarfile.TarInfo(rel)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = int(st.st_mtime) if st.st_mtime < started else epoch
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
    elif stat.S_ISREG(st.st_mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in links:
            info.type, info.linkname = tarfile.LNKTYPE, links[key]
        else:
            links[key] = rel
            info.type, info.size = tarfile.REGTYPE, st.st_size
    else:
        return None  # device, FIFO or socket: the runtime provides /dev
    return info


def write_tree_layer(
    root: Path,
    store: BlobStore,
    *,
    epoch: int,
    started: float,
    select: Select = lambda rel: True,
    annotations: dict[str, str] | None = None,
) -> Layer:
    """Tar (gzip) the entries of ``root`` that ``select`` keeps into ``store``.

    Args:
        root: The directory that becomes ``/`` of the layer.
        store: Where the finished blob is kept, named by its digest.
        epoch: The mtime of everything the build created (``SOURCE_DATE_EPOCH``).
        started: When the build began (Unix time): older mtimes are inputs and are kept.
        select: Keeps a path relative to ``root`` (``usr/bin/python3``); parents follow.
        annotations: Descriptor annotations (e.g. the layer's title).

    Raises:
        BuildError: ``root`` is not a directory or a file vanished while being read.
    """
    if not root.is_dir():
        raise BuildError(f"build layer: {root} is not a directory")
    (store.root / "sha256").mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=store.root / "sha256", prefix=".partial-")
    tmp = Path(tmp_name)
    links: dict[tuple[int, int], str] = {}
    try:
        with os.fdopen(fd, "wb", buffering=_CHUNK) as out:
            outer = _HashingWriter(out)
            gz = gzip.GzipFile(filename="", mode="wb", fileobj=outer, mtime=0, compresslevel=6)
            inner = _HashingWriter(gz)  # type: ignore[arg-type]
            with tarfile.open(fileobj=inner, mode="w|",  # type: ignore[call-overload]
                              format=tarfile.PAX_FORMAT, encoding="utf-8",
                              errors="surrogateescape") as tar:
                for rel in _entries(root, select):
                    info = _info(root, rel, epoch, started, links)
                    if info is None:
                        continue
                    if info.type == tarfile.REGTYPE:
                        with (root / rel).open("rb") as fh:
                            tar.addfile(info, fh)
                    else:
                        tar.addfile(info)
            gz.close()
        digest, size = outer.digest, outer.size
        tmp.replace(store.path(digest))
    except FileNotFoundError as exc:
        tmp.unlink(missing_ok=True)
        raise BuildError(f"build layer from {root}: {exc.filename} vanished while being "
                         "read; nothing else may write to the build directory") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Layer(Descriptor(OCI_LAYER_GZIP, digest, size, annotations or {}), inner.digest)
