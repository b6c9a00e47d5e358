"""Reproducible layer tarballs, with real files in tmp_path."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from modelrelease.build.layer import BlobStore, write_layer
from modelrelease.domain.image import OCI_LAYER_GZIP, OCI_LAYER_TAR
from modelrelease.errors import BuildError, UnsafeModelDir

TARGET = "/opt/ml/model"
WEIGHTS = bytes(range(256)) * 700  # 175 KiB: several tar blocks, not block-aligned
# (relative path, content); None marks a directory. Includes a non-ASCII and a >100 char
# name, which need PAX headers.
TREE: list[tuple[str, bytes | None]] = [
    ("MLmodel", b"flavors:\n  python_function: {}\n"),
    ("conda.yaml", b"name: env\n"),
    ("data", None),
    ("data/model.pkl", WEIGHTS),
    ("code", None),
    ("code/serve.py", b"#!/usr/bin/env python\nprint('hi')\n"),
    ("empty", None),
    ("données.txt", "é".encode()),
    ("deep", None),
    ("deep/" + "n" * 120 + ".bin", b"\x00\x01"),
    ("zero-length", b""),
    ("data-card.md", b"# card\n"),
]
EXECUTABLE = {"code/serve.py"}
LINKS = {"latest.pkl": "data/model.pkl", "codedir": "code"}


def make_tree(
    root: Path,
    *,
    reverse: bool = False,
    mtime: int = 1_600_000_000,
    file_mode: int = 0o644,
    dir_mode: int = 0o755,
) -> Path:
    """Create the test tree, in the given creation order, with the given times and modes."""
    root.mkdir(parents=True)
    items = list(reversed(TREE)) if reverse else TREE
    for rel, content in items:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            path.mkdir(exist_ok=True)
        else:
            path.write_bytes(content)
    links = sorted(LINKS.items(), reverse=reverse)
    for name, target in links:
        os.symlink(target, root / name)
    for rel, content in TREE:
        path = root / rel
        if content is None:
            path.chmod(dir_mode)
        else:
            path.chmod(0o755 if rel in EXECUTABLE else file_mode)
    for path in [root, *root.rglob("*")]:
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    return root


def store_files(store: BlobStore) -> list[Path]:
    return sorted(p for p in store.root.rglob("*") if p.is_file()) if store.root.exists() else []


def blob_bytes(store: BlobStore, digest: str) -> bytes:
    return store.path(digest).read_bytes()


def tar_bytes(store: BlobStore, digest: str, compressed: bool) -> bytes:
    data = blob_bytes(store, digest)
    return gzip.decompress(data) if compressed else data


def open_tar(store: BlobStore, digest: str) -> tarfile.TarFile:
    return tarfile.open(store.path(digest), mode="r:*")


COMPRESS = [pytest.param(False, id="plain"), pytest.param(True, id="gzip")]


@pytest.mark.parametrize("compress", COMPRESS)
def test_same_directory_twice_gives_the_same_blob(tmp_path: Path, compress: bool) -> None:
    source = make_tree(tmp_path / "model")
    store = BlobStore(tmp_path / "store")
    first = write_layer(source, TARGET, store, compress=compress)
    second = write_layer(source, TARGET, store, compress=compress)
    assert first == second
    assert store_files(store) == [store.path(first.descriptor.digest)]


@pytest.mark.parametrize("compress", COMPRESS)
@pytest.mark.parametrize(
    "variant",
    [
        pytest.param({"reverse": True}, id="other-creation-order"),
        pytest.param({"mtime": 86_400}, id="other-mtimes"),
        pytest.param({"file_mode": 0o600, "dir_mode": 0o700}, id="private-permissions"),
        pytest.param({"file_mode": 0o664, "dir_mode": 0o775}, id="group-writable"),
        pytest.param({"reverse": True, "mtime": 5, "file_mode": 0o640}, id="all-at-once"),
    ],
)
def test_a_copy_with_other_metadata_gives_the_same_digest(
    tmp_path: Path, compress: bool, variant: dict[str, int]
) -> None:
    original = make_tree(tmp_path / "a" / "model")
    copy = make_tree(tmp_path / "b" / "elsewhere", **variant)  # type: ignore[arg-type]
    one = write_layer(original, TARGET, BlobStore(tmp_path / "s1"), compress=compress)
    two = write_layer(copy, TARGET, BlobStore(tmp_path / "s2"), compress=compress)
    assert one.descriptor.digest == two.descriptor.digest
    assert one.diff_id == two.diff_id
    assert one.descriptor.size == two.descriptor.size


def _add_exec_bit(root: Path) -> None:
    (root / "MLmodel").chmod(0o755)


def _change_content(root: Path) -> None:
    (root / "conda.yaml").write_bytes(b"name: other\n")


def _add_empty_dir(root: Path) -> None:
    (root / "another").mkdir()


def _retarget_link(root: Path) -> None:
    (root / "latest.pkl").unlink()
    os.symlink("MLmodel", root / "latest.pkl")


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(_add_exec_bit, id="executable-bit"),
        pytest.param(_change_content, id="content"),
        pytest.param(_add_empty_dir, id="empty-directory"),
        pytest.param(_retarget_link, id="link-target"),
    ],
)
def test_what_matters_changes_the_digest(tmp_path: Path, change: Callable[[Path], None]) -> None:
    source = make_tree(tmp_path / "model")
    store = BlobStore(tmp_path / "store")
    before = write_layer(source, TARGET, store, compress=False)
    change(source)
    after = write_layer(source, TARGET, store, compress=False)
    assert before.descriptor.digest != after.descriptor.digest


@pytest.mark.parametrize(
    ("target", "other"),
    [pytest.param("/opt/ml/model", "/opt/ml/other", id="target")],
)
def test_target_changes_the_digest(tmp_path: Path, target: str, other: str) -> None:
    source = make_tree(tmp_path / "model")
    store = BlobStore(tmp_path / "store")
    one = write_layer(source, target, store, compress=False)
    two = write_layer(source, other, store, compress=False)
    assert one.descriptor.digest != two.descriptor.digest


@pytest.mark.parametrize(
    ("compress", "media_type", "annotations"),
    [
        pytest.param(False, OCI_LAYER_TAR, None, id="plain"),
        pytest.param(True, OCI_LAYER_GZIP, None, id="gzip"),
        pytest.param(False, OCI_LAYER_TAR, {"org.opencontainers.image.title": "model"},
                     id="plain-annotated"),
        pytest.param(True, OCI_LAYER_GZIP, {"org.opencontainers.image.title": "code"},
                     id="gzip-annotated"),
    ],
)
def test_descriptor_and_diff_id(
    tmp_path: Path, compress: bool, media_type: str, annotations: dict[str, str] | None
) -> None:
    source = make_tree(tmp_path / "model")
    store = BlobStore(tmp_path / "store")
    layer = write_layer(source, TARGET, store, compress=compress, annotations=annotations)
    blob = blob_bytes(store, layer.descriptor.digest)
    assert layer.descriptor.media_type == media_type
    assert layer.descriptor.annotations == (annotations or {})
    assert layer.descriptor.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert layer.descriptor.size == len(blob)
    assert store.has(layer.descriptor.digest, len(blob))
    uncompressed = tar_bytes(store, layer.descriptor.digest, compress)
    assert layer.diff_id == "sha256:" + hashlib.sha256(uncompressed).hexdigest()
    if compress:
        assert layer.diff_id != layer.descriptor.digest
        assert blob[:2] == b"\x1f\x8b"
        assert blob[3] == 0, "no FNAME/FEXTRA/FCOMMENT flags"
        assert blob[4:8] == b"\0\0\0\0", "gzip mtime is 0"
    else:
        assert layer.diff_id == layer.descriptor.digest
    # No partial files left next to the blob.
    assert store_files(store) == [store.path(layer.descriptor.digest)]


@pytest.mark.parametrize("compress", COMPRESS)
def test_entries(tmp_path: Path, compress: bool) -> None:
    source = make_tree(tmp_path / "model")
    store = BlobStore(tmp_path / "store")
    layer = write_layer(source, TARGET, store, compress=compress)
    raw = tar_bytes(store, layer.descriptor.digest, compress)
    assert len(raw) % tarfile.RECORDSIZE == 0
    assert raw[-2 * tarfile.BLOCKSIZE:] == b"\0" * (2 * tarfile.BLOCKSIZE)
    # POSIX (ustar/pax) magic, not GNU's "ustar  ".
    assert raw[257:265] == b"ustar\x0000"
    with open_tar(store, layer.descriptor.digest) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    # Sorted by path, a directory's name carrying its trailing "/".
    keys = [m.name + "/" if m.isdir() else m.name for m in members]
    assert keys == sorted(keys)
    assert names[:3] == ["opt", "opt/ml", "opt/ml/model"]
    expected = {"opt", "opt/ml", "opt/ml/model"}
    expected |= {f"opt/ml/model/{rel}" for rel, _ in TREE}
    expected |= {f"opt/ml/model/{name}" for name in LINKS}
    assert set(names) == expected
    assert len(names) == len(expected), "nothing twice (links to dirs are not descended)"
    for member in members:
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
        assert member.mtime == 0
    by_name = {m.name: m for m in members}
    for rel, content in TREE:
        member = by_name[f"opt/ml/model/{rel}"]
        if content is None:
            assert member.isdir() and member.mode == 0o755
        else:
            assert member.isfile() and member.size == len(content)
            assert member.mode == (0o755 if rel in EXECUTABLE else 0o644)
    for name, target in LINKS.items():
        member = by_name[f"opt/ml/model/{name}"]
        assert member.issym() and member.linkname == target and member.mode == 0o777
    for parent in ("opt", "opt/ml", "opt/ml/model"):
        assert by_name[parent].isdir() and by_name[parent].mode == 0o755
    # Names that do not fit ustar travel in PAX extended headers.
    assert b"path=" in raw


@pytest.mark.parametrize("compress", COMPRESS)
def test_extracted_contents_match(tmp_path: Path, compress: bool) -> None:
    source = make_tree(tmp_path / "model")
    store = BlobStore(tmp_path / "store")
    layer = write_layer(source, TARGET, store, compress=compress)
    out = tmp_path / "out"
    with open_tar(store, layer.descriptor.digest) as tar:
        tar.extractall(out, filter="data")
    root = out / "opt" / "ml" / "model"
    for rel, content in TREE:
        if content is None:
            assert (root / rel).is_dir()
        else:
            assert (root / rel).read_bytes() == content
    assert os.access(root / "code" / "serve.py", os.X_OK)
    for name, target in LINKS.items():
        assert os.readlink(root / name) == target
    assert (root / "latest.pkl").read_bytes() == WEIGHTS
    assert (root / "codedir" / "serve.py").is_file()


@pytest.mark.parametrize(
    ("target", "parents"),
    [
        pytest.param("/model", ["model"], id="one-level"),
        pytest.param("/opt/ml/model", ["opt", "opt/ml", "opt/ml/model"], id="three-levels"),
        pytest.param("/opt/ml/model/", ["opt", "opt/ml", "opt/ml/model"], id="trailing-slash"),
    ],
)
def test_parent_directories_of_the_target(
    tmp_path: Path, target: str, parents: list[str]
) -> None:
    source = tmp_path / "model"
    source.mkdir()
    (source / "f").write_bytes(b"x")
    store = BlobStore(tmp_path / "store")
    layer = write_layer(source, target, store, compress=False)
    with open_tar(store, layer.descriptor.digest) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == [*parents, f"{parents[-1]}/f"]
    assert all(m.isdir() for m in members[:-1])


def test_empty_directory(tmp_path: Path) -> None:
    source = tmp_path / "model"
    source.mkdir()
    store = BlobStore(tmp_path / "store")
    layer = write_layer(source, "/m", store, compress=False)
    assert layer.descriptor.size == tarfile.RECORDSIZE
    with open_tar(store, layer.descriptor.digest) as tar:
        assert tar.getnames() == ["m"]


@pytest.mark.parametrize(
    ("link", "target"),
    [
        pytest.param("up", "../outside.txt", id="relative-up"),
        pytest.param("abs", "/etc/passwd", id="absolute"),
        pytest.param("sub/deep", "../../outside.txt", id="relative-from-subdir"),
        pytest.param("dir", "..", id="parent-directory"),
        pytest.param("dangling", "../missing", id="dangling-outside"),
        pytest.param("chain", "hop", id="chain-through-inner-link"),
    ],
)
def test_symlink_out_of_the_directory_is_refused(
    tmp_path: Path, link: str, target: str
) -> None:
    (tmp_path / "outside.txt").write_bytes(b"secret")
    source = tmp_path / "model"
    (source / "sub").mkdir(parents=True)
    (source / "inside.txt").write_bytes(b"ok")
    if link == "chain":
        os.symlink("../outside.txt", source / "hop")
    os.symlink(target, source / link)
    store = BlobStore(tmp_path / "store")
    with pytest.raises(UnsafeModelDir) as info:
        write_layer(source, TARGET, store, compress=True)
    assert "points outside the model directory" in str(info.value)
    assert store_files(store) == []


@pytest.mark.parametrize(
    ("link", "target"),
    [
        pytest.param("same", "inside.txt", id="sibling"),
        pytest.param("sub/up", "../inside.txt", id="from-subdir"),
        pytest.param("self", ".", id="the-directory-itself"),
        pytest.param("dangling", "missing.txt", id="dangling-inside"),
    ],
)
def test_symlink_inside_is_kept_as_a_symlink(tmp_path: Path, link: str, target: str) -> None:
    source = tmp_path / "model"
    (source / "sub").mkdir(parents=True)
    (source / "inside.txt").write_bytes(b"ok")
    os.symlink(target, source / link)
    store = BlobStore(tmp_path / "store")
    layer = write_layer(source, TARGET, store, compress=False)
    with open_tar(store, layer.descriptor.digest) as tar:
        member = tar.getmember(f"opt/ml/model/{link}")
    assert member.issym()
    assert member.linkname == target


def test_absolute_symlink_inside_is_rewritten(tmp_path: Path) -> None:
    source = tmp_path / "model"
    source.mkdir()
    (source / "inside.txt").write_bytes(b"ok")
    os.symlink(source / "inside.txt", source / "abs")
    store = BlobStore(tmp_path / "store")
    layer = write_layer(source, TARGET, store, compress=False)
    with open_tar(store, layer.descriptor.digest) as tar:
        linkname = tar.getmember("opt/ml/model/abs").linkname
    assert linkname in ("inside.txt", f"{TARGET}/inside.txt")


def test_fifo_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "model"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_bytes(b"a")
    os.mkfifo(source / "sub" / "pipe")
    store = BlobStore(tmp_path / "store")
    with pytest.raises(UnsafeModelDir) as info:
        write_layer(source, TARGET, store, compress=False)
    assert "sub/pipe is not a regular file, directory or symlink" in str(info.value)
    assert store_files(store) == []


@pytest.mark.parametrize(
    "kind",
    [pytest.param("missing", id="missing"), pytest.param("file", id="a-file")],
)
def test_source_must_be_a_directory(tmp_path: Path, kind: str) -> None:
    source = tmp_path / "model"
    if kind == "file":
        source.write_bytes(b"x")
    store = BlobStore(tmp_path / "store")
    with pytest.raises(BuildError, match="is not a directory"):
        write_layer(source, TARGET, store, compress=False)
    assert store_files(store) == []


def test_copytree_copy_gives_the_same_digest(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "model")
    copy = tmp_path / "copy"
    shutil.copytree(source, copy, symlinks=True, copy_function=shutil.copy)
    one = write_layer(source, TARGET, BlobStore(tmp_path / "s"), compress=True)
    two = write_layer(copy, TARGET, BlobStore(tmp_path / "s"), compress=True)
    assert one == two


@pytest.mark.parametrize(
    ("write", "size", "expected"),
    [
        pytest.param(b"abc", 3, True, id="present"),
        pytest.param(b"abc", 4, False, id="wrong-size"),
        pytest.param(None, 3, False, id="absent"),
    ],
)
def test_blob_store_has(tmp_path: Path, write: bytes | None, size: int, expected: bool) -> None:
    store = BlobStore(tmp_path)
    digest = "sha256:" + "e" * 64
    assert store.path(digest) == tmp_path / "sha256" / ("e" * 64)
    if write is not None:
        store.path(digest).parent.mkdir(parents=True)
        store.path(digest).write_bytes(write)
    assert store.has(digest, size) is expected


def _plan_tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "MLmodel").write_text("flavors: {}\n")
    (root / "weights.bin").write_bytes(bytes(range(256)) * 41 + b"tail")  # not block-aligned
    (root / "sub" / "empty").write_bytes(b"")
    (root / "link").symlink_to("MLmodel")
    return root


@pytest.mark.parametrize("offset", [
    pytest.param(0, id="start"),
    pytest.param(1, id="inside-first-header"),
    pytest.param(512, id="header-boundary"),
    pytest.param(2000, id="inside-file-data"),
    pytest.param(10_000, id="late"),
])
def test_plan_chunks_from_any_offset_match_the_written_tar(tmp_path: Path, offset: int) -> None:
    from modelrelease.build.layer import plan_layer

    source = _plan_tree(tmp_path / "model")
    plan = plan_layer(source, "/opt/ml/model")
    store = BlobStore(tmp_path / "store")
    written = write_layer(source, "/opt/ml/model", store, compress=False)
    full = store.path(written.descriptor.digest).read_bytes()
    assert plan.size == len(full) == written.descriptor.size
    assert plan.digest() == written.descriptor.digest == written.diff_id
    assert b"".join(plan.chunks(offset)) == full[offset:]


def test_plan_chunks_past_the_end_are_empty(tmp_path: Path) -> None:
    from modelrelease.build.layer import plan_layer

    plan = plan_layer(_plan_tree(tmp_path / "model"), "/opt/ml/model")
    assert b"".join(plan.chunks(plan.size)) == b""
