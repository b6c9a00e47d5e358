"""The bake after promotion on the real node (issue 14 item 5).

Version 1 is released (a first release: not baked). Version 2, healthy, is released with
a 10 s bake: it is promoted once the bake saw no breach, and version 1's Deployment stays,
at no replicas, as ``modelrelease rollback``'s target. Version 3 answers like version 2
until ``SLOW_AFTER_S`` after it loaded, then 0.6 s slower than its p99 SLO allows: its
canary step passes, it is promoted, and only the bake can catch it. A client calls the
live Service on its ClusterIP throughout (kube-proxy's path, as users' traffic). The bake
must roll back to version 2's pods, which stayed warm at no traffic (the live Service's
EndpointSlices never list them while baking), and not one request may fail.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from modelrelease_localstack.demo_model import register_faulty_model, register_iris_model
from modelrelease_localstack.stack import Stack
from tests.e2e.helpers import Endpoint, background_client, make_endpoint, sampled

pytestmark = pytest.mark.e2e

SLOW_AFTER_S = 75.0
"""Seconds after loading that version 3 slows down: past its canary step and promotion
(about 30 s on this machine; up to 60 with two extensions on a busy one), inside its
bake of 180 s."""
CHECKS: dict[str, Any] = {"latency": {"p99Ms": 400, "maxRegression": 1.0},
                          "maxErrorRate": 0.01, "minRequests": 50}
SETTLE_S = 3.0
"""How long the EndpointSlices may lag behind the Service's selector after the switch."""


def canary(bake_s: int) -> dict[str, Any]:
    """The canary policy: one step of 10 s at 50%, then a bake of ``bake_s`` seconds."""
    return {"steps": [{"weight": 50, "hold": "10s"}], "checks": CHECKS,
            "bake": {"duration": f"{bake_s}s"}}


def routed_while_baking(made: Endpoint) -> Any:
    """A reader of the pods the live Service routes to while the record says Baking.

    Samples within ``SETTLE_S`` of the bake's start are skipped (the endpoints controller
    follows a selector change within a moment).
    """
    discovery = client.DiscoveryV1Api(made.core.api_client)
    began: list[float] = []

    def read() -> list[str]:
        if made.status().get("phase") != "Baking":
            return []
        began[:] = began or [time.monotonic()]
        if time.monotonic() - began[0] < SETTLE_S:
            return []
        slices = discovery.list_namespaced_endpoint_slice(
            made.namespace, label_selector=f"kubernetes.io/service-name={made.name}").items
        return [str(e.target_ref.name) for s in slices for e in (s.endpoints or [])
                if e.target_ref is not None and (e.conditions is None or e.conditions.ready)]

    return read


def test_a_bake_keeps_the_previous_version_warm_and_rolls_back_to_it(
        stack: Stack, crd: None, tmp_path: Path) -> None:
    made = make_endpoint(stack, tmp_path, steps=[{"weight": 50, "hold": "10s"}],
                         checks=CHECKS)
    tracking = str(made.settings.mlflow.tracking_uri)
    try:
        register_iris_model(tracking, made.model, alias="champion")
        first = made.release(canary=canary(10))
        assert first.outcome == "promoted" and "bake" not in first.reason, first.reason

        register_iris_model(tracking, made.model, alias="champion", c=0.3)
        two = made.release(canary=canary(10))
        assert two.outcome == "promoted", two.reason
        assert two.reason.startswith(("bake passed", "bake over")), two.reason
        kept = made.apps.read_namespaced_deployment(f"{made.name}-{made.slot('canary')}",
                                                    made.namespace)
        assert kept.spec.replicas == 0  # version 1, kept for `modelrelease rollback`
        assert kept.spec.template.metadata.labels["app.kubernetes.io/version"] == "1"
        warm_slot, warm_pods = made.slot("primary"), made.pod_uids("primary")
        version_2 = made.status()["primary"]

        slow = register_faulty_model(tracking, made.model, "slow", delay_s=0.6,
                                     slow_after_s=SLOW_AFTER_S, alias="champion")
        with background_client(made, new_connections=True) as steady, \
                sampled(routed_while_baking(made)) as routed:
            three = made.release(canary=canary(180))
        assert three.outcome == "rolled_back", three.reason
        assert "bake failed" in three.reason and "p99 above 400 ms" in three.reason, (
            f"the bake, not the canary step, must catch version {slow}: {three.reason}")
        assert steady.failed == [], steady.failed[:5]
        assert steady.ok > 100

        status = made.status()
        assert status["phase"] == "RolledBack"
        assert status["primary"]["digest"] == version_2["digest"]
        # version 2's own pods serve again: warm through the bake, never restarted
        assert made.slot("primary") == warm_slot
        assert made.pod_uids("primary") == warm_pods
        # while baking, the live Service routed to version 3's pods alone
        assert routed, "no sample of the live Service's endpoints while baking"
        assert not any(name.startswith(f"{made.name}-{warm_slot}-") for name in routed), routed
        tags = made.mlflow_tags(slow)
        assert tags["modelrelease.status"] == "rolled_back"
        assert "bake failed" in tags["modelrelease.reason"]
    finally:
        made.core.delete_namespace(made.namespace)
