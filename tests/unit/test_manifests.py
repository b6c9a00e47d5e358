"""Kubernetes objects of a release: names, selectors, hardening, digests, determinism."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from modelrelease.domain.fault import FaultSetting
from modelrelease.domain.manifests import (
    ANNOTATION_IMAGE_DIGEST,
    ANNOTATION_MODEL,
    ANNOTATION_MODEL_VERSION,
    ANNOTATION_RELEASE_ID,
    ANNOTATION_SPEC_HASH,
    FIELD_MANAGER,
    LABEL_SLOT,
    LABEL_TRACK,
    SERVING_PORT,
    Slot,
    Slots,
    Track,
    deployment_name,
    label_selector,
    label_value,
    pinned_image,
    render_deployment,
    render_endpoint_resource,
    render_primary_extras,
    render_release,
    render_services,
    selector,
    service_name,
    shadow_target,
    shadow_token_of,
    slots_of,
)
from modelrelease.errors import InvalidInput
from modelrelease.spec import Fault, ModelEndpoint, parse_endpoint, spec_hash
from tests.unit.test_spec import VALID, doc

DIGEST = "sha256:" + "ab" * 32
IMAGE = f"127.0.0.1:5000/ml/iris@{DIGEST}"
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@pytest.fixture
def endpoint() -> ModelEndpoint:
    return parse_endpoint(VALID)


def deployment(endpoint: ModelEndpoint, track: Track = Track.CANARY,
               **kwargs: Any) -> dict[str, Any]:
    """``track``'s Deployment in the slot a first release gives it (canary: blue)."""
    args: dict[str, Any] = {"image": IMAGE, "model_version": "3", "release_id": "r-1",
                            "track": track, "slot": Slots().of(track), "replicas": 1,
                            **kwargs}
    return render_deployment(endpoint, **args)


def matches(selector_labels: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector_labels.items())


@pytest.mark.parametrize("slot", [pytest.param(s, id=s.value) for s in Slot])
@pytest.mark.parametrize("track", [pytest.param(t, id=t.value) for t in Track])
def test_deployment_names_labels_and_selector(endpoint: ModelEndpoint, track: Track,
                                              slot: Slot) -> None:
    obj = deployment(endpoint, track, slot=slot)
    assert obj["apiVersion"] == "apps/v1" and obj["kind"] == "Deployment"
    assert obj["metadata"]["name"] == f"iris-{slot.value}" == deployment_name(endpoint, slot)
    assert obj["metadata"]["namespace"] == "ml"
    labels = obj["spec"]["template"]["metadata"]["labels"]
    assert labels == {
        "app.kubernetes.io/name": "iris",
        "app.kubernetes.io/instance": f"iris-{slot.value}",
        "app.kubernetes.io/component": "model-server",
        "app.kubernetes.io/managed-by": "modelrelease",
        "app.kubernetes.io/version": "3",
        LABEL_SLOT: slot.value,
    }
    assert obj["metadata"]["labels"] == {**labels, LABEL_TRACK: track.value}
    assert obj["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "iris",
                                                       "modelrelease.io/slot": slot.value}}
    assert matches(obj["spec"]["selector"]["matchLabels"], labels)


@pytest.mark.parametrize("slot", [pytest.param(s, id=s.value) for s in Slot])
def test_promoting_a_canary_changes_its_deployment_but_not_its_pods(
        endpoint: ModelEndpoint, slot: Slot) -> None:
    canary = deployment(endpoint, Track.CANARY, slot=slot, replicas=1, release_id="r-1")
    primary = deployment(endpoint, Track.PRIMARY, slot=slot, replicas=3, release_id="r-1")
    assert primary["spec"]["template"] == canary["spec"]["template"]  # no pod restarts
    assert primary["spec"]["selector"] == canary["spec"]["selector"]
    assert (canary["metadata"]["labels"][LABEL_TRACK],
            primary["metadata"]["labels"][LABEL_TRACK]) == ("canary", "primary")
    assert (canary["spec"]["replicas"], primary["spec"]["replicas"]) == (1, 3)


@pytest.mark.parametrize(("service", "primary", "canary"), [
    pytest.param(None, Slot.GREEN, Slot.BLUE, id="no-service-yet"),
    pytest.param({"spec": {}}, Slot.GREEN, Slot.BLUE, id="no-selector"),
    pytest.param({"spec": {"selector": {LABEL_SLOT: "blue"}}}, Slot.BLUE, Slot.GREEN,
                 id="blue"),
    pytest.param({"spec": {"selector": {LABEL_SLOT: "green"}}}, Slot.GREEN, Slot.BLUE,
                 id="green"),
    pytest.param({"spec": {"selector": {"track": "primary"}}}, Slot.GREEN, Slot.BLUE,
                 id="other-selector"),
])
def test_slots_are_read_from_the_primary_services_selector(
        service: dict[str, Any] | None, primary: Slot, canary: Slot) -> None:
    slots = slots_of(service)
    assert (slots.primary, slots.canary) == (primary, canary)
    assert (slots.of(Track.PRIMARY), slots.of(Track.CANARY)) == (primary, canary)
    assert primary.other is canary and canary.other is primary


def test_image_is_always_by_digest(endpoint: ModelEndpoint) -> None:
    tagged = deployment(endpoint, image=f"127.0.0.1:5000/ml/iris:v3@{DIGEST}")
    (container,) = tagged["spec"]["template"]["spec"]["containers"]
    assert container["image"] == IMAGE


@pytest.mark.parametrize(("image", "words"), [
    pytest.param("127.0.0.1:5000/ml/iris:v3", "not pinned by digest; pass "
                 "127.0.0.1:5000/ml/iris@sha256:<digest>", id="tag"),
    pytest.param("127.0.0.1:5000/ml/iris", "not pinned by digest", id="bare"),
    pytest.param("127.0.0.1:5000/ml/iris@sha256:beef", "sha256:<64 hex>", id="short-digest"),
    pytest.param("", "empty", id="empty"),
])
def test_unpinned_images_are_refused(endpoint: ModelEndpoint, image: str, words: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(words)) as caught:
        deployment(endpoint, image=image)
    assert caught.value.message.startswith("render deployment ml/iris-blue: ")


def test_pinned_image_returns_the_reference() -> None:
    assert pinned_image(IMAGE, what="x").digest == DIGEST


def test_annotations_and_what_restarts_pods(endpoint: ModelEndpoint) -> None:
    obj = deployment(endpoint)
    assert obj["metadata"]["annotations"] == {
        ANNOTATION_MODEL: "iris-clf",
        ANNOTATION_MODEL_VERSION: "3",
        ANNOTATION_IMAGE_DIGEST: DIGEST,
        ANNOTATION_RELEASE_ID: "r-1",
        ANNOTATION_SPEC_HASH: spec_hash(endpoint),
    }
    pod = obj["spec"]["template"]["metadata"]["annotations"]
    assert pod == {ANNOTATION_MODEL: "iris-clf", ANNOTATION_MODEL_VERSION: "3",
                   ANNOTATION_IMAGE_DIGEST: DIGEST, "prometheus.io/scrape": "true",
                   "prometheus.io/port": "8080", "prometheus.io/path": "/metrics"}
    # another release of the same image changes no pod template: no restart
    again = deployment(endpoint, release_id="r-2")
    assert again["spec"]["template"] == obj["spec"]["template"]
    assert again["metadata"]["annotations"][ANNOTATION_RELEASE_ID] == "r-2"


def test_pods_are_hardened_by_default(endpoint: ModelEndpoint) -> None:
    pod = deployment(endpoint)["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["terminationGracePeriodSeconds"] == 10
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security == {
        "runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000,
        "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
        "privileged": False, "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    # a read-only root still needs a writable /tmp
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]


def test_container_port_env_and_probes(endpoint: ModelEndpoint) -> None:
    (container,) = deployment(endpoint)["spec"]["template"]["spec"]["containers"]
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["env"] == [
        {"name": "MODELRELEASE_PORT", "value": str(SERVING_PORT)},
        {"name": "MODELRELEASE_MODEL_NAME", "value": endpoint.spec.model.name},
        {"name": "MODELRELEASE_MODEL_VERSION", "value": "3"},
        {"name": "MODELRELEASE_IMAGE_DIGEST", "value": IMAGE.split("@")[1]},
    ]
    start = container["startupProbe"]
    ready, live = container["readinessProbe"], container["livenessProbe"]
    assert start["httpGet"] == ready["httpGet"] == live["httpGet"] == {
        "path": "/ping", "port": "http", "scheme": "HTTP"}
    # a slow model load gets 5 minutes before liveness may restart it
    assert start["periodSeconds"] * start["failureThreshold"] == 300
    assert (ready["periodSeconds"], ready["failureThreshold"]) == (1, 3)
    assert (live["periodSeconds"], live["failureThreshold"], live["timeoutSeconds"]) == (5, 6, 3)


@pytest.mark.parametrize(("slices", "env"), [
    pytest.param({"header": "X-Tenant", "mix": {"a": 1}},
                 {"name": "MODELRELEASE_SLICE_HEADER", "value": "X-Tenant"}, id="header"),
    pytest.param({"column": "sepal_length", "mix": {"5.1": 1}},
                 {"name": "MODELRELEASE_SLICE_COLUMN", "value": "sepal_length"}, id="column"),
])
def test_pods_are_told_the_slice_key_so_live_traffic_is_sliced(
        slices: dict[str, Any], env: dict[str, str]) -> None:
    sliced = parse_endpoint(doc(**{"spec.canary.checks.slices": slices}))
    for track in Track:
        (container,) = deployment(sliced, track)["spec"]["template"]["spec"]["containers"]
        assert env in container["env"]
    assert sliced.spec.canary.checks.slices is not None
    assert sliced.spec.canary.checks.slices.key == f"{next(iter(slices))} {env['value']}"


@pytest.mark.parametrize(("fault", "env"), [
    pytest.param(FaultSetting(Fault.LATENCY, 0.5), "latency:0.5", id="latency"),
    pytest.param(FaultSetting(Fault.ERRORS, 0.25), "errors:0.25", id="errors"),
    pytest.param(FaultSetting(Fault.CRASH), "crash", id="crash"),
])
def test_a_drill_fault_is_set_on_the_track_it_is_given_to(
        endpoint: ModelEndpoint, fault: FaultSetting, env: str) -> None:
    objects = render_release(endpoint, image=IMAGE, model_version="3", release_id="r1",
                             track=Track.CANARY, slots=Slots(), replicas=1, fault=fault)
    (canary,) = [o for o in objects if o["kind"] == "Deployment"]
    (container,) = canary["spec"]["template"]["spec"]["containers"]
    assert container["env"][-1] == {"name": "MODELRELEASE_FAULT", "value": env}
    (plain,) = deployment(endpoint)["spec"]["template"]["spec"]["containers"]
    assert all(e["name"] != "MODELRELEASE_FAULT" for e in plain["env"])


def test_resources_with_an_accelerator(endpoint: ModelEndpoint) -> None:
    pod = deployment(endpoint)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "2Gi", "nvidia.com/gpu": "1"},
        "limits": {"memory": "2Gi", "nvidia.com/gpu": "1"},
    }
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists",
                                   "effect": "NoSchedule"}]


def test_resources_without_accelerators() -> None:
    plain = parse_endpoint(doc(**{"spec.resources": {"cpu": "500m", "memory": "512Mi"}}))
    pod = deployment(plain)["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"] == {"requests": {"cpu": "500m", "memory": "512Mi"},
                                                 "limits": {"memory": "512Mi"}}
    assert "tolerations" not in pod


def test_replicas_and_progress_deadline(endpoint: ModelEndpoint) -> None:
    spec = deployment(endpoint, replicas=2, progress_deadline_seconds=30)["spec"]
    assert spec["replicas"] == 2 and spec["progressDeadlineSeconds"] == 30
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert deployment(endpoint)["spec"]["progressDeadlineSeconds"] == 120
    under_hpa = deployment(endpoint, Track.PRIMARY, replicas=None)["spec"]
    assert "replicas" not in under_hpa


@pytest.mark.parametrize(("kwargs", "words"), [
    pytest.param({"replicas": -1}, "replicas must be 0 or more, got -1", id="replicas"),
    pytest.param({"progress_deadline_seconds": 0}, "progress deadline must be at least 1 second",
                 id="deadline"),
])
def test_deployment_refuses_bad_counts(endpoint: ModelEndpoint, kwargs: dict[str, Any],
                                       words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        deployment(endpoint, **kwargs)


@pytest.mark.parametrize(("text", "value"), [
    pytest.param("3", "3", id="number"),
    pytest.param("<resolved at release>", "resolved-at-release", id="placeholder"),
    pytest.param("v1.2_rc", "v1.2_rc", id="kept"),
    pytest.param("a" * 80, "a" * 63, id="long"),
    pytest.param("--x--", "x", id="edges"),
    pytest.param("é", "", id="nothing-left"),
])
def test_label_value(text: str, value: str) -> None:
    assert label_value(text) == value
    assert LABEL_VALUE.match(value)


def test_version_label_is_dropped_when_nothing_valid_is_left(endpoint: ModelEndpoint) -> None:
    labels = deployment(endpoint, model_version="é")["metadata"]["labels"]
    assert "app.kubernetes.io/version" not in labels


@pytest.mark.parametrize("slots", [pytest.param(Slots(s), id=f"primary-{s}") for s in Slot])
@pytest.mark.parametrize(("canary_live", "live_selects"), [
    pytest.param(True, set(Track), id="in-a-release"),
    pytest.param(False, {Track.PRIMARY}, id="promoted")])
def test_services_select_both_slots_or_a_tracks(endpoint: ModelEndpoint, slots: Slots,
                                                canary_live: bool,
                                                live_selects: set[Track]) -> None:
    live, primary, canary = render_services(endpoint, slots, canary_live=canary_live)
    pods = {t: deployment(endpoint, t, slot=slots.of(t))["spec"]["template"]["metadata"][
        "labels"] for t in Track}
    assert [s["metadata"]["name"] for s in (live, primary, canary)] == [
        "iris", "iris-primary", "iris-canary"]
    assert [service_name(endpoint, t) for t in (None, *Track)] == [
        "iris", "iris-primary", "iris-canary"]
    # the live Service: both slots while a canary takes traffic, the primary's alone after
    assert {t for t in Track if matches(live["spec"]["selector"], pods[t])} == live_selects
    assert matches(primary["spec"]["selector"], pods[Track.PRIMARY])
    assert not matches(primary["spec"]["selector"], pods[Track.CANARY])
    assert matches(canary["spec"]["selector"], pods[Track.CANARY])
    assert not matches(canary["spec"]["selector"], pods[Track.PRIMARY])
    assert primary["spec"]["selector"][LABEL_SLOT] == slots.primary.value
    assert slots_of(primary) == slots  # the selector is where the slots are read back
    for service in (live, primary, canary):
        assert service["apiVersion"] == "v1" and service["kind"] == "Service"
        assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http",
                                             "protocol": "TCP"}]
    assert selector(endpoint) == {"app.kubernetes.io/name": "iris"}


@pytest.mark.parametrize("slot", [pytest.param(s, id=s.value) for s in Slot])
def test_primary_autoscaler_and_disruption_budget(endpoint: ModelEndpoint, slot: Slot) -> None:
    hpa, pdb = render_primary_extras(endpoint, Slots(slot))
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["kind"] == "HorizontalPodAutoscaler"
    assert hpa["metadata"]["name"] == pdb["metadata"]["name"] == "iris-primary"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": f"iris-{slot.value}"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    assert hpa["spec"]["metrics"][0]["resource"] == {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}
    assert pdb["apiVersion"] == "policy/v1" and pdb["kind"] == "PodDisruptionBudget"
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "iris",
                                                       LABEL_SLOT: slot.value}}


@pytest.mark.parametrize(("track", "kinds"), [
    pytest.param(Track.CANARY, ["Service"] * 3 + ["Deployment"], id="canary"),
    pytest.param(Track.PRIMARY, ["Service"] * 3 + ["Deployment", "HorizontalPodAutoscaler",
                                                  "PodDisruptionBudget"], id="primary"),
])
def test_render_release(endpoint: ModelEndpoint, track: Track, kinds: list[str]) -> None:
    objects = render_release(endpoint, image=IMAGE, model_version="3", release_id="r-1",
                             track=track, slots=Slots(Slot.BLUE), replicas=1)
    assert [o["kind"] for o in objects] == kinds
    (applied,) = [o for o in objects if o["kind"] == "Deployment"]
    assert applied["metadata"]["name"] == ("iris-blue" if track is Track.PRIMARY
                                           else "iris-green")
    # the live Service: both slots with a canary, the new primary's alone once promoted
    assert objects[0]["spec"]["selector"] == {"app.kubernetes.io/name": "iris"} | (
        {LABEL_SLOT: "blue"} if track is Track.PRIMARY else {})
    again = render_release(endpoint, image=IMAGE, model_version="3", release_id="r-1",
                           track=track, slots=Slots(Slot.BLUE), replicas=1)
    assert json.dumps(objects, sort_keys=True) == json.dumps(again, sort_keys=True)


def test_longest_name_fits_every_object() -> None:
    longest = parse_endpoint(doc(**{"metadata.name": "a" * 55}))
    for track in Track:
        for obj in render_release(longest, image=IMAGE, model_version="3", release_id="r",
                                  track=track, slots=Slots(), replicas=1):
            name = obj["metadata"]["name"]
            assert len(name) <= 63 and DNS1123.match(name)
            for value in obj["metadata"]["labels"].values():
                assert len(value) <= 63 and LABEL_VALUE.match(value)


def test_endpoint_resource(endpoint: ModelEndpoint) -> None:
    resource = render_endpoint_resource(endpoint)
    assert resource["apiVersion"] == "modelrelease.io/v1alpha1"
    assert resource["kind"] == "ModelEndpoint"
    assert resource["metadata"] == {"name": "iris", "namespace": "ml",
                                    "labels": {"app.kubernetes.io/managed-by": "modelrelease"}}
    assert resource["spec"]["canary"]["steps"][0] == {"weight": 10, "hold": "30s"}
    assert "status" not in resource
    assert parse_endpoint({**resource, "metadata": {"name": "iris", "namespace": "ml"}}) == endpoint
    assert FIELD_MANAGER == "modelrelease"


def test_label_selector_is_the_selector_as_a_string(endpoint: ModelEndpoint) -> None:
    assert label_selector(endpoint) == "app.kubernetes.io/name=iris"
    assert (label_selector(endpoint, Slot.BLUE)
            == "app.kubernetes.io/name=iris,modelrelease.io/slot=blue")


def test_pods_get_a_shadow_control_only_with_a_token(endpoint: ModelEndpoint) -> None:
    plain = deployment(endpoint)
    assert shadow_token_of(plain) is None
    assert not any(e["name"].startswith("MODELRELEASE_SHADOW")
                   for e in plain["spec"]["template"]["spec"]["containers"][0]["env"])
    told = deployment(endpoint, shadow_token="t0k3n")
    env = {e["name"]: e["value"] for e in told["spec"]["template"]["spec"]["containers"][0]["env"]}
    # the one target they may copy to: the canary's Service of their own endpoint
    assert env["MODELRELEASE_SHADOW_TARGET"] == "http://iris-canary.ml.svc:80"
    assert env["MODELRELEASE_SHADOW_TOKEN"] == "t0k3n"
    assert shadow_target(endpoint) == "http://iris-canary.ml.svc:80"
    assert shadow_token_of(told) == "t0k3n"  # read back: re-applying keeps the same pods
    assert shadow_token_of(None) is None and shadow_token_of({"spec": {}}) is None


@pytest.mark.parametrize(("live", "selector"), [
    pytest.param(None, {"app.kubernetes.io/name": "iris"}, id="canary-default-live"),
    pytest.param(True, {"app.kubernetes.io/name": "iris"}, id="live"),
    pytest.param(False, {"app.kubernetes.io/name": "iris", LABEL_SLOT: "blue"},
                 id="shadow-first-no-users"),
])
def test_a_canary_starting_in_shadow_gets_no_users(endpoint: ModelEndpoint, live: bool | None,
                                                   selector: dict[str, str]) -> None:
    objects = render_release(endpoint, image=IMAGE, model_version="3", release_id="r-1",
                             track=Track.CANARY, slots=Slots(Slot.BLUE), replicas=1,
                             canary_live=live, shadow_token="t")
    assert objects[0]["metadata"]["name"] == "iris"
    assert objects[0]["spec"]["selector"] == selector
    assert shadow_token_of(objects[3]) == "t"
