"""A release with shadow steps, against the fakes: routing, copies, verdict and report.

A shadow step keeps the canary out of the endpoint's Service (``route_live``), gives it
the replicas the copies need, opens the step's copies and closes them whatever ends the
step, and folds their verdict into the step's. The fakes stand in for the cluster and the
pods; the copying itself is tested against real servers (``tests/integration``) and on
the stack (``tests/e2e/test_shadow.py``).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from modelrelease.domain.live import LiveOutcome
from modelrelease.domain.rollout import Phase, ReleaseOutcome
from modelrelease.domain.shadow import ShadowEvidence
from modelrelease.errors import KubeApiError
from modelrelease.release.kube_endpoint import NEEDS, SHADOW_NEEDS, KubeEndpoint
from modelrelease.spec import parse_endpoint
from tests.fakes import FAIL, FakeCluster, FakeEvidence, Scripted
from tests.fast.test_release_loop import World, phases, promoted
from tests.unit.test_spec import doc

SHADOW_FIRST = parse_endpoint(doc(**{"spec.canary.steps": [
    {"shadow": 100, "hold": "20s"}, {"weight": 50, "hold": "10s"}]}))
BAD_COPIES = ShadowEvidence(LiveOutcome.FAIL, "shadow on 300 copies of live requests: the "
                            "canary disagrees with the primary: 270 of 300 real inputs "
                            "answered alike (90.0%, min 95%)", 300, 100)


def _world(*script: Scripted) -> World:
    world = World(SHADOW_FIRST, FakeCluster(SHADOW_FIRST), evidence=FakeEvidence(script))
    promoted(world)
    return world


def test_the_canary_gets_copies_first_then_users() -> None:
    world = _world()
    result = world.release("2")
    assert result.outcome is ReleaseOutcome.PROMOTED, result.reason
    # deployed out of the live Service, kept out for the shadow step, then put in; after
    # the promotion the Service selects the (new) primary alone
    assert world.cluster.routes == [False, True, False]
    (copies,) = world.evidence.copies
    assert (copies.percent, copies.hold, copies.closed, copies.waited) == (
        100, timedelta(seconds=20), True, True)
    assert phases(result).count(Phase.ANALYSING) == 2
    assert any("the primary's pods copy 100% of live requests to it" in line
               for line in world.lines), world.lines
    assert "| 1 | shadow 100% | canary |" in result.report
    assert ("- step 1: router: replica ratio; evidence: generated load + shadow (300 copies "
            "of live requests)") in result.report
    assert "- step 2: router: replica ratio; evidence: generated load\n" in result.report
    assert world.status.history[-1].version == "2"


def test_bad_copies_roll_the_release_back_in_the_shadow_step() -> None:
    world = _world(Scripted(shadow=BAD_COPIES))
    result = world.release("2")
    assert result.outcome is ReleaseOutcome.ROLLED_BACK
    assert "step 1 failed at shadow 100%: shadow on 300 copies" in result.reason
    assert "disagrees with the primary" in result.reason
    assert world.cluster.routes == [False, False]  # users never reached the canary
    assert world.evidence.copies[0].closed
    assert world.status.primary is not None and world.status.primary.version == "1"


def test_copies_are_closed_when_the_generated_load_fails_first() -> None:
    world = _world(FAIL)
    result = world.release("2")
    assert result.outcome is ReleaseOutcome.ROLLED_BACK
    assert world.evidence.copies[0].closed and not world.evidence.copies[0].waited
    assert world.status.last_verdict is not None
    assert world.status.last_verdict.numbers["shadow_copies"] == 300.0


def test_a_first_release_of_a_shadowing_endpoint_has_nothing_to_copy_from() -> None:
    world = World(SHADOW_FIRST, FakeCluster(SHADOW_FIRST))
    result = world.release("1")
    assert result.outcome is ReleaseOutcome.PROMOTED
    assert world.evidence.copies == []
    # live from its one step on (it takes all the traffic), then the primary it became
    assert world.cluster.routes == [True, False]


class _Asked:
    """Records which permissions ``KubeEndpoint.check_permissions`` asks the cluster for."""

    def __init__(self) -> None:
        self.asked: tuple[tuple[str, str, str], ...] = ()

    def denied(self, namespace: str, needs: tuple[tuple[str, str, str], ...]) -> list[str]:
        self.asked = needs
        return [f"{verb} {resource}" for verb, _, resource in needs
                if resource == "pods/proxy" and verb != "get"]

    def identity(self) -> str:
        return "system:serviceaccount:modelrelease:pipeline"


def test_only_a_shadowing_endpoint_needs_to_tell_pods_to_copy() -> None:
    plain = parse_endpoint(doc())
    asked = _Asked()
    KubeEndpoint(plain, asked).check_permissions()  # type: ignore[arg-type]
    assert asked.asked == NEEDS
    with pytest.raises(KubeApiError) as refused:
        KubeEndpoint(SHADOW_FIRST, asked).check_permissions()  # type: ignore[arg-type]
    assert asked.asked == (*NEEDS, *SHADOW_NEEDS)
    assert "may not update pods/proxy, delete pods/proxy" in str(refused.value)
