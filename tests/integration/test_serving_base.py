"""The real serving base (mmdebstrap): reproducible, cached, and model images on it run anywhere.

The module's base comes from the user's build cache (cold on a new machine, else cached,
as the real-node stack leaves it); a cold build into a fresh cache checks the digest is the
same. A model image built on it by the
pipeline's builder is validated by skopeo (an independent OCI implementation) and run by
a private containerd with ``ctr run`` in a network namespace of the test's own, outside
Kubernetes. Every server binds 127.0.0.1 or an address inside that namespace.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from packaging.utils import canonicalize_name

from modelrelease.adapters.oci_registry import RegistryClient
from modelrelease.build.builder import BuildRequest, BuildResult, build_image
from modelrelease.build.pipeline_image import (
    CMD,
    FLOWS_DIR,
    PipelineImageBuilder,
    default_requirements,
)
from modelrelease.build.serving_base import (
    PATH,
    USER,
    ImageBuild,
    ServingBaseBuilder,
    build_serving_base,
    load_recipe,
    read_pins,
    source_root,
)
from modelrelease.domain import image as img
from modelrelease.domain.reference import ImageRef
from modelrelease.errors import BuildError
from modelrelease.settings import PipelineSettings, RegistryConfig
from modelrelease_localstack.demo_model import register_iris_model
from modelrelease_localstack.mlflow_server import LocalMlflow
from modelrelease_localstack.registry import LocalRegistry

_TOOLS = ("mmdebstrap", "skopeo", "containerd", "ctr", "runc", "ip")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(os.geteuid() != 0, reason="mmdebstrap --mode=root, netns: needs root"),
    pytest.mark.skipif(any(shutil.which(t) is None for t in _TOOLS),
                       reason=f"needs {', '.join(_TOOLS)} (Debian packages)"),
]

MODEL = "iris-real-base"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
FIGURES: dict[str, object] = {}


def _figure(key: str, value: object) -> None:
    FIGURES[key] = value
    print(f"FIGURE {key}={value}")


@dataclass(frozen=True)
class Built:
    """The module's base: where it is, how it was built, the cache it was built into."""

    ref: str
    build: ImageBuild
    cache: Path
    source: Path


def _snapshot_checkout(target: Path) -> Path:
    """A copy of what the images are built from (the wheel's sources, the flows): the shared
    work tree may change."""
    checkout = source_root()
    for name in ("pyproject.toml", "README.md", "deployments/prefect.yaml"):
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(checkout / name, target / name)
    for name in ("src", "flows", "tasks"):
        shutil.copytree(checkout / name, target / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return target


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    with LocalRegistry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture(scope="module")
def mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMlflow]:
    with LocalMlflow(tmp_path_factory.mktemp("mlflow")) as running:
        yield running


@pytest.fixture(scope="module")
def base(registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The base from the user's build cache, as ``dev up`` builds it.

    Cold on a new machine, else its cached rootfs (built earlier, perhaps by the real-node
    e2e stack of this session): `test_a_cold_build_gives_the_same_digest` then shows that a
    build from nothing today gives what the cache holds.
    """
    cache = PipelineSettings().build.cache_dir
    source = _snapshot_checkout(tmp_path_factory.mktemp("checkout") / "modelrelease")
    started = time.monotonic()
    with RegistryClient(RegistryConfig()) as client:
        built = build_serving_base(f"{registry.host}/ml/serving-base:1", client, cache,
                                   progress=print, source=source)
    _figure("base_build_s", round(time.monotonic() - started, 1))
    _figure("base_python_cached", built.python_cached)
    return Built(ref=built.image, build=built, cache=cache, source=source)


@pytest.fixture(scope="module")
def model_image(base: Built, registry: LocalRegistry, mlflow: LocalMlflow,
                tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    version = register_iris_model(mlflow.url, MODEL, alias="champion")
    settings = PipelineSettings(mlflow={"tracking_uri": mlflow.url}, registry=RegistryConfig(),
                                build={"cache_dir": tmp_path_factory.mktemp("model-cache")})
    started = time.monotonic()
    result = build_image(BuildRequest(model=f"models:/{MODEL}@champion", base=base.ref,
                                      to=f"{registry.host}/ml/{MODEL}"), settings, print)
    _figure("model_build_s", round(time.monotonic() - started, 1))
    assert result.tags == (version,)
    return result


def _config(client: RegistryClient, ref: str) -> tuple[dict, dict]:  # type: ignore[type-arg]
    target = ImageRef.parse(ref)
    _, _, data = client.get_manifest(target)
    manifest = json.loads(data)
    return manifest, json.loads(client.get_blob_bytes(target, manifest["config"]["digest"]))


def test_base_is_self_contained_and_declares_its_packages(base: Built) -> None:
    with RegistryClient(RegistryConfig()) as client:
        manifest, config = _config(client, base.ref)
    titles = [layer["annotations"]["org.opencontainers.image.title"]
              for layer in manifest["layers"]]
    assert titles == ["debian", "python", "modelrelease"]
    assert {layer["mediaType"] for layer in manifest["layers"]} == {img.OCI_LAYER_GZIP}
    inner = config["config"]
    assert inner["User"] == USER
    env = dict(item.partition("=")[::2] for item in inner["Env"])
    assert env["PATH"] == PATH
    for path in env["PATH"].split(":"):  # nothing of this machine: no checkout, no .venv
        assert ".venv" not in path and not path.startswith(("/work", "/root", "/home"))
    assert img.LABEL_HOST_RUNTIME not in inner["Labels"]
    assert inner["Labels"][img.LABEL_PYTHON_VERSION] == "3.11"
    packages = json.loads(inner["Labels"][img.LABEL_PYTHON_PACKAGES])
    assert packages == base.build.packages
    names = {canonicalize_name(name) for name in packages}
    for name in ("mlflow", "mlflow-skinny", "scikit-learn", "pandas", "skops", "uvicorn",
                 "prometheus-client", "modelrelease"):
        assert name in names, name
    compressed = sum(layer["size"] for layer in manifest["layers"])
    _figure("base_size_mb_gzip", round(compressed / 1e6, 1))
    _figure("base_layers_mb_gzip", [round(layer["size"] / 1e6, 1)
                                    for layer in manifest["layers"]])


def test_warm_cache_rebuild_takes_seconds_and_pushes_nothing(
        base: Built, registry: LocalRegistry) -> None:
    with RegistryClient(RegistryConfig()) as client:
        again = build_serving_base(f"{registry.host}/ml/serving-base:1", client, base.cache,
                                   source=base.source)
    _figure("base_cached_build_s", round(again.seconds, 1))
    assert again.digest == base.build.digest
    assert again.python_cached and again.app_cached
    assert again.stats.bytes_uploaded == 0 and not again.stats.uploaded
    assert again.seconds < 30


def test_a_cold_build_gives_the_same_digest(
        base: Built, registry: LocalRegistry, tmp_path: Path) -> None:
    with RegistryClient(RegistryConfig()) as client:
        second = build_serving_base(f"{registry.host}/ml/serving-base-again:1", client,
                                    tmp_path / "fresh-cache", progress=print,
                                    source=base.source)
    _figure("base_cold_build_s", round(second.seconds, 1))
    assert not second.python_cached and not second.app_cached
    assert second.layers == base.build.layers
    assert second.digest == base.build.digest


def _skopeo(*args: str) -> str:
    result = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"skopeo {' '.join(args)}: {result.stderr}"
    return result.stdout


def test_model_image_on_the_real_base_passes_skopeo(
        model_image: BuildResult, base: Built, registry: LocalRegistry, tmp_path: Path) -> None:
    ref = f"docker://{registry.host}/ml/{MODEL}@{model_image.digest}"
    inspected = json.loads(_skopeo("inspect", "--tls-verify=false", ref))
    assert inspected["Digest"] == model_image.digest
    assert inspected["Labels"][img.LABEL_BASE_DIGEST] == base.build.digest
    assert inspected["Labels"][img.LABEL_MODEL_NAME] == MODEL
    raw = json.loads(_skopeo("inspect", "--tls-verify=false", "--raw", ref))
    base_layers = [d.digest for d in base.build.layers]
    assert [layer["digest"] for layer in raw["layers"]][:3] == base_layers
    # copy every blob out to an OCI layout, byte for byte (skopeo verifies each digest as it
    # reads; by default it would gzip the uncompressed model layer and so change the digest)
    _skopeo("copy", "--preserve-digests", "--dest-oci-accept-uncompressed-layers",
            "--src-tls-verify=false", ref, f"oci:{tmp_path / 'layout'}:model")
    index = json.loads((tmp_path / "layout/index.json").read_text())
    assert index["manifests"][0]["digest"] == model_image.digest
    for blob in (tmp_path / "layout/blobs/sha256").iterdir():
        digest = hashlib.sha256()
        with blob.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        assert digest.hexdigest() == blob.name
    sizes = {layer["annotations"].get("org.opencontainers.image.title", "?"): layer["size"]
             for layer in raw["layers"]}
    _figure("model_image_mb_gzip", round(sum(sizes.values()) / 1e6, 1))
    _figure("model_layers_bytes", sizes)
    # the base satisfies the model's `mlflow==` pin: the dependency layer holds only what
    # the model adds (here what the training process had imported), not MLflow again
    assert sizes.get("dependencies", 0) < 50e6, sizes


# -- containerd, outside Kubernetes ---------------------------------------------------------

NS_ADDRESS, HOST_ADDRESS = "10.246.250.2", "10.246.250.1"


class PrivateContainerd:
    """``containerd`` with its own config, root, state and socket; stopped and undone by PID."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.socket = workdir / "containerd.sock"
        self.namespace = "mr-serving-base-test"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        config = self.dir / "config.toml"
        config.write_text(
            "version = 2\n"
            f'root = "{self.dir / "root"}"\n'
            f'state = "{self.dir / "state"}"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'[grpc]\n  address = "{self.socket}"\n'
            f'[ttrpc]\n  address = "{self.socket}.ttrpc"\n'
            '[debug]\n  address = ""\n'
            '[metrics]\n  address = ""\n'
            # no CAP_SYS_RESOURCE here: never ask runc to lower an oom_score_adj
            '[plugins."io.containerd.grpc.v1.cri"]\n  restrict_oom_score_adj = true\n')
        log = (self.dir / "containerd.log").open("wb")
        self.process = subprocess.Popen(["containerd", "--config", str(config)],
                                        stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while subprocess.run(self.ctr("version"), capture_output=True).returncode != 0:
            assert self.process.poll() is None, self.log()
            assert time.monotonic() < deadline, f"containerd not ready in 30 s: {self.log()}"
            time.sleep(0.2)

    def log(self) -> str:
        return (self.dir / "containerd.log").read_text(errors="replace")[-3000:]

    def ctr(self, *args: str) -> list[str]:
        return ["ctr", "--address", str(self.socket), "--namespace", self.namespace, *args]

    def run(self, *args: str, timeout: float = 300) -> str:
        result = subprocess.run(self.ctr(*args), capture_output=True, text=True,
                                timeout=timeout)
        assert result.returncode == 0, f"ctr {' '.join(args)}: {result.stderr}\n{self.log()}"
        return result.stdout

    def stop(self) -> None:
        for task in subprocess.run(self.ctr("tasks", "ls", "-q"), capture_output=True,
                                   text=True).stdout.split():
            subprocess.run(self.ctr("tasks", "kill", "-s", "SIGKILL", task), capture_output=True)
            for _ in range(50):
                if subprocess.run(self.ctr("tasks", "delete", task),
                                  capture_output=True).returncode == 0:
                    break
                time.sleep(0.1)
        for container in subprocess.run(self.ctr("containers", "ls", "-q"),
                                         capture_output=True, text=True).stdout.split():
            subprocess.run(self.ctr("containers", "delete", container), capture_output=True)
        deadline = time.monotonic() + 10  # shims exit by themselves once their task is gone
        while _pids_mentioning(str(self.dir)) != self._containerd_pid() and \
                time.monotonic() < deadline:
            time.sleep(0.1)
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for pid in _pids_mentioning(str(self.dir)):  # shims still there, if any
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for mount in reversed(_mounts_under(self.dir)):
            subprocess.run(["umount", "-l", mount], capture_output=True)

    def _containerd_pid(self) -> list[int]:
        return [self.process.pid] if self.process and self.process.poll() is None else []


@contextlib.contextmanager
def _run_containerd_leftovers(containerd: PrivateContainerd, container: str) -> Iterator[None]:
    """Remove what our shim leaves under /run/containerd, and the folders if we made them.

    containerd 1.6 puts each shim's socket at /run/containerd/s/sha256(ADDRESS/NS/ID)
    whatever its config says; nothing else there is ours to touch.
    """
    run = Path("/run/containerd")
    made = [p for p in (run, run / "s", run / "fifo") if not p.exists()]
    socket = run / "s" / hashlib.sha256(
        f"{containerd.socket}/{containerd.namespace}/{container}".encode()).hexdigest()
    try:
        yield
    finally:
        socket.unlink(missing_ok=True)
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty: another containerd may use it by now


def _pids_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


def _mounts_under(path: Path) -> list[str]:
    return [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()
            if line.split()[1].startswith(str(path))]


@contextlib.contextmanager
def _netns(name: str) -> Iterator[str]:
    """A network namespace with a veth pair: HOST_ADDRESS here, NS_ADDRESS inside."""
    host_if, ns_if = f"{name[:10]}h", f"{name[:10]}n"
    steps = [
        ["ip", "netns", "add", name],
        ["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if],
        ["ip", "link", "set", ns_if, "netns", name],
        ["ip", "addr", "add", f"{HOST_ADDRESS}/30", "dev", host_if],
        ["ip", "link", "set", host_if, "up"],
        ["ip", "-n", name, "addr", "add", f"{NS_ADDRESS}/30", "dev", ns_if],
        ["ip", "-n", name, "link", "set", ns_if, "up"],
        ["ip", "-n", name, "link", "set", "lo", "up"],
    ]
    try:
        for step in steps:
            subprocess.run(step, check=True, capture_output=True)
        yield f"/var/run/netns/{name}"
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


@dataclass(frozen=True)
class CtrSandbox:
    """A started private containerd, its short folder, and a name of the test's own (its
    containers' cgroup, and the network namespace where there is one)."""

    containerd: PrivateContainerd
    workdir: Path
    name: str
    netns: str | None

    def run_flags(self) -> tuple[str, ...]:
        """``ctr run``'s flags that keep a container's runc state and cgroup ours."""
        return ("--runc-root", str(self.workdir / "runc"), "--cgroup", f"/{self.name}")


@contextlib.contextmanager
def _ctr_sandbox(prefix: str, containers: tuple[str, ...], *,
                 network: bool = False) -> Iterator[CtrSandbox]:
    """A private containerd for ``ctr run`` of ``containers``, and its network namespace
    (``_netns``) where ``network``; undone afterwards, then checked.

    After the block: containerd stopped, its shims' sockets under /run/containerd removed
    (``_run_containerd_leftovers``), the folder deleted. Where the block did not raise, no
    process or mount is left under the folder, no cgroup of the name, and no namespace.
    """
    workdir = Path(tempfile.mkdtemp(prefix="mr-ctr-", dir="/tmp"))  # short: socket paths
    name = f"{prefix}{os.getpid() % 100000}"
    containerd = PrivateContainerd(workdir)
    try:
        with contextlib.ExitStack() as undo:
            for container in containers:
                undo.enter_context(_run_containerd_leftovers(containerd, container))
            netns = undo.enter_context(_netns(name)) if network else None
            try:
                containerd.start()
                yield CtrSandbox(containerd, workdir, name, netns)
            finally:
                containerd.stop()
    finally:
        leftovers = _pids_mentioning(str(workdir)) + _mounts_under(workdir)
        shutil.rmtree(workdir, ignore_errors=True)
    assert not leftovers, leftovers
    if network:
        assert not Path(f"/var/run/netns/{name}").exists()
    assert not list(Path("/sys/fs/cgroup").glob(f"*/{name}"))


def _wait_serving(url: str, containerd: PrivateContainerd, log: Path) -> None:
    deadline = time.monotonic() + 180
    while True:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                return
        tasks = containerd.run("tasks", "ls")
        output = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        assert "RUNNING" in tasks, f"the model task stopped: {tasks}\n{output}"
        assert time.monotonic() < deadline, f"no /ping in 180 s:\n{output}"
        time.sleep(0.5)


def test_model_image_serves_predictions_under_ctr_run(
        model_image: BuildResult, registry: LocalRegistry) -> None:
    ref = f"{registry.host}/ml/{MODEL}:{model_image.tags[0]}"
    url = f"http://{NS_ADDRESS}:8080"
    with _ctr_sandbox("mrsb", ("model",), network=True) as sandbox:
        containerd, log = sandbox.containerd, sandbox.workdir / "model.log"
        started = time.monotonic()
        containerd.run("images", "pull", "--plain-http", ref)
        pulled = time.monotonic()
        containerd.run("run", "-d", "--with-ns", f"network:{sandbox.netns}",
                       *sandbox.run_flags(), "--env", f"MODELRELEASE_HOST={NS_ADDRESS}",
                       "--log-uri", f"file://{log}", ref, "model")
        _wait_serving(url, containerd, log)
        _figure("ctr_pull_s", round(pulled - started, 1))
        _figure("ctr_pull_to_serving_s", round(time.monotonic() - started, 1))
        body = {"dataframe_split": {"columns": FEATURES,
                                    "data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}}
        answer = httpx.post(f"{url}/invocations", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == [0, 2]
        metrics = httpx.get(f"{url}/metrics", timeout=5)
        assert "modelrelease_requests_total" in metrics.text
        inside = containerd.run("tasks", "exec", "--exec-id", "whoami", "model",
                                "python", "-c", "import os, sys; print(os.getuid(), "
                                "sys.executable, os.environ['PATH'])")
        uid, executable, path = inside.split()
        assert (uid, executable, path) == ("1000", "/opt/venv/bin/python", PATH)


def test_unreachable_mirror_fails_with_the_mirror_named(tmp_path: Path) -> None:
    closed = "deb http://127.0.0.1:9/debian bookworm main"  # nothing listens on port 9
    recipe = load_recipe(suite="bookworm", sources=[closed])
    with pytest.raises(BuildError, match="could not download from the mirror") as failed:
        ServingBaseBuilder(tmp_path / "cache").rootfs_layers(recipe)
    assert "127.0.0.1:9" in failed.value.message
    assert "/etc/apt/sources.list" in failed.value.message
    assert not any((tmp_path / "cache/serving-base").glob("rootfs-*"))  # work dir removed


# -- the pipeline's own image (#17): the base's Debian layer, the pipeline stack, modelrelease --

@pytest.fixture(scope="module")
def pipeline(base: Built, registry: LocalRegistry) -> ImageBuild:
    """The pipeline image, from the user's build cache as the base is (cold on a new machine)."""
    started = time.monotonic()
    with RegistryClient(RegistryConfig()) as client:
        built = PipelineImageBuilder(base.cache, print).build(
            f"{registry.host}/ml/modelrelease-pipeline:1", client, source=base.source)
    _figure("pipeline_build_s", round(time.monotonic() - started, 1))
    _figure("pipeline_layer_cached", built.python_cached)
    return built


def test_the_pipeline_image_is_the_bases_debian_the_pinned_stack_and_modelrelease(
        pipeline: ImageBuild, base: Built, registry: LocalRegistry) -> None:
    with RegistryClient(RegistryConfig()) as client:
        manifest, config = _config(client, pipeline.image)
        again = PipelineImageBuilder(base.cache).build(
            f"{registry.host}/ml/modelrelease-pipeline:2", client, source=base.source)
    titles = [layer["annotations"]["org.opencontainers.image.title"]
              for layer in manifest["layers"]]
    assert titles == ["debian", "pipeline", "modelrelease", "flows"]
    # the serving base's own Debian and modelrelease blobs: a registry holding both keeps one
    assert pipeline.layers[0] == base.build.layers[0]
    assert pipeline.layers[2] == base.build.layers[2]
    inner = config["config"]
    assert not inner.get("Entrypoint")  # a work pool's Job gives the command as args
    assert inner["Cmd"] == CMD == ["modelrelease", "--help"]  # the wheel's console script
    assert inner["User"] == USER and "ExposedPorts" not in inner
    assert inner["WorkingDir"] == FLOWS_DIR == "/opt/modelrelease"  # the Job template's too
    assert dict(item.partition("=")[::2] for item in inner["Env"])["PATH"] == PATH
    labelled = json.loads(inner["Labels"][img.LABEL_PYTHON_PACKAGES])
    assert labelled == pipeline.packages
    packages = {canonicalize_name(name): version for name, version in labelled.items()}
    pins = dict(line.split("==") for line in
                read_pins(default_requirements(), "pipeline requirements").split())
    for name, version in pins.items():  # every pin, at its version; nothing to serve with
        assert packages[canonicalize_name(name)] == version, name
    assert {"prefect", "prefect-kubernetes", "kubernetes", "modelrelease"} <= set(packages)
    assert "scikit-learn" not in packages and "mlflow" not in packages
    _figure("pipeline_size_mb_gzip", round(sum(d.size for d in pipeline.layers) / 1e6, 1))
    _figure("pipeline_layers_mb_gzip", [round(d.size / 1e6, 1) for d in pipeline.layers])
    # unchanged source: the same digest, nothing uploaded
    assert again.digest == pipeline.digest
    assert again.python_cached and again.app_cached
    assert again.stats.bytes_uploaded == 0 and not again.stats.uploaded
    _figure("pipeline_cached_build_s", round(again.seconds, 1))


def test_the_pipeline_layer_built_again_from_nothing_is_the_same(
        pipeline: ImageBuild, base: Built, tmp_path: Path) -> None:
    builder = PipelineImageBuilder(tmp_path / "fresh-cache", print)
    # the fresh cache gets the base's Debian layer (the rest of it is built from nothing)
    debian = pipeline.layers[0]
    source = ServingBaseBuilder(base.cache).store.path(debian.digest)
    target = builder.base.store.path(debian.digest)
    target.parent.mkdir(parents=True)
    shutil.copyfile(source, target)
    diff_id = _diff_id(source)
    recipe = load_recipe()
    layer, packages, _, cached = builder.venv_layer(
        img.Layer(debian, diff_id),
        read_pins(default_requirements(), "pipeline requirements"), recipe.epoch)
    assert not cached
    assert layer.descriptor == pipeline.layers[1]
    assert packages["prefect"] == pipeline.packages["prefect"]


def _diff_id(gzipped: Path) -> str:
    digest = hashlib.sha256()
    with gzip.open(gzipped, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def test_the_pipeline_image_runs_the_cli_and_the_kubernetes_worker_under_ctr_run(
        pipeline: ImageBuild, registry: LocalRegistry) -> None:
    ref = f"{registry.host}/ml/modelrelease-pipeline:1"
    with _ctr_sandbox("mrpl", ("cli", "prefect", "worker", "flows")) as sandbox:
        containerd = sandbox.containerd
        containerd.run("images", "pull", "--plain-http", ref)
        run = ("run", "--rm", *sandbox.run_flags(), ref)
        usage = containerd.run(*run, "cli")  # no command: the CLI's help
        for command in ("release", "rollback", "status", "image"):
            assert command in usage, usage
        # as a work pool's Job runs it: the command as the container's args
        worker_help = containerd.run(*run, "prefect", "prefect", "worker", "start",
                                     "--help")
        assert "--type" in worker_help and "--pool" in worker_help, worker_help
        worker = containerd.run(
            *run, "worker", "python", "-c",
            "import os, sys, prefect; from prefect_kubernetes.worker import "
            "KubernetesWorker; import modelrelease.adapters.kube, "
            "modelrelease.adapters.mlflow_registry, modelrelease.release.driver; "
            "print(os.getuid(), sys.executable, prefect.__version__, "
            "KubernetesWorker.type)")
        assert worker.split() == ["1000", "/opt/venv/bin/python",
                                  pipeline.packages["prefect"], "kubernetes"], worker
        # what `prefect flow-run execute` does with a deployment's entrypoint, from
        # the image's working directory
        flows = containerd.run(
            *run, "flows", "python", "-c",
            "import os; from prefect.flows import load_flow_from_entrypoint as load; "
            "print(os.getcwd(), *(load(f'flows/{e}').name for e in ("
            "'release.py:release_model', 'rollback.py:rollback_endpoint', "
            "'drill.py:rollback_drill', 'watch.py:watch_registry')))")
        assert flows.split() == ["/opt/modelrelease", "release_model",
                                 "rollback_endpoint", "rollback_drill",
                                 "watch_registry"], flows
