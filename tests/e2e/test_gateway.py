"""The ``gateway-api`` router on the stack's real API server, with the official CRDs.

No Gateway data plane runs here (none can be built on these machines: README), so no
request goes through a gateway. What is real: the API server, with the Gateway API's
standard CRDs (``modelrelease_localstack.gateway_api``, CEL rules included), validates
every HTTPRoute a release applies and defaults it as a cluster with a gateway does, and
the releases themselves run whole (image, canary pods, generated load, verdict).

- A cluster without the CRDs, a Gateway that does not exist, and a route of the
  endpoint's name that no release made are each refused before anything changes.
- A first release leaves the route on the primary alone. The next release moves the
  weights exactly as its steps ask (1%, 5%, 50%) while ``Service E`` never selects the
  canary, and promotion leaves the route on the new primary alone.
- Weights someone else changes during a step stop the release with that reason: it rolls
  back and the route goes back to the primary alone.
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from modelrelease.adapters.kube import KubeCluster
from modelrelease.domain.gateway import API_VERSION, GATEWAY_CRDS, weights_of
from modelrelease.errors import InvalidInput
from modelrelease.release.driver import run_release
from modelrelease.release.dry_run import plan_release
from modelrelease.settings import KubeConfig
from modelrelease.spec import ReleaseRequest, parse_endpoint
from modelrelease_localstack.demo_model import register_iris_model
from modelrelease_localstack.gateway_api import install_crds
from modelrelease_localstack.stack import Stack
from tests.e2e.helpers import Endpoint, make_endpoint

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]
STEPS = [{"weight": 1, "hold": "10s"}, {"weight": 5, "hold": "10s"},
         {"weight": 50, "hold": "10s"}]
CHECKS = {"latency": {"p99Ms": 5000, "maxRegression": 2.0}, "maxErrorRate": 0.01,
          "minRequests": 40}
HOSTNAME = "iris.models.example.com"


@dataclass
class Routed:
    made: Endpoint
    kube: KubeCluster
    gateway_namespace: str


@dataclass
class Watch:
    """What a poller saw of the route and of ``Service E`` while a release ran."""

    weights: list[float] = field(default_factory=list)
    """Each distinct canary share the route had, in order."""
    service_selects_canary: bool = False


def _crds_gone(kube: KubeCluster) -> None:
    """Delete the Gateway API CRDs if an earlier session installed them; wait until gone."""
    for name in GATEWAY_CRDS:
        kube.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", name,
                    propagation="Background")
    deadline = time.monotonic() + 60
    while any(kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
              for name in GATEWAY_CRDS):
        assert time.monotonic() < deadline, "the Gateway API CRDs did not go"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def routed(stack: Stack, crd: None, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Routed]:
    """An endpoint routed through Gateway ``public`` (which exists only once installed)."""
    suffix = uuid.uuid4().hex[:6]
    gateway_namespace = f"gw-{suffix}"
    made = make_endpoint(stack, tmp_path_factory.mktemp("gateway"), steps=STEPS,
                         checks=CHECKS, traffic={
                             "router": "gateway-api", "hostname": HOSTNAME,
                             "gateway": {"name": "public", "namespace": gateway_namespace}})
    kube = KubeCluster(KubeConfig(kubeconfig=stack.kubeconfig))
    try:
        register_iris_model(stack.env()["MLFLOW_TRACKING_URI"], made.model, alias="champion")
        yield Routed(made, kube, gateway_namespace)
    finally:
        made.core.delete_namespace(made.namespace)
        if kube.get("v1", "Namespace", gateway_namespace):
            made.core.delete_namespace(gateway_namespace)
        kube.close()


def _install_gateway(routed: Routed) -> None:
    names = install_crds(routed.kube)
    assert set(GATEWAY_CRDS) <= set(names), names
    routed.made.core.create_namespace({"metadata": {"name": routed.gateway_namespace}})
    routed.kube.apply({"apiVersion": API_VERSION, "kind": "GatewayClass",
                       "metadata": {"name": "modelrelease-e2e"},
                       "spec": {"controllerName": "modelrelease.io/e2e-no-data-plane"}})
    routed.kube.apply({
        "apiVersion": API_VERSION, "kind": "Gateway",
        "metadata": {"name": "public", "namespace": routed.gateway_namespace},
        "spec": {"gatewayClassName": "modelrelease-e2e", "listeners": [{
            "name": "http", "protocol": "HTTP", "port": 80,
            "allowedRoutes": {"namespaces": {"from": "All"}}}]}})


def _nothing_deployed(made: Endpoint) -> None:
    assert made.apps.list_namespaced_deployment(made.namespace).items == []
    assert made.image("primary") is None


def _route(routed: Routed) -> dict[str, Any] | None:
    return routed.kube.get(API_VERSION, "HTTPRoute", routed.made.name, routed.made.namespace)


def _canary_share(routed: Routed) -> float | None:
    route = _route(routed)
    if route is None:
        return None
    return weights_of(parse_endpoint(yaml.safe_load(routed.made.file.read_text())),
                      route).canary_percent


def _watching(routed: Routed, stop: threading.Event, seen: Watch) -> None:
    made = routed.made
    while not stop.is_set():
        share = _canary_share(routed)
        if share is not None and (not seen.weights or seen.weights[-1] != share):
            seen.weights.append(share)
        services = made.core.list_namespaced_service(
            made.namespace, field_selector=f"metadata.name={made.name}").items
        selector = services[0].spec.selector if services else None  # none before a release
        if services and "modelrelease.io/slot" not in (selector or {}):  # the canary's too
            seen.service_selects_canary = True
        time.sleep(0.2)


def _release_watched(routed: Routed) -> tuple[Any, Watch]:
    seen, stop = Watch(), threading.Event()
    poller = threading.Thread(target=_watching, args=(routed, stop, seen), daemon=True)
    poller.start()
    try:
        result = routed.made.release()
    finally:
        stop.set()
        poller.join(10)
    print(f"{result.outcome}: {result.reason}; route's canary share: {seen.weights}")
    return result, seen


def test_a_cluster_without_the_gateway_api_is_refused_up_front(routed: Routed) -> None:
    _crds_gone(routed.kube)
    with pytest.raises(InvalidInput) as refused:
        routed.made.release()
    message = refused.value.message
    assert "traffic.router is gateway-api but the cluster does not serve Gateway or HTTPRoute" \
        in message, message
    assert "install the Gateway API's standard CRDs" in message and "replica-ratio" in message
    with pytest.raises(InvalidInput) as planned:  # its dry run says the same
        plan_release(ReleaseRequest(endpoint=str(routed.made.file), dry_run=True),
                     routed.made.settings, say=print)
    assert planned.value.message == message
    _nothing_deployed(routed.made)


def test_a_gateway_that_does_not_exist_is_refused_up_front(routed: Routed) -> None:
    _install_gateway(routed)
    made = routed.made
    body = yaml.safe_load(made.file.read_text())
    body["spec"]["traffic"]["gateway"]["name"] = "nope"
    other = made.file.with_name("missing-gateway.yaml")
    other.write_text(yaml.safe_dump(body))
    with pytest.raises(InvalidInput) as refused:
        run_release(ReleaseRequest(endpoint=str(other)), made.settings, say=print)
    assert (f"traffic.gateway {routed.gateway_namespace}/nope does not exist: fix "
            "traffic.gateway (kubectl get gateways -A") in refused.value.message
    _nothing_deployed(made)


def test_a_route_that_no_release_made_is_refused_up_front(routed: Routed) -> None:
    made = routed.made
    theirs = {"apiVersion": API_VERSION, "kind": "HTTPRoute",
              "metadata": {"name": made.name, "namespace": made.namespace},
              "spec": {"rules": [{"backendRefs": [{"name": "somebody-else", "port": 80}]}]}}
    routed.kube.apply(theirs)
    try:
        with pytest.raises(InvalidInput) as refused:
            made.release()
        assert f"HTTPRoute {made.namespace}/{made.name} exists and no release made it" in \
            refused.value.message
        _nothing_deployed(made)
        kept = _route(routed)
        assert kept is not None and kept["spec"]["rules"][0]["backendRefs"][0]["name"] == \
            "somebody-else"  # left as it was
    finally:  # gone before the next test's release looks for it
        routed.kube.delete(API_VERSION, "HTTPRoute", made.name, made.namespace)
        deadline = time.monotonic() + 60
        while _route(routed) is not None:
            assert time.monotonic() < deadline, "the foreign route did not go"
            time.sleep(0.2)


def test_exact_weights_through_the_route_and_the_primary_alone_after(
        routed: Routed, stack: Stack) -> None:
    made = routed.made
    first, seen = _release_watched(routed)
    assert first.outcome == "promoted", first.reason
    assert seen.weights[-1] == 0.0 and set(seen.weights) == {0.0}  # never on the canary
    route = _route(routed)
    assert route is not None
    assert route["spec"]["hostnames"] == [HOSTNAME]
    assert route["spec"]["parentRefs"][0]["namespace"] == routed.gateway_namespace
    assert [ref["name"] for ref in route["spec"]["rules"][-1]["backendRefs"]] == [
        f"{made.name}-primary"]

    register_iris_model(stack.env()["MLFLOW_TRACKING_URI"], made.model, alias="champion",
                        c=0.5)
    plan = plan_release(ReleaseRequest(endpoint=str(made.file), dry_run=True), made.settings,
                        say=print).report
    assert "| step | weight asked | weight by HTTPRoute | canary replicas |" in plan
    assert "| 1 | 1% | 1% | 1 |" in plan, plan
    result, seen = _release_watched(routed)
    assert result.outcome == "promoted", result.reason
    # each step's exact share, then the new primary alone (a 0.2 s poller sees each hold)
    assert seen.weights == [0.0, 1.0, 5.0, 50.0, 0.0], seen.weights
    assert not seen.service_selects_canary
    assert (f"router: gateway-api (HTTPRoute {made.namespace}/{made.name} on Gateway "
            f"{routed.gateway_namespace}/public)") in result.report
    assert "canary at 1 replica(s) = 1% of live traffic (asked 1%)" in result.report
    assert made.status()["primary"]["version"] == "2"


def test_weights_changed_by_someone_else_stop_the_release(routed: Routed, stack: Stack
                                                          ) -> None:
    made = routed.made
    register_iris_model(stack.env()["MLFLOW_TRACKING_URI"], made.model, alias="champion",
                        c=0.7)
    changed = threading.Event()
    edited: list[int] = []  # the canary's weight the release had set when it was edited

    def someone_else() -> None:  # once the release set a step's weight: make it 30
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not changed.is_set():
            route, share = _route(routed), _canary_share(routed)
            if route is not None and share:
                rules = copy.deepcopy(route["spec"]["rules"])
                rules[-1]["backendRefs"][-1]["weight"] = 30
                routed.kube.merge_patch(API_VERSION, "HTTPRoute", made.name, made.namespace,
                                        {"spec": {"rules": rules}})
                edited.append(round(share))
                changed.set()
            time.sleep(0.1)

    editor = threading.Thread(target=someone_else, daemon=True)
    editor.start()
    result, _ = _release_watched(routed)
    editor.join(10)
    assert changed.is_set()
    (weight,) = edited  # 1 unless the judge decided step 1 within the edit's 0.1 s
    step = [step["weight"] for step in STEPS].index(weight) + 1
    assert result.outcome == "rolled_back", result.reason
    assert f"step {step} failed at weight {weight}: stopped: HTTPRoute" in result.reason, \
        result.reason
    assert "someone else changed its weights during the release" in result.reason
    assert f"the release set primary {100 - weight}, canary {weight}" in result.reason
    assert _canary_share(routed) == 0.0  # back on the primary alone
    assert made.status()["primary"]["version"] == "2"


def test_the_cluster_refuses_a_gateway_router_without_a_gateway(routed: Routed) -> None:
    """The ModelEndpoint CRD's CEL rule for ``traffic``, as the real API server runs it."""
    from kubernetes.client import ApiException

    made = routed.made
    body = yaml.safe_load(made.file.read_text())
    body["metadata"]["name"] = "cel-check"
    body["spec"]["traffic"] = {"router": "gateway-api"}
    with pytest.raises(ApiException) as refused:
        made.custom.create_namespaced_custom_object(
            "modelrelease.io", "v1alpha1", made.namespace, "modelendpoints", body,
            dry_run="All")
    assert refused.value.status == 422
    assert "router gateway-api needs a gateway" in str(refused.value.body)
