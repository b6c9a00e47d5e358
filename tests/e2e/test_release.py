"""Whole releases on the local stack: cluster state, MLflow state and the report, each time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client

from modelrelease.adapters.probe import ServiceProxy
from modelrelease.localstack.demo_model import register_faulty_model, register_iris_model
from modelrelease.localstack.stack import Stack
from modelrelease.release.driver import ReleaseResult, run_release
from modelrelease.settings import PipelineSettings
from modelrelease.spec import ReleaseRequest
from tests.kube import eventually

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Endpoint:
    """One endpoint under test: its file, namespace, model name and clients."""

    name: str
    namespace: str
    model: str
    file: Path
    settings: PipelineSettings
    core: client.CoreV1Api
    apps: client.AppsV1Api
    custom: client.CustomObjectsApi
    proxy: ServiceProxy

    def release(self, **overrides: Any) -> ReleaseResult:
        return run_release(ReleaseRequest(endpoint=str(self.file), **overrides), self.settings,
                           say=lambda line: print(line))

    def status(self) -> dict[str, Any]:
        found = self.custom.get_namespaced_custom_object(
            "modelrelease.io", "v1alpha1", self.namespace, "modelendpoints", self.name)
        return dict(found.get("status") or {})

    def image(self, track: str) -> str | None:
        try:
            dep = self.apps.read_namespaced_deployment(f"{self.name}-{track}", self.namespace)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return str(dep.spec.template.spec.containers[0].image)

    def mlflow_tags(self, version: str) -> dict[str, str]:
        from mlflow.tracking import MlflowClient

        found = MlflowClient(tracking_uri=self.settings.mlflow.tracking_uri).get_model_version(
            self.model, version)
        return dict(found.tags)


def _endpoint(stack: Stack, tmp: Path, *, steps: list[dict[str, Any]] | None = None,
              gpus: int = 0, checks: dict[str, Any] | None = None) -> Endpoint:
    from kubernetes import config

    env = stack.env()
    suffix = uuid.uuid4().hex[:6]
    name, namespace, model = f"ep{suffix}", f"e2e-{suffix}", f"model-{suffix}"
    api = config.new_client_from_config(config_file=str(stack.kubeconfig))
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": namespace, "labels": {"created-by": "tests"}}})
    resources: dict[str, Any] = {"cpu": "250m", "memory": "256Mi"}
    if gpus:
        resources["accelerators"] = {"nvidia.com/gpu": gpus}
    document = {
        "apiVersion": "modelrelease.io/v1alpha1", "kind": "ModelEndpoint",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"name": model, "alias": "champion"},
            "image": {"repository": f"{env['LOCAL_REGISTRY']}/e2e/{name}",
                      "base": env["MODELRELEASE_BUILD__BASE_IMAGE"]},
            "resources": resources,
            "autoscaling": {"minReplicas": 1, "maxReplicas": 2},
            "canary": {"steps": steps or [{"weight": 50, "hold": "10s"}],
                       "checks": checks or {"latency": {"p99Ms": 1000, "maxRegression": 0.5},
                                            "maxErrorRate": 0.01, "minRequests": 100}},
        },
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document))
    settings = PipelineSettings(
        mlflow={"tracking_uri": env["MLFLOW_TRACKING_URI"]},
        kube={"kubeconfig": stack.kubeconfig},
        build={"cache_dir": tmp / "cache"},
        release={"load_rate": 30, "wait_for_lock_s": 60},
    )
    return Endpoint(name, namespace, model, path, settings, core, client.AppsV1Api(api),
                    client.CustomObjectsApi(api), ServiceProxy(api.configuration))


class BackgroundClient:
    """Calls the endpoint's live Service through the API server while a release runs."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.url = endpoint.proxy.url(endpoint.namespace, endpoint.name, "invocations")
        self.http = endpoint.proxy.client(timeout=10)
        self.ok = 0
        self.failed: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.body = {"dataframe_split": {
            "columns": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
            "data": [[5.1, 3.5, 1.4, 0.2]]}}

    def _run(self) -> None:
        while not self.stop.wait(0.1):
            try:
                answer = self.http.post(self.url, json=self.body)
                if answer.status_code == 200:
                    self.ok += 1
                else:
                    self.failed.append(f"{answer.status_code} {answer.text[:100]}")
            except httpx.HTTPError as exc:
                self.failed.append(repr(exc))

    def __enter__(self) -> BackgroundClient:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=15)
        self.http.close()


@pytest.fixture
def endpoint(stack: Stack, crd: None, tmp_path: Path) -> Iterator[Endpoint]:
    made = _endpoint(stack, tmp_path)
    yield made
    made.core.delete_namespace(made.namespace)


def test_good_version_is_promoted_without_dropping_traffic(endpoint: Endpoint) -> None:
    tracking = str(endpoint.settings.mlflow.tracking_uri)
    register_iris_model(tracking, endpoint.model, alias="champion", c=1.0)
    first = endpoint.release()
    assert first.outcome == "promoted", first.reason
    assert (endpoint.image("primary") or "").endswith(first.image.split("@")[1])
    register_iris_model(tracking, endpoint.model, alias="champion", c=0.3)
    with BackgroundClient(endpoint) as background:
        second = endpoint.release()
    assert second.outcome == "promoted", second.reason
    assert background.failed == [] and background.ok > 50, (background.ok, background.failed[:5])
    digest = second.image.split("@")[1]
    assert (endpoint.image("primary") or "").endswith(digest)
    eventually(lambda: endpoint.image("canary") is None, 60, "canary removed")
    status = endpoint.status()
    assert status["phase"] == "Promoted"
    assert status["primary"]["version"] == "2" and status["primary"]["digest"] == digest
    assert "canary" not in status or status["canary"] is None
    assert [h["phase"] for h in status["history"]] == ["Promoted", "Promoted"]
    tags = endpoint.mlflow_tags("2")
    assert tags["modelrelease.status"] == "promoted"
    assert tags["modelrelease.image_digest"] == digest
    from mlflow.tracking import MlflowClient

    production = MlflowClient(tracking_uri=tracking).get_model_version_by_alias(
        endpoint.model, "production")
    assert production.version == "2"
    assert "| canary |" in second.report and "| primary |" in second.report
    assert "Promoted" in second.report
    again = endpoint.release()  # idempotent
    assert again.outcome == "already_released"
    assert (endpoint.image("primary") or "").endswith(digest)
    env = {**os.environ, "MODELRELEASE_KUBE__KUBECONFIG": str(endpoint.settings.kube.kubeconfig)}
    cost = subprocess.run([sys.executable, "-m", "modelrelease.cli", "cost", "-n",
                           endpoint.namespace, "--json"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert cost.returncode == 0, cost.stderr
    (line,) = [json.loads(x) for x in cost.stdout.splitlines()]
    # 1 primary replica of 250m CPU and 256Mi at 0.0316/CPU-hour and 0.0042/GiB-hour
    assert line["primary_replicas"] == 1 and line["canary_replicas"] == 0
    assert line["per_hour"] == pytest.approx(0.25 * 0.0316 + 0.25 * 0.0042)
    events = endpoint.core.list_namespaced_event(
        endpoint.namespace, field_selector=f"involvedObject.name={endpoint.name},"
                                           "involvedObject.kind=ModelEndpoint")
    reasons = [e.reason for e in events.items]
    assert reasons.count("Promoted") == 2 and "CanaryCreated" in reasons


@pytest.fixture(scope="module")
def live(stack: Stack, crd: None, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[Endpoint, str]]:
    """An endpoint whose primary serves a good version 1 (for the failure cases)."""
    made = _endpoint(stack, tmp_path_factory.mktemp("live"))
    register_iris_model(str(made.settings.mlflow.tracking_uri), made.model, alias="champion")
    result = made.release()
    assert result.outcome == "promoted", result.reason
    yield made, str(made.image("primary"))
    made.core.delete_namespace(made.namespace)


@pytest.mark.parametrize(
    ("fault", "kwargs", "expected"),
    [
        pytest.param("crash", {}, "CrashLoopBackOff", id="crashes-on-start"),
        pytest.param("wrong_shape", {}, "smoke failed", id="wrong-output-shape"),
        pytest.param("slow", {"delay_s": 0.06}, "latency regression", id="3x-slower"),
        pytest.param("errors", {"error_rate": 0.05}, "error", id="5pct-errors"),
    ],
)
def test_bad_version_is_rolled_back_and_primary_keeps_serving(
        live: tuple[Endpoint, str], fault: str, kwargs: dict[str, float],
        expected: str) -> None:
    endpoint, primary_image = live
    version = register_faulty_model(str(endpoint.settings.mlflow.tracking_uri), endpoint.model,
                                    fault, **kwargs)
    primary_url = endpoint.proxy.url(endpoint.namespace, f"{endpoint.name}-primary", "ping")
    with endpoint.proxy.client() as http:
        result = endpoint.release(version=int(version))
        assert result.outcome == "rolled_back"
        assert expected in result.reason, result.reason
        assert endpoint.image("primary") == primary_image
        assert http.get(primary_url).status_code == 200
    eventually(lambda: endpoint.image("canary") is None, 60, "canary removed")
    status = endpoint.status()
    assert status["phase"] == "RolledBack"
    assert status["primary"]["version"] == "1"
    tags = endpoint.mlflow_tags(version)
    assert tags["modelrelease.status"] == "rolled_back"
    assert expected in tags["modelrelease.reason"]


def test_canary_needing_more_gpus_than_free_fails_fast(stack: Stack, crd: None,
                                                      tmp_path: Path) -> None:
    made = _endpoint(stack, tmp_path, gpus=2)
    try:
        register_iris_model(str(made.settings.mlflow.tracking_uri), made.model, alias="champion")
        began = time.monotonic()
        result = made.release()
        assert result.outcome == "rolled_back"
        assert "Insufficient nvidia.com/gpu" in result.reason
        assert time.monotonic() - began < 60  # failed fast, no deploy timeout waited out
        assert made.image("canary") is None or eventually(
            lambda: made.image("canary") is None, 60, "canary removed")
    finally:
        made.core.delete_namespace(made.namespace)


def test_killed_release_converges_when_run_again(stack: Stack, crd: None,
                                                 tmp_path: Path) -> None:
    made = _endpoint(stack, tmp_path, steps=[{"weight": 50, "hold": "20s"}])
    try:
        tracking = str(made.settings.mlflow.tracking_uri)
        register_iris_model(tracking, made.model, alias="champion")
        assert made.release().outcome == "promoted"
        register_iris_model(tracking, made.model, alias="champion", c=0.2)
        env = {**os.environ, "MODELRELEASE_KUBE__KUBECONFIG": str(stack.kubeconfig),
               "MODELRELEASE_MLFLOW__TRACKING_URI": tracking,
               "MODELRELEASE_BUILD__CACHE_DIR": str(tmp_path / "cache"),
               "MODELRELEASE_RELEASE__LOAD_RATE": "30"}
        proc = subprocess.Popen([sys.executable, "-m", "modelrelease.cli", "release",
                                 str(made.file)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        eventually(lambda: made.status().get("phase") == "Analysing", 120, "Analysing")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert made.image("canary") is not None  # the kill left a canary behind
        result = made.release()  # waits for the dead holder's lease to expire, then resumes
        assert result.outcome == "promoted", result.reason
        assert result.version == "2"
        eventually(lambda: made.image("canary") is None, 60, "no orphaned canary")
        status = made.status()
        assert status["phase"] == "Promoted" and status["primary"]["version"] == "2"
        assert json.loads(result.summary())["outcome"] == "promoted"
        cli = subprocess.run([sys.executable, "-m", "modelrelease.cli", "release",
                              str(made.file)], env=env, capture_output=True, text=True,
                             timeout=120)
        assert cli.returncode == 0, cli.stderr
        assert json.loads(cli.stdout.strip().splitlines()[-1])["outcome"] == "already_released"
    finally:
        made.core.delete_namespace(made.namespace)


def test_a_second_release_of_a_busy_endpoint_is_refused(stack: Stack, crd: None,
                                                       tmp_path: Path) -> None:
    from modelrelease.adapters.kube import KubeCluster
    from modelrelease.errors import ReleaseInProgress

    made = _endpoint(stack, tmp_path)
    try:
        register_iris_model(str(made.settings.mlflow.tracking_uri), made.model,
                            alias="champion")
        impatient = made.settings.model_copy(update={
            "release": made.settings.release.model_copy(update={"wait_for_lock_s": 0.0})})
        cluster = KubeCluster(made.settings.kube)
        try:
            with cluster.lease(made.namespace, f"modelrelease-{made.name}", "someone-else") as got:
                assert got
                with pytest.raises(ReleaseInProgress, match="another release holds its lock"):
                    run_release(ReleaseRequest(endpoint=str(made.file)), impatient)
        finally:
            cluster.close()
        assert made.image("canary") is None and made.image("primary") is None
    finally:
        made.core.delete_namespace(made.namespace)
