"""The pipeline's own image: the serving base's Debian layer, the pipeline stack, modelrelease.

    serving base recipe -> layer 1 "debian"      the very layer the serving base has (cached)
    deployments/pipeline/requirements.txt
      -> the debian layer unpacked, the serving base's venv hook run in it (chroot):
         venv at /opt/venv, pip install --no-deps of the pinned pipeline stack, hash-based .pyc
                        -> layer 2 "pipeline"    /opt/venv: Prefect, prefect-kubernetes,
                                                 the Kubernetes client, MLflow's client, ...
    this checkout       -> layer 3 "modelrelease" the serving base's (same wheel, same blob)
                        -> layer 4 "flows"       /opt/modelrelease: flows/, tasks/ and
                                                 prefect.yaml (a Job's working directory)
      -> config (non-root, no entrypoint: the Job's args are the command; working
         directory /opt/modelrelease) -> push

The flows run in it as Kubernetes Jobs (a Prefect Kubernetes worker starts them), so it holds
what ``modelrelease`` and ``prefect worker start --type kubernetes`` import and nothing to
serve a model with. Reproducible as the serving base is: the same Debian layer, pins and
epoch give the same digest. Cached under ``CACHE/pipeline/`` by a key of the Debian layer's
digest, the pins and the epoch; blobs are shared with the serving base's store.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import modelrelease
from modelrelease.adapters.oci_registry import RegistryClient
from modelrelease.build.serving_base import (
    VENV,
    ImageBuild,
    Progress,
    Recipe,
    ServingBaseBuilder,
    load_recipe,
    push_venv_image,
    read_pins,
    source_root,
    venv_hook,
    walk_files,
)
from modelrelease.build.tree import write_tree_layer
from modelrelease.domain import image as img
from modelrelease.domain.reference import ImageRef
from modelrelease.errors import BuildError

PIPELINE_FORMAT = 1  # bump when the steps change what the same inputs produce
# No entrypoint: a Kubernetes work pool's Job gives the whole command as the container's args
# (deployments/kubernetes/work-pool.json: "args": "{{ command }}", e.g. `prefect flow-run
# execute`); run with no command, the image prints the CLI's help.
CMD = ["modelrelease", "--help"]
_TITLE = "org.opencontainers.image.title"
# Modules of the pinned stack written for a newer Python (a 3.11 venv never imports them, and
# compileall fails on them): whenever's `type` statements for 3.12.
COMPILE_EXCLUDE = r"/whenever/_typing_312\.py$"
# Where the flows live in the image: the work pool's Job template's workingDir, and the
# directory the deployments' entrypoints (flows/release.py:release_model) are relative to.
FLOWS_DIR = "/opt/modelrelease"
# What of a checkout the flows layer holds (the Python packages the flows import by path,
# and the deployments that name them).
FLOWS_SOURCES = ("flows", "tasks", "deployments/prefect.yaml")
# What pip, Python and the venv hook need of /dev in the chroot (the layer has no nodes).
_DEVICES = {"null": (1, 3), "zero": (1, 5), "random": (1, 8), "urandom": (1, 9)}


def default_requirements() -> Path:
    """``deployments/pipeline/requirements.txt`` of the checkout this package runs from."""
    return Path(modelrelease.__file__).resolve().parents[2] / "deployments" / "pipeline" \
        / "requirements.txt"


class PipelineImageBuilder:
    """Builds, caches and pushes the pipeline image.

    Args:
        cache_dir: The build cache root; the image's venv layer is recorded under
            ``cache_dir/pipeline``, the blobs in the serving base's store.
        progress: Called with one line per step.
    """

    def __init__(self, cache_dir: Path, progress: Progress | None = None) -> None:
        self.base = ServingBaseBuilder(cache_dir, progress)
        self.root = cache_dir / "pipeline"
        self.progress: Progress = progress or (lambda line: None)

    @staticmethod
    def venv_key(debian: img.Layer, requirements: str, epoch: int) -> str:
        """The cache key of a venv layer: what it is made from."""
        return hashlib.sha256(img.canonical_json(
            {"format": PIPELINE_FORMAT, "debian": debian.descriptor.digest,
             "requirements": requirements, "epoch": epoch})).hexdigest()[:32]

    def venv_layer(self, debian: img.Layer, requirements: str, epoch: int
                   ) -> tuple[img.Layer, dict[str, str], str, bool]:
        """``/opt/venv`` with the pinned pipeline stack, made on ``debian``.

        Two builds of the same layer at once (two processes sharing a cache) do not both
        run pip: the second waits for the first and takes its layer.

        Returns:
            The layer, the packages it holds, the Python version, whether it was cached.
        """
        key = self.venv_key(debian, requirements, epoch)
        lock = _mkdir(self.root / "venv") / f"{key}.lock"
        with lock.open("a") as held:
            try:
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.progress("pipeline layer: another build of it is running (same cache); "
                              "waiting for it")
                fcntl.flock(held, fcntl.LOCK_EX)
            return self._venv_layer_locked(key, debian, requirements, epoch)

    def _venv_layer_locked(self, key: str, debian: img.Layer, requirements: str, epoch: int
                           ) -> tuple[img.Layer, dict[str, str], str, bool]:
        record = self.root / "venv" / f"{key}.json"
        store = self.base.store
        if record.is_file():
            saved = json.loads(record.read_text())
            layer = img.Layer(img.Descriptor.from_json(saved["descriptor"]), saved["diffID"])
            if store.has(layer.descriptor.digest, layer.descriptor.size):
                self.progress(f"pipeline layer {layer.descriptor.digest[:19]} cached "
                              f"({len(saved['packages'])} Python packages)")
                return layer, saved["packages"], saved["python"], True
        if shutil.which("chroot") is None or os.geteuid() != 0:
            raise BuildError("build pipeline image: needs root (chroot into the Debian layer "
                             "for pip); run as root")
        self.root.mkdir(parents=True, exist_ok=True)
        started = time.time()
        with tempfile.TemporaryDirectory(prefix="venv-", dir=self.root) as tmp:
            work = Path(tmp)
            rootfs = work / "rootfs"
            t0 = time.monotonic()
            _unpack(store.path(debian.descriptor.digest), rootfs)
            for name, (major, minor) in _DEVICES.items():
                os.mknod(rootfs / "dev" / name, 0o20666, os.makedev(major, minor))
            for name in ("resolv.conf", "hosts"):  # pip's name lookups (not in the layer)
                shutil.copyfile(Path("/etc") / name, rootfs / "etc" / name)
            self.progress(f"debian layer {debian.descriptor.digest[:19]} unpacked "
                          f"({time.monotonic() - t0:.1f}s); pip install of the pinned "
                          "pipeline stack (a minute or two)")
            hook, env, out = venv_hook(work, requirements, epoch, (), COMPILE_EXCLUDE)
            t0 = time.monotonic()
            done = subprocess.run(["sh", str(hook), str(rootfs)], env=env,
                                  capture_output=True, text=True, check=False)
            if done.returncode != 0:
                pip_log = out["pip"].read_text()[-3000:] if out["pip"].is_file() else ""
                raise BuildError(
                    f"build pipeline image: the venv hook exited {done.returncode}:\n"
                    f"{(done.stderr or done.stdout)[-2000:]}\n{pip_log}\n"
                    "check that PyPI (or PIP_INDEX_URL) is reachable and that every pin in "
                    "deployments/pipeline/requirements.txt has a wheel for this Python")
            self.progress(f"pipeline stack installed ({time.monotonic() - t0:.1f}s)")
            venv_rel = VENV.lstrip("/")
            t0 = time.monotonic()
            layer = write_tree_layer(
                rootfs, store, epoch=epoch, started=started,
                select=lambda rel: rel == venv_rel or rel.startswith(venv_rel + "/"),
                annotations={_TITLE: "pipeline"})
            packages = json.loads(out["packages"].read_text())
            python = out["python"].read_text().strip()
        record.parent.mkdir(parents=True, exist_ok=True)
        partial = record.with_suffix(".partial")
        partial.write_text(json.dumps({"descriptor": layer.descriptor.to_json(),
                                       "diffID": layer.diff_id, "packages": packages,
                                       "python": python}))
        partial.replace(record)
        self.progress(f"pipeline layer {layer.descriptor.digest[:19]} "
                      f"({layer.descriptor.size / 1e6:.1f} MB gzip, "
                      f"{time.monotonic() - t0:.1f}s)")
        return layer, packages, python, False

    def flows_layer(self, epoch: int, source: Path | None = None) -> img.Layer:
        """``/opt/modelrelease``: the checkout's flows, tasks and ``prefect.yaml``.

        Made each time (a few kB; the same files give the same blob, so a registry that has
        it gets nothing new).

        Raises:
            BuildError: the checkout lacks one of :data:`FLOWS_SOURCES`.
        """
        checkout = source or source_root()
        with tempfile.TemporaryDirectory(prefix="flows-", dir=_mkdir(self.root)) as tmp:
            tree = Path(tmp) / "tree"
            top = tree / FLOWS_DIR.lstrip("/")
            for name in FLOWS_SOURCES:
                origin = checkout / name
                if not origin.exists():
                    raise BuildError(f"build pipeline image: {origin} is missing; build from "
                                     "a whole modelrelease checkout (flows/, tasks/, "
                                     "deployments/prefect.yaml)")
                files = [origin] if origin.is_file() else [
                    path for path in walk_files(origin) if path.suffix == ".py"]
                for path in files:
                    target = top / path.relative_to(checkout)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, target)
                    target.chmod(0o644)
            layer = write_tree_layer(tree, self.base.store, epoch=epoch,
                                     started=0,  # all of it is made here: every mtime is the epoch
                                     annotations={_TITLE: "flows"})
        self.progress(f"flows layer {layer.descriptor.digest[:19]} "
                      f"({layer.descriptor.size / 1e3:.0f} kB gzip)")
        return layer

    def build(self, to: str, registry: RegistryClient, *, recipe: Recipe | None = None,
              requirements: Path | None = None, source: Path | None = None
              ) -> ImageBuild:
        """Build (or re-use) the pipeline image and push it to ``to``.

        ``recipe`` is the serving base's (its Debian layer is this image's first);
        ``requirements`` the pinned pipeline stack (default: deployments/pipeline); ``source``
        the checkout whose wheel is installed (default: this one).

        Raises:
            BuildError: a pin is not exact, or mmdebstrap, pip or the wheel build failed.
            RegistryError: the push failed after retries.
        """
        start = time.monotonic()
        target = ImageRef.parse(to)
        recipe = recipe or load_recipe()
        pins = read_pins(requirements or default_requirements(), "pipeline requirements")
        rootfs, _, _, _ = self.base.rootfs_layers(recipe)
        venv, packages, python, venv_hit = self.venv_layer(rootfs[0], pins, recipe.epoch)
        app, version, app_hit = self.base.app_layer(python, recipe.epoch, source)
        flows = self.flows_layer(recipe.epoch, source)
        packages = dict(sorted({**packages, "modelrelease": version}.items()))
        layers = [rootfs[0], venv, app, flows]
        labels = {
            img.LABEL_PYTHON_VERSION: python,
            img.LABEL_PYTHON_PACKAGES: json.dumps(packages, separators=(",", ":")),
            img.LABEL_CREATED_BY: f"modelrelease {modelrelease.__version__}",
            _TITLE: "modelrelease pipeline",
        }
        digest, stats = push_venv_image(self.base.store, registry, target, recipe, layers,
                                        entrypoint=[], cmd=CMD, port=None, labels=labels,
                                        progress=self.progress, working_dir=FLOWS_DIR)
        return ImageBuild(image=f"{target.registry}/{target.repository}@{digest}",
                          digest=digest, layers=tuple(x.descriptor for x in layers),
                          packages=packages, python_version=python, python_cached=venv_hit,
                          app_cached=app_hit, stats=stats, seconds=time.monotonic() - start)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _unpack(blob: Path, into: Path) -> None:
    """Unpack a gzip layer made by ``write_tree_layer`` (owners, modes and links kept)."""
    into.mkdir(parents=True)
    with gzip.open(blob, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as archive:
        archive.extractall(into, numeric_owner=True, filter="fully_trusted")
