"""Serving pods' Prometheus metrics, read from real pods on the local stack."""

from __future__ import annotations

import asyncio
import math
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client

from modelrelease.build.builder import BuildRequest, ImageBuilder
from modelrelease.domain.live import (
    GENERATED_HEADER,
    SLICE_COLUMN_ENV,
    SLICE_HEADER_ENV,
    PodTraffic,
)
from modelrelease.serving.metrics import MAX_SLICE_VALUES, MetricsMiddleware
from modelrelease_localstack.demo_model import register_iris_model
from tests.kube import admin_http, api, available, deployment, eventually, namespace, service
from tests.support import Cluster, Services, read_body, serve_asgi

pytestmark = pytest.mark.integration
BODY = {"dataframe_split": {
    "columns": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
    "data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.0, 3.4, 1.5, 0.2]]}}


def _value(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_pod_metrics_change_as_requests_are_served(
        cluster: Cluster, services: Services, tmp_path: Path) -> None:
    version = register_iris_model(services.mlflow.url, "iris-metrics")
    builder = ImageBuilder(services.settings(tmp_path))
    image = builder.build(BuildRequest(model=f"models:/iris-metrics/{version}",
                                       base=services.base,
                                       to=f"{services.registry.host}/ml/iris-metrics")).image
    builder.registry.close()
    api_client = api(cluster)
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    with namespace(core) as ns, admin_http(cluster) as http:
        spec = deployment("iris", image)
        spec["spec"]["template"]["spec"]["containers"][0]["env"] = [
            {"name": "MODELRELEASE_MODEL_NAME", "value": "iris-metrics"},
            {"name": "MODELRELEASE_MODEL_VERSION", "value": version},
            {"name": "MODELRELEASE_IMAGE_DIGEST", "value": image.split("@")[1]}]
        apps.create_namespaced_deployment(ns, spec)
        core.create_namespaced_service(ns, service("iris"))
        eventually(lambda: available(apps, ns, "iris"), 120, "Available")
        proxy = f"/api/v1/namespaces/{ns}/services/iris:http/proxy"
        before = http.get(f"{proxy}/metrics").text
        assert _value(before, "modelrelease_model_info", model="iris-metrics",
                      version=version, image_digest=image.split("@")[1]) == 1.0
        served = _value(before, "modelrelease_requests_total", path="/invocations",
                        status="200")
        for _ in range(5):
            assert http.post(f"{proxy}/invocations", json=BODY).status_code == 200
        bad = http.post(f"{proxy}/invocations", content=b"not json",
                        headers={"Content-Type": "application/json"})
        assert bad.status_code >= 400
        after = http.get(f"{proxy}/metrics").text
        assert _value(after, "modelrelease_requests_total", path="/invocations",
                      status="200") == served + 5
        assert _value(after, "modelrelease_requests_total", path="/invocations",
                      status=str(bad.status_code)) == 1, (bad.status_code, bad.text[:300],
                                                         after)
        assert _value(after, "modelrelease_request_seconds_count", path="/invocations") >= 6
        # the answers were [0, 2, 0] each time: class counts for drift checks
        assert _value(after, "modelrelease_predictions_total", value="0") == 10
        assert _value(after, "modelrelease_predictions_total", value="2") == 5
        # back to none in flight once the answers are out (a request's middleware ends just
        # after its last byte, and the kubelet's probes come and go: look again briefly)
        eventually(lambda: _value(http.get(f"{proxy}/metrics").text,
                                  "modelrelease_requests_in_flight") == 0, 10,
                   "no request in flight")
    api_client.close()


async def _scoring(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the whole body, as MLflow's scoring server does; 500 when it holds ``fail``.

    The seam: a stand-in for the model server so the slice counts are exact; the
    middleware under test and uvicorn are the real ones (the e2e test runs real pods).
    """
    body = await read_body(receive)
    status = 500 if b"fail" in body else 200
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"predictions": [0]}'})


def _rows(*values: object) -> dict[str, Any]:
    return {"dataframe_split": {"columns": ["region", "x"],
                                "data": [[v, 1.0] for v in values]}}


def test_pods_count_requests_per_slice_value_of_a_column_or_a_header() -> None:
    column = MetricsMiddleware(_scoring, {SLICE_COLUMN_ENV: "region"})
    with serve_asgi(column) as url, httpx.Client(base_url=url) as http:
        for body, headers in [(_rows("eu"), {}), (_rows("eu", "eu"), {}),
                              (_rows("ap"), {GENERATED_HEADER: "judge"}),
                              (_rows("ap", "fail"), {}),  # mixed rows: in no slice
                              (_rows("fail"), {}), (_rows(7.0), {})]:
            http.post("/invocations", json=body, headers=headers)
        http.get("/ping")
        pod = PodTraffic.of(http.get("/metrics").text)
    assert pod.slice_key == "column region" and pod.total.requests == 6
    assert {v: (p.total.statuses, p.generated and p.generated.requests)
            for v, p in pod.slices.items()} == {
        "eu": ({"200": 2.0}, 0), "ap": ({"200": 1.0}, 1), "fail": ({"500": 1.0}, 0),
        "7": ({"200": 1.0}, 0)}
    assert pod.slices["eu"].total.buckets[math.inf] == 2.0

    header = MetricsMiddleware(_scoring, {SLICE_HEADER_ENV: "X-Tenant"})
    header._slices.update(f"t{i}" for i in range(MAX_SLICE_VALUES - 1))  # one value left
    with serve_asgi(header) as url, httpx.Client(base_url=url) as http:
        for tenant in ("acme", "acme", "globex", "x" * 300):
            http.post("/invocations", json=_rows("eu"), headers={"x-tenant": tenant})
        http.post("/invocations", json=_rows("eu"))  # no header: not sliced
        pod = PodTraffic.of(http.get("/metrics").text)
    assert pod.slice_key == "header X-Tenant" and pod.total.requests == 5
    assert {v: p.total.requests for v, p in pod.slices.items()} == {"acme": 2}  # cap reached

    with serve_asgi(MetricsMiddleware(_scoring, {})) as url, httpx.Client(base_url=url) as http:
        http.post("/invocations", json=_rows("eu"))
        plain = PodTraffic.of(http.get("/metrics").text)
    assert plain.slice_key is None and plain.slices == {} and plain.total.requests == 1


async def _answers_then_lingers(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers 400 at once, then keeps working (as MLflow logs a bad request's error)."""
    await read_body(receive)
    await send({"type": "http.response.start", "status": 400,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"error_code": "BAD_REQUEST"}'})
    await asyncio.sleep(1.0)


def test_a_request_is_counted_before_its_client_has_the_answer() -> None:
    with serve_asgi(MetricsMiddleware(_answers_then_lingers, {})) as url, \
            httpx.Client(base_url=url) as http:
        assert http.post("/invocations", content=b"not json").status_code == 400
        pod = PodTraffic.of(http.get("/metrics").text)  # while the app still lingers
    assert pod.total.statuses == {"400": 1.0}
