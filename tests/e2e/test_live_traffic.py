"""Live traffic as the judge's evidence: the pods' own metrics, from the pods or Prometheus.

A first release with nobody calling the endpoint says live traffic was too thin; the next
release, while a client calls the endpoint's main Service (split by replica ratio), judges
what that client sent each arm too (read through the pod proxy), and the report and the
status's numbers say so. A third release reads the same counters from a real Prometheus
that discovers the stack's pods with the shipped scrape job
(``deployments/observability/prometheus-scrape.yaml``), and its report names Prometheus.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from modelrelease.adapters.probe import SteadyClient
from modelrelease.release.driver import ReleaseResult
from modelrelease.settings import PrometheusConfig
from modelrelease_localstack.demo_model import register_iris_model
from modelrelease_localstack.prometheus_server import LocalPrometheus
from modelrelease_localstack.stack import Stack
from tests.e2e.helpers import IRIS_BODY, Endpoint, make_endpoint

# The first test may wait for scripts/prepare's Prometheus build (prometheus_built), so the
# module's tests get more than the suite's 600 s each.
pytestmark = [pytest.mark.e2e, pytest.mark.prometheus, pytest.mark.usefixtures("prometheus_built"),
              pytest.mark.timeout(1800)]
MIN_REQUESTS = 30


def _release_under_load(made: Endpoint) -> tuple[ReleaseResult, int, dict[str, float]]:
    """A release while two clients call the endpoint's main Service (both tracks)."""
    url = made.proxy.url(made.namespace, made.name, "invocations")
    with (SteadyClient(made.proxy, url, IRIS_BODY, interval=0.05) as one,
          SteadyClient(made.proxy, url, IRIS_BODY, interval=0.05) as two):
        result = made.release()
    sent = one.ok + two.ok + len(one.failed) + len(two.failed)
    assert result.outcome == "promoted", result.reason
    numbers: dict[str, float] = made.status()["lastVerdict"]["numbers"]
    canary, primary = numbers["live_requests_canary"], numbers["live_requests_primary"]
    print(f"live requests: canary {canary:.0f}, primary {primary:.0f}; background clients "
          f"sent {sent} in the whole release; generated load "
          f"{numbers['requests_canary']:.0f} per arm")
    print("\n".join(line for line in result.report.splitlines()
                    if "source" in line or "live" in line))
    assert numbers["live_used"] == 1.0
    assert min(canary, primary) >= MIN_REQUESTS
    # the judge's own requests were taken out: what is left is the background clients'
    assert canary + primary <= sent
    assert "live_p50_ms_canary" in numbers and "live_p50_ms_primary" in numbers
    return result, sent, numbers


def test_live_traffic_counts_when_there_is_enough_of_it(stack: Stack, crd: None,
                                                        tmp_path: Path) -> None:
    # Loose latency limits: this test is about where evidence comes from, on a busy machine
    # (the p99 SLO also keeps the generated judge from passing before the hold is over).
    made = make_endpoint(stack, tmp_path, steps=[{"weight": 50, "hold": "20s"}], checks={
        "latency": {"p99Ms": 5000, "maxRegression": 1.0}, "maxErrorRate": 0.01,
        "minRequests": MIN_REQUESTS})
    made.settings = made.settings.model_copy(update={
        "release": made.settings.release.model_copy(update={"load_rate": 15})})
    try:
        tracking = str(made.settings.mlflow.tracking_uri)
        register_iris_model(tracking, made.model, alias="champion", c=1.0)
        first = made.release()  # nobody calls the endpoint meanwhile
        assert first.outcome == "promoted", first.reason
        assert f"live traffic too thin (0 < {MIN_REQUESTS} requests per arm" in first.report
        assert "- step 1: router: replica ratio; evidence: generated load\n" in first.report
        assert made.status()["lastVerdict"]["numbers"]["live_used"] == 0.0

        register_iris_model(tracking, made.model, alias="champion", c=0.3)
        second, _, numbers = _release_under_load(made)
        live = numbers["live_requests_canary"] + numbers["live_requests_primary"]
        assert (f"evidence: generated load + live traffic (pod metrics, "
                f"{live:.0f} requests)") in second.report
        assert "| live traffic (pod metrics) |" in second.report

        with LocalPrometheus(tmp_path / "prometheus", kubeconfig=stack.kubeconfig) as prom:
            made.settings = made.settings.model_copy(update={
                "prometheus": PrometheusConfig(url=prom.url, wait_s=30)})
            register_iris_model(tracking, made.model, alias="champion", c=0.6)
            third, _, numbers = _release_under_load(made)
        live = numbers["live_requests_canary"] + numbers["live_requests_primary"]
        assert (f"evidence: generated load + live traffic (Prometheus {prom.url}, "
                f"{live:.0f} requests)") in third.report
        assert f"| live traffic (Prometheus {prom.url}) |" in third.report
        assert "pod metrics" not in third.report
    finally:
        made.core.delete_namespace(made.namespace)
