"""Parts of the stack fail mid-release; each release still ends consistent (issue #7).

The API server, the kubelet and containerd are restarted, the registry answers 503 and
drops connections, MLflow is down when a release starts and when it tags the version, and
a canary pod is deleted. A client calls the primary's ClusterIP throughout, as users in
the cluster do, and counts what it loses. Every outside call is retried with bounded
back-off (the Kubernetes, registry and MLflow adapters), so each release either converges
or ends in a clean, explained failure or rollback: the test asserts the end state each
time (outcome, primary digest, no canary, the ModelEndpoint status, the MLflow tags and
alias).

One endpoint serves the whole module (version 1 promoted first); its images go through a
fault-injecting proxy in front of the session's real registry (``chaos.FaultyProxy``).
The parts restart inside the session's one stack, on their own ports and data; a fixture
checks after every test that every part is up and answering again, for the tests after.
Each injection prints one JSON line: fault, converged, seconds, lost_requests.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest

from modelrelease.errors import MlflowError, RegistryError
from modelrelease.release.driver import ReleaseResult
from modelrelease_localstack.demo_model import register_iris_model
from modelrelease_localstack.stack import Stack
from tests.e2e.helpers import Endpoint, background_client, make_endpoint
from tests.faults.chaos import (
    FaultyProxy,
    assert_promoted,
    report,
    timed,
    tune,
    wait_phase,
)
from tests.kube import eventually

pytestmark = [pytest.mark.faults, pytest.mark.usefixtures("alone_on_the_stack")]
"""The parts restart on the stack both parts share: alone on it (``tests/faults/conftest.py``)."""
STEPS = [{"weight": 50, "hold": "6s"}]
CHECKS = {"latency": {"p99Ms": 10000, "maxRegression": 1.0}, "maxErrorRate": 0.01,
          "minRequests": 100}
"""Loose latency limits: the faults here are not about speed, and CI's 2 cores are busy."""


@pytest.fixture(autouse=True)
def stack_left_healthy(stack: Stack) -> Iterator[None]:
    """After each test every part of the shared stack runs and answers again."""
    yield
    eventually(lambda: all(part.up for part in stack.status()), 120,
               "every part of the stack up and answering")


@pytest.fixture(scope="module")
def proxy(stack: Stack) -> Iterator[FaultyProxy]:
    assert stack.registry is not None
    with FaultyProxy(stack.registry.host) as made:
        yield made


@pytest.fixture(scope="module")
def live(stack: Stack, crd: None, proxy: FaultyProxy,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    """An endpoint serving version 1, its images pushed and pulled through ``proxy``."""
    assert stack.registry is not None and stack.state is not None
    assert stack.state.serving_base is not None
    made = make_endpoint(stack, tmp_path_factory.mktemp("restarts"), steps=STEPS, checks=CHECKS)
    made.settings = made.settings.model_copy(update={
        "release": made.settings.release.model_copy(update={"load_rate": 20})})
    tune(made, image={"repository": f"{proxy.host}/faults/{made.name}",
                      "base": stack.state.serving_base.replace(stack.registry.host, proxy.host)})
    register_iris_model(str(made.settings.mlflow.tracking_uri), made.model, alias="champion")
    first = made.release()
    assert first.outcome == "promoted", first.reason
    yield made
    made.core.delete_namespace(made.namespace)


def _new_version(endpoint: Endpoint, c: float) -> str:
    """Register another good version under the alias the endpoint follows."""
    return str(register_iris_model(str(endpoint.settings.mlflow.tracking_uri), endpoint.model,
                                   alias="champion", c=c))


def _with_mlflow(endpoint: Endpoint, **mlflow: Any) -> Endpoint:
    """The endpoint, released with other MLflow retry settings."""
    settings = endpoint.settings.model_copy(update={
        "mlflow": endpoint.settings.mlflow.model_copy(update=mlflow)})
    return replace(endpoint, settings=settings)


def _tagged(endpoint: Endpoint) -> dict[str, Any]:
    (condition,) = [c for c in endpoint.status().get("conditions") or []
                    if c["type"] == "MlflowTagged"]
    return dict(condition)


def _restart_mid_release(stack: Stack, live: Endpoint, part: str, c: float) -> None:
    """Restart ``part`` once the canary is being deployed; the release must promote."""
    version = _new_version(live, c)
    with background_client(live, f"{live.name}-primary") as client, \
            ThreadPoolExecutor(1) as pool:
        future = pool.submit(live.release)
        wait_phase(live, {"Deploying"})
        with timed() as outage:
            stack.restart(part)
        result: ReleaseResult = future.result(timeout=300)
    report(f"{part} restart mid-release", result.outcome == "promoted", outage[0],
           len(client.failed), release_s=round(result.seconds, 1), ok_requests=client.ok)
    assert result.version == version
    assert_promoted(live, result)
    assert client.failed == [] and client.ok > 20, (client.ok, client.failed[:5])


@pytest.mark.parametrize("part", ["kube-apiserver", "kubelet", "containerd"])
def test_a_restart_mid_release_loses_no_request(stack: Stack, live: Endpoint,
                                                part: str) -> None:
    """``part`` stops and starts again while the canary rolls out; the release promotes.

    The driver's Kubernetes calls are retried with back-off through an API server outage,
    the lease survives it (TTL 30 s). Users' traffic goes to the ClusterIP (kube-proxy's
    rules, the pods themselves): none of the three restarts touches it, so the client
    calling it loses nothing. The kubelet and containerd leave running pods running.
    """
    _restart_mid_release(stack, live, part,
                         {"kube-apiserver": 0.5, "kubelet": 1.1, "containerd": 1.2}[part])


def test_registry_503_and_dropped_connections(live: Endpoint, proxy: FaultyProxy) -> None:
    """The registry answers 503 or drops connections: longer than the back-off, then shorter.

    Seam: ``FaultyProxy``, a TCP relay on 127.0.0.1 in front of the real registry, through
    which the endpoint's images are pushed and pulled. An outage longer than the registry
    client's retries (4, from 0.2 s doubling) fails the release in the build, before the
    cluster changes, naming the registry; a 2 s outage is ridden out and the release promotes.
    """
    before, primary = live.status(), live.image("primary")
    version = _new_version(live, 0.6)
    proxy.fail_for(600)
    try:
        with timed() as gave_up, pytest.raises(RegistryError) as caught:
            live.release()
    finally:
        proxy.heal()
    report("registry 503/drop beyond the retry budget", False, gave_up[0], None,
           refused=proxy.failed)
    assert proxy.host in caught.value.message, caught.value.message
    assert caught.value.retriable and gave_up[0] < 60
    assert live.image("canary") is None and live.image("primary") == primary
    assert live.status() == before

    failed = proxy.failed
    with background_client(live, f"{live.name}-primary") as client:
        proxy.fail_for(2.0)
        with timed() as took:
            result = live.release()
    report("registry 503/drop for 2s", result.outcome == "promoted", took[0],
           len(client.failed), refused=proxy.failed - failed)
    assert proxy.failed > failed  # the release met the fault, and got through it
    assert client.failed == [], client.failed[:5]
    assert result.version == version
    assert_promoted(live, result)


def test_mlflow_down_when_the_release_starts(stack: Stack, live: Endpoint) -> None:
    """MLflow is down at the start: bounded retries, then a clear error and no change.

    With few retries the release gives up in seconds, naming MLflow's URL and the
    setting to fix, before touching the cluster. With the default-like budget it waits
    MLflow's restart out and promotes.
    """
    assert stack.mlflow is not None and stack.mlflow.service is not None
    version = _new_version(live, 0.7)
    before, primary = live.status(), live.image("primary")
    stack.stop_part("mlflow")
    try:
        impatient = _with_mlflow(live, retries=2, backoff_s=0.2)
        with timed() as gave_up, pytest.raises(MlflowError) as caught:
            impatient.release()
        report("mlflow down at start (gives up)", False, gave_up[0], None)
        message = caught.value.message
        assert "gave up after 3 tries" in message, message
        assert str(live.settings.mlflow.tracking_uri) in message
        assert "MODELRELEASE_MLFLOW__TRACKING_URI" in message
        assert caught.value.retriable and gave_up[0] < 30
        assert live.image("canary") is None and live.image("primary") == primary
        assert live.status() == before

        patient = _with_mlflow(live, retries=8, backoff_s=1.0, backoff_max_s=4.0)
        with background_client(live, f"{live.name}-primary") as client, \
                ThreadPoolExecutor(1) as pool, timed() as took:
            future = pool.submit(patient.release)
            stack.start_part("mlflow")
            result: ReleaseResult = future.result(timeout=300)
    finally:
        if not stack.mlflow.service.running():
            stack.start_part("mlflow")
    report("mlflow down at start (comes back)", result.outcome == "promoted", took[0],
           len(client.failed))
    assert client.failed == [], client.failed[:5]
    assert result.version == version
    assert_promoted(live, result)


def test_mlflow_down_when_the_version_is_tagged(stack: Stack, live: Endpoint) -> None:
    """MLflow goes down mid-step, so the promotion cannot tag the version or move the alias.

    The promotion still completes (the cluster holds the outcome) and records the tags as
    pending (condition MlflowTagged=False, naming MLflow); the next run, once MLflow is
    back, applies them and says the version is already released.
    """
    assert stack.mlflow is not None and stack.mlflow.service is not None
    version = _new_version(live, 0.8)
    quick = _with_mlflow(live, retries=1, backoff_s=0.2)
    try:
        with ThreadPoolExecutor(1) as pool, timed() as took:
            future = pool.submit(quick.release)
            wait_phase(live, {"Analysing"})
            stack.stop_part("mlflow")
            result: ReleaseResult = future.result(timeout=300)
        assert result.outcome == "promoted", result.reason
        digest = result.image.split("@")[1]
        assert (live.image("primary") or "").endswith(digest)
        eventually(lambda: live.image("canary") is None, 60, "canary removed")
        status = live.status()
        assert status["phase"] == "Promoted" and status["primary"]["digest"] == digest
        pending = _tagged(live)
        assert pending["status"] == "False" and pending["reason"] == "MlflowUnavailable"
        assert "MLflow server at" in pending["message"], pending
    finally:
        if not stack.mlflow.service.running():
            stack.start_part("mlflow")
    assert live.mlflow_tags(version).get("modelrelease.status") != "promoted"
    again = live.release()
    report("mlflow down when tagging", again.outcome == "already_released", took[0], None)
    assert again.outcome == "already_released", again.reason
    assert_promoted(live, result)  # the tags and the alias, applied by the second run
    assert _tagged(live)["status"] == "True"


def test_canary_pod_deleted_mid_step(live: Endpoint) -> None:
    """The canary's pod is deleted while its step is judged.

    Its Deployment starts another, but for a few seconds the canary Service has no
    endpoint and the canary arm's requests fail: the judge sees the error rate and rolls
    back with that cause; the primary (and its traffic) is never touched.
    """
    primary = live.image("primary")
    version = _new_version(live, 0.9)
    with background_client(live, f"{live.name}-primary") as client, \
            ThreadPoolExecutor(1) as pool, timed() as took:
        future = pool.submit(live.release)
        wait_phase(live, {"Analysing"})
        pods = live.core.list_namespaced_pod(
            live.namespace, label_selector=live.pod_selector("canary")).items
        assert pods
        for pod in pods:
            live.core.delete_namespaced_pod(pod.metadata.name, live.namespace)
        result: ReleaseResult = future.result(timeout=300)
    report("canary pod deleted mid-step", result.outcome in ("promoted", "rolled_back"),
           took[0], len(client.failed), outcome=result.outcome)
    assert client.failed == [], client.failed[:5]
    eventually(lambda: live.image("canary") is None, 60, "canary removed")
    status = live.status()
    if result.outcome == "promoted":
        assert_promoted(live, result)
    else:
        assert result.outcome == "rolled_back" and "error" in result.reason, result.reason
        assert live.image("primary") == primary
        assert status["phase"] == "RolledBack" and status["primary"]["image"] == primary
        tags = live.mlflow_tags(version)
        assert tags["modelrelease.status"] == "rolled_back"
        assert tags["modelrelease.release_id"] == result.release_id
