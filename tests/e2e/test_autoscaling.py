"""A release never fights the primary's HorizontalPodAutoscaler (issue 14 item 6).

On the real node, with the stack's metrics-server feeding the controller manager's real HPA
controller. The endpoint's primary may run 1 to 3 replicas, aiming at 20% of its 100m CPU
request. Version 1 is released under a light generated load, and its primary idles at one
replica. Version 2 is released in two steps; while the first one holds, a client sends
many-row requests to the live Service (its ClusterIP, as users' traffic), and the HPA scales
the primary up in the middle of the release. Sampled every half second throughout:

- the primary's replica count only ever grows while the release runs (a release that wrote
  its own count, such as ``minReplicas``, would pull it down);
- the second step's canary is sized from the count the HPA chose (with one primary replica,
  50% is one canary replica; with more, more);
- the promoted version's Deployment starts at the old primary's last count, and the HPA then
  scales that slot (its ``scaleTargetRef`` moved with the promotion).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from modelrelease.release.driver import run_release
from modelrelease.spec import ReleaseRequest
from modelrelease_localstack.demo_model import register_iris_model
from modelrelease_localstack.stack import Stack
from tests.e2e.helpers import (
    DEFAULT_CHECKS,
    Endpoint,
    background_client,
    make_endpoint,
    repeated,
)
from tests.kube import eventually

# alone: it loads the whole node with heavy requests, and beside stack-b's install test
# (flow-run Jobs building images) its generated load timed out on both arms (CI red at
# f9d118e and c66737b: about 5% errors each; it passes alone)
pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("metrics_server", "alone_on_the_stack")]

AUTOSCALING = {"minReplicas": 1, "maxReplicas": 3, "targetUtilization": 20}
STEPS = [{"weight": 25, "hold": "60s"}, {"weight": 50, "hold": "10s"}]
"""The first step holds long enough for the HPA to act on the load (two metrics-server
scrapes 10 s apart, then a 5 s sync: about 25 s); the second sizes its canary from the
primary's count then."""
SATURATED_CHECKS = {"latency": {"p99Ms": 10000, "maxRegression": 3.0}, "maxErrorRate": 0.01,
                    "minRequests": 100}
"""Version 2's checks. The heavy load saturates the node on purpose (CPU near 200% of 2
cores) so that the HPA scales, and then both arms' latencies are set by the contention, not
by the versions: a fresh canary pod's p95 once came out 134% above the primary's under the
whole suite's load, past DEFAULT_CHECKS' 100%, and the release rolled back. This test is
about the replicas; the judge's sensitivity has its own tests. Errors stay at 1%."""
QUIET_LOAD_RATE = 2.0
"""Generated requests per second of version 1's release: too few to move the HPA."""
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3]] * 100
HEAVY_BODY = {"dataframe_split": {
    "columns": ["sepal_length", "sepal_width", "petal_length", "petal_width"], "data": ROWS}}
"""300 rows a request: CPU time in the model, not in the client."""


@dataclass(frozen=True)
class Sample:
    """What the endpoint and its HPA looked like at one moment."""

    at: float
    phase: str
    slot: str
    """The primary's slot."""
    replicas: int | None
    """The primary Deployment's ``spec.replicas`` (None: no Deployment in that slot)."""
    hpa_target: str
    utilization: int | None
    """The HPA's current CPU utilization, percent of the request."""


def _sample(made: Endpoint, autoscaling: client.AutoscalingV2Api) -> Sample:
    slot = made.slot("primary")
    try:
        replicas = made.apps.read_namespaced_deployment(
            f"{made.name}-{slot}", made.namespace).spec.replicas
    except client.ApiException as exc:
        if exc.status != 404:
            raise
        replicas = None
    target, utilization = "", None
    try:
        hpa = autoscaling.read_namespaced_horizontal_pod_autoscaler(f"{made.name}-primary",
                                                                    made.namespace)
        target = hpa.spec.scale_target_ref.name
        for metric in hpa.status.current_metrics or []:
            if metric.resource is not None and metric.resource.name == "cpu":
                utilization = metric.resource.current.average_utilization
    except client.ApiException as exc:
        if exc.status != 404:
            raise
    return Sample(time.monotonic(), str(made.status().get("phase", "")), slot, replicas,
                  target, utilization)


@contextmanager
def timeline(made: Endpoint, every_s: float = 0.5) -> Iterator[list[Sample]]:
    """Every ``Sample`` taken meanwhile, in order, from a thread."""
    samples: list[Sample] = []
    errors: list[str] = []
    autoscaling = client.AutoscalingV2Api(made.apps.api_client)

    def take() -> None:
        try:
            samples.append(_sample(made, autoscaling))
        except client.ApiException as exc:  # a blip of the API server: the next sample
            errors.append(f"{exc.status} {exc.reason}")

    with repeated(take, every_s):
        yield samples
    assert len(errors) < max(3, len(samples) // 10), errors


def _story(samples: list[Sample]) -> str:
    """The changes in a timeline, one line each (for failure messages and the log)."""
    lines, last = [], None
    start = samples[0].at if samples else 0.0
    for s in samples:
        key = (s.phase, s.slot, s.replicas, s.hpa_target)
        if key != last:
            lines.append(f"{s.at - start:6.1f}s {s.phase or '-':<10} primary {s.slot} "
                         f"x{s.replicas} (HPA on {s.hpa_target or '-'}, CPU {s.utilization}%)")
            last = key
    return "\n".join(lines)


def test_a_release_keeps_the_replicas_the_hpa_chose(stack: Stack, crd: None,
                                                    tmp_path: Path) -> None:
    made = make_endpoint(stack, tmp_path, steps=STEPS, autoscaling=AUTOSCALING,
                         checks=SATURATED_CHECKS)
    tracking = str(made.settings.mlflow.tracking_uri)
    quiet = made.settings.model_copy(update={"release": made.settings.release.model_copy(
        update={"load_rate": QUIET_LOAD_RATE})})
    try:
        register_iris_model(tracking, made.model, alias="champion")
        first = run_release(
            ReleaseRequest(endpoint=str(made.file), canary={
                "steps": [{"weight": 50, "hold": "5s"}],
                "checks": {**DEFAULT_CHECKS, "minRequests": 10}}),
            quiet, say=print)
        assert first.outcome == "promoted", first.reason
        old_slot = made.slot("primary")
        autoscaling = client.AutoscalingV2Api(made.apps.api_client)
        # the HPA has looked at version 1's idle pod and keeps one replica
        idle = eventually(lambda: (s := _sample(made, autoscaling)).utilization is not None
                          and s, 90, "the HPA's first CPU reading of version 1's pod")
        assert idle.replicas == 1 and idle.hpa_target == f"{made.name}-{old_slot}", idle

        register_iris_model(tracking, made.model, alias="champion", c=0.3)
        said: list[str] = []
        result: list[Any] = []

        def say(line: str) -> None:
            said.append(line)
            print(line)

        def release() -> None:
            result.append(run_release(ReleaseRequest(endpoint=str(made.file)), made.settings,
                                      say=say))

        with timeline(made) as samples:
            releasing = threading.Thread(target=release, daemon=True)
            releasing.start()
            eventually(lambda: made.status().get("phase") == "Analysing", 240,
                       "version 2's first step analysing")
            with background_client(made, body=HEAVY_BODY, interval=0.02,
                                   new_connections=True) as load:
                releasing.join(timeout=600)
            assert not releasing.is_alive(), "version 2's release still running after 10 min"
            time.sleep(1.0)  # one more sample of the promoted primary
        story = _story(samples)
        print(f"\n[autoscaling] {load.ok} heavy requests answered, {len(load.failed)} "
              f"failed; the timeline:\n{story}")
        [two] = result
        assert two.outcome == "promoted", f"{two.reason}\n{story}"
        assert load.failed == [], load.failed[:5]

        new_slot = made.slot("primary")
        assert new_slot != old_slot
        before = [s for s in samples if s.slot == old_slot and s.replicas is not None]
        after = [s for s in samples if s.slot == new_slot and s.replicas is not None]
        assert before and after, story
        # the HPA scaled the primary up during the release, and nothing pulled it down
        counts = [s.replicas for s in before]
        assert counts[0] == 1, story
        assert max(counts) >= 2, f"the HPA never scaled version 1's primary up:\n{story}"
        assert all(b >= a for a, b in pairwise(counts)), (
            f"version 1's primary lost replicas during the release:\n{story}")
        scaled_at = next(s for s in before if s.replicas and s.replicas >= 2)
        assert scaled_at.phase in ("Analysing", "Smoke", "Deploying"), (
            f"the HPA scaled up outside the canary steps ({scaled_at.phase}):\n{story}")
        # the second step's canary was sized from the HPA's count
        sized = [int(m.group(1)) for line in said
                 if (m := re.search(r"canary at (\d+) replica\(s\)", line))]
        assert sized and sized[-1] >= 2, (  # with one primary replica, 50% is one canary
            f"step 2 (50%) beside {max(counts)} primary replicas: {sized}\n{story}")
        # promotion: the new primary starts at the old one's last count, the HPA follows it
        assert after[0].replicas is not None and after[0].replicas >= counts[-1], story
        assert after[-1].hpa_target == f"{made.name}-{new_slot}", story
        dep = made.apps.read_namespaced_deployment(f"{made.name}-{new_slot}", made.namespace)
        assert dep.spec.replicas >= counts[-1], story
        assert made.status()["primary"]["version"] == "2"
    finally:
        made.core.delete_namespace(made.namespace)
