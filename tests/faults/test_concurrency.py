"""Releases at the same time (issue #7): one endpoint twice, and ten endpoints at once.

Two releases of one endpoint started together race for its Lease: exactly one proceeds,
the other is refused at once with ``ReleaseInProgress`` (``wait_for_lock_s=0``, as
configured). ``tests/e2e/test_release.py::test_a_second_release_of_a_busy_endpoint_is_refused``
checks the refusal against a Lease held by hand; here two real releases race for it. Set
to wait for the lock instead, the second finds the version released once it holds the
lock, and does nothing.

Ten releases of ten endpoints run in parallel threads and must all promote, each with its
own image, status and MLflow tags. The node has 2 CPUs, so the endpoints ask for 10m CPU
each (and 512Mi: the real kubelet enforces the memory limit, and a scoring server holds
about 230 MB) and hold their one step briefly at a low load rate (5 requests/s per arm):
twenty scoring servers start on those 2 cores.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from kubernetes import client

from modelrelease.errors import ReleaseInProgress
from modelrelease.release.driver import ReleaseResult
from modelrelease_localstack.demo_model import register_iris_model
from modelrelease_localstack.stack import Stack
from tests.e2e.helpers import Endpoint, make_endpoint
from tests.faults.chaos import assert_promoted, report, tune

pytestmark = [pytest.mark.faults, pytest.mark.usefixtures("alone_on_the_stack")]
"""Twenty scoring servers starting on 2 cores: alone on the stack both parts share (beside
stack-b it once slowed the flows and UI tests past their waits)."""
SMALL = {"cpu": "10m", "memory": "512Mi"}
CHECKS = {"latency": {"p99Ms": 10000, "maxRegression": 1.0}, "maxErrorRate": 0.01,
          "minRequests": 40}


def _small(stack: Stack, tmp: Path, load_rate: float = 5, **release: float) -> Endpoint:
    """An endpoint with tiny requests and a short step, its model version 1 registered."""
    tmp.mkdir(parents=True, exist_ok=True)
    made = make_endpoint(stack, tmp, steps=[{"weight": 50, "hold": "5s"}], checks=CHECKS)
    tune(made, resources=SMALL)
    made = replace(made, settings=made.settings.model_copy(update={
        "release": made.settings.release.model_copy(
            update={"load_rate": load_rate, **release})}))
    register_iris_model(str(made.settings.mlflow.tracking_uri), made.model, alias="champion")
    return made


@pytest.fixture
def endpoints(stack: Stack, crd: None, tmp_path: Path,
              request: pytest.FixtureRequest) -> Iterator[list[Endpoint]]:
    made: list[Endpoint] = []
    try:
        for index in range(request.param):
            made.append(_small(stack, tmp_path / f"e{index}", wait_for_lock_s=0.0))
        yield made
    finally:
        for endpoint in made:
            endpoint.core.delete_namespace(endpoint.namespace)


@pytest.mark.parametrize("endpoints", [1], indirect=True)
def test_two_releases_of_one_endpoint_started_together(endpoints: list[Endpoint]) -> None:
    (endpoint,) = endpoints
    start = threading.Barrier(2)

    def release() -> ReleaseResult | tuple[ReleaseInProgress, float]:
        start.wait(timeout=30)
        try:
            return endpoint.release()
        except ReleaseInProgress as exc:
            return exc, time.monotonic() - began

    began = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        ended = list(pool.map(lambda _: release(), range(2), timeout=300))
    results = [r for r in ended if isinstance(r, ReleaseResult)]
    refused = [r for r in ended if not isinstance(r, ReleaseResult)]
    report("two releases of one endpoint at once", len(results) == 1,
           time.monotonic() - began, None, refused=len(refused))
    assert len(results) == 1 and len(refused) == 1, (results, refused)
    (error, after), (result,) = refused[0], results
    assert "another release holds its lock" in error.message
    assert after < result.seconds  # refused at once, not after the other one finished
    assert_promoted(endpoint, result)
    assert [h["releaseId"] for h in endpoint.status()["history"]] == [result.release_id]
    with pytest.raises(client.ApiException) as gone:  # the winner let go of its Lease
        client.CoordinationV1Api(endpoint.core.api_client).read_namespaced_lease(
            f"modelrelease-{endpoint.name}", endpoint.namespace)
    assert gone.value.status == 404

    # Configured to wait for the lock instead: the waiter, once it holds the lock, finds
    # the version it was asked for released meanwhile, and releases nothing again.
    register_iris_model(str(endpoint.settings.mlflow.tracking_uri), endpoint.model,
                        alias="champion", c=0.4)
    patient = replace(endpoint, settings=endpoint.settings.model_copy(update={
        "release": endpoint.settings.release.model_copy(update={"wait_for_lock_s": 600.0})}))
    start = threading.Barrier(2)

    def wait_and_release() -> ReleaseResult:
        start.wait(timeout=30)
        return patient.release()

    with ThreadPoolExecutor(2) as pool:
        both = list(pool.map(lambda _: wait_and_release(), range(2), timeout=600))
    assert sorted(r.outcome for r in both) == ["already_released", "promoted"], both
    winner = next(r for r in both if r.outcome == "promoted")
    assert_promoted(endpoint, winner)
    assert [h["releaseId"] for h in endpoint.status()["history"]] == [
        result.release_id, winner.release_id]


@pytest.mark.parametrize("endpoints", [10], indirect=True)
def test_ten_endpoints_released_at_once(endpoints: list[Endpoint]) -> None:
    began = time.monotonic()
    with ThreadPoolExecutor(len(endpoints)) as pool:
        results = list(pool.map(lambda endpoint: endpoint.release(), endpoints, timeout=480))
    wall = time.monotonic() - began
    report("ten endpoints released at once", all(r.outcome == "promoted" for r in results),
           wall, None, slowest_s=round(max(r.seconds for r in results), 1),
           fastest_s=round(min(r.seconds for r in results), 1))
    for endpoint, result in zip(endpoints, results, strict=True):
        assert result.endpoint == f"{endpoint.namespace}/{endpoint.name}"
        assert_promoted(endpoint, result)
    assert len({r.image for r in results}) == len(results)
