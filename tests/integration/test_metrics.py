"""Serving pods' Prometheus metrics, read from real pods on the local stack."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from kubernetes import client

from modelrelease.build.builder import BuildRequest, ImageBuilder
from modelrelease.localstack.demo_model import register_iris_model
from tests.kube import admin_http, api, available, deployment, eventually, namespace, service
from tests.support import Cluster, Services

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
        assert http.post(f"{proxy}/invocations", content=b"not json",
                         headers={"Content-Type": "application/json"}).status_code >= 400
        after = http.get(f"{proxy}/metrics").text
        assert _value(after, "modelrelease_requests_total", path="/invocations",
                      status="200") == served + 5
        assert sum(_value(after, "modelrelease_requests_total", path="/invocations",
                          status=s) for s in ("400", "422", "500")) >= 1
        assert _value(after, "modelrelease_request_seconds_count", path="/invocations") >= 6
        # the answers were [0, 2, 0] each time: class counts for drift checks
        assert _value(after, "modelrelease_predictions_total", value="0") == 10
        assert _value(after, "modelrelease_predictions_total", value="2") == 5
        assert _value(after, "modelrelease_requests_in_flight") == 0
    api_client.close()
