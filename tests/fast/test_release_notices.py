"""What a release tells people (``run_release``'s ``notify``), on the fakes.

One notice per milestone, in order: started, each step passed, then promoted, rolled back
or aborted, each with the endpoint, the version, the release id and the reason. A drill's
release tells nothing (the drill's result does). A notice Prefect does not take is a
warning, never a failed release: tests/unit/test_notices_telling.py. Delivery (events,
automations, messages) is tested on the stack: tests/flows/test_notifications.py.
"""

from __future__ import annotations

import pytest

from modelrelease.domain.fault import drill_fault
from modelrelease.domain.notifications import Notice
from modelrelease.domain.rollout import Phase, ReleaseOutcome
from modelrelease.spec import Fault, ModelEndpoint, ReleasePhase
from tests.fakes import FAIL, PASS, FakeCluster, FakeEvidence
from tests.fast.test_release_loop import STEP_FAILED, World, in_flight, interrupt, promoted


def notices(world: World) -> list[tuple[Notice, int | None]]:
    return [(told.notice, told.step) for told in world.told]


def test_a_promoted_release_tells_its_start_each_step_and_its_promotion(world: World) -> None:
    promoted(world)
    result = world.release("2")
    assert result.outcome is ReleaseOutcome.PROMOTED
    assert notices(world) == [(Notice.STARTED, None), (Notice.STEP_PASSED, 1),
                              (Notice.STEP_PASSED, 2), (Notice.PROMOTED, None)]
    assert {(told.endpoint, told.version, told.release_id) for told in world.told} == {
        ("ml/iris", "2", result.release_id)}
    assert world.told[-1].reason == result.reason
    assert world.told[-1].title == "ml/iris version 2: promoted"
    assert world.told[1].title == "ml/iris version 2: step 1 passed"


@pytest.mark.parametrize(("script", "told"), [
    pytest.param([FAIL], [(Notice.STARTED, None), (Notice.ROLLED_BACK, None)],
                 id="first-step-fails"),
    pytest.param([PASS, FAIL], [(Notice.STARTED, None), (Notice.STEP_PASSED, 1),
                                (Notice.ROLLED_BACK, None)], id="second-step-fails"),
])
def test_a_rolled_back_release_tells_why(world: World, script: list[object],
                                         told: list[tuple[Notice, int | None]]) -> None:
    promoted(world)
    world.evidence.script = list(script)  # type: ignore[arg-type]
    result = world.release("2")
    assert result.outcome is ReleaseOutcome.ROLLED_BACK
    assert notices(world) == told
    assert "step" in world.told[-1].reason and result.reason == world.told[-1].reason


def test_an_abort_from_outside_is_told_as_aborted(world: World) -> None:
    promoted(world)
    world.cluster.abort_when = (Phase.ANALYSING, "ana@laptop")
    world.release("2")
    assert notices(world)[-1] == (Notice.ABORTED, None)
    assert "aborted by ana@laptop in phase Analysing" in world.told[-1].reason


def test_ctrl_c_is_told_as_aborted_before_it_goes_on(world: World) -> None:
    promoted(world)
    world.executed.before["smoke"] = interrupt(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        world.release("2")
    assert notices(world) == [(Notice.STARTED, None), (Notice.ABORTED, None)]
    assert "aborted by an interrupt (Ctrl-C)" in world.told[-1].reason


def test_a_drills_release_tells_nothing(endpoint: ModelEndpoint) -> None:
    fault = drill_fault(Fault.LATENCY)
    world = World(endpoint, FakeCluster(endpoint, canary_fault=fault),
                  evidence=FakeEvidence([FAIL]))
    promoted(world)
    result = world.release("1", fault=fault)
    assert STEP_FAILED in result.reason
    assert world.told == []


def test_an_aborted_release_finished_by_a_rerun_is_still_told_as_aborted(world: World) -> None:
    """Killed mid-rollback of an abort: the re-run finishes it and says who aborted."""
    in_flight(world, ReleasePhase.ROLLING_BACK, "2", step=0, weight=50,
              reason="aborted by ana@laptop in phase Analysing")
    world.cluster.status = world.status.model_copy(update={"aborted_by": "ana@laptop"})
    result = world.release("2")
    assert result.outcome is ReleaseOutcome.ROLLED_BACK
    assert notices(world)[-1] == (Notice.ABORTED, None)
    assert world.status.aborted_by == "ana@laptop"
    # the next release is nobody's abort
    world.evidence.script = []
    assert world.release("2").outcome is ReleaseOutcome.PROMOTED
    assert world.status.aborted_by is None
