"""`modelrelease dev install`'s pure parts: the local overlay's component, the settings and
which webhook secret they carry.

Applying it to the stack's cluster is tests/e2e/test_install.py; rendering the overlay with
kubectl's kustomize is tests/integration/test_kustomize.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelrelease.errors import StackError
from modelrelease_localstack.install import (
    PIPELINE_IMAGE,
    choose_webhook_secret,
    overlay_component,
    pod_problems,
    stack_settings,
)
from modelrelease_localstack.stack_state import StackState

DIGEST = "sha256:" + "ab" * 32


def _state(**in_cluster: str) -> StackState:
    return StackState(root="/tmp/stack", detached=True, created="2026-12-06T00:00:00Z", gpus=1,
                      in_cluster=in_cluster)


def test_the_component_pins_the_image_and_names_the_secret_and_the_endpoints() -> None:
    component: dict[str, Any] = overlay_component(
        f"10.245.0.1:5000/modelrelease/pipeline@{DIGEST}", {"B": "2", "A": "x=y"},
        ["iris.yaml", "fraud.yaml"])
    assert component["kind"] == "Component"
    assert component["images"] == [{"name": PIPELINE_IMAGE,
                                     "newName": "10.245.0.1:5000/modelrelease/pipeline",
                                     "digest": DIGEST}]
    (secret,) = component["secretGenerator"]
    assert secret["name"] == "modelrelease-settings" and secret["namespace"] == "modelrelease"
    assert secret["literals"] == ["A=x=y", "B=2"]  # sorted; '=' in a value kept
    (endpoints,) = component["configMapGenerator"]
    assert endpoints["name"] == "modelrelease-endpoints"
    assert endpoints["files"] == ["endpoints/fraud.yaml", "endpoints/iris.yaml"]
    # the work pool's Job template names both as they are: no hash suffix
    assert secret["options"] == endpoints["options"] == {"disableNameSuffixHash": True}


@pytest.mark.parametrize("image", [
    "10.245.0.1:5000/modelrelease/pipeline:latest",
    "10.245.0.1:5000/modelrelease/pipeline",
    "10.245.0.1:5000/modelrelease/pipeline@md5:abc",
])
def test_an_image_not_pinned_by_digest_is_refused(image: str) -> None:
    with pytest.raises(StackError) as caught:
        overlay_component(image, {}, [])
    assert repr(image) in str(caught.value) and "not pinned by digest" in str(caught.value)
    assert "modelrelease image pipeline" in str(caught.value)


def test_the_settings_point_pods_at_the_stack_through_the_nodes_relay() -> None:
    settings = stack_settings(_state(prefect="10.245.3.1:4001", mlflow="10.245.3.1:4002",
                                     registry="10.245.3.1:4003"), "s3cret")
    assert settings == {
        "PREFECT_API_URL": "http://10.245.3.1:4001/api",
        "MODELRELEASE_MLFLOW__TRACKING_URI": "http://10.245.3.1:4002",
        "MODELRELEASE_REGISTRY__INSECURE_REGISTRIES": json.dumps(["10.245.3.1:4003"]),
        "MODELRELEASE_WEBHOOK__SECRET": "s3cret",
    }


@pytest.mark.parametrize(("known", "missing"), [
    ({}, "prefect, mlflow, registry"),
    ({"prefect": "10.245.3.1:1", "mlflow": "10.245.3.1:2"}, "registry"),
])
def test_a_stack_whose_pods_cannot_reach_it_is_refused(known: dict[str, str],
                                                        missing: str) -> None:
    with pytest.raises(StackError) as caught:
        stack_settings(_state(**known), "s")
    message = str(caught.value)
    assert f"pods cannot reach its {missing}" in message
    assert "`modelrelease dev down` then `modelrelease dev up`" in message


@pytest.mark.parametrize(("given", "installed", "chosen"), [
    pytest.param("mine", "kept", "mine", id="given-over-installed"),
    pytest.param("mine", None, "mine", id="given-first-install"),
    pytest.param(None, "kept", "kept", id="installed-kept-on-reinstall"),
    pytest.param(None, None, "new", id="new-on-first-install"),
    pytest.param("", "kept", "kept", id="empty-given-is-none"),
    pytest.param(None, "", "new", id="empty-installed-is-none"),
])
def test_the_webhook_secret_is_given_else_the_installed_one_else_new(
        given: str | None, installed: str | None, chosen: str) -> None:
    assert choose_webhook_secret(given, installed, new=lambda: "new") == chosen


def test_a_new_webhook_secret_is_random_and_url_safe() -> None:
    one, two = choose_webhook_secret(None, None), choose_webhook_secret(None, None)
    assert one != two and len(one) >= 32
    assert set(one) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _container(name: str, **status: Any) -> dict[str, Any]:
    return {"name": name, "ready": False, **status}


@pytest.mark.parametrize(("pods", "said"), [
    pytest.param({"items": []}, "", id="no-pods"),
    pytest.param({"items": [{"metadata": {"name": "w-1"}, "status": {"containerStatuses": [
        _container("webhook", state={"waiting": {"reason": "CrashLoopBackOff",
                                                 "message": "back-off 40s"}},
                   lastState={"terminated": {"exitCode": 128, "reason": "StartError",
                                             "message": 'exec: "modelrelease": not found'}})]}}]},
        'w-1/webhook: CrashLoopBackOff; last exit 128 (StartError): exec: "modelrelease": '
        "not found", id="crash-loop"),
    pytest.param({"items": [{"metadata": {"name": "w-1"}, "status": {"containerStatuses": [
        _container("worker", state={"waiting": {"reason": "ImagePullBackOff",
                                                "message": "pull 10.0.0.1/x: not found"}})]}}]},
        "w-1/worker: ImagePullBackOff; pull 10.0.0.1/x: not found", id="pull"),
    pytest.param({"items": [{"metadata": {"name": "w-1"}, "status": {
        "phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "message": "0/1 nodes: Insufficient"},
            {"type": "Initialized", "status": "True"}]}}]},
        "w-1: Pending (PodScheduled=False 0/1 nodes: Insufficient)", id="unscheduled"),
    pytest.param({"items": [{"metadata": {"name": "w-1"}, "status": {"containerStatuses": [
        {"name": "worker", "ready": True}, _container("side", state={"running": {}})]}}]},
        "w-1/side: not ready", id="running-not-ready"),
])
def test_pod_problems_are_said_in_the_kubelets_words(pods: dict[str, Any], said: str) -> None:
    assert pod_problems(pods) == said
