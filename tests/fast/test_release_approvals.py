"""Approval gates in whole releases, on the fakes (``FakeApprovals`` answers from a script).

Endpoint ``ml/iris`` with a gate on its first step (10%, then 50%). A passed gated step
waits in ``AwaitingApproval`` for the answer: approved goes on, rejected and unanswered
(``onTimeout: rollback``) roll back with the answer as the reason, ``continue`` goes on.
The answers land in the report and in the version's MLflow tags. Nobody to ask (the CLI)
is refused before anything changes; a drill asks nobody. The Prefect side (a paused flow
run and its form) is tested on the stack: tests/flows/test_approvals.py, tests/ui.
"""

from __future__ import annotations

from typing import Any

import pytest

from modelrelease.domain.approval import APPROVALS_TAG, Answer, Decision
from modelrelease.domain.fault import drill_fault
from modelrelease.domain.notifications import Notice
from modelrelease.domain.rollout import Phase, ReleaseOutcome
from modelrelease.errors import InvalidInput
from modelrelease.spec import Fault, ModelEndpoint, ReleasePhase, parse_endpoint
from tests.fakes import FAIL, FakeApprovals, FakeCluster, FakeEvidence
from tests.fast.test_release_loop import (
    World,
    assert_consistent,
    assert_primary_untouched,
    in_flight,
    phases,
    promoted,
)
from tests.unit.test_spec import doc

YES = Answer(Decision.APPROVE, "alice", "latency looks fine")
NO = Answer(Decision.REJECT, "bob", "outputs drift on locale=de")


def gated(**gate: Any) -> ModelEndpoint:
    """``ml/iris`` with an approval gate (``gate``) on its first step."""
    return parse_endpoint(doc(**{"spec.canary.steps.0.approval": gate}))


def world_of(endpoint: ModelEndpoint, *answers: Answer | None,
             evidence: FakeEvidence | None = None) -> World:
    world = World(endpoint, FakeCluster(endpoint), evidence=evidence or FakeEvidence(),
                  approvals=FakeApprovals(list(answers)))
    promoted(world)
    return world


def test_an_approved_step_goes_on_and_the_answer_is_recorded() -> None:
    world = world_of(gated(timeout="2h"), YES)
    result = world.release("2")
    assert result.outcome is ReleaseOutcome.PROMOTED
    assert phases(result) == [Phase.DEPLOYING, Phase.SMOKE, Phase.ANALYSING,
                              Phase.AWAITING_APPROVAL, Phase.ANALYSING, Phase.PROMOTING,
                              Phase.PROMOTED]
    assert world.approvals is not None
    (asked,) = world.approvals.asked
    assert (asked.endpoint, asked.version, asked.step, asked.steps, asked.weight) == (
        "ml/iris", "2", 1, 2, 10)
    assert asked.release_id == result.release_id and asked.timeout.total_seconds() == 7200
    assert world.models.tags("2")[APPROVALS_TAG] == "step 1 approved by alice: latency looks fine"
    assert "## Approvals\n\n- step 1 approved by alice: latency looks fine" in result.report
    assert "AwaitingApproval→Analysing: step 1 approved by alice" in result.report
    assert "event AwaitingApproval" in world.cluster.calls
    assert [n.notice for n in world.told] == [
        Notice.STARTED, Notice.APPROVAL_NEEDED, Notice.STEP_PASSED, Notice.STEP_PASSED,
        Notice.PROMOTED]
    assert world.told[1].step == 1
    assert_consistent(world)


@pytest.mark.parametrize(("endpoint", "answer", "reason"), [
    pytest.param(gated(), NO, "step 1 rejected by bob: outputs drift on locale=de",
                 id="rejected"),
    pytest.param(gated(timeout="90s"), None, "step 1: no answer within 1m30s",
                 id="timed-out"),
])
def test_a_rejected_or_unanswered_step_rolls_back_with_why(
        endpoint: ModelEndpoint, answer: Answer | None, reason: str) -> None:
    world = world_of(endpoint, answer)
    result = world.release("2")
    assert result.outcome is ReleaseOutcome.ROLLED_BACK
    assert result.reason == f"rolled back: {reason}"
    assert world.status.phase is ReleasePhase.ROLLED_BACK
    tags = world.models.tags("2")
    assert tags["modelrelease.status"] == "rolled_back" and tags["modelrelease.reason"] == reason
    if answer is not None:
        assert tags[APPROVALS_TAG] == reason
    assert len(world.evidence.analysed) == 1  # the second step never ran
    assert_primary_untouched(world)
    assert_consistent(world)


def test_no_answer_goes_on_where_the_gate_says_continue() -> None:
    world = world_of(gated(timeout="5m", onTimeout="continue"), None)
    result = world.release("2")
    assert result.outcome is ReleaseOutcome.PROMOTED
    assert "step 1: no answer within 5m; going on (onTimeout: continue)" in result.report


def test_an_abort_while_waiting_rolls_back_and_says_who() -> None:
    world = world_of(gated(), YES)
    world.cluster.abort_when = (ReleasePhase.AWAITING_APPROVAL, "ana@laptop")
    result = world.release("2")
    assert result.outcome is ReleaseOutcome.ROLLED_BACK
    assert result.reason == "rolled back: aborted by ana@laptop in phase AwaitingApproval"
    assert world.approvals is not None and world.approvals.script == [YES]  # never answered
    assert "step 1: no decision, the release was aborted by ana@laptop" in result.report
    assert_primary_untouched(world)
    assert_consistent(world)


def test_a_release_nobody_can_approve_is_refused_before_anything_changes() -> None:
    endpoint = parse_endpoint(doc(**{"spec.canary.steps.1.approval": {}}))
    world = World(endpoint, FakeCluster(endpoint))  # no approvals: the CLI's way
    promoted(world)
    before = world.cluster.status
    world.cluster.calls.clear()
    with pytest.raises(InvalidInput, match="step 2 has an approval gate, and only a release "
                                           "run by Prefect can ask for approval"):
        world.release("2")
    assert world.cluster.changed() == [] and world.cluster.status == before
    assert world.models.tagged == [] and world.images.built == []


def test_a_release_waiting_for_approval_when_killed_asks_again_on_rerun() -> None:
    endpoint = gated()
    world = World(endpoint, FakeCluster(endpoint), approvals=FakeApprovals([YES]))
    in_flight(world, ReleasePhase.AWAITING_APPROVAL, "2", step=0, weight=10)
    result = world.release("2")
    assert result.outcome is ReleaseOutcome.PROMOTED
    assert world.approvals is not None and [q.step for q in world.approvals.asked] == [1]
    assert result.phases[0][1] is Phase.AWAITING_APPROVAL
    assert_consistent(world)


@pytest.mark.parametrize("script", [pytest.param([], id="fault-undetected"),
                                    pytest.param([FAIL], id="fault-detected")])
def test_a_drill_asks_nobody(script: list[object]) -> None:
    endpoint = gated()
    fault = drill_fault(Fault.LATENCY)
    world = World(endpoint, FakeCluster(endpoint, canary_fault=fault),
                  evidence=FakeEvidence(list(script)))  # type: ignore[arg-type]
    promoted(world)
    result = world.release("1", fault=fault)  # no approvals port, and none needed
    assert result.outcome is ReleaseOutcome.ROLLED_BACK
    assert Phase.AWAITING_APPROVAL not in [phase for _, phase in result.phases]
