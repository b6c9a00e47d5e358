"""Whole releases on the local stack: cluster state, MLflow state and the report, each time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelrelease.release.driver import run_release
from modelrelease.spec import ReleaseRequest
from modelrelease_localstack.demo_model import register_faulty_model, register_iris_model
from modelrelease_localstack.stack import Stack
from tests.e2e.helpers import Endpoint, background_client, cli_env, make_endpoint, pods_seen
from tests.kube import eventually

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def _cost_line(endpoint: Endpoint) -> dict[str, Any]:
    """``modelrelease cost -n NS --json`` for the endpoint's namespace: its one JSON line."""
    env = {**os.environ, "MODELRELEASE_KUBE__KUBECONFIG": str(endpoint.settings.kube.kubeconfig)}
    cost = subprocess.run([sys.executable, "-m", "modelrelease.cli", "cost", "-n",
                           endpoint.namespace, "--json"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert cost.returncode == 0, cost.stderr
    (line,) = [json.loads(x) for x in cost.stdout.splitlines()]
    return dict(line)


@pytest.fixture
def endpoint(stack: Stack, crd: None, tmp_path: Path) -> Iterator[Endpoint]:
    made = make_endpoint(stack, tmp_path)
    yield made
    made.core.delete_namespace(made.namespace)


def test_good_version_is_promoted_without_dropping_traffic(endpoint: Endpoint) -> None:
    tracking = str(endpoint.settings.mlflow.tracking_uri)
    register_iris_model(tracking, endpoint.model, alias="champion", c=1.0)
    first = endpoint.release()
    assert first.outcome == "promoted", first.reason
    assert (endpoint.image("primary") or "").endswith(first.image.split("@")[1])
    register_iris_model(tracking, endpoint.model, alias="champion", c=0.3)
    first_slot = endpoint.slot("primary")
    with background_client(endpoint) as background, pods_seen(endpoint, "canary") as canary:
        second = endpoint.release()
    assert second.outcome == "promoted", second.reason
    assert background.failed == [] and background.ok > 50, (background.ok, background.failed[:5])
    # no second rollout: the primary's pods are the very pods verified as the canary
    assert endpoint.slot("primary") != first_slot
    assert canary and endpoint.pod_uids("primary") <= canary, (endpoint.pod_uids("primary"),
                                                               canary)
    from kubernetes import client

    scaling = client.AutoscalingV2Api(endpoint.apps.api_client)
    hpa = scaling.read_namespaced_horizontal_pod_autoscaler(f"{endpoint.name}-primary",
                                                            endpoint.namespace)
    assert hpa.spec.scale_target_ref.name == f"{endpoint.name}-{endpoint.slot('primary')}"
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
    # on the node, the Service's ClusterIP (kube-proxy), as users' traffic
    assert ("- checks reached the pods through the Service's ClusterIP and pod IPs"
            in second.report), second.report
    again = endpoint.release()  # idempotent
    assert again.outcome == "already_released"
    assert (endpoint.image("primary") or "").endswith(digest)
    env = cli_env(endpoint)
    cli = subprocess.run([sys.executable, "-m", "modelrelease.cli", "release",
                          str(endpoint.file)], env=env, capture_output=True, text=True,
                         timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout.strip().splitlines()[-1])["outcome"] == "already_released"
    _status_and_history_say_the_same(endpoint, env, status)
    line = _cost_line(endpoint)
    # 1 primary replica of 100m CPU and 512Mi at 0.0316/CPU-hour and 0.0042/GiB-hour
    assert line["primary_replicas"] == 1 and line["canary_replicas"] == 0
    assert line["per_hour"] == pytest.approx(0.1 * 0.0316 + 0.5 * 0.0042)
    events = endpoint.core.list_namespaced_event(
        endpoint.namespace, field_selector=f"involvedObject.name={endpoint.name},"
                                           "involvedObject.kind=ModelEndpoint")
    reasons = [e.reason for e in events.items]
    assert reasons.count("Promoted") == 2 and "CanaryCreated" in reasons


@pytest.fixture(scope="module")
def live(stack: Stack, crd: None, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[Endpoint, str]]:
    """An endpoint whose primary serves a good version 1 (for the failure cases)."""
    made = make_endpoint(stack, tmp_path_factory.mktemp("live"))
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
    made = make_endpoint(stack, tmp_path, gpus=3)  # the node has two
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


def _status_and_history_say_the_same(made: Endpoint, env: dict[str, str],
                                     status: dict[str, Any]) -> None:
    """`modelrelease status` and `history` print what the ModelEndpoint's status holds."""
    def cli(*args: str) -> list[str]:
        done = subprocess.run([sys.executable, "-m", "modelrelease.cli", *args], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()

    where = f"{made.namespace}/{made.name}"
    shown = json.loads(cli("status", str(made.file), "--json")[0])
    assert (shown["phase"], shown["primary"]["digest"], shown["canary"]) == (
        "Promoted", status["primary"]["digest"], None)
    table = cli("status", "-n", made.namespace)
    assert table[0].split()[:3] == ["ENDPOINT", "PHASE", "PRIMARY"]
    assert table[1].split()[:4] == [where, "Promoted", "v2",
                                    "@" + status["primary"]["digest"][7:19]]
    assert any(line.startswith(where) for line in cli("status"))  # every namespace
    past = [json.loads(line) for line in cli("history", str(made.file), "--json")]
    assert [(row["version"], row["phase"]) for row in past][:2] == [
        ("2", "Promoted"), ("1", "Promoted")]
    assert past[0]["digest"] == status["primary"]["digest"]
    assert cli("history", str(made.file))[1].split()[1:3] == ["2", "Promoted"]


def test_a_second_release_of_a_busy_endpoint_is_refused(stack: Stack, crd: None,
                                                       tmp_path: Path) -> None:
    from modelrelease.adapters.kube import KubeCluster
    from modelrelease.errors import ReleaseInProgress

    made = make_endpoint(stack, tmp_path)
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


def test_a_gpu_endpoint_is_released_and_its_cost_matches_the_hand_computed_figure(
        stack: Stack, crd: None, tmp_path: Path) -> None:
    made = make_endpoint(stack, tmp_path, gpus=1)  # the node has two: canary and primary
    try:
        register_iris_model(str(made.settings.mlflow.tracking_uri), made.model, alias="champion")
        result = made.release()
        assert result.outcome == "promoted", result.reason
        eventually(lambda: made.image("canary") is None, 60, "canary removed")
        line = _cost_line(made)
        # 1 replica of 100m CPU, 512Mi and 1 GPU at 0.0316/CPU-hour, 0.0042/GiB-hour and
        # 2.48/GPU-hour: 0.0079 + 0.0021 + 2.48 per hour
        assert line["primary_replicas"] == 1 and line["canary_replicas"] == 0
        assert line["per_hour"] == pytest.approx(0.1 * 0.0316 + 0.5 * 0.0042 + 2.48)
        assert line["per_month"] == pytest.approx(line["per_hour"] * 730, abs=0.01)
        print(json.dumps(line))
    finally:
        made.core.delete_namespace(made.namespace)
