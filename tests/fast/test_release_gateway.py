"""A release through the ``gateway-api`` router, against the fakes: weights, drift, report.

The real ``GatewayRouter`` runs over the ``FakeCluster`` and ``FakeRoutes`` (the route as
the API server holds it). The route on the real API server, with the official Gateway API
CRDs, is ``tests/e2e/test_gateway.py``.
"""

from __future__ import annotations

from typing import Any

from modelrelease.domain.manifests import Track
from modelrelease.domain.rollout import Phase, ReleaseOutcome
from modelrelease.spec import parse_endpoint
from tests.fakes import FAIL, FakeCluster, FakeEvidence, FakeRoutes, Scripted, image_of
from tests.fast.test_release_loop import World, phases, promoted
from tests.unit.test_spec import doc

GATEWAY = {"router": "gateway-api", "gateway": {"name": "public", "namespace": "gateways"}}
ROUTED = parse_endpoint(doc(**{
    "spec.traffic": GATEWAY,
    "spec.autoscaling": {"minReplicas": 4, "maxReplicas": 10},
    "spec.canary.steps": [{"weight": 1, "hold": "10s"}, {"weight": 5, "hold": "10s"},
                          {"weight": 50, "hold": "10s"}]}))
ROUTER = "gateway-api (HTTPRoute ml/iris on Gateway gateways/public)"


def _world(*script: Scripted, routes: FakeRoutes | None = None) -> World:
    world = World(ROUTED, FakeCluster(ROUTED), evidence=FakeEvidence(script),
                  routes=routes or FakeRoutes())
    promoted(world)
    world.cluster.seed(Track.PRIMARY, image_of("1"), "1", replicas=4, release_id="r-1")
    return world


def test_weights_move_exactly_and_the_route_ends_on_the_primary() -> None:
    world = _world()
    result = world.release("2")
    assert result.outcome is ReleaseOutcome.PROMOTED, result.reason
    assert world.routes.applied == [1, 5, 50, 0]  # exact, then the new primary alone
    # users reach the canary only through the route: Service E never selects it
    assert not any(world.cluster.routes)
    # the canary's replicas are the capacity for its exact share of the primary's 4
    for replicas, weight in ((1, 1), (1, 5), (2, 50)):
        text = f"canary at {replicas} replica(s) = {weight}% of live traffic (asked {weight}%)"
        assert any(text in line for line in world.lines), (text, world.lines)
    assert f"- step 1: router: {ROUTER}; evidence: generated load" in result.report
    assert world.routes.route is not None
    assert world.routes.route["spec"]["parentRefs"][0]["name"] == "public"


def test_a_route_changed_by_someone_else_stops_the_release() -> None:
    def tamper(route: dict[str, Any]) -> None:
        route["spec"]["rules"][-1]["backendRefs"][1]["weight"] = 30

    world = _world(routes=FakeRoutes(tamper))
    result = world.release("2")
    assert result.outcome is ReleaseOutcome.ROLLED_BACK
    assert "stopped: HTTPRoute ml/iris: someone else changed its weights" in result.reason
    assert "primary 99, canary 30" in result.reason and "the release set primary 99, canary 1" \
        in result.reason
    assert world.routes.applied == [1, 0]  # set, then the primary alone for the rollback
    assert phases(result)[-1] is Phase.ROLLED_BACK
    assert world.status.primary is not None and world.status.primary.version == "1"


def test_a_failed_step_leaves_the_route_on_the_primary_alone() -> None:
    world = _world(FAIL)
    result = world.release("2")
    assert result.outcome is ReleaseOutcome.ROLLED_BACK
    assert world.routes.applied == [1, 0]
    assert world.routes.route is not None
    backends = world.routes.route["spec"]["rules"][-1]["backendRefs"]
    assert [ref["name"] for ref in backends] == ["iris-primary"]


def test_a_first_release_routes_to_the_primary_alone() -> None:
    world = World(ROUTED, FakeCluster(ROUTED))
    result = world.release("1")
    assert result.outcome is ReleaseOutcome.PROMOTED, result.reason
    assert world.routes.applied == [0, 0]  # its one step, then promotion
    assert not any(world.cluster.routes)


def test_a_shadow_step_sends_the_canary_no_users_through_the_route() -> None:
    endpoint = parse_endpoint(doc(**{"spec.traffic": GATEWAY, "spec.canary.steps": [
        {"shadow": 100, "hold": "10s"}, {"weight": 10, "hold": "10s"}]}))
    world = World(endpoint, FakeCluster(endpoint), evidence=FakeEvidence(()))
    promoted(world)
    result = world.release("2")
    assert result.outcome is ReleaseOutcome.PROMOTED, result.reason
    assert world.routes.applied == [0, 10, 0]
    assert not any(world.cluster.routes)
