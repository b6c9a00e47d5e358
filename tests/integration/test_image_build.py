"""Image builds against a real MLflow server and Debian's docker-registry (plain, TLS + auth)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import httpx
import pytest

from modelrelease.adapters.oci_registry import RegistryClient
from modelrelease.build.builder import BuildRequest, ImageBuilder
from modelrelease.domain import image as img
from modelrelease.domain.reference import ImageRef
from modelrelease.errors import (
    ArtifactsMissing,
    ImageNotFound,
    InvalidInput,
    ModelNotFound,
    RegistryAuthError,
    RegistryError,
    UnsafeModelDir,
)
from modelrelease.settings import RegistryConfig
from modelrelease_localstack.demo_model import register_iris_model
from modelrelease_localstack.images import ImageCache
from modelrelease_localstack.process import free_ports
from tests.support import REGISTRY_PASSWORD, REGISTRY_USER, Services, wait_http_ok

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def iris(services: Services) -> str:
    """A real sklearn model, version with alias 'champion'."""
    return register_iris_model(services.mlflow.url, "iris-build", alias="champion")


def _manifest(client: RegistryClient, ref: str) -> dict:
    _, _, data = client.get_manifest(ImageRef.parse(ref))
    return json.loads(data)


def _tar_names(blob: bytes, media_type: str) -> list[str]:
    if media_type == img.OCI_LAYER_GZIP:
        blob = gzip.decompress(blob)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        return tar.getnames()


def test_build_pushes_model_image_with_labels_and_uncompressed_model_layer(
        services: Services, iris: str, tmp_path: Path) -> None:
    builder = ImageBuilder(services.settings(tmp_path))
    result = builder.build(BuildRequest(model="models:/iris-build@champion", base=services.base,
                                        to=f"{services.registry.host}/ml/iris-a:extra"))
    assert result.image == f"{services.registry.host}/ml/iris-a@{result.digest}"
    assert result.tags == (iris, "extra")
    client = builder.registry
    target = ImageRef.parse(f"{services.registry.host}/ml/iris-a")
    assert client.list_tags(target) == sorted([iris, "extra"])
    manifest = _manifest(client, f"{services.registry.host}/ml/iris-a:{iris}")
    base_manifest = _manifest(client, services.base)
    assert manifest["layers"][: len(base_manifest["layers"])] == base_manifest["layers"]
    model_layer = manifest["layers"][-1]
    assert model_layer["mediaType"] == img.OCI_LAYER_TAR
    names = _tar_names(client.get_blob_bytes(target, model_layer["digest"]),
                       model_layer["mediaType"])
    for wanted in ("opt/ml/model/MLmodel", "opt/ml/model/model.skops",
                   "opt/ml/model/input_example.json", "opt/ml/model/requirements.txt"):
        assert wanted in names
    config = json.loads(client.get_blob_bytes(target, manifest["config"]["digest"]))
    labels = config["config"]["Labels"]
    assert labels[img.LABEL_MODEL_NAME] == "iris-build"
    assert labels[img.LABEL_MODEL_VERSION] == iris
    assert labels[img.LABEL_RUN_ID] == result.model.run_id
    assert labels[img.LABEL_SOURCE] == result.model.source
    assert labels[img.LABEL_BASE_DIGEST] == services.base.split("@")[1]
    assert labels[img.LABEL_CREATED_BY].startswith("modelrelease ")
    assert config["config"]["Entrypoint"] == ["python", "-m", "modelrelease.serving"]
    assert "MODELRELEASE_PORT=8080" in config["config"]["Env"]
    assert "8080/tcp" in config["config"]["ExposedPorts"]
    assert config["created"] == result.model.created.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_same_version_and_base_give_the_same_digest_anywhere(
        services: Services, iris: str, tmp_path: Path) -> None:
    first = ImageBuilder(services.settings(tmp_path / "machine-a")).build(BuildRequest(
        model=f"models:/iris-build/{iris}", base=services.base,
        to=f"{services.registry.host}/ml/iris-b"))
    second = ImageBuilder(services.settings(tmp_path / "machine-b")).build(BuildRequest(
        model="models:/iris-build@champion", base=services.base,
        to=f"{services.registry.host}/ml/iris-c"))
    layout_dir = tmp_path / "layout"
    third = ImageBuilder(services.settings(tmp_path / "machine-c")).build(BuildRequest(
        model=f"models:/iris-build/{iris}", base=services.base, to=f"oci:{layout_dir}"))
    assert first.digest == second.digest == third.digest
    assert not first.reused and not second.reused
    index = json.loads((layout_dir / "index.json").read_text())
    assert index["manifests"][0]["digest"] == first.digest
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == iris
    manifest = json.loads((layout_dir / "blobs/sha256" / first.digest[7:]).read_bytes())
    for desc in [manifest["config"], *manifest["layers"]]:
        blob = (layout_dir / "blobs/sha256" / desc["digest"][7:]).read_bytes()
        assert "sha256:" + hashlib.sha256(blob).hexdigest() == desc["digest"]
        assert len(blob) == desc["size"]


def test_rebuild_of_unchanged_version_uploads_nothing(
        services: Services, iris: str, tmp_path: Path) -> None:
    builder = ImageBuilder(services.settings(tmp_path))
    request = BuildRequest(model="models:/iris-build@champion", base=services.base,
                           to=f"{services.registry.host}/ml/iris-d")
    first = builder.build(request)
    assert first.stats.bytes_uploaded > 0
    again = builder.build(request)
    assert again.digest == first.digest
    assert again.reused
    assert again.stats.bytes_uploaded == 0
    assert again.stats.uploaded == []


def test_dependency_layer_only_for_missing_packages_and_shared_between_models(
        services: Services, tmp_path: Path) -> None:
    for name in ("iris-deps-a", "iris-deps-b"):
        register_iris_model(services.mlflow.url, name, c=0.5 if name.endswith("a") else 2.0,
                            extra_pip_requirements=["termcolor==2.4.0"])
    builder = ImageBuilder(services.settings(tmp_path))
    first = builder.build(BuildRequest(model="models:/iris-deps-a/1", base=services.base,
                                       to=f"{services.registry.host}/ml/deps-a"))
    second = builder.build(BuildRequest(model="models:/iris-deps-b/1", base=services.base,
                                        to=f"{services.registry.host}/ml/deps-b"))
    assert first.deps_cache_hit is False
    assert second.deps_cache_hit is True
    deps_a, deps_b = first.layers[0], second.layers[0]
    assert deps_a.digest == deps_b.digest
    assert deps_a.media_type == img.OCI_LAYER_GZIP
    assert first.digest != second.digest  # different weights, same dependency layer
    env = first.config["config"]["Env"]
    assert any(e.startswith("PYTHONPATH=/opt/ml/deps") for e in env)
    names = _tar_names(builder.registry.get_blob_bytes(
        ImageRef.parse(f"{services.registry.host}/ml/deps-a"), deps_a.digest), deps_a.media_type)
    assert any(n.startswith("opt/ml/deps/termcolor/") for n in names)
    assert not any("scikit_learn" in n or n.startswith("opt/ml/deps/sklearn") for n in names)
    # the iris model's own requirements are all in the base: no dependency layer at all
    plain = builder.build(BuildRequest(model="models:/iris-deps-a/1", base=services.base,
                                       to=f"{services.registry.host}/ml/deps-a2",
                                       compress_model=True))
    assert plain.layers[-1].media_type == img.OCI_LAYER_GZIP


def test_built_image_serves_the_model(services: Services, iris: str, tmp_path: Path) -> None:
    """Unpack the pushed image like the node does and run its entrypoint against the model."""
    builder = ImageBuilder(services.settings(tmp_path))
    result = builder.build(BuildRequest(model="models:/iris-build@champion", base=services.base,
                                        to=f"{services.registry.host}/ml/iris-serve"))
    cache = ImageCache(tmp_path / "node", builder.registry)
    rootfs = tmp_path / "rootfs"
    pulled = cache.rootfs(ImageRef.parse(result.image), rootfs)
    assert (rootfs / "etc/passwd").is_file()
    model_dir = rootfs / "opt/ml/model"
    port = free_ports(1)[0]
    env = {**os.environ, "MODELRELEASE_MODEL_PATH": str(model_dir),
           "MODELRELEASE_PORT": str(port), "MODELRELEASE_HOST": "127.0.0.1"}
    entrypoint = pulled.config["config"]["Entrypoint"]
    assert entrypoint[0] == "python"
    proc = subprocess.Popen([sys.executable, *entrypoint[1:]], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/ping", proc, 60,
                     lambda: proc.stdout.read().decode() if proc.stdout else "")
        body = (model_dir / "serving_input_example.json").read_text()
        response = httpx.post(f"http://127.0.0.1:{port}/invocations", content=body,
                              headers={"Content-Type": "application/json"}, timeout=10)
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        assert len(predictions) == 3
        assert all(p in (0, 1, 2) for p in predictions)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# -- TLS and credentials ----------------------------------------------------------------------


def test_tls_registry_with_basic_auth_from_settings(
        services: Services, iris: str, tmp_path: Path) -> None:
    secure = services.secure_registry
    settings = services.settings(tmp_path, username=REGISTRY_USER, password=REGISTRY_PASSWORD,
                                 ca_file=secure.ca_cert)
    result = ImageBuilder(settings).build(BuildRequest(
        model="models:/iris-build@champion", base=services.secure_base,
        to=f"{secure.host}/ml/iris"))
    assert result.image.startswith(f"{secure.host}/ml/iris@sha256:")
    assert result.stats.mounted  # base layers mounted, not pulled


def test_tls_registry_with_credentials_from_docker_config(
        services: Services, iris: str, tmp_path: Path) -> None:
    secure = services.secure_registry
    import base64

    config = tmp_path / "docker" / "config.json"
    config.parent.mkdir()
    token = base64.b64encode(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}".encode()).decode()
    config.write_text(json.dumps({"auths": {secure.host: {"auth": token}}}))
    settings = services.settings(tmp_path, docker_config=config, ca_file=secure.ca_cert)
    result = ImageBuilder(settings).build(BuildRequest(
        model="models:/iris-build@champion", base=services.secure_base,
        to=f"{secure.host}/ml/iris-dockercfg"))
    assert result.digest.startswith("sha256:")


def test_wrong_credentials_are_refused_clearly_and_leak_nothing(
        services: Services, iris: str, tmp_path: Path) -> None:
    secure = services.secure_registry
    wrong = "not-the-password-42"
    settings = services.settings(tmp_path, username=REGISTRY_USER, password=wrong,
                                 ca_file=secure.ca_cert)
    with pytest.raises(RegistryAuthError) as caught:
        ImageBuilder(settings).build(BuildRequest(
            model="models:/iris-build@champion", base=services.secure_base,
            to=f"{secure.host}/ml/iris-wrong"))
    message = str(caught.value)
    assert "401" in message and "credentials" in message
    assert wrong not in message and wrong not in repr(settings)
    good = RegistryConfig(username=REGISTRY_USER, password=REGISTRY_PASSWORD,  # type: ignore[arg-type]
                          ca_file=secure.ca_cert)
    with RegistryClient(good) as client:
        assert client.list_tags(ImageRef.parse(f"{secure.host}/ml/iris-wrong")) == []


def test_untrusted_tls_certificate_names_the_setting(
        services: Services, iris: str, tmp_path: Path) -> None:
    settings = services.settings(tmp_path, username=REGISTRY_USER, password=REGISTRY_PASSWORD)
    with pytest.raises(RegistryError, match="CA_FILE"):
        ImageBuilder(settings).build(BuildRequest(
            model="models:/iris-build@champion", base=services.secure_base,
            to=f"{services.secure_registry.host}/ml/iris-noca"))


# -- bad input: clear errors, nothing half-pushed ---------------------------------------------


@pytest.mark.parametrize(
    ("model", "error", "text"),
    [
        pytest.param("models:/no-such-model/1", ModelNotFound, "no-such-model", id="unknown-model"),
        pytest.param("models:/iris-build/999", ModelNotFound, "999", id="unknown-version"),
        pytest.param("models:/iris-build@nope", ModelNotFound, "nope", id="unknown-alias"),
        pytest.param("models:/iris-build/Production", ModelNotFound, "Production",
                     id="empty-stage"),
        pytest.param("models:/iris-build/latest-ish", InvalidInput, "neither a version",
                     id="bad-uri"),
    ],
)
def test_unknown_models_are_refused_and_nothing_is_pushed(
        services: Services, iris: str, tmp_path: Path, model: str, error: type[Exception],
        text: str) -> None:
    builder = ImageBuilder(services.settings(tmp_path))
    target = f"{services.registry.host}/ml/never-{tmp_path.name[-8:].lower().strip('_')}"
    with pytest.raises(error, match=text):
        builder.build(BuildRequest(model=model, base=services.base, to=target))
    assert builder.registry.list_tags(ImageRef.parse(target)) == []


def test_missing_artifacts_are_reported(services: Services, tmp_path: Path) -> None:
    version = register_iris_model(services.mlflow.url, "iris-gone")
    builder = ImageBuilder(services.settings(tmp_path))
    resolved = builder.models.resolve(__import__(
        "modelrelease.domain.model", fromlist=["ModelUri"]).ModelUri.parse(
        f"models:/iris-gone/{version}"))
    model_id = resolved.source.removeprefix("models:/")
    artifacts = services.mlflow.workdir / "artifacts"
    found = [p for p in artifacts.rglob(model_id) if p.is_dir()]
    assert found, f"no artifact dir for {model_id} under {artifacts}"
    for path in found:
        shutil.rmtree(path)
    target = f"{services.registry.host}/ml/gone"
    with pytest.raises(ArtifactsMissing, match="iris-gone"):
        builder.build(BuildRequest(model=f"models:/iris-gone/{version}", base=services.base,
                                   to=target))
    assert builder.registry.list_tags(ImageRef.parse(target)) == []


def test_missing_base_image_is_reported(services: Services, iris: str, tmp_path: Path) -> None:
    builder = ImageBuilder(services.settings(tmp_path))
    with pytest.raises(ImageNotFound, match=r"base image .*not found.*--base"):
        builder.build(BuildRequest(model="models:/iris-build@champion",
                                   base=f"{services.registry.host}/ml/no-such-base:1",
                                   to=f"{services.registry.host}/ml/iris-nobase"))


def _model_dir(root: Path, weights_mb: float) -> Path:
    """An MLflow-style model directory with random weights (no MLflow needed)."""
    root.mkdir(parents=True)
    (root / "MLmodel").write_text("flavors: {}\nutc_time_created: '2026-01-01 00:00:00'\n")
    (root / "weights.bin").write_bytes(os.urandom(int(weights_mb * 1024 * 1024)))
    return root


def test_symlink_out_of_the_model_dir_is_refused(services: Services, tmp_path: Path) -> None:
    model = _model_dir(tmp_path / "linked-model", 0.01)
    (tmp_path / "secret.txt").write_text("host file")
    (model / "leak.txt").symlink_to(tmp_path / "secret.txt")
    builder = ImageBuilder(services.settings(tmp_path / "cache"))
    target = f"{services.registry.host}/ml/linked"
    with pytest.raises(UnsafeModelDir, match=r"leak\.txt"):
        builder.build(BuildRequest(model=str(model), base=services.base, to=target + ":1"))
    assert builder.registry.list_tags(ImageRef.parse(target)) == []


class FlakyTransport(httpx.BaseTransport):
    """Fault seam: a 503, or a connection dropped half-way through, on chosen PATCHes.

    A real registry behind it does the rest. Only the transport is faked, because a real
    registry cannot be made to fail on cue. A "cut" PATCH really delivers the first half
    of its body to the registry before the client sees the connection drop, so the
    client has to ask the registry where to resume.
    """

    def __init__(self, fail: set[int], cut: set[int] | None = None) -> None:
        self.inner = httpx.HTTPTransport()
        self.fail = fail
        self.cut = cut or set()
        self.patches = 0
        self.ranges: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH":
            self.patches += 1
            self.ranges.append(request.headers.get("content-range", ""))
            if self.patches in self.fail or -1 in self.fail:
                return httpx.Response(503, json={"errors": [{"code": "UNAVAILABLE"}]},
                                      request=request)
            if self.patches in self.cut:
                body = request.read()
                start = int(request.headers["content-range"].split("-")[0])
                half = body[: len(body) // 2]
                headers = {**request.headers, "content-length": str(len(half)),
                           "content-range": f"{start}-{start + len(half) - 1}"}
                partial = httpx.Request("PATCH", request.url, headers=headers, content=half)
                self.inner.handle_request(partial).close()
                raise httpx.RemoteProtocolError("server disconnected", request=request)
        return self.inner.handle_request(request)


@pytest.mark.parametrize(
    ("chunk_size", "fail", "cut", "resumed"),
    [
        # one streamed PATCH: a 503, then a cut: the registry's upload state went stale with
        # the lost response, so the client starts a fresh upload and still lands the blob
        pytest.param(0, {1}, {2}, {2: 0}, id="one-streamed-request"),
        # 128 KiB chunks: a 503 on the third resumes at the registry's offset (256 KiB),
        # a cut later starts over
        pytest.param(128 * 1024, {3}, {6}, {3: 256 * 1024}, id="128KiB-chunks"),
    ],
)
def test_upload_recovers_from_503_and_dropped_connection(
        services: Services, tmp_path: Path, chunk_size: int, fail: set[int], cut: set[int],
        resumed: dict[int, int]) -> None:
    model = _model_dir(tmp_path / "big-model", 1.0)
    settings = services.settings(tmp_path / "cache-a", chunk_size=chunk_size, backoff_s=0.01)
    transport = FlakyTransport(fail=fail, cut=cut)
    flaky = ImageBuilder(settings, registry=RegistryClient(settings.registry, transport=transport))
    repo = f"{services.registry.host}/ml/flaky-{chunk_size}"
    result = flaky.build(BuildRequest(model=str(model), base=services.base, to=f"{repo}:1"))
    for index, offset in resumed.items():
        assert transport.ranges[index].startswith(f"{offset}-"), transport.ranges
    clean = ImageBuilder(services.settings(tmp_path / "cache-b")).build(BuildRequest(
        model=str(model), base=services.base, to=f"{services.registry.host}/ml/clean:1"))
    assert result.digest == clean.digest
    layer = result.layers[-1]
    blob = flaky.registry.get_blob_bytes(ImageRef.parse(repo), layer.digest)
    assert len(blob) == layer.size


def test_registry_failing_for_good_leaves_no_tag(services: Services, tmp_path: Path) -> None:
    model = _model_dir(tmp_path / "doomed-model", 0.5)
    settings = services.settings(tmp_path / "cache", chunk_size=64 * 1024, retries=2,
                                 backoff_s=0.01)
    transport = FlakyTransport(fail={-1})
    builder = ImageBuilder(settings, registry=RegistryClient(settings.registry,
                                                             transport=transport))
    target = f"{services.registry.host}/ml/doomed"
    with pytest.raises(RegistryError, match="503") as caught:
        builder.build(BuildRequest(model=str(model), base=services.base, to=target + ":1"))
    assert caught.value.retriable
    with RegistryClient(RegistryConfig()) as client:
        assert client.list_tags(ImageRef.parse(target)) == []


# -- the command line ------------------------------------------------------------------------


def _cli(services: Services, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": services.mlflow.url,
           "MODELRELEASE_BUILD__CACHE_DIR": str(tmp_path / "cli-cache")}
    return subprocess.run([sys.executable, "-m", "modelrelease.cli", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_builds_and_prints_the_pinned_reference(
        services: Services, iris: str, tmp_path: Path) -> None:
    done = _cli(services, tmp_path, "image", "build", "--model", "models:/iris-build@champion",
                "--base", services.base, "--to", f"{services.registry.host}/ml/iris-cli")
    assert done.returncode == 0, done.stderr
    ref = done.stdout.strip()
    assert ref.startswith(f"{services.registry.host}/ml/iris-cli@sha256:")
    assert "model layer" in done.stderr


def test_cli_bad_input_exits_2_with_the_cause(
        services: Services, iris: str, tmp_path: Path) -> None:
    done = _cli(services, tmp_path, "image", "build", "--model", "models:/iris-build@nope",
                "--base", services.base, "--to", f"{services.registry.host}/ml/iris-cli2")
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].startswith("error: resolve model models:/iris-build@nope")
    assert "Traceback" not in done.stderr


def test_build_uses_the_configured_mlflow_not_the_global_one(
        services: Services, iris: str, tmp_path: Path) -> None:
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'elsewhere.db'}")
    try:
        result = ImageBuilder(services.settings(tmp_path / "cache")).build(BuildRequest(
            model="models:/iris-build@champion", base=services.base,
            to=f"{services.registry.host}/ml/iris-global"))
        assert result.model.version == iris
        assert mlflow.get_tracking_uri() == f"sqlite:///{tmp_path / 'elsewhere.db'}"
    finally:
        mlflow.set_tracking_uri(previous)


def test_concurrent_downloads_of_one_version_download_it_once(
        services: Services, iris: str, tmp_path: Path) -> None:
    """Two releases of one version on one machine share its download, never replace it.

    Each call records the directory's inode when it returns: had a later download replaced
    the directory, a build reading the earlier one would lose its files (seen in CI).
    """
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from modelrelease.adapters.mlflow_registry import MlflowRegistry
    from modelrelease.domain.model import ModelUri
    from modelrelease.settings import MlflowConfig

    models = MlflowRegistry(MlflowConfig(tracking_uri=services.mlflow.url))
    version = models.resolve(ModelUri.parse("models:/iris-build@champion"))
    dest = tmp_path / "models" / version.name / version.version
    start = threading.Barrier(4)

    def download() -> int:
        start.wait(timeout=30)
        got = models.download(version, dest)
        return os.stat(got).st_ino

    with ThreadPoolExecutor(4) as pool:
        inodes = list(pool.map(lambda _: download(), range(4), timeout=300))
    assert len(set(inodes)) == 1 and inodes[0] == os.stat(dest).st_ino
    assert (dest / "MLmodel").is_file()
    assert {p.name for p in dest.parent.iterdir()} == {version.version,
                                                       f".{version.version}.lock"}
