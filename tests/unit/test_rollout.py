"""domain.rollout: every transition of the release state machine, table-driven."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from modelrelease.domain import rollout
from modelrelease.domain.analysis import Outcome
from modelrelease.domain.approval import Answer, Decision, Gate, OnTimeout
from modelrelease.domain.bake import plan_bake
from modelrelease.domain.live import LiveOutcome
from modelrelease.domain.readiness import Readiness, RolloutState
from modelrelease.domain.rollout import (
    UNDETECTED,
    Analyse,
    Answered,
    AwaitApproval,
    Baked,
    BakeLook,
    Begin,
    CanaryHealth,
    CleanedUp,
    DeployCanary,
    Milestones,
    Observation,
    Phase,
    PrimaryHealth,
    Promote,
    Rollback,
    RolloutPolicy,
    RunSmoke,
    SetWeight,
    SmokeChecked,
    StartBake,
    State,
    Step,
    StepJudged,
    Wait,
    milestones,
    resume,
    step,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = RolloutPolicy(steps=(Step(10, timedelta(seconds=30)), Step(50, timedelta(seconds=60))),
                       deploy_timeout=timedelta(seconds=120),
                       promote_timeout=timedelta(seconds=90), max_extensions=1)
READY = Readiness(RolloutState.READY, "1 of 1 updated replicas available", 1, 1)
SLOW = Readiness(RolloutState.PROGRESSING, "0 of 1 updated replicas available", 0, 1)
BROKEN = Readiness(RolloutState.FAILED, "pod x container model CrashLoopBackOff: 3 restarts")
PASSED, FAILED, UNSURE = Outcome.PASS, Outcome.FAIL, Outcome.INCONCLUSIVE


def at(phase: Phase, **kw: object) -> State:
    return State(phase=phase, since=T0, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "observation", "later", "phase", "actions", "text"),
    [
        pytest.param(State(), Begin(), 0, Phase.DEPLOYING, (DeployCanary(),), "deploying",
                     id="begin"),
        pytest.param(at(Phase.DEPLOYING), CanaryHealth(READY), 5, Phase.SMOKE, (RunSmoke(),),
                     "canary ready: 1 of 1", id="canary-ready"),
        pytest.param(at(Phase.DEPLOYING), CanaryHealth(BROKEN), 5, Phase.ROLLING_BACK,
                     (Rollback("canary failed: pod x container model CrashLoopBackOff: 3 "
                               "restarts"),), "CrashLoopBackOff", id="canary-crashes"),
        pytest.param(at(Phase.DEPLOYING), CanaryHealth(SLOW), 5, Phase.DEPLOYING,
                     (Wait(0.5),), "waiting for the canary", id="canary-slow"),
        pytest.param(at(Phase.DEPLOYING), CanaryHealth(SLOW), 121, Phase.ROLLING_BACK,
                     (Rollback("canary not ready after 121s (limit 120s): 0 of 1 updated "
                               "replicas available"),), "limit 120s", id="canary-timeout"),
        pytest.param(at(Phase.SMOKE), SmokeChecked(True, "3 predictions"), 1, Phase.ANALYSING,
                     (SetWeight(10), Analyse(timedelta(seconds=30))),
                     "step 1/2 weight 0→10 for 30s", id="smoke-ok"),
        pytest.param(at(Phase.SMOKE), SmokeChecked(False, "expected 3 predictions, got 2"), 1,
                     Phase.ROLLING_BACK, (Rollback("smoke failed: expected 3 predictions, "
                                                   "got 2"),), "smoke failed", id="smoke-bad"),
        pytest.param(at(Phase.ANALYSING, step=0, weight=10), StepJudged(PASSED, "p95 ok"), 30,
                     Phase.ANALYSING, (SetWeight(50), Analyse(timedelta(seconds=60))),
                     "step 2/2 weight 10→50", id="next-step"),
        pytest.param(at(Phase.ANALYSING, step=1, weight=50), StepJudged(PASSED, "p95 ok"), 60,
                     Phase.PROMOTING, (Promote(),), "promoting", id="last-step-promotes"),
        pytest.param(at(Phase.ANALYSING, step=0, weight=10),
                     StepJudged(FAILED, "p95 61ms vs 48ms"), 30, Phase.ROLLING_BACK,
                     (Rollback("step 1 failed at weight 10: p95 61ms vs 48ms"),),
                     "failed at weight 10", id="step-fails"),
        pytest.param(at(Phase.ANALYSING, step=0, weight=10), StepJudged(UNSURE, "12 of 200"), 30,
                     Phase.ANALYSING, (Analyse(timedelta(seconds=30)),), "extending 1/1",
                     id="inconclusive-extends"),
        pytest.param(at(Phase.ANALYSING, step=0, weight=10, extensions=1),
                     StepJudged(UNSURE, "12 of 200"), 30, Phase.ROLLING_BACK,
                     (Rollback("step 1 still inconclusive after 1 extensions: 12 of 200"),),
                     "still inconclusive", id="inconclusive-gives-up"),
        pytest.param(at(Phase.PROMOTING), PrimaryHealth(READY), 5, Phase.PROMOTED, (),
                     "primary serves the new version", id="promoted"),
        pytest.param(at(Phase.PROMOTING), PrimaryHealth(BROKEN), 5, Phase.ROLLING_BACK,
                     (Rollback("primary failed to take the new version: pod x container "
                               "model CrashLoopBackOff: 3 restarts", restore_primary=True),),
                     "failed to take", id="promotion-fails"),
        pytest.param(at(Phase.PROMOTING), PrimaryHealth(SLOW), 5, Phase.PROMOTING, (Wait(0.5),),
                     "waiting for the primary", id="promotion-slow"),
        pytest.param(at(Phase.PROMOTING), PrimaryHealth(SLOW), 91, Phase.ROLLING_BACK,
                     (Rollback("primary not ready 91s after promotion: 0 of 1 updated replicas "
                               "available", restore_primary=True),), "91s",
                     id="promotion-timeout"),
        pytest.param(at(Phase.ROLLING_BACK, reason="smoke failed"), CleanedUp(), 2,
                     Phase.ROLLED_BACK, (), "rolled back: smoke failed", id="rolled-back"),
        pytest.param(at(Phase.PROMOTED), Begin(), 1, Phase.PROMOTED, (), "already Promoted",
                     id="terminal-stays"),
        pytest.param(at(Phase.SMOKE), CleanedUp(), 1, Phase.SMOKE, (),
                     "ignored CleanedUp in phase Smoke", id="unexpected-ignored"),
    ],
)
def test_step(state: State, observation: Observation, later: int, phase: Phase,
              actions: tuple[object, ...], text: str) -> None:
    moved = step(state, observation, POLICY, T0 + timedelta(seconds=later))
    assert moved.state.phase == phase
    assert moved.actions == actions
    assert text in moved.reason


def test_transitions_record_history_and_since() -> None:
    first = step(State(), Begin(), POLICY, T0)
    second = step(first.state, CanaryHealth(SLOW), POLICY, T0 + timedelta(seconds=3))
    assert second.state.since == T0  # staying keeps the clock of the phase
    third = step(second.state, CanaryHealth(READY), POLICY, T0 + timedelta(seconds=4))
    assert third.state.since == T0 + timedelta(seconds=4)
    assert [line.split(":")[0] for line in third.state.history] == [
        "Pending→Deploying", "Deploying→Smoke"]


def test_history_is_bounded() -> None:
    state = State(phase=Phase.ANALYSING, history=tuple(f"line {i}" for i in range(40)))
    moved = step(state, StepJudged(FAILED, "bad"), POLICY, T0)
    assert len(moved.state.history) == 20


def test_policy_needs_steps() -> None:
    with pytest.raises(ValueError, match="at least one step"):
        RolloutPolicy(steps=())


@pytest.mark.parametrize(
    ("state", "same", "phase", "actions", "text"),
    [
        pytest.param(State(), True, Phase.PENDING, (), "nothing in flight", id="pending"),
        pytest.param(at(Phase.PROMOTED), False, Phase.PROMOTED, (), "nothing", id="done"),
        pytest.param(at(Phase.ANALYSING, step=1, weight=50), False, Phase.ROLLING_BACK,
                     (Rollback("superseded while Analysing: rolling back the unfinished "
                               "release"),), "superseded", id="other-release-analysing"),
        pytest.param(at(Phase.PROMOTING), False, Phase.ROLLING_BACK,
                     (Rollback("superseded while Promoting: rolling back the unfinished "
                               "release", restore_primary=True),), "superseded",
                     id="other-release-promoting"),
        # a rollback may have been cut off after a promotion's switch: restore the primary
        pytest.param(at(Phase.ROLLING_BACK), False, Phase.ROLLING_BACK,
                     (Rollback("superseded while RollingBack: rolling back the unfinished "
                               "release", restore_primary=True),), "superseded",
                     id="other-release-rolling-back"),
        pytest.param(at(Phase.DEPLOYING), True, Phase.DEPLOYING, (DeployCanary(),), "canary",
                     id="deploying"),
        pytest.param(at(Phase.SMOKE), True, Phase.SMOKE, (RunSmoke(),), "smoke", id="smoke"),
        pytest.param(at(Phase.ANALYSING, step=1, weight=50), True, Phase.ANALYSING,
                     (SetWeight(50), Analyse(timedelta(seconds=60))), "step 2",
                     id="analysing"),
        pytest.param(at(Phase.PROMOTING), True, Phase.PROMOTING, (Promote(),), "promotion",
                     id="promoting"),
        pytest.param(at(Phase.ROLLING_BACK, reason="smoke failed"), True, Phase.ROLLING_BACK,
                     (Rollback("smoke failed", restore_primary=True),), "rollback",
                     id="rolling-back"),
        pytest.param(at(Phase.ROLLING_BACK), True, Phase.ROLLING_BACK,
                     (Rollback("resumed rollback", restore_primary=True),), "rollback",
                     id="rolling-back-no-reason"),
    ],
)
def test_resume(state: State, same: bool, phase: Phase, actions: tuple[object, ...],
                text: str) -> None:
    moved = resume(state, same, POLICY, T0)
    assert moved.state.phase == phase
    assert moved.actions == actions
    assert text in moved.reason


DRILL = RolloutPolicy(steps=POLICY.steps, drill=True)


@pytest.mark.parametrize(
    ("state", "observation", "phase", "actions", "text"),
    [
        pytest.param(at(Phase.ANALYSING, step=0, weight=10), StepJudged(PASSED, "p95 ok"),
                     Phase.ANALYSING, (SetWeight(50), Analyse(timedelta(seconds=60))),
                     "step 2/2", id="drill-passes-a-step-and-goes-on"),
        pytest.param(at(Phase.ANALYSING, step=1, weight=50), StepJudged(PASSED, "p95 ok"),
                     Phase.ROLLING_BACK, (Rollback(UNDETECTED),),
                     "step 2 passed: p95 ok; drill: fault not detected",
                     id="drill-never-promotes"),
        pytest.param(at(Phase.ANALYSING, step=0, weight=10), StepJudged(FAILED, "p95 561ms"),
                     Phase.ROLLING_BACK,
                     (Rollback("step 1 failed at weight 10: p95 561ms"),), "failed",
                     id="drill-fault-detected"),
        pytest.param(at(Phase.DEPLOYING), CanaryHealth(BROKEN), Phase.ROLLING_BACK,
                     (Rollback("canary failed: pod x container model CrashLoopBackOff: 3 "
                               "restarts"),), "CrashLoopBackOff", id="drill-crash-detected"),
    ],
)
def test_drill_policy(state: State, observation: Observation, phase: Phase,
                      actions: tuple[object, ...], text: str) -> None:
    moved = step(state, observation, DRILL, T0)
    assert moved.state.phase == phase
    assert moved.actions == actions
    assert text in moved.reason


@pytest.mark.parametrize(
    ("entered", "expected"),
    [
        pytest.param([], Milestones(), id="nothing"),
        pytest.param([(0.0, Phase.PENDING), (1.5, Phase.DEPLOYING), (4.0, Phase.SMOKE),
                      (5.0, Phase.ANALYSING), (9.0, Phase.ROLLING_BACK),
                      (12.5, Phase.ROLLED_BACK)], Milestones(1.5, 9.0, 12.5),
                     id="rolled-back"),
        pytest.param([(1.0, Phase.DEPLOYING), (2.0, Phase.SMOKE), (3.0, Phase.ANALYSING),
                      (9.0, Phase.PROMOTING), (10.0, Phase.PROMOTED)], Milestones(1.0),
                     id="promoted"),
        pytest.param([(1.0, Phase.DEPLOYING), (2.0, Phase.DEPLOYING),
                      (3.0, Phase.ROLLING_BACK)], Milestones(1.0, 3.0), id="first-counts"),
    ],
)
def test_milestones(entered: list[tuple[float, Phase]], expected: Milestones) -> None:
    assert milestones(entered) == expected


def test_elapsed_without_since_is_zero() -> None:
    moved = step(State(phase=Phase.DEPLOYING), CanaryHealth(SLOW), POLICY, T0)
    assert moved.actions == (Wait(0.5),)


@pytest.mark.parametrize(
    ("phase", "expected"),
    [
        pytest.param(rollout.Phase.DEPLOYING, "canary", id="deploying-watches-the-canary"),
        pytest.param(rollout.Phase.PROMOTING, "primary", id="promoting-watches-the-primary"),
        pytest.param(rollout.Phase.SMOKE, None, id="smoke-has-its-own-result"),
        pytest.param(rollout.Phase.ANALYSING, None, id="analysing-has-its-own-result"),
    ],
)
def test_health_observation_watches_the_track_the_phase_waits_on(
        phase: rollout.Phase, expected: str | None) -> None:
    from modelrelease.domain.manifests import Track

    track = rollout.health_track(phase)
    assert track == (None if expected is None else Track(expected))
    if track is not None:
        ready = Readiness(RolloutState.READY, f"{track} ready")
        assert rollout.health_of(track, ready) == (
            rollout.CanaryHealth if expected == "canary" else rollout.PrimaryHealth)(ready)


@pytest.mark.parametrize(("phase", "restore"), [
    pytest.param(Phase.DEPLOYING, False, id="deploying"),
    pytest.param(Phase.SMOKE, False, id="smoke"),
    pytest.param(Phase.ANALYSING, False, id="analysing"),
    pytest.param(Phase.PROMOTING, True, id="promoting-restores-the-primary"),
])
def test_an_abort_rolls_back_from_any_phase_in_flight(phase: Phase, restore: bool) -> None:
    moved = step(at(phase, step=1, weight=50), rollout.Aborted("ana@laptop"), POLICY,
                 T0 + timedelta(seconds=3))
    text = f"aborted by ana@laptop in phase {phase}"
    assert moved.state.phase is Phase.ROLLING_BACK and moved.state.reason == text
    assert moved.actions == (Rollback(text, restore_primary=restore),)


@pytest.mark.parametrize(("state", "said"), [
    pytest.param(at(Phase.ROLLING_BACK, reason="step 1 failed"),
                 "already rolling back (step 1 failed); abort changes nothing",
                 id="rolling-back"),
    pytest.param(at(Phase.PROMOTED), "release already Promoted", id="promoted"),
    pytest.param(at(Phase.ROLLED_BACK), "release already RolledBack", id="rolled-back"),
    pytest.param(State(), "ignored Aborted in phase Pending", id="pending"),
])
def test_an_abort_changes_nothing_outside_a_release_in_flight(state: State, said: str) -> None:
    moved = step(state, rollout.Aborted("ana@laptop"), POLICY, T0)
    assert moved.state == state and moved.actions == ()
    assert said in moved.reason


@pytest.mark.parametrize(("phase", "expected"), [
    *(pytest.param(p, True, id=str(p)) for p in
      (Phase.DEPLOYING, Phase.SMOKE, Phase.ANALYSING, Phase.PROMOTING)),
    *(pytest.param(p, False, id=str(p)) for p in
      (Phase.PENDING, Phase.ROLLING_BACK, Phase.PROMOTED, Phase.ROLLED_BACK)),
])
def test_abortable(phase: Phase, expected: bool) -> None:
    assert rollout.abortable(phase) is expected


# -- approval gates ----------------------------------------------------------------------------

GATE = Gate(timedelta(hours=1))
GATED = RolloutPolicy(steps=(Step(10, timedelta(seconds=30), GATE),
                             Step(50, timedelta(seconds=60),
                                  Gate(timedelta(minutes=5), OnTimeout.CONTINUE))))
ALICE_YES = Answer(Decision.APPROVE, "alice", "latency fine")
BOB_NO = Answer(Decision.REJECT, "bob", "wrong features")
NOBODY = Answer(None)


@pytest.mark.parametrize(
    ("state", "observation", "phase", "actions", "reason"),
    [
        pytest.param(at(Phase.ANALYSING, step=0, weight=10), StepJudged(PASSED, "p95 ok"),
                     Phase.AWAITING_APPROVAL, (AwaitApproval(0, GATE),),
                     "Analysing→AwaitingApproval: step 1 passed: p95 ok; waiting up to 1h for "
                     "approval", id="passed-step-waits"),
        pytest.param(at(Phase.ANALYSING, step=0, weight=10), StepJudged(FAILED, "p95 high"),
                     Phase.ROLLING_BACK, (Rollback("step 1 failed at weight 10: p95 high"),),
                     "step 1 failed", id="failed-step-asks-nobody"),
        pytest.param(at(Phase.AWAITING_APPROVAL, step=0, weight=10), Answered(ALICE_YES),
                     Phase.ANALYSING, (SetWeight(50), Analyse(timedelta(seconds=60))),
                     "AwaitingApproval→Analysing: step 1 approved by alice: latency fine; "
                     "step 2/2 weight 10→50", id="approved-next-step"),
        pytest.param(at(Phase.AWAITING_APPROVAL, step=1, weight=50), Answered(ALICE_YES),
                     Phase.PROMOTING, (Promote(),), "step 2 approved by alice",
                     id="approved-last-step-promotes"),
        pytest.param(at(Phase.AWAITING_APPROVAL, step=0, weight=10), Answered(BOB_NO),
                     Phase.ROLLING_BACK, (Rollback("step 1 rejected by bob: wrong features"),),
                     "AwaitingApproval→RollingBack: step 1 rejected by bob: wrong features",
                     id="rejected-rolls-back"),
        pytest.param(at(Phase.AWAITING_APPROVAL, step=0, weight=10), Answered(NOBODY),
                     Phase.ROLLING_BACK, (Rollback("step 1: no answer within 1h"),),
                     "no answer within 1h", id="timeout-rolls-back"),
        pytest.param(at(Phase.AWAITING_APPROVAL, step=1, weight=50), Answered(NOBODY),
                     Phase.PROMOTING, (Promote(),),
                     "step 2: no answer within 5m; going on (onTimeout: continue)",
                     id="timeout-continues"),
        pytest.param(at(Phase.AWAITING_APPROVAL, step=0, weight=10),
                     Answered(Answer(None, stopped_by="ana@laptop")), Phase.ROLLING_BACK,
                     (Rollback("aborted by ana@laptop in phase AwaitingApproval"),),
                     "aborted by ana@laptop", id="stopped-while-waiting"),
        pytest.param(at(Phase.AWAITING_APPROVAL, step=0, weight=10),
                     rollout.Aborted("ana@laptop"), Phase.ROLLING_BACK,
                     (Rollback("aborted by ana@laptop in phase AwaitingApproval"),),
                     "aborted", id="aborted-while-waiting"),
        pytest.param(at(Phase.ANALYSING, step=0, weight=10), Answered(ALICE_YES),
                     Phase.ANALYSING, (), "ignored Answered in phase Analysing",
                     id="answer-out-of-turn-ignored"),
    ],
)
def test_approval_gates(state: State, observation: Observation, phase: Phase,
                        actions: tuple[object, ...], reason: str) -> None:
    moved = step(state, observation, GATED, T0 + timedelta(seconds=30))
    assert moved.state.phase == phase
    assert moved.actions == actions
    assert reason in moved.reason


def test_a_drill_never_waits_for_approval() -> None:
    drill = RolloutPolicy(steps=GATED.steps, drill=True)
    moved = step(at(Phase.ANALYSING, step=0, weight=10), StepJudged(PASSED, "p95 ok"), drill,
                 T0)
    assert moved.state.phase is Phase.ANALYSING
    assert moved.actions == (SetWeight(50), Analyse(timedelta(seconds=60)))


def test_a_release_resumed_while_waiting_asks_again() -> None:
    moved = resume(at(Phase.AWAITING_APPROVAL, step=1, weight=50), True, GATED, T0)
    assert moved.state.phase is Phase.AWAITING_APPROVAL
    assert moved.actions == (AwaitApproval(1, Gate(timedelta(minutes=5), OnTimeout.CONTINUE)),)
    assert "asking again for approval of step 2" in moved.reason


def test_a_release_waiting_for_approval_is_in_flight_and_abortable() -> None:
    assert Phase.AWAITING_APPROVAL.in_flight and rollout.abortable(Phase.AWAITING_APPROVAL)


# -- the bake after promotion ------------------------------------------------------------------

BAKE = plan_bake(timedelta(seconds=60))  # 12 looks, 5 s apart
BAKED = RolloutPolicy(steps=POLICY.steps, bake=BAKE)
LOOK = (Wait(5.0),)
BREACH = "the new primary's live traffic (pod metrics, 300 requests): live p99 above 200 ms"


@pytest.mark.parametrize(
    ("state", "observation", "phase", "actions", "reason"),
    [
        pytest.param(at(Phase.PROMOTING, weight=100), PrimaryHealth(READY), Phase.BAKING,
                     (StartBake(), *LOOK, BakeLook(1, 12)),
                     "primary serves the new version: 1 of 1 updated replicas available; "
                     "baking 1m: 12 looks, 5s apart, the previous version warm",
                     id="promoted-then-baked"),
        pytest.param(at(Phase.BAKING), Baked(1, LiveOutcome.PASS, "no breach"), Phase.BAKING,
                     (*LOOK, BakeLook(2, 12)), "bake look 1/12: no breach", id="next-look"),
        pytest.param(at(Phase.BAKING), Baked(3, LiveOutcome.THIN, "too thin to judge"),
                     Phase.BAKING, (*LOOK, BakeLook(4, 12)), "bake look 3/12: too thin",
                     id="thin-looks-again"),
        pytest.param(at(Phase.BAKING), Baked(4, LiveOutcome.FAIL, BREACH), Phase.ROLLING_BACK,
                     (Rollback(f"bake failed at look 4: {BREACH}", restore_primary=True),),
                     f"bake failed at look 4: {BREACH}", id="breach-restores-the-previous"),
        pytest.param(at(Phase.BAKING), Baked(12, LiveOutcome.FAIL, BREACH), Phase.ROLLING_BACK,
                     (Rollback(f"bake failed at look 12: {BREACH}", restore_primary=True),),
                     "bake failed at look 12", id="breach-at-the-last-look"),
        pytest.param(at(Phase.BAKING), Baked(12, LiveOutcome.PASS, "no breach"),
                     Phase.PROMOTED, (), "bake passed: no breach", id="passed"),
        pytest.param(at(Phase.BAKING), Baked(12, LiveOutcome.THIN, "too thin to judge"),
                     Phase.PROMOTED, (), "bake over, nothing judged: too thin",
                     id="over-without-enough-traffic"),
        pytest.param(at(Phase.BAKING), Baked(12, LiveOutcome.UNAVAILABLE, "unknown: 403"),
                     Phase.PROMOTED, (), "bake over, nothing judged: unknown: 403",
                     id="over-with-metrics-unreadable"),
        pytest.param(at(Phase.BAKING), rollout.Aborted("ana@laptop"), Phase.ROLLING_BACK,
                     (Rollback("aborted by ana@laptop in phase Baking",
                               restore_primary=True),),
                     "aborted by ana@laptop", id="abort-restores-the-warm-previous"),
        pytest.param(at(Phase.BAKING), PrimaryHealth(READY), Phase.BAKING, (),
                     "ignored PrimaryHealth in phase Baking", id="other-observations-ignored"),
    ],
)
def test_bake(state: State, observation: Observation, phase: Phase,
              actions: tuple[object, ...], reason: str) -> None:
    moved = step(state, observation, BAKED, T0 + timedelta(seconds=30))
    assert moved.state.phase == phase
    assert moved.actions == actions
    assert reason in moved.reason


def test_baking_the_canary_slot_holds_the_previous_version_at_no_traffic() -> None:
    moved = step(at(Phase.PROMOTING, step=1, weight=100), PrimaryHealth(READY), BAKED, T0)
    assert moved.state.weight == 0 and moved.state.step == 1


def test_without_a_bake_promotion_ends_the_release() -> None:
    moved = step(at(Phase.PROMOTING, weight=100), PrimaryHealth(READY), POLICY, T0)
    assert moved.state.phase is Phase.PROMOTED and moved.actions == ()


def test_a_look_under_a_policy_without_a_bake_ends_the_release_promoted() -> None:
    # a Baked observation under a policy without a bake (the spec lost it): promoted
    moved = step(at(Phase.BAKING), Baked(1, LiveOutcome.PASS, "no breach"), POLICY, T0)
    assert moved.state.phase is Phase.PROMOTED


@pytest.mark.parametrize(("policy", "same", "phase", "actions", "reason"), [
    pytest.param(BAKED, True, Phase.BAKING, (StartBake(), *LOOK, BakeLook(1, 12)),
                 "resuming: baking again from the start", id="same-release-bakes-again"),
    pytest.param(POLICY, True, Phase.PROMOTED, (),
                 "resumed a bake the spec no longer has: promoted", id="spec-dropped-the-bake"),
    pytest.param(BAKED, False, Phase.ROLLING_BACK,
                 (Rollback("superseded while Baking: rolling back the unfinished release",
                           restore_primary=True),),
                 "superseded while Baking", id="superseded-restores-the-previous"),
])
def test_a_release_resumed_while_baking(policy: RolloutPolicy, same: bool, phase: Phase,
                                        actions: tuple[object, ...], reason: str) -> None:
    moved = resume(at(Phase.BAKING), same, policy, T0)
    assert moved.state.phase is phase
    assert moved.actions == actions
    assert reason in moved.reason


def test_baking_is_in_flight_and_abortable() -> None:
    assert Phase.BAKING.in_flight and rollout.abortable(Phase.BAKING)
    assert rollout.health_track(Phase.BAKING) is None  # its looks observe


# -- shadow steps --------------------------------------------------------------------------------

SHADOWED = RolloutPolicy(steps=(Step(0, timedelta(seconds=20), shadow=100),
                                Step(50, timedelta(seconds=60))), max_extensions=1)


@pytest.mark.parametrize(
    ("state", "observation", "phase", "actions", "text"),
    [
        pytest.param(at(Phase.SMOKE), SmokeChecked(True, "ok"), Phase.ANALYSING,
                     (SetWeight(0, 100), Analyse(timedelta(seconds=20), 100)),
                     "step 1/2 shadow: copies of 100% of live requests (weight 0→0) for 20s",
                     id="smoke-ok-shadow-first"),
        pytest.param(at(Phase.ANALYSING, step=0), StepJudged(PASSED, "copies ok"),
                     Phase.ANALYSING, (SetWeight(50), Analyse(timedelta(seconds=60))),
                     "step 2/2 weight 0→50", id="shadow-then-live"),
        pytest.param(at(Phase.ANALYSING, step=0), StepJudged(FAILED, "shadow: p95 +200%"),
                     Phase.ROLLING_BACK,
                     (Rollback("step 1 failed at shadow 100%: shadow: p95 +200%"),),
                     "failed at shadow 100%", id="shadow-fails"),
        pytest.param(at(Phase.ANALYSING, step=0), StepJudged(UNSURE, "thin"),
                     Phase.ANALYSING, (Analyse(timedelta(seconds=20), 100),),
                     "extending 1/1", id="shadow-extends-with-copies"),
    ],
)
def test_shadow_steps(state: State, observation: Observation, phase: Phase,
                      actions: tuple[object, ...], text: str) -> None:
    moved = step(state, observation, SHADOWED, T0)
    assert moved.state.phase == phase
    assert moved.actions == actions
    assert text in moved.reason
    assert moved.state.weight == (50 if phase is Phase.ANALYSING and moved.state.step else 0)


def test_a_shadow_step_resumed_copies_again() -> None:
    moved = resume(at(Phase.ANALYSING, step=0), True, SHADOWED, T0)
    assert moved.actions == (SetWeight(0, 100), Analyse(timedelta(seconds=20), 100))


@pytest.mark.parametrize(("one", "said"), [
    pytest.param(Step(10, timedelta(seconds=1)), "weight 10", id="weighted"),
    pytest.param(Step(0, timedelta(seconds=1), shadow=25), "shadow 25%", id="shadow"),
])
def test_a_step_describes_itself(one: Step, said: str) -> None:
    assert one.describe() == said
