"""The gateway-api router's HTTPRoute: what is rendered, what is read back, what is drift."""

from __future__ import annotations

from typing import Any

import pytest

from modelrelease.domain.gateway import (
    API_VERSION,
    TRACK_HEADER,
    Split,
    drift,
    owned_by_us,
    render_route,
    weights_of,
)
from modelrelease.errors import InvalidInput
from modelrelease.spec import ModelEndpoint, parse_endpoint
from tests.fakes import as_the_api_server_holds
from tests.unit.test_spec import doc

GATEWAY = {"router": "gateway-api", "gateway": {"name": "public", "namespace": "gateways"},
           "hostname": "iris.models.example.com"}


def endpoint(**traffic: Any) -> ModelEndpoint:
    return parse_endpoint(doc(**{"spec.traffic": {**GATEWAY, **traffic}}))


@pytest.mark.parametrize(("weight", "backends"), [
    pytest.param(0, [("iris-primary", 100)], id="primary-alone"),
    pytest.param(1, [("iris-primary", 99), ("iris-canary", 1)], id="one-percent"),
    pytest.param(5, [("iris-primary", 95), ("iris-canary", 5)], id="five"),
    pytest.param(100, [("iris-primary", 0), ("iris-canary", 100)], id="all"),
])
def test_the_split_rule_carries_exact_weights(weight: int,
                                              backends: list[tuple[str, int]]) -> None:
    route = render_route(endpoint(), weight, "r-1")
    split = route["spec"]["rules"][-1]
    assert split["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    assert [(ref["name"], ref["weight"]) for ref in split["backendRefs"]] == backends
    assert all(ref["port"] == 80 for ref in split["backendRefs"])
    assert weights_of(endpoint(), as_the_api_server_holds(route)).canary_percent == weight


def test_the_route_attaches_to_the_gateway_and_pins_tracks_by_header() -> None:
    route = render_route(endpoint(), 10, "r-7")
    assert (route["apiVersion"], route["kind"]) == (API_VERSION, "HTTPRoute")
    assert route["metadata"]["name"] == "iris" and route["metadata"]["namespace"] == "ml"
    assert route["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "modelrelease"
    assert route["metadata"]["annotations"]["modelrelease.io/release-id"] == "r-7"
    assert route["spec"]["parentRefs"] == [{"group": "gateway.networking.k8s.io",
                                            "kind": "Gateway", "name": "public",
                                            "namespace": "gateways"}]
    assert route["spec"]["hostnames"] == ["iris.models.example.com"]
    pinned = route["spec"]["rules"][:2]
    assert [(rule["matches"][0]["headers"][0]["value"], rule["backendRefs"][0]["name"])
            for rule in pinned] == [("primary", "iris-primary"), ("canary", "iris-canary")]
    assert all(rule["matches"][0]["headers"][0]["name"] == TRACK_HEADER for rule in pinned)


def test_spec_fields_reach_the_route() -> None:
    bare = render_route(endpoint(hostname=None, gateway={"name": "gw"}), 10, "r")
    assert "hostnames" not in bare["spec"]
    assert bare["spec"]["parentRefs"][0]["namespace"] == "ml"  # the endpoint's own
    assert bare["spec"]["parentRefs"][0]["name"] == "gw"


@pytest.mark.parametrize(("traffic", "weight", "message"), [
    pytest.param({"router": "replica-ratio", "gateway": None, "hostname": None}, 10,
                 "its traffic.router is replica-ratio, not gateway-api", id="other-router"),
    pytest.param({}, 101, "must be 0..100 percent, got 101", id="over"),
    pytest.param({}, -1, "got -1", id="negative"),
])
def test_render_refuses(traffic: dict[str, Any], weight: int, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        render_route(endpoint(**traffic), weight, "r")


@pytest.mark.parametrize(("change", "expected"), [
    pytest.param(None, None, id="as-set"),
    pytest.param(lambda r: r["spec"]["rules"][-1]["backendRefs"][1].update(weight=50),
                 "primary 90, canary 50, 35.71% to the canary; the release set primary 90, "
                 "canary 10", id="canary-raised"),
    pytest.param(lambda r: r["spec"]["rules"][-1]["backendRefs"].pop(),
                 "primary 90, canary 0, 0% to the canary", id="canary-removed"),
    pytest.param(lambda r: r["spec"]["rules"][-1]["backendRefs"].append(
        {"group": "", "kind": "Service", "name": "other", "port": 80, "weight": 1}),
                 "primary 90, canary 10, Service other (1)", id="backend-added"),
    pytest.param(lambda r: r["spec"]["rules"][-1]["backendRefs"][0].update(weight=180),
                 "primary 180, canary 10", id="primary-raised"),
    pytest.param(lambda r: [ref.update(weight=2 * ref["weight"])
                            for ref in r["spec"]["rules"][-1]["backendRefs"]],
                 None, id="same-share-scaled"),
    pytest.param(lambda r: r["spec"]["rules"][1]["backendRefs"][0].update(weight=7),
                 None, id="pinned-rules-do-not-split"),
])
def test_drift(change: Any, expected: str | None) -> None:
    held = as_the_api_server_holds(render_route(endpoint(), 10, "r"))
    if change is not None:
        change(held)
    found = drift(endpoint(), held, 10)
    if expected is None:
        assert found is None
    else:
        assert found is not None and expected in found, found
        assert found.startswith("HTTPRoute ml/iris: someone else changed its weights")


def test_a_deleted_route_is_drift() -> None:
    assert drift(endpoint(), None, 10) == ("HTTPRoute ml/iris is gone: someone deleted it "
                                           "during the release")


def test_primary_alone_and_a_weightless_route() -> None:
    alone = as_the_api_server_holds(render_route(endpoint(), 0, "r"))
    assert drift(endpoint(), alone, 0) is None
    assert drift(endpoint(), alone, 10) is not None
    empty = {"spec": {"rules": [{"backendRefs": [{"name": "iris-primary", "weight": 0}]}]}}
    assert "0% to the canary" in (drift(endpoint(), empty, 0) or "")


def test_weights_default_to_one_and_sum_by_service() -> None:
    route = {"spec": {"rules": [
        {"backendRefs": [{"name": "iris-primary"}, {"name": "iris-canary"}]},
        {"backendRefs": [{"name": "iris-canary", "weight": 2}]},
    ]}}
    assert weights_of(endpoint(), route) == Split(1, 3)
    assert Split(1, 3).describe() == "primary 1, canary 3"


def test_ownership_is_the_managed_by_label() -> None:
    assert owned_by_us(render_route(endpoint(), 0, "r"))
    assert not owned_by_us({"metadata": {"name": "iris"}})
    assert not owned_by_us({"metadata": {"labels": {"app.kubernetes.io/managed-by": "helm"}}})
