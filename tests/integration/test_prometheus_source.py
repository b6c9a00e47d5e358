"""Live traffic read from a real Prometheus (``adapters.prometheus``), against exact counts.

Two "pods" are the serving pods' real metrics middleware (``modelrelease.serving.metrics``) around a
tiny app, each in a uvicorn thread; a real Prometheus (``scripts/prometheus-assets``)
scrapes them every second as static targets labelled like pods. The seam: the pods are
local processes rather than Kubernetes pods (the e2e test covers discovery on the stack);
the counters, Prometheus and the reader are the real ones.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from modelrelease.adapters.prometheus import Prometheus
from modelrelease.domain.analysis import AnalysisPolicy
from modelrelease.domain.bake import judge_bake
from modelrelease.domain.cost import GPU_GAUGES, usage_of, utilisation_of
from modelrelease.domain.live import GENERATED_HEADER, LiveOutcome, Traffic, evidence, live_share
from modelrelease.serving.metrics import MetricsMiddleware
from modelrelease.settings import PrometheusConfig
from modelrelease_localstack.process import free_ports
from modelrelease_localstack.prometheus_server import LocalPrometheus
from tests.support import serve_asgi

# The first test may wait for scripts/prepare's Prometheus build (prometheus_built), so the
# module's tests get more than the suite's 600 s each.
pytestmark = [pytest.mark.integration, pytest.mark.prometheus,
              pytest.mark.usefixtures("prometheus_built"), pytest.mark.timeout(1800)]
POLICY = AnalysisPolicy(min_requests=20, max_requests=400, p99_ms=1000, max_error_rate=0.2,
                        max_latency_regression=5.0, alpha=0.01)


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """200 for ``/invocations``, 500 when the query string says ``fail``."""
    status = 500 if scope.get("query_string") == b"fail" else 200
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"predictions": [0]}'})


async def _dcgm(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """What NVIDIA's DCGM exporter answers for a pod holding two GPUs (percent)."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain; version=0.0.4")]})
    await send({"type": "http.response.body", "body": (
        b'# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n'
        b'DCGM_FI_DEV_GPU_UTIL{gpu="0",modelName="NVIDIA L4"} 35\n'
        b'DCGM_FI_DEV_GPU_UTIL{gpu="1",modelName="NVIDIA L4"} 80\n')})


@pytest.fixture(scope="module")
def pods(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], str]]:
    """Pod name -> base URL, and the Prometheus URL scraping them."""
    with serve_asgi(MetricsMiddleware(_app, {})) as canary, \
            serve_asgi(MetricsMiddleware(_app, {})) as primary, serve_asgi(_dcgm) as gpu:
        urls = {"c-1": canary, "p-1": primary, "g-1": gpu}
        static = {url.removeprefix("http://"): ("ml", pod) for pod, url in urls.items()}
        with LocalPrometheus(tmp_path_factory.mktemp("prometheus"), static=static) as prom:
            yield urls, prom.url


def _send(url: str, count: int, *, generated: bool = False, fail: bool = False) -> None:
    headers = {GENERATED_HEADER: "judge"} if generated else {}
    with httpx.Client(trust_env=False, timeout=10) as http:
        for _ in range(count):
            http.post(f"{url}/invocations" + ("?fail" if fail else ""), json={}, headers=headers)


def _wait_scraped(prom_url: str, after: float) -> None:
    """Until Prometheus holds a scrape of every pod newer than ``after``."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = httpx.get(f"{prom_url}/api/v1/query", params={
            "query": 'timestamp(up{job="static"})'}, trust_env=False).json()
        stamps = [float(r["value"][1]) for r in answer["data"]["result"]]
        if len(stamps) == 3 and min(stamps) > after:
            return
        time.sleep(0.2)
    raise AssertionError("Prometheus did not scrape every pod")


def test_live_share_read_from_prometheus_matches_what_was_sent(
        pods: tuple[dict[str, str], str]) -> None:
    urls, prom_url = pods
    _send(urls["c-1"], 7)  # before the step: must not count
    _wait_scraped(prom_url, time.time())
    start = time.time()
    _send(urls["c-1"], 30)
    _send(urls["c-1"], 3, fail=True)
    _send(urls["c-1"], 20, generated=True)
    _send(urls["p-1"], 40)
    _send(urls["p-1"], 25, generated=True)

    reader = Prometheus(PrometheusConfig(url=prom_url, wait_s=30))
    before, after = reader.read_window("ml", {"canary": ["c-1"], "primary": ["p-1"]}, start)

    canary, exact = live_share(before["canary"], after["canary"], {})
    primary, primary_exact = live_share(before["primary"], after["primary"], {})
    assert exact and primary_exact
    assert canary.statuses == {"200": 30.0, "500": 3.0}
    assert primary.statuses == {"200": 40.0}
    assert isinstance(canary, Traffic) and max(canary.buckets.values()) == 33.0  # +Inf bucket
    found = evidence(before, after, {}, POLICY, via=reader.via)
    assert found.outcome is LiveOutcome.PASS, found.reason
    assert found.source == (f"generated load + live traffic (Prometheus {prom_url}, "
                            "73 requests)")


def test_a_bake_judges_the_new_primarys_live_traffic_read_from_prometheus(
        pods: tuple[dict[str, str], str]) -> None:
    """What a bake's window reads with Prometheus configured (``TrackWindow``): one track."""
    urls, prom_url = pods
    _wait_scraped(prom_url, time.time())
    start = time.time()
    _send(urls["p-1"], 45)
    _send(urls["p-1"], 5, fail=True)
    _send(urls["p-1"], 10, generated=True)  # not users': left out
    reader = Prometheus(PrometheusConfig(url=prom_url, wait_s=30))
    before, after = reader.read_window("ml", {"primary": ["p-1"]}, start)
    found = judge_bake(before["primary"], after["primary"], POLICY, looks=4, via=reader.via)
    assert found.canary is not None and found.canary.requests == 50
    assert found.canary.errors == 5
    assert found.outcome is LiveOutcome.PASS, found.reason  # 10% errors, 20% allowed
    assert found.reason.startswith(f"the new primary's live traffic (Prometheus {prom_url}, "
                                   "50 requests): no breach")


def test_a_pod_prometheus_does_not_scrape_is_reported_after_a_bounded_wait(
        pods: tuple[dict[str, str], str]) -> None:
    _, prom_url = pods
    reader = Prometheus(PrometheusConfig(url=prom_url, wait_s=2))
    _, after = reader.read_window("ml", {"canary": ["c-1", "ghost-0"]}, time.time() - 5)
    assert set(after["canary"].pods) == {"c-1"}
    assert after["canary"].failures[0] == \
        "pod ghost-0: no sample in Prometheus since the step ended"
    assert (f"waited 2 s; does Prometheus {prom_url} scrape namespace ml"
            in after["canary"].failures[1])


@pytest.mark.parametrize("suffix", ["", "/no/such/prefix"], ids=["unreachable", "not-the-api"])
def test_an_unusable_prometheus_makes_live_traffic_unavailable(
        pods: tuple[dict[str, str], str], suffix: str) -> None:
    _, prom_url = pods
    url = (f"http://127.0.0.1:{free_ports(1)[0]}" if not suffix else prom_url + suffix)
    reader = Prometheus(PrometheusConfig(url=url, wait_s=1, timeout_s=2))
    before, after = reader.read_window("ml", {"canary": ["c-1"], "primary": ["p-1"]},
                                       time.time() - 5)
    found = evidence(before, after, {}, POLICY, via=reader.via)
    assert found.outcome is LiveOutcome.UNAVAILABLE and not found.used
    assert found.reason.startswith(f"live traffic unknown: canary Prometheus {url} unreadable")
    assert ("ConnectError" if not suffix else "answered 404, not JSON") in found.reason


def test_gpu_utilisation_read_from_prometheus(pods: tuple[dict[str, str], str]) -> None:
    """``modelrelease cost``'s source with Prometheus configured (no GPU here: the exporter
    is a stand-in answering what DCGM's does; Prometheus and the reader are real)."""
    _, prom_url = pods
    _wait_scraped(prom_url, time.time())
    reader = Prometheus(PrometheusConfig(url=prom_url))
    found = reader.newest(sorted(GPU_GAUGES), "ml", ["g-1", "c-1"])
    usage = usage_of(4, [utilisation_of(found[pod]) for pod in ("g-1", "c-1")])
    assert usage.describe() == "4 GPU(s) allocated, 1.15 used (29%), 1 of 2 pods reporting"
    with pytest.raises(httpx.HTTPError):
        Prometheus(PrometheusConfig(url=f"http://127.0.0.1:{free_ports(1)[0]}")).newest(
            sorted(GPU_GAUGES), "ml", ["g-1"])
