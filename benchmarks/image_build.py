"""Benchmark: our image build + push against Debian's buildah and the tar|sha256sum floor.

Run ``.venv/bin/python benchmarks/image_build.py [--sizes 5,200,1024]``. It starts a
local ``docker-registry`` and a real ``mlflow server`` (both on 127.0.0.1), and prints one
JSON object per line on stdout (logs go to stderr). Everything it creates lives in one
temporary directory that is deleted at the end, also on error or SIGTERM.

For each size S (MiB) a model directory is written: ``weights.bin`` (S MiB of random
bytes, so nothing compresses) plus small text files including an ``MLmodel``.

``{"bench": "image_build", ...}``
    ``ours_s``: wall time of ``ImageBuilder(settings).build(...)`` from that local
    directory onto the dev serving base, pushed to a fresh repository, with a fresh cache
    (never served from cache). The model layer is an uncompressed tar.
    ``buildah_s``: wall time of ``buildah from scratch`` + ``buildah add CTR DIR
    /opt/ml/model`` + ``buildah commit`` + ``buildah push`` to a fresh repository of the
    same registry (vfs storage in a fresh temp ``--root``; default push, i.e. the layer is
    gzip-compressed). ``buildah_nocompress_s``: the same with ``push --compression-level 0``
    (gzip "stored", no deflate): buildah 1.28's ``--disable-compression`` has no effect on
    ``docker://`` destinations (containers/buildah#3904), so this is the closest to our
    uncompressed model layer.
    Each buildah run gets its own blob-info cache (a private mount namespace binds a temp
    dir over ``/var/lib/containers/cache``), so no run can reuse what another pushed.
    ``ratio`` = ``buildah_s / ours_s`` (how many times faster we are; target >= 5).
    ``ours_mb_s``: MiB of model files / ``ours_s``. ``floor_mb_s``: MiB / wall time of
    ``tar cf - DIR | sha256sum`` over the same (page-cached) files: reading and hashing the
    data once, the least any builder must do (target: ours >= half of it).
    Times are medians of ``runs`` runs (``*_min_s``: the fastest run; ``loadavg_1m``: the
    machine's load when the size started, as other work skews every number). Before each
    timed step dirty pages are flushed (``sync``; the page cache is not dropped), so the
    writeback of one step (e.g. the 1 GiB weights just written) is not billed to the next.

``{"bench": "image_rebuild", ...}``
    The same weights logged with ``mlflow.pyfunc.log_model(artifacts={"weights": ...})``
    and registered as version 1. ``first_build_s``: build from ``models:/NAME/1`` (resolve,
    download the artifacts, layer, push). ``seconds`` / ``bytes_uploaded``: building the
    unchanged version again with the same builder and cache (targets: < 0.5 s, 0 bytes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Keep MLflow's client from retrying for minutes; allow large artifact uploads.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "600")

from _common import log, sigterm_as_exit

from modelrelease.adapters.oci_registry import RegistryClient
from modelrelease.build.base import build_dev_base
from modelrelease.build.builder import BuildRequest, BuildResult, ImageBuilder
from modelrelease.domain.reference import ImageRef
from modelrelease.settings import PipelineSettings, RegistryConfig
from modelrelease_localstack.mlflow_server import LocalMlflow
from modelrelease_localstack.registry import LocalRegistry

MIB = 1024 * 1024
BLOB_INFO_CACHE = Path("/var/lib/containers/cache")
# `buildah push --disable-compression` is ignored for docker:// destinations (c/image's
# docker destination always asks for compression; containers/buildah#3904): the layer is
# gzip either way. gzip level 0 ("stored") is the closest to an uncompressed push.
NOCOMPRESS_FLAG = "--compression-level 0"
MLMODEL = """\
artifact_path: model
flavors:
  python_function:
    loader_module: bench_loader
    python_version: 3.11.9
utc_time_created: '2026-01-01 00:00:00.000000'
"""


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def make_model_dir(root: Path, size_mb: int) -> Path:
    """An MLflow-style model directory: random weights plus a few small text files."""
    root.mkdir(parents=True)
    (root / "MLmodel").write_text(MLMODEL)
    (root / "README.md").write_text("# bench model\nRandom weights for the build benchmark.\n")
    (root / "python_env.yaml").write_text("python: 3.11.9\nbuild_dependencies: [pip]\n")
    (root / "input_example.json").write_text(json.dumps({"inputs": [[1.0, 2.0, 3.0]]}))
    remaining = size_mb * MIB
    with (root / "weights.bin").open("wb") as fh:
        while remaining:
            chunk = min(remaining, 64 * MIB)
            fh.write(os.urandom(chunk))
            remaining -= chunk
    return root


def dir_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    """Wall time of ``call()`` after flushing dirty pages (the files stay cached)."""
    os.sync()
    start = time.monotonic()
    value = call()
    return time.monotonic() - start, value


# -- floor -------------------------------------------------------------------------------------


def floor_seconds(model_dir: Path) -> float:
    """Wall time of ``tar cf - DIR | sha256sum``."""
    cmd = f"tar cf - -C {model_dir.parent} {model_dir.name} | sha256sum > /dev/null"
    seconds, _ = timed(lambda: subprocess.run(["bash", "-o", "pipefail", "-c", cmd], check=True))
    return seconds


# -- ours --------------------------------------------------------------------------------------


def build_ours(work: Path, model: str, base: str, to: str,
               mlflow_url: str | None = None) -> tuple[float, BuildResult]:
    settings = PipelineSettings(build={"cache_dir": work}, mlflow={"tracking_uri": mlflow_url})
    builder = ImageBuilder(settings)
    try:
        return timed(lambda: builder.build(BuildRequest(model=model, base=base, to=to)))
    finally:
        builder.registry.close()


# -- buildah -----------------------------------------------------------------------------------


@dataclass
class Buildah:
    """Runs buildah with vfs storage under a temp root and a private blob-info cache."""

    version: str
    use_namespace: bool

    @staticmethod
    def probe(work: Path) -> Buildah:
        """Check that buildah runs here; raise RuntimeError with the reason if not."""
        if shutil.which("buildah") is None:
            raise RuntimeError("buildah not installed (apt-get install buildah)")
        version = subprocess.run(["buildah", "--version"], capture_output=True, text=True,
                                 check=True).stdout.strip()
        probe = Buildah(version, use_namespace=shutil.which("unshare") is not None)
        root = work / "probe"
        root.mkdir(parents=True)
        try:
            info = f"{probe.cmd(root)} info --format '{{{{.store.GraphDriverName}}}}'"
            out = probe.run(root, info)
            if out.returncode != 0 and probe.use_namespace:
                probe.use_namespace = False  # no private mount namespace here: shared cache
                out = probe.run(root, info)
            if out.returncode != 0:
                raise RuntimeError(f"`buildah info` failed: {out.stderr.strip()[-300:]}")
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return probe

    @staticmethod
    def cmd(root: Path) -> str:
        return (f"buildah --root {root}/storage --runroot {root}/run --storage-driver vfs")

    def run(self, root: Path, script: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "BUILDAH_ISOLATION": "chroot", "STORAGE_DRIVER": "vfs"}
        if self.use_namespace:
            (root / "blob-info-cache").mkdir(exist_ok=True)
            script = f"mount --bind {root}/blob-info-cache {BLOB_INFO_CACHE} && {script}"
            argv = ["unshare", "--mount", "--propagation", "private", "sh", "-ec", script]
        else:
            argv = ["sh", "-ec", script]
        return subprocess.run(argv, capture_output=True, text=True, env=env)

    def build_push(self, root: Path, model_dir: Path, dest: str, compress: bool) -> float:
        """Time from scratch + add + commit + push; raise RuntimeError on failure."""
        root.mkdir(parents=True)
        b = self.cmd(root)
        flag = "" if compress else f" {NOCOMPRESS_FLAG}"
        script = (f"ctr=$({b} from scratch); {b} add $ctr {model_dir} /opt/ml/model; "
                  f"{b} commit --quiet $ctr localhost/bench:latest >/dev/null; "
                  f"{b} push --quiet --tls-verify=false{flag} localhost/bench:latest "
                  f"docker://{dest}")
        try:
            seconds, out = timed(lambda: self.run(root, script))
        finally:
            shutil.rmtree(root, ignore_errors=True)
        if out.returncode != 0:
            raise RuntimeError(f"buildah failed ({out.returncode}): {out.stderr.strip()[-400:]}")
        return seconds


def layer_summary(client: RegistryClient, ref: str) -> dict[str, Any]:
    """Media type and size (MiB) of an image's last layer, read from the registry."""
    _, _, data = client.get_manifest(ImageRef.parse(ref))
    layer = json.loads(data)["layers"][-1]
    return {"media_type": layer["mediaType"], "mb": round(layer["size"] / MIB, 2)}


# -- MLflow ------------------------------------------------------------------------------------


def register_weights(tracking_uri: str, name: str, weights: Path) -> str:
    """Log a tiny pyfunc whose artifacts are the weights; register it; return the version."""
    import mlflow
    import mlflow.pyfunc

    class WeightsModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
        def predict(self, context: Any, model_input: list[Any], params: Any = None) -> list[Any]:
            return model_input

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("image-build-bench")
    with contextlib.redirect_stdout(sys.stderr), mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model", python_model=WeightsModel(), artifacts={"weights": str(weights)},
            pip_requirements=["mlflow"], registered_model_name=name)
    return str(info.registered_model_version)


# -- main --------------------------------------------------------------------------------------


def bench_size(size_mb: int, runs: int, work: Path, reg: LocalRegistry, base: str,
               mlflow: LocalMlflow, buildah: Buildah | None, buildah_error: str | None,
               client: RegistryClient) -> None:
    tag = uuid.uuid4().hex[:8]
    model_dir = make_model_dir(work / "model" / f"bench-{size_mb}", size_mb)
    total_mb = dir_bytes(model_dir) / MIB

    load = os.getloadavg()[0]  # other work on this machine skews every number
    floor = [floor_seconds(model_dir) for _ in range(runs)]
    ours: list[float] = []
    result: BuildResult | None = None
    for i in range(runs):
        cache = work / f"ours-{i}"
        seconds, result = build_ours(cache, str(model_dir), base,
                                     f"{reg.host}/ml/ours-{size_mb}-{tag}-{i}")
        ours.append(seconds)
        shutil.rmtree(cache, ignore_errors=True)
    assert result is not None
    record: dict[str, Any] = {"bench": "image_build", "size_mb": size_mb,
                              "ours_s": median(ours), "buildah_s": None, "ratio": None,
                              "ours_mb_s": round(total_mb / statistics.median(ours), 1),
                              "floor_mb_s": round(total_mb / statistics.median(floor), 1),
                              "floor_s": median(floor), "runs": runs,
                              "ours_min_s": round(min(ours), 3),
                              "loadavg_1m": round(load, 2),
                              "ours_bytes_uploaded": result.stats.bytes_uploaded,
                              "ours_layer": layer_summary(client, result.image)}
    if buildah is not None:
        record.update(buildah_version=buildah.version, buildah_storage_driver="vfs",
                      buildah_compression="gzip (default push)",
                      buildah_nocompress_flag=f"{NOCOMPRESS_FLAG} (gzip stored; "
                                              "--disable-compression has no effect on docker://)",
                      buildah_private_blob_info_cache=buildah.use_namespace)
        for compress, key in ((True, "buildah_s"), (False, "buildah_nocompress_s")):
            times: list[float] = []
            try:
                for i in range(runs):
                    dest = f"{reg.host}/ml/b{size_mb}-{'gz' if compress else 'raw'}-{tag}-{i}"
                    times.append(buildah.build_push(work / "buildah", model_dir, dest, compress))
                record[key] = median(times)
                record[f"{key[:-2]}_min_s"] = round(min(times), 3)
                record[f"{key[:-2]}_layer"] = layer_summary(client, dest)
            except RuntimeError as exc:
                record[key] = None
                record[f"{key[:-2]}_error"] = str(exc)
        if record["buildah_s"]:
            record["ratio"] = round(record["buildah_s"] / record["ours_s"], 2)
        if record.get("buildah_nocompress_s"):
            record["ratio_nocompress"] = round(record["buildah_nocompress_s"] / record["ours_s"], 2)
    else:
        record["buildah_error"] = buildah_error
    emit(record)

    name = f"bench-weights-{size_mb}-{tag}"
    register_s, version = timed(lambda: register_weights(
        mlflow.url, name, model_dir / "weights.bin"))
    cache = work / "rebuild-cache"
    settings = PipelineSettings(build={"cache_dir": cache}, mlflow={"tracking_uri": mlflow.url})
    builder = ImageBuilder(settings)
    try:
        request = BuildRequest(model=f"models:/{name}/{version}", base=base,
                               to=f"{reg.host}/ml/rebuild-{size_mb}-{tag}")
        first_s, first = timed(lambda: builder.build(request))
        again_s, again = timed(lambda: builder.build(request))
    finally:
        builder.registry.close()
    assert again.digest == first.digest
    emit({"bench": "image_rebuild", "size_mb": size_mb, "seconds": round(again_s, 3),
          "bytes_uploaded": again.stats.bytes_uploaded, "reused": again.reused,
          "first_build_s": round(first_s, 3),
          "first_bytes_uploaded": first.stats.bytes_uploaded,
          "register_s": round(register_s, 2), "model": f"models:/{name}/{version}"})
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(work / "model", ignore_errors=True)


@contextlib.contextmanager
def blob_info_cache_mountpoint() -> Iterator[None]:
    """Make ``/var/lib/containers/cache`` exist to bind over; remove it after if we made it."""
    created = [p for p in (BLOB_INFO_CACHE.parent, BLOB_INFO_CACHE) if not p.exists()]
    try:
        for path in created:
            path.mkdir(mode=0o700)
    except OSError:
        pass  # not root: the namespace probe fails and buildah uses its own default
    try:
        yield
    finally:
        for path in reversed(created):
            with contextlib.suppress(OSError):
                path.rmdir()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="5,200,1024",
                        help="comma-separated weight sizes in MiB (default 5,200,1024)")
    parser.add_argument("--runs", type=int, default=0,
                        help="timed runs per size (default: 3 up to 200 MiB, else 1)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    with sigterm_as_exit(), blob_info_cache_mountpoint(), \
            tempfile.TemporaryDirectory(prefix="image-build-bench-") as tmp:
        work = Path(tmp)
        buildah: Buildah | None = None
        buildah_error: str | None = None
        try:
            buildah = Buildah.probe(work)
        except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
            buildah_error = str(exc)
        log(f"buildah: {buildah or buildah_error}")
        with LocalRegistry(work / "registry") as reg, LocalMlflow(work / "mlflow") as mlflow, \
                RegistryClient(RegistryConfig()) as client:
            base_digest, _ = build_dev_base(f"{reg.host}/ml/base:dev", client, work / "base")
            base = f"{reg.host}/ml/base@{base_digest}"
            for size_mb in sizes:
                runs = args.runs or (3 if size_mb <= 200 else 1)
                log(f"size {size_mb} MiB, {runs} run(s)")
                bench_size(size_mb, runs, work, reg, base, mlflow, buildah, buildah_error,
                           client)
    return 0


if __name__ == "__main__":
    sys.exit(main())
