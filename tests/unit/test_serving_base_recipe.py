"""The serving base's pure parts: mirror selection, the recipe key, the rootfs tar writer."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import time
from pathlib import Path

import pytest

from modelrelease.build.layer import BlobStore
from modelrelease.build.serving_base import Recipe, ServingBaseBuilder, load_recipe
from modelrelease.build.sources import parse_sources
from modelrelease.build.tree import write_tree_layer
from modelrelease.errors import BuildError

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main

Types: deb
URIs: https://deb.nodesource.com/node_20.x
Suites: nodistro
Components: main
"""


@pytest.mark.parametrize(("files", "expected"), [
    pytest.param([("debian.sources", DEB822)], [
        "deb http://deb.debian.org/debian bookworm main",
        "deb http://deb.debian.org/debian bookworm-updates main",
        "deb http://deb.debian.org/debian-security bookworm-security main",
    ], id="deb822-keeps-release-drops-third-party"),
    pytest.param([("sources.list",
                   "deb [arch=amd64 signed-by=/k.gpg] http://m/debian bookworm main contrib\n"
                   "# deb http://m/debian bookworm-proposed main\n"
                   "deb-src http://m/debian bookworm main\n"
                   "deb http://m/debian bookworm-backports main\n"
                   "deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n")],
                 ["deb http://m/debian bookworm main contrib"], id="one-line-with-options"),
    pytest.param([("a.list", "deb http://m/debian bookworm main\n"),
                  ("b.sources", "Types: deb\nURIs: http://m/debian\nSuites: bookworm\n"
                                "Components: main\n")],
                 ["deb http://m/debian bookworm main"], id="duplicates-dropped"),
    pytest.param([("x.sources", "Types: deb\nEnabled: no\nURIs: http://m/debian\n"
                                "Suites: bookworm\nComponents: main\n")], [], id="disabled"),
])
def test_parse_sources_keeps_only_the_release(files: list[tuple[str, str]],
                                              expected: list[str]) -> None:
    assert parse_sources(files, "bookworm") == expected


def _recipe(**changes: object) -> Recipe:
    fields: dict[str, object] = {
        "suite": "bookworm", "sources": ("deb http://m/debian bookworm main",),
        "packages": ("python3",), "requirements": "a==1\n", "epoch": 0}
    fields.update(changes)
    return Recipe(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("change", [
    pytest.param({"sources": ("deb http://other/debian bookworm main",)}, id="mirror"),
    pytest.param({"packages": ("python3", "curl")}, id="packages"),
    pytest.param({"requirements": "a==2\n"}, id="pins"),
    pytest.param({"epoch": 1}, id="epoch"),
])
def test_recipe_key_changes_with_every_input(change: dict[str, object]) -> None:
    assert _recipe().key == _recipe().key
    assert _recipe(**change).key != _recipe().key


def test_load_recipe_refuses_loose_pins(tmp_path: Path) -> None:
    (tmp_path / "packages.txt").write_text("python3\n")
    (tmp_path / "requirements.txt").write_text("# comment\nnumpy==2.0\npandas>=2\n")
    with pytest.raises(BuildError, match="pandas>=2 not pinned"):
        load_recipe(tmp_path, suite="bookworm", sources=["deb http://m/debian bookworm main"])


def test_shipped_recipe_is_fully_pinned() -> None:
    recipe = load_recipe(suite="bookworm", sources=["deb http://m/debian bookworm main"],
                         epoch=0)
    assert "python3" in recipe.packages
    names = {line.split("==")[0].replace("_", "-") for line in recipe.requirements.split()}
    assert {"mlflow-skinny", "scikit-learn", "pandas", "skops", "uvicorn",
            "prometheus-client"} <= names


def _tree(root: Path) -> None:
    (root / "tmp").mkdir(parents=True)
    (root / "tmp").chmod(0o1777)
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/python3.11").write_bytes(b"\x7fELF")
    (root / "usr/bin/python3.11").chmod(0o755)
    (root / "usr/bin/python3").symlink_to("/usr/bin/python3.11")
    (root / "usr/bin/su").write_bytes(b"su")
    (root / "usr/bin/su").chmod(0o4755)
    os.link(root / "usr/bin/su", root / "usr/bin/su-again")
    (root / "opt/venv").mkdir(parents=True)
    (root / "opt/venv/x.py").write_text("x = 1\n")
    os.mkfifo(root / "tmp/fifo")


def _members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(path.read_bytes()))) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_tree_layer_is_reproducible_and_faithful(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    first, second = tmp_path / "a", tmp_path / "b"
    _tree(first)
    time.sleep(1.1)
    _tree(second)
    started = time.time() - 3600  # everything was made "during the build": gets the epoch
    one = write_tree_layer(first, store, epoch=1234, started=started)
    two = write_tree_layer(second, store, epoch=1234, started=started)
    assert one == two
    members = _members(store.path(one.descriptor.digest))
    assert members["tmp"].mode == 0o1777
    assert members["usr/bin/su"].mode == 0o4755
    assert members["usr/bin/su-again"].islnk()
    assert members["usr/bin/su-again"].linkname == "usr/bin/su"
    assert members["usr/bin/python3"].issym()
    assert members["usr/bin/python3"].linkname == "/usr/bin/python3.11"
    assert "tmp/fifo" not in members
    assert {m.mtime for m in members.values()} == {1234}
    assert {m.uname for m in members.values()} == {""}
    assert list(members) == sorted(members)


def test_tree_layer_keeps_input_mtimes_and_selects(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _tree(root)
    os.utime(root / "usr/bin/python3.11", (1000, 1000))
    store = BlobStore(tmp_path / "blobs")
    layer = write_tree_layer(root, store, epoch=5, started=2000,
                             select=lambda rel: rel.startswith("usr/bin/python3.11"))
    members = _members(store.path(layer.descriptor.digest))
    assert list(members) == ["usr", "usr/bin", "usr/bin/python3.11"]
    assert members["usr/bin/python3.11"].mtime == 1000


def test_missing_mmdebstrap_is_named_with_the_fix(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    builder = ServingBaseBuilder(tmp_path / "cache")
    with pytest.raises(BuildError, match=r"mmdebstrap not found; install it \(apt-get install"):
        builder.rootfs_layers(_recipe())
