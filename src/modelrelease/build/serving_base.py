"""The real serving base: a self-contained Debian + Python image made with mmdebstrap.

    recipe (deployments/serving-base: packages.txt, requirements.txt)
      + this machine's Debian release and mirror (its apt sources)
      -> mmdebstrap --variant=minbase (python3, python3-venv, ca-certificates)
         customize hook: venv at /opt/venv, pip install --no-deps of the pinned stack
      -> layer 1 "debian"        the rootfs without /opt/venv
         layer 2 "python"        /opt/venv: the scoring-server stack
         layer 3 "modelrelease"  a wheel of this checkout, unpacked into the venv
      -> config (non-root, PATH=/opt/venv/bin:..., python.version/packages labels) -> push

Reproducible: ``SOURCE_DATE_EPOCH`` is fixed (``DEFAULT_EPOCH`` or the environment's),
tar entries are sorted with numeric owners, and every mtime is either the one its ``.deb``
gave it or the epoch (``build.tree``); the venv is byte-compiled with hash-based ``.pyc``
(no timestamps) under ``PYTHONHASHSEED=0`` (set constants in a stable order); whatever a
build leaves that varies (apt/dpkg logs and backups, ``ld.so`` aux cache, the host's
resolv.conf and hostname) is removed. The same recipe and mirror state give the same
digest.

Cached outside the repository under ``CACHE/serving-base/``: the two rootfs layers by a key
of the recipe (Debian release, mirror lines, package list, pins, epoch), the modelrelease
layer by a hash of the source it is built from. A warm run builds nothing, only checks the
registry (HEAD) and pushes what it lacks. A cache hit keeps the Debian package versions of
its first build: ``rebuild=True`` (``--rebuild``) picks up a newer mirror state.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import modelrelease
from modelrelease.adapters.oci_registry import PushStats, RegistryClient
from modelrelease.build.layer import BlobStore
from modelrelease.build.sources import host_codename, host_sources
from modelrelease.build.tree import write_tree_layer
from modelrelease.domain import image as img
from modelrelease.domain.reference import ImageRef
from modelrelease.errors import BuildError

Progress = Callable[[str], None]

RECIPE_FORMAT = 3  # bump when the build steps change what a recipe produces
DEFAULT_EPOCH = 1735689600  # 2025-01-01T00:00:00Z: SOURCE_DATE_EPOCH unless the env sets one
VENV = "/opt/venv"
USER = "1000:1000"
PATH = f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Never imported when serving: the numeric stack's own test suites (~110 MB) and MLflow's
# UI (27 MB; `mlflow server` cannot run in the base anyway: its Flask stack is left out).
PRUNE_TESTS = ("numpy", "pandas", "scipy", "sklearn")
LABEL_DEBIAN_SUITE = f"{img.LABEL_PREFIX}.debian.suite"
LABEL_RECIPE = f"{img.LABEL_PREFIX}.base.recipe"
_TITLE = "org.opencontainers.image.title"

# Files a build leaves that differ from one run to the next (or name the build machine).
_VOLATILE = (
    "etc/hostname", "etc/resolv.conf", "etc/machine-id", "var/lib/dbus/machine-id",
    "var/cache/ldconfig/aux-cache", "var/cache/debconf/config.dat-old",
    "var/cache/debconf/templates.dat-old", "var/lib/dpkg/status-old",
    "var/lib/dpkg/diversions-old", "var/lib/dpkg/statoverride-old",
    "etc/apt/apt.conf.d/99mmdebstrap",  # the build's --aptopt lines: not the image's business
)

_LIST_PACKAGES = (
    "import json; from importlib import metadata; found = {}\n"
    "for d in metadata.distributions():\n"
    "    n = d.metadata['Name']\n"
    "    if n: found.setdefault(n.lower(), d.version)\n"
    "print(json.dumps(dict(sorted(found.items())), separators=(',', ':')))"
)

_HOOK = r"""set -eu
root="$1"
run() {
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 \
    PIP_CERT=/tmp/modelrelease-ca.crt \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_DEFAULT_TIMEOUT=120 \
    ${MR_PIP_INDEX_URL:+PIP_INDEX_URL="$MR_PIP_INDEX_URL"} \
    ${MR_PIP_EXTRA_INDEX_URL:+PIP_EXTRA_INDEX_URL="$MR_PIP_EXTRA_INDEX_URL"} "$@"
}
cp "$MR_CA" "$root/tmp/modelrelease-ca.crt"
cp "$MR_REQUIREMENTS" "$root/tmp/requirements.txt"
echo "I: [serving-base] python3 -m venv $MR_VENV" >&2
run python3 -m venv "$MR_VENV"
echo "I: [serving-base] pip install --no-deps -r requirements.txt" >&2
if ! run "$MR_VENV/bin/python" -m pip install --no-deps --only-binary=:all: --no-compile \
    --progress-bar off -r /tmp/requirements.txt >"$MR_PIP_LOG" 2>&1; then
  echo "E: [serving-base] pip install failed, see $MR_PIP_LOG" >&2
  exit 1
fi
find "$root$MR_VENV" -name __pycache__ -prune -exec rm -rf {} +
site=$(echo "$root$MR_VENV"/lib/python3.*/site-packages)
echo "I: [serving-base] pruning test suites and the MLflow UI ($MR_PRUNE)" >&2
for pkg in $MR_PRUNE_TESTS; do
  if [ -d "$site/$pkg" ]; then find "$site/$pkg" -depth -type d -name tests -exec rm -rf {} +; fi
done
rm -rf "$site/mlflow/server/js"
echo "I: [serving-base] compileall (hash-based .pyc)" >&2
run "$MR_VENV/bin/python" -m compileall -f -q -q --invalidation-mode unchecked-hash \
  ${MR_COMPILE_EXCLUDE:+-x} ${MR_COMPILE_EXCLUDE:+"$MR_COMPILE_EXCLUDE"} "$MR_VENV/lib" \
  >/dev/null
run "$MR_VENV/bin/python" -c "$MR_LIST" >"$MR_PACKAGES"
run "$MR_VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' >"$MR_PYTHON"
run dpkg-query -W -f '${Package}=${Version}\n' >"$MR_DEBS"
rm -f "$root/tmp/modelrelease-ca.crt" "$root/tmp/requirements.txt"
"""


@dataclass(frozen=True)
class Recipe:
    """Everything a serving base's rootfs depends on; its ``key`` names the cache entry."""

    suite: str
    sources: tuple[str, ...]
    packages: tuple[str, ...]
    requirements: str
    epoch: int
    architecture: str = "amd64"

    @property
    def key(self) -> str:
        """A hash of the recipe: the same key, the same rootfs layers."""
        body = {"format": RECIPE_FORMAT, "suite": self.suite, "sources": list(self.sources),
                "packages": list(self.packages), "requirements": self.requirements,
                "epoch": self.epoch, "architecture": self.architecture}
        return hashlib.sha256(img.canonical_json(body)).hexdigest()[:32]


@dataclass(frozen=True)
class ImageBuild:
    """A pushed image of ours (the serving base, the pipeline image) and what it took."""

    image: str
    digest: str
    layers: tuple[img.Descriptor, ...]
    packages: dict[str, str]
    python_version: str
    python_cached: bool  # its Python: the base's rootfs, the pipeline image's venv layer
    app_cached: bool  # the modelrelease layer
    stats: PushStats
    seconds: float

    def summary(self, what: str) -> str:
        """One progress line: ``what``, the digest, the time, what was cached or uploaded."""
        return (f"{what} {self.digest} in {self.seconds:.1f}s (Python layers "
                f"{'cached' if self.python_cached else 'built'}, modelrelease layer "
                f"{'cached' if self.app_cached else 'built'}, {self.stats.bytes_uploaded} "
                "bytes uploaded)")


def default_recipe_dir() -> Path:
    """``deployments/serving-base`` of the checkout this package runs from."""
    return Path(modelrelease.__file__).resolve().parents[2] / "deployments" / "serving-base"


def source_root() -> Path:
    """The checkout whose ``src/modelrelease`` is installed into the base.

    Raises:
        BuildError: this package is not running from a source checkout.
    """
    root = Path(modelrelease.__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file() or not (root / "src" / "modelrelease").is_dir():
        raise BuildError(f"build serving base: {root} is not a modelrelease checkout "
                         "(no pyproject.toml next to src/modelrelease); run from a checkout")
    return root


def read_pins(path: Path, what: str) -> str:
    """A requirements file whose every line pins one package with ``==``, normalised.

    Comments and blank lines are dropped; one pin per line.

    Raises:
        BuildError: the file is missing or a line is not an exact pin.
    """
    pins = _read_list(path, what)
    loose = [pin for pin in pins if "==" not in pin]
    if loose:
        raise BuildError(f"read {what} {path}: {', '.join(loose)} not pinned with ==; pin "
                         "every package (it is installed with --no-deps so two builds get "
                         "the same files)")
    return "\n".join(pins) + "\n"


def _read_list(path: Path, what: str = "serving-base recipe") -> tuple[str, ...]:
    try:
        text = path.read_text()
    except OSError as exc:
        fix = ("pass --recipe DIR holding packages.txt and requirements.txt"
               if what == "serving-base recipe" else "pass --requirements FILE")
        raise BuildError(f"read {what} {path}: {exc.strerror}; {fix}") from exc
    return tuple(line.split("#", 1)[0].strip() for line in text.splitlines()
                 if line.split("#", 1)[0].strip())


def load_recipe(recipe_dir: Path | None = None, *, suite: str | None = None,
                sources: list[str] | None = None, epoch: int | None = None) -> Recipe:
    """Read ``packages.txt`` and ``requirements.txt``; add this machine's release and mirror.

    Raises:
        BuildError: a recipe file is missing, a pin is not exact, or no mirror is configured.
    """
    folder = recipe_dir or default_recipe_dir()
    packages = _read_list(folder / "packages.txt")
    pins = read_pins(folder / "requirements.txt", "serving-base recipe")
    codename = suite or host_codename()
    env_epoch = os.environ.get("SOURCE_DATE_EPOCH")
    return Recipe(suite=codename,
                  sources=tuple(sources if sources is not None else host_sources(codename)),
                  packages=packages, requirements=pins,
                  epoch=epoch if epoch is not None else int(env_epoch or DEFAULT_EPOCH))


def venv_hook(work: Path, requirements: str, epoch: int, prune_tests: tuple[str, ...],
              compile_exclude: str = "") -> tuple[Path, dict[str, str], dict[str, Path]]:
    """The customize hook that makes ``/opt/venv`` in a rootfs (``sh HOOK ROOTFS``).

    Returns the hook, its environment, and the files it writes its results to (pip's log,
    the packages, the Python version, the Debian packages). ``prune_tests``: packages whose
    test suites are removed; ``compile_exclude``: a regex of files not byte-compiled (modules
    for a newer Python, never imported by this one).
    """
    hook = work / "customize.sh"
    hook.write_text(_HOOK)
    (work / "requirements.txt").write_text(requirements)
    out = {name: work / f"{name}.out" for name in ("pip", "packages", "python", "debs")}
    env = {
        **os.environ,
        "SOURCE_DATE_EPOCH": str(epoch),
        "MR_CA": str(_ca_bundle()),
        "MR_REQUIREMENTS": str(work / "requirements.txt"),
        "MR_VENV": VENV,
        "MR_PRUNE_TESTS": " ".join(prune_tests),
        "MR_PRUNE": f"{'/'.join(prune_tests) or 'no packages'} */tests, mlflow/server/js",
        "MR_LIST": _LIST_PACKAGES,
        "MR_COMPILE_EXCLUDE": compile_exclude,
        "MR_PIP_LOG": str(out["pip"]),
        "MR_PACKAGES": str(out["packages"]),
        "MR_PYTHON": str(out["python"]),
        "MR_DEBS": str(out["debs"]),
        "MR_PIP_INDEX_URL": os.environ.get("PIP_INDEX_URL", ""),
        "MR_PIP_EXTRA_INDEX_URL": os.environ.get("PIP_EXTRA_INDEX_URL", ""),
    }
    return hook, env, out


def _ca_bundle() -> Path:
    for candidate in (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"),
                      os.environ.get("REQUESTS_CA_BUNDLE"), "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise BuildError("build serving base: no CA bundle for pip in the rootfs; set PIP_CERT to "
                     "this machine's bundle (e.g. /etc/ssl/certs/ca-certificates.crt)")


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


class ServingBaseBuilder:
    """Builds, caches and pushes the serving base.

    Args:
        cache_dir: The build cache root; the base lives under ``cache_dir/serving-base``.
        progress: Called with one line per step (mmdebstrap's own ``I:`` lines included).
    """

    def __init__(self, cache_dir: Path, progress: Progress | None = None) -> None:
        self.root = cache_dir / "serving-base"
        self.store = BlobStore(self.root / "blobs")
        self.progress: Progress = progress or (lambda line: None)

    # -- rootfs (Debian + Python stack) -----------------------------------------------------

    def rootfs_layers(self, recipe: Recipe, *, rebuild: bool = False
                      ) -> tuple[list[img.Layer], dict[str, str], str, bool]:
        """The Debian and Python layers for ``recipe``, from the cache or built.

        Returns:
            The two layers, the packages the venv holds, the Python version, a cache hit.
        """
        record = self.root / "rootfs" / f"{recipe.key}.json"
        if not rebuild and record.is_file():
            saved = json.loads(record.read_text())
            layers = [img.Layer(img.Descriptor.from_json(d["descriptor"]), d["diffID"])
                      for d in saved["layers"]]
            if all(self.store.has(x.descriptor.digest, x.descriptor.size) for x in layers):
                self.progress(f"rootfs {recipe.key[:12]} cached ({recipe.suite}, "
                              f"{len(saved['packages'])} Python packages)")
                return layers, saved["packages"], saved["python"], True
        layers, packages, python, debs = self._build_rootfs(recipe)
        record.parent.mkdir(parents=True, exist_ok=True)
        tmp = record.with_suffix(".partial")
        tmp.write_text(json.dumps({
            "layers": [{"descriptor": x.descriptor.to_json(), "diffID": x.diff_id}
                       for x in layers],
            "packages": packages, "python": python, "debian": debs,
            "sources": list(recipe.sources), "packageList": list(recipe.packages),
        }, indent=1))
        tmp.replace(record)
        return layers, packages, python, False

    def _build_rootfs(self, recipe: Recipe
                      ) -> tuple[list[img.Layer], dict[str, str], str, list[str]]:
        mmdebstrap = shutil.which("mmdebstrap")
        if mmdebstrap is None:
            raise BuildError("build serving base: mmdebstrap not found; install it "
                             "(apt-get install mmdebstrap)")
        if shutil.which("chroot") is None or os.geteuid() != 0:
            raise BuildError("build serving base: needs root (mmdebstrap --mode=root and "
                             "chroot for pip); run it as root")
        self.root.mkdir(parents=True, exist_ok=True)
        started = time.time()
        with tempfile.TemporaryDirectory(prefix="rootfs-", dir=self.root) as tmp:
            work = Path(tmp)
            rootfs = work / "rootfs"
            hook, env, out = venv_hook(work, recipe.requirements, recipe.epoch, PRUNE_TESTS)
            argv = [
                mmdebstrap, "--mode=root", "--variant=minbase", "--format=directory",
                f"--architectures={recipe.architecture}",
                f"--include={','.join(recipe.packages)}",
                "--aptopt=Acquire::Check-Valid-Until \"false\"",
                "--aptopt=Acquire::Retries \"3\"",
                "--aptopt=APT::Sandbox::User \"root\"",
                "--dpkgopt=path-exclude=/usr/share/man/*",
                "--dpkgopt=path-exclude=/usr/share/doc/*",
                "--dpkgopt=path-include=/usr/share/doc/*/copyright",
                "--dpkgopt=path-exclude=/usr/share/locale/*",
                "--dpkgopt=path-exclude=/usr/share/info/*",
                f"--customize-hook=sh {hook} \"$1\"",
                recipe.suite, str(rootfs), *recipe.sources,
            ]
            self.progress(f"mmdebstrap {recipe.suite} from {', '.join(recipe.sources)} "
                          f"(packages {', '.join(recipe.packages)}; a few minutes)")
            self._run_mmdebstrap(argv, env, recipe, out["pip"])
            t0 = time.monotonic()
            self._scrub(rootfs)
            venv_rel = VENV.lstrip("/")
            debian = write_tree_layer(
                rootfs, self.store, epoch=recipe.epoch, started=started,
                select=lambda rel: rel != venv_rel and not rel.startswith(venv_rel + "/"),
                annotations={_TITLE: "debian"})
            self.progress(f"layer debian {debian.descriptor.digest[:19]} "
                          f"({debian.descriptor.size / 1e6:.1f} MB gzip, "
                          f"{time.monotonic() - t0:.1f}s)")
            t0 = time.monotonic()
            python = write_tree_layer(
                rootfs, self.store, epoch=recipe.epoch, started=started,
                select=lambda rel: rel == venv_rel or rel.startswith(venv_rel + "/"),
                annotations={_TITLE: "python"})
            self.progress(f"layer python {python.descriptor.digest[:19]} "
                          f"({python.descriptor.size / 1e6:.1f} MB gzip, "
                          f"{time.monotonic() - t0:.1f}s)")
            packages = json.loads(out["packages"].read_text())
            version = out["python"].read_text().strip()
            debs = out["debs"].read_text().split()
        return [debian, python], packages, version, debs

    def _run_mmdebstrap(self, argv: list[str], env: dict[str, str], recipe: Recipe,
                        pip_log: Path) -> None:
        t0 = time.monotonic()
        lines: list[str] = []
        with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, errors="replace") as proc:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.rstrip()
                lines.append(line)
                if line.startswith(("I: ", "E: ", "W: ")):
                    self.progress(f"mmdebstrap [{time.monotonic() - t0:5.0f}s] {line}")
            code = proc.wait()
        if code == 0:
            return
        output = "\n".join(lines)
        if "pip install failed" in output:
            pip = pip_log.read_text(errors="replace") if pip_log.is_file() else ""
            raise BuildError(
                "build serving base: pip install of the recipe's requirements.txt (default "
                "deployments/serving-base) in the rootfs failed:\n"
                f"{_tail(pip)}\nfix the pin named above, or check that "
                "PyPI (or PIP_INDEX_URL) is reachable and PIP_CERT names this machine's CA bundle")
        if any(s in output for s in ("Failed to fetch", "Could not resolve", "apt-get update",
                                     "Unable to connect", "Temporary failure")):
            raise BuildError(
                f"build serving base: mmdebstrap could not download from the mirror "
                f"({', '.join(recipe.sources)}), exit {code}:\n{_tail(output)}\ncheck that the "
                "mirror in /etc/apt/sources.list* is reachable (apt-get update)")
        raise BuildError(f"build serving base: mmdebstrap exited {code}:\n{_tail(output)}")

    @staticmethod
    def _scrub(rootfs: Path) -> None:
        """Remove what differs between builds and add the unprivileged user."""
        for rel in _VOLATILE:
            path = rootfs / rel
            if path.is_file() or path.is_symlink():
                path.unlink()
        for rel in ("tmp", "var/tmp", "root/.cache"):
            folder = rootfs / rel
            for child in folder.iterdir() if folder.is_dir() else ():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        for rel, keep in (("var/log", True), ("var/cache/apt", False),
                          ("var/lib/apt/lists", False)):
            for path in (rootfs / rel).rglob("*"):
                if path.is_file() and not path.is_symlink():
                    if keep:  # btmp, wtmp, lastlog, faillog exist, empty, in a fresh system
                        path.write_bytes(b"")
                    else:
                        path.unlink()
        for rel in ("etc/hostname", "etc/resolv.conf"):
            (rootfs / rel).write_text("")
            (rootfs / rel).chmod(0o644)
        uid, _, gid = USER.partition(":")
        with (rootfs / "etc/passwd").open("a") as fh:
            fh.write(f"model:x:{uid}:{gid}:model:/tmp:/usr/sbin/nologin\n")
        with (rootfs / "etc/group").open("a") as fh:
            fh.write(f"model:x:{gid}:\n")
        with (rootfs / "etc/shadow").open("a") as fh:
            fh.write("model:!::::::\n")

    # -- modelrelease layer -----------------------------------------------------------------

    def app_layer(self, python_version: str, epoch: int,
                  source: Path | None = None) -> tuple[img.Layer, str, bool]:
        """The layer holding a wheel of this checkout, unpacked into the venv.

        Returns:
            The layer, the installed modelrelease version, and whether it was cached.
        """
        checkout = source or source_root()
        files = _source_files(checkout)
        digest = hashlib.sha256()
        for rel in files:
            digest.update(rel.encode() + b"\0" + (checkout / rel).read_bytes() + b"\0")
        key = hashlib.sha256(img.canonical_json(
            {"format": RECIPE_FORMAT, "source": digest.hexdigest(), "python": python_version,
             "epoch": epoch})).hexdigest()[:32]
        record = self.root / "app" / f"{key}.json"
        if record.is_file():
            saved = json.loads(record.read_text())
            layer = img.Layer(img.Descriptor.from_json(saved["descriptor"]), saved["diffID"])
            if self.store.has(layer.descriptor.digest, layer.descriptor.size):
                self.progress(f"modelrelease layer {layer.descriptor.digest[:19]} cached "
                              f"(source unchanged)")
                return layer, saved["version"], True
        t0 = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="app-", dir=self.root) as tmp:
            work = Path(tmp)
            wheel = _build_wheel(checkout, files, work, self.progress)
            site = work / "tree" / VENV.lstrip("/") / "lib" / f"python{python_version}" \
                / "site-packages"
            site.mkdir(parents=True)
            with zipfile.ZipFile(wheel) as archive:
                for member in archive.infolist():
                    name = member.filename
                    if name.endswith("/") or ".." in Path(name).parts or name.startswith("/"):
                        continue
                    target = site / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(archive.read(member))
                    target.chmod(0o755 if (member.external_attr >> 16) & 0o111 else 0o644)
            version = wheel.name.split("-")[1]
            _console_scripts(site, work / "tree" / VENV.lstrip("/") / "bin")
            layer = write_tree_layer(work / "tree", self.store, epoch=epoch,
                                     started=0,  # all of it is made here: every mtime is the epoch
                                     annotations={_TITLE: "modelrelease"})
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"descriptor": layer.descriptor.to_json(),
                                      "diffID": layer.diff_id, "version": version,
                                      "wheel": wheel.name}))
        self.progress(f"modelrelease layer {layer.descriptor.digest[:19]} "
                      f"({layer.descriptor.size / 1e3:.0f} kB gzip, wheel {wheel.name}, "
                      f"{time.monotonic() - t0:.1f}s)")
        return layer, version, False

    # -- the image --------------------------------------------------------------------------

    def build(self, to: str, registry: RegistryClient, *, recipe: Recipe | None = None,
              rebuild: bool = False, source: Path | None = None) -> ImageBuild:
        """Build (or re-use) the serving base and push it to ``to``.

        ``source`` is the checkout whose wheel is installed (default: this one).

        Raises:
            BuildError: mmdebstrap, the mirror, pip or the wheel build failed (the message
                names which and how to fix it).
            RegistryError: the push failed after retries.
        """
        start = time.monotonic()
        target = ImageRef.parse(to)
        recipe = recipe or load_recipe()
        rootfs, packages, python, rootfs_hit = self.rootfs_layers(recipe, rebuild=rebuild)
        app, version, app_hit = self.app_layer(python, recipe.epoch, source)
        packages = dict(sorted({**packages, "modelrelease": version}.items()))
        layers = [*rootfs, app]
        labels = {
            img.LABEL_PYTHON_VERSION: python,
            img.LABEL_PYTHON_PACKAGES: json.dumps(packages, separators=(",", ":")),
            img.LABEL_CREATED_BY: f"modelrelease {modelrelease.__version__}",
            LABEL_DEBIAN_SUITE: recipe.suite,
            LABEL_RECIPE: recipe.key,
            _TITLE: "modelrelease serving base",
        }
        digest, stats = push_venv_image(self.store, registry, target, recipe, layers,
                                        entrypoint=["python"], port=8080, labels=labels,
                                        progress=self.progress)
        return ImageBuild(image=f"{target.registry}/{target.repository}@{digest}",
                         digest=digest, layers=tuple(x.descriptor for x in layers),
                         packages=packages, python_version=python, python_cached=rootfs_hit,
                         app_cached=app_hit, stats=stats, seconds=time.monotonic() - start)


def push_venv_image(store: BlobStore, registry: RegistryClient, target: ImageRef,
                    recipe: Recipe, layers: list[img.Layer], *, entrypoint: list[str],
                    cmd: list[str] | None = None, port: int | None, labels: dict[str, str],
                    progress: Progress, working_dir: str = "/tmp") -> tuple[str, PushStats]:
    """Push an image of ``layers`` (from ``store``) that runs ``entrypoint`` + ``cmd``.

    It runs with the venv's Python, as user 1000 in ``working_dir``, and is created at the
    recipe's epoch. Returns its digest and what was sent.
    """
    scratch = img.BaseImage(digest="", manifest={"layers": []},
                            config={"architecture": recipe.architecture, "os": "linux",
                                    "config": {"Env": [f"PATH={PATH}"]}})
    serving = img.ServingConfig(
        entrypoint=entrypoint, cmd=cmd or (), working_dir=working_dir, port=port, user=USER,
        env={"HOME": "/tmp", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
             "PYTHONUNBUFFERED": "1", "VIRTUAL_ENV": VENV})
    created = datetime.fromtimestamp(recipe.epoch, UTC)
    config = img.image_config(scratch, layers, serving, labels, created)
    manifest = img.image_manifest(scratch, config, layers, {})
    progress(f"pushing {target} ({len(layers)} layers, "
             f"{sum(x.descriptor.size for x in layers) / 1e6:.1f} MB gzip)")
    return registry.push_image(
        target, target, scratch, [(x.descriptor, store.path(x.descriptor.digest)) for x in layers],
        config, manifest, [target.tag or "latest"])


def _console_scripts(site: Path, bin_dir: Path) -> list[str]:
    """Write the wheel's ``[console_scripts]`` (``modelrelease``) as the venv's pip would.

    Returns the names written.
    """
    import configparser

    written = []
    for entry_points in sorted(site.glob("*.dist-info/entry_points.txt")):
        parser = configparser.ConfigParser(delimiters=("=",))
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_string(entry_points.read_text())
        if not parser.has_section("console_scripts"):
            continue
        for name, target in sorted(parser.items("console_scripts")):
            module, _, function = target.strip().partition(":")
            bin_dir.mkdir(parents=True, exist_ok=True)
            script = bin_dir / name
            script.write_text(
                f"#!{VENV}/bin/python\nimport sys\nfrom {module} import {function}\n"
                f"if __name__ == \"__main__\":\n    sys.exit({function}())\n")
            script.chmod(0o755)
            written.append(name)
    return written


def _source_files(checkout: Path) -> list[str]:
    """The files a wheel of ``checkout`` is built from, relative and sorted."""
    files = ["pyproject.toml", "README.md"]
    for path in walk_files(checkout / "src"):
        rel = path.relative_to(checkout).as_posix()
        if "__pycache__" in rel or ".egg-info" in rel or rel.endswith((".pyc", ".pyo")):
            continue
        files.append(rel)
    return sorted(f for f in files if (checkout / f).is_file())


def walk_files(root: Path) -> Iterator[Path]:
    """The files under ``root``, in a fixed (sorted) order, ``__pycache__`` skipped."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            yield Path(dirpath) / name


def _build_wheel(checkout: Path, files: list[str], work: Path, progress: Progress) -> Path:
    """Build a wheel of ``files`` from a copy of the checkout (the work tree is not touched)."""
    copy = work / "src-copy"
    for rel in files:
        target = copy / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(checkout / rel, target)
    out = work / "wheel"
    progress("building a wheel of this checkout (pip wheel --no-deps)")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--no-input",
         "--disable-pip-version-check", "-w", str(out), str(copy)],
        capture_output=True, text=True, env={**os.environ, "SOURCE_DATE_EPOCH": "315532800"})
    wheels = sorted(out.glob("modelrelease-*.whl")) if out.is_dir() else []
    if result.returncode != 0 or not wheels:
        raise BuildError(f"build modelrelease wheel from {checkout}: pip wheel exited "
                         f"{result.returncode}:\n{_tail(result.stderr or result.stdout)}\n"
                         "pip fetches setuptools for the build: check that PyPI is reachable")
    return wheels[0]


def build_serving_base(to: str, registry: RegistryClient, cache_dir: Path, *,
                       progress: Progress | None = None, recipe_dir: Path | None = None,
                       rebuild: bool = False, source: Path | None = None) -> ImageBuild:
    """Build the real serving base from the recipe in ``recipe_dir`` and push it to ``to``.

    ``source`` is the checkout whose wheel goes into the base (default: the one this
    package runs from).
    """
    builder = ServingBaseBuilder(cache_dir, progress)
    return builder.build(to, registry, recipe=load_recipe(recipe_dir), rebuild=rebuild,
                         source=source)
