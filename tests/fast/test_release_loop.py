"""Whole releases through ``release_with`` on the fakes of ``tests/fakes.py``.

Each test seeds the world (the status record, the slots, MLflow), runs one release (or
a few) the way the CLI and the flow do, and checks the outcome, the status record the
release leaves (phase, primary and canary, history, conditions) and what the fakes saw:
which slot each change touched, which MLflow tags were set. Nothing sleeps: ``Executed``
runs every executor as it is but lets ``wait`` wait no time.

Endpoint ``ml/iris`` (``tests.unit.test_spec.VALID``): two canary steps (10% for 30 s,
50% for 60 s), two replicas at least. Version 1 is the primary where one is seeded, in
slot green; a canary then goes to blue.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelrelease.domain import agreement, live, rollout
from modelrelease.domain.agreement import OnFailure
from modelrelease.domain.analysis import SliceRow
from modelrelease.domain.cost import PriceTable
from modelrelease.domain.fault import FaultSetting, drill_fault
from modelrelease.domain.manifests import Slot, Track
from modelrelease.domain.notifications import Notification
from modelrelease.domain.readiness import Readiness, RolloutState
from modelrelease.domain.rollout import Phase, ReleaseOutcome
from modelrelease.domain.smoke import SmokeResult
from modelrelease.errors import (
    InvalidInput,
    KubeApiError,
    MlflowError,
    PipelineError,
    ReleaseInProgress,
)
from modelrelease.release import steps
from modelrelease.release.driver import (
    Interrupted,
    Notify,
    ReleaseResult,
    Timeline,
    ctrl_c,
    release_with,
)
from modelrelease.release.steps import TAGGED, Executor, Observed, ReleaseRun
from modelrelease.settings import ReleaseConfig
from modelrelease.spec import (
    Condition,
    Fault,
    HistoryEntry,
    ModelEndpoint,
    ModelEndpointStatus,
    ReleasePhase,
    TrackStatus,
    parse_endpoint,
)
from tests.fakes import (
    CANARY_STATS,
    FAIL,
    HOLD,
    PASS,
    PRIMARY_STATS,
    THIN,
    FakeApprovals,
    FakeCluster,
    FakeEvidence,
    FakeImages,
    FakeModels,
    FakeRoutes,
    Scripted,
    Tagged,
    image_of,
    ports_of,
)
from tests.unit.test_spec import doc

T0 = datetime(2026, 1, 1, tzinfo=UTC)
V1, V2, V3 = image_of("1"), image_of("2"), image_of("3")
PROMOTED, ROLLED_BACK = ReleasePhase.PROMOTED, ReleasePhase.ROLLED_BACK
FULL_RELEASE = [Phase.DEPLOYING, Phase.SMOKE, Phase.ANALYSING, Phase.ANALYSING,
                Phase.PROMOTING, Phase.PROMOTED]
"""The phases a second release passes through, step after step, when all goes well."""
STEP_FAILED = "step 1 failed at weight 10: latency regression"
CRASHED = Readiness(RolloutState.FAILED, "pod iris-blue-1 container model-server "
                                         "CrashLoopBackOff: 3 restarts")


# -- the world a release runs in -------------------------------------------------------------------


@dataclass
class Executed:
    """An ``execute`` that runs each executor as it is, keeps its name, and never sleeps.

    ``before`` runs a hook right before the executor of that name (e.g. MLflow going down
    just before ``promote``).
    """

    names: list[str] = field(default_factory=list)
    before: dict[str, Callable[[], None]] = field(default_factory=dict)
    lost: frozenset[str] = frozenset()
    """Executors whose observation never reaches the driver (a runner dropping results)."""

    def __call__(self, executor: Executor, run: ReleaseRun, action: Any) -> Observed:
        name = getattr(executor, "__name__", repr(executor))
        self.names.append(name)
        if name in self.before:
            self.before[name]()
        if executor is steps.wait:
            action = rollout.Wait(0.0)
        observed = executor(run, action)
        return None if name in self.lost else observed


@dataclass
class World:
    """The fakes of one endpoint, and how to release a version into them."""

    endpoint: ModelEndpoint
    cluster: FakeCluster
    models: FakeModels = field(default_factory=FakeModels)
    images: FakeImages = field(default_factory=FakeImages)
    evidence: FakeEvidence = field(default_factory=FakeEvidence)
    executed: Executed = field(default_factory=Executed)
    lines: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    told: list[Notification] = field(default_factory=list)
    """What the release told people (``run_release``'s ``notify``), in order."""
    approvals: FakeApprovals | None = None
    """Who answers approval gates (None: nobody, as for the CLI)."""
    routes: FakeRoutes = field(default_factory=FakeRoutes)
    """The endpoint's HTTPRoute (read only by a ``gateway-api`` endpoint's router)."""

    def release(self, version: str, *, fault: FaultSetting | None = None,
                direct: bool = False, interrupted: Interrupted = ctrl_c,
                notify: Notify | None = None) -> ReleaseResult:
        """Release ``version`` as ``run_release`` would, once it has resolved it.

        ``direct``: run the executors the CLI's way (``direct_step``), not ``executed``.
        ``notify``: instead of keeping what the release tells in ``told``.
        """

        def call(name: str, fn: Callable[[], Any]) -> Any:
            self.calls.append(name)
            return fn()

        ports = ports_of(self.endpoint, self.cluster, self.models, self.images, self.evidence,
                         self.approvals, self.routes)
        execute = steps.direct_step if direct else self.executed
        return release_with(ports, self.endpoint, self.models.version(version), ReleaseConfig(),
                            PriceTable(), Timeline(self.lines.append), call=call,
                            execute=execute, fault=fault, interrupted=interrupted,
                            notify=notify or self.told.append)

    @property
    def status(self) -> ModelEndpointStatus:
        """The recorded status (there must be one)."""
        assert self.cluster.status is not None
        return self.cluster.status


def track(version: str) -> TrackStatus:
    """What the record says a track serves when it runs ``version``'s image."""
    image = image_of(version)
    return TrackStatus(version=version, digest=image.digest, image=image.image)


def tags_condition(applied: bool, version: str) -> Condition:
    """The ``MlflowTagged`` condition a release of ``version`` left (``applied`` or pending)."""
    if applied:
        return Condition(type=TAGGED, status="True", reason="Tagged",
                         message=f"version {version} tagged promoted", last_transition_time=T0)
    return Condition(type=TAGGED, status="False", reason="MlflowUnavailable",
                     message=f"tags of version {version} not applied", last_transition_time=T0)


def promoted(world: World, version: str = "1", *, release_id: str = "r-1",
             tags_applied: bool = True) -> None:
    """Seed ``version`` as the primary its own release promoted (in slot green)."""
    world.cluster.seed(Track.PRIMARY, image_of(version), version, release_id=release_id)
    entry = HistoryEntry(release_id=release_id, version=version, phase=PROMOTED,
                         digest=image_of(version).digest, reason="primary serves it",
                         finished_at=T0, spec_hash=world.cluster.spec_hash)
    world.cluster.status = ModelEndpointStatus(
        phase=PROMOTED, release_id=release_id, reason="primary serves the new version",
        step=1, weight=100, primary=track(version), history=[entry],
        spec_hash=world.cluster.spec_hash,
        conditions=[tags_condition(tags_applied, version)])


def in_flight(world: World, phase: ReleasePhase, version: str, *, step: int = 0,
              weight: int = 0, reason: str = "", deployed: bool = True,
              switched: bool = False) -> None:
    """Seed version 1 as the primary and ``version``'s release left in ``phase``.

    ``deployed``: its canary Deployment exists; ``switched``: its promotion had switched
    the slots (the primary's slot runs it, the previous primary's pods still run beside).
    """
    promoted(world)
    if deployed:
        world.cluster.seed(Track.CANARY, image_of(version), version, replicas=1,
                           release_id="r-2")
    if switched:
        world.cluster.primary_slot = world.cluster.primary_slot.other
    world.cluster.status = world.status.model_copy(update={
        "phase": phase, "release_id": "r-2", "reason": reason or f"{phase} version {version}",
        "step": step, "weight": weight, "canary": track(version)})
    world.cluster.calls.clear()


def phases(result: ReleaseResult) -> list[Phase]:
    """The phases the release entered, in order."""
    return [phase for _, phase in result.phases]


def history(status: ModelEndpointStatus) -> list[tuple[str, ReleasePhase]]:
    return [(entry.version, entry.phase) for entry in status.history]


def condition(status: ModelEndpointStatus) -> Condition:
    """The status's ``MlflowTagged`` condition."""
    (found,) = [c for c in status.conditions if c.type == TAGGED]
    return found


def assert_consistent(world: World) -> None:
    """The record agrees with the slots: the same primary, and no canary once it is over."""
    status, cluster = world.status, world.cluster
    primary = cluster.deployment(Track.PRIMARY)
    assert (status.primary.digest if status.primary else None) == (
        primary.digest if primary else None)
    if status.phase is not None and status.phase.terminal:
        assert status.canary is None
        assert cluster.deployment(Track.CANARY) is None
        assert status.history[-1].phase is status.phase


def assert_primary_untouched(world: World, version: str = "1") -> None:
    """The seeded primary (slot green) still serves ``version``; every change was to blue."""
    assert world.cluster.primary_slot is Slot.GREEN
    primary = world.cluster.deployment(Track.PRIMARY)
    assert primary is not None and primary.digest == image_of(version).digest
    assert primary.release_id == "r-1"  # not even re-applied
    assert all(change.endswith(str(Slot.BLUE)) for change in world.cluster.changed())


# -- promotion -------------------------------------------------------------------------------------


class TestPromotion:
    """Releases that pass every check end with the new version as the primary."""

    def test_first_release_is_promoted(self, world: World) -> None:
        result = world.release("1", direct=True)

        assert result.outcome is ReleaseOutcome.PROMOTED
        assert phases(result) == [Phase.DEPLOYING, Phase.SMOKE, Phase.ANALYSING,
                                  Phase.PROMOTING, Phase.PROMOTED]
        status = world.status
        assert (status.phase, status.primary, status.canary) == (PROMOTED, track("1"), None)
        assert history(status) == [("1", PROMOTED)]
        assert status.release_id == result.release_id
        assert status.spec_hash == world.cluster.spec_hash
        assert condition(status).status == "True"
        assert world.cluster.record
        assert world.cluster.changed() == ["deploy_canary blue", "scale_canary blue",
                                           "promote blue", "remove_canary green"]
        assert world.cluster.primary_slot is Slot.BLUE
        assert [(a.hold, a.first_release) for a in world.evidence.analysed] == [
            (timedelta(seconds=60), True)]  # one step at 100%, the spec's longest hold
        assert world.models.tagged == [Tagged("1", {
            "modelrelease.status": "promoted", "modelrelease.release_id": result.release_id,
            "modelrelease.image_digest": V1.digest}, "production")]
        assert [reason for reason, _, _ in world.cluster.events] == ["CanaryCreated",
                                                                    "Promoted"]
        assert json.loads(result.summary())["outcome"] == "promoted"
        assert_consistent(world)

    def test_second_release_swaps_the_slots(self, world: World) -> None:
        promoted(world)
        result = world.release("2")

        assert result.outcome is ReleaseOutcome.PROMOTED
        assert phases(result) == FULL_RELEASE
        status = world.status
        assert (status.phase, status.primary, status.canary) == (PROMOTED, track("2"), None)
        assert history(status) == [("1", PROMOTED), ("2", PROMOTED)]
        assert world.cluster.changed() == [
            "deploy_canary blue", "scale_canary blue", "scale_canary blue", "promote blue",
            "remove_canary green"]
        assert world.cluster.primary_slot is Slot.BLUE
        assert set(world.cluster.slots) == {Slot.BLUE}
        assert world.cluster.primary_replicas() == 2
        assert [(a.hold, a.first_release) for a in world.evidence.analysed] == [
            (timedelta(seconds=30), False), (timedelta(seconds=60), False)]
        assert world.models.tags("2")["modelrelease.status"] == "promoted"
        assert world.models.aliases == {"production": "2"}
        assert_consistent(world)

    def test_successive_releases_alternate_the_slots(self, world: World) -> None:
        slots = []
        for version in ("1", "2", "3"):
            assert world.release(version).outcome is ReleaseOutcome.PROMOTED
            slots.append(world.cluster.primary_slot)
            assert_consistent(world)
        assert slots == [Slot.BLUE, Slot.GREEN, Slot.BLUE]
        assert history(world.status) == [("1", PROMOTED), ("2", PROMOTED), ("3", PROMOTED)]
        assert world.images.built == ["1", "2", "3"]

    @pytest.mark.parametrize(
        ("script", "analysed"),
        [
            pytest.param([PASS, PASS], 2, id="every-step-passes"),
            pytest.param([HOLD, PASS, PASS], 3, id="inconclusive-step-extended-once"),
            pytest.param([HOLD, HOLD, PASS, PASS], 4, id="extended-twice-then-passes"),
            pytest.param([Scripted(lag="load lagged 12% behind schedule"), PASS], 2,
                         id="load-lagged"),
            pytest.param([Scripted(agreed=agreement.AgreementVerdict(
                agreement.Outcome.PASS, "98.0% of 150 rows agree")), PASS], 2,
                         id="outputs-agree"),
        ],
    )
    def test_steps_that_pass_promote(self, world: World, script: Sequence[Scripted],
                                     analysed: int) -> None:
        promoted(world)
        world.evidence.script = list(script)
        result = world.release("2")
        assert result.outcome is ReleaseOutcome.PROMOTED
        assert len(world.evidence.analysed) == analysed
        assert world.status.last_verdict is not None
        assert world.status.last_verdict.outcome == "Passed"
        assert_consistent(world)

    @pytest.mark.parametrize(
        ("track_slow", "polls", "waiting"),
        [
            pytest.param(Track.CANARY, 1, "Deploying: waiting for the canary: 0 of 1",
                         id="canary-slow-to-start"),
            pytest.param(Track.CANARY, 3, "Deploying: waiting for the canary: 0 of 1",
                         id="canary-slower-said-once"),
            pytest.param(Track.PRIMARY, 1, "Promoting: waiting for the primary: 0 of 2",
                         id="primary-slow-after-switch"),
        ],
    )
    def test_a_slow_track_is_waited_for(self, world: World, track_slow: Track, polls: int,
                                        waiting: str) -> None:
        promoted(world)
        hook = {Track.CANARY: "deploy_canary", Track.PRIMARY: "promote"}[track_slow]
        world.executed.before[hook] = lambda: world.cluster.not_ready_polls.update(
            {track_slow: polls})  # that many looks see it progressing
        result = world.release("2")
        assert result.outcome is ReleaseOutcome.PROMOTED
        assert world.executed.names.count("wait") == polls
        assert sum(waiting in line for line in world.lines) == 1  # said once, however long
        assert phases(result).count(Phase.PROMOTED) == 1
        assert_consistent(world)

    def test_a_sliced_endpoint_sends_its_mix_and_reports_its_slices(self) -> None:
        sliced = parse_endpoint(doc(**{"spec.canary.checks.slices": {
            "header": "X-Tenant", "mix": {"de": 0.4, "en": 0.6}}}))
        rows = tuple(SliceRow(value, CANARY_STATS, PRIMARY_STATS, "within limits")
                     for value in ("de", "en"))
        world = World(sliced, FakeCluster(sliced),
                      evidence=FakeEvidence([Scripted(slices=rows)] * 2))
        promoted(world)
        result = world.release("2")
        assert result.outcome is ReleaseOutcome.PROMOTED
        assert {v.slice for v in world.evidence.analysed[0].variants} == {"de", "en"}
        assert "Judged per slice (header X-Tenant)" in result.report

    def test_same_version_with_a_new_spec_is_released_again(self, world: World) -> None:
        promoted(world, "2")
        world.cluster.status = world.status.model_copy(update={"spec_hash": "sha256:old"})
        world.cluster.slots[Slot.GREEN] = replace(world.cluster.slots[Slot.GREEN],
                                                  spec_hash="sha256:old")
        result = world.release("2")
        assert result.outcome is ReleaseOutcome.PROMOTED
        assert world.status.spec_hash == world.cluster.spec_hash
        assert world.cluster.primary_slot is Slot.BLUE  # re-applied with the spec: switched
        assert_consistent(world)


# -- rollback --------------------------------------------------------------------------------------

LIVE_BREACH = live.LiveEvidence(live.LiveOutcome.FAIL, "live traffic: canary error rate 4.0% "
                                                       "vs 0.1%")
DISAGREE = agreement.AgreementVerdict(agreement.Outcome.FAIL, "61.0% of 150 rows agree")
DISAGREE_HOLD = agreement.AgreementVerdict(agreement.Outcome.FAIL, "61.0% of 150 rows agree",
                                           on_failure=OnFailure.HOLD)


def interrupt(stop: BaseException) -> Callable[[], None]:
    """A hook for ``Executed.before`` that raises ``stop`` (Ctrl-C, a Prefect cancel)."""

    def raise_it() -> None:
        raise stop

    return raise_it


def crash_before(executor: str) -> Callable[[World], None]:
    """The canary starts crashing right before ``executor`` runs."""

    def arm(world: World) -> None:
        world.executed.before[executor] = lambda: setattr(world.cluster, "canary_health",
                                                          CRASHED)

    return arm


class TestRollback:
    """A release that fails a check is rolled back, and the primary never changes."""

    @pytest.mark.parametrize(
        ("script", "reason", "analysed"),
        [
            pytest.param([FAIL], STEP_FAILED, 1, id="first-step-fails"),
            pytest.param([PASS, FAIL], "step 2 failed at weight 50: latency regression", 2,
                         id="second-step-fails"),
            pytest.param([HOLD, HOLD, HOLD], "step 1 still inconclusive after 2 extensions",
                         3, id="inconclusive-after-extensions"),
            pytest.param([Scripted(live=LIVE_BREACH)],
                         "step 1 failed at weight 10: live traffic: canary error rate 4.0%", 1,
                         id="live-traffic-breach"),
            pytest.param([Scripted(agreed=DISAGREE)],
                         "step 1 failed at weight 10: output agreement fail", 1,
                         id="outputs-disagree"),
            pytest.param([Scripted(agreed=DISAGREE_HOLD)] * 3,
                         "step 1 still inconclusive after 2 extensions: output agreement fail",
                         3, id="outputs-disagree-hold"),
            pytest.param([Scripted(live=THIN, agreed=DISAGREE), PASS],
                         "step 1 failed at weight 10: output agreement fail", 1,
                         id="thin-live-traffic-leaves-agreement-to-fail"),
        ],
    )
    def test_a_failed_step_rolls_back(self, world: World, script: Sequence[Scripted],
                                      reason: str, analysed: int) -> None:
        promoted(world)
        world.evidence.script = list(script)
        result = world.release("2")

        assert result.outcome is ReleaseOutcome.ROLLED_BACK
        assert reason in result.reason
        assert phases(result)[-2:] == [Phase.ROLLING_BACK, Phase.ROLLED_BACK]
        assert len(world.evidence.analysed) == analysed
        status = world.status
        assert (status.phase, status.primary, status.canary) == (ROLLED_BACK, track("1"), None)
        assert status.weight == 0
        assert history(status) == [("1", PROMOTED), ("2", ROLLED_BACK)]
        assert status.spec_hash == world.cluster.spec_hash  # the primary's spec, unchanged
        assert status.last_verdict is not None and status.last_verdict.outcome != "Passed"
        tags = world.models.tags("2")
        assert tags["modelrelease.status"] == "rolled_back"
        assert reason in tags["modelrelease.reason"]
        assert "production" not in world.models.aliases
        assert world.cluster.changed()[-1] == "remove_canary blue"
        assert world.cluster.events[-1][0] == "RolledBack" and world.cluster.events[-1][2]
        assert "promote" not in world.cluster.names()
        assert_primary_untouched(world)
        assert_consistent(world)

    @pytest.mark.parametrize(
        ("break_it", "reason", "entered"),
        [
            pytest.param(lambda w: setattr(w.cluster, "canary_health", CRASHED),
                         "canary failed: pod iris-blue-1 container model-server "
                         "CrashLoopBackOff", [Phase.DEPLOYING, Phase.ROLLING_BACK],
                         id="canary-crashes"),
            pytest.param(crash_before("analyse_step"), "step 1 failed at weight 10: canary "
                         "failed: pod iris-blue-1 container model-server CrashLoopBackOff",
                         [Phase.DEPLOYING, Phase.SMOKE, Phase.ANALYSING, Phase.ROLLING_BACK],
                         id="canary-crashes-under-load"),
            pytest.param(lambda w: setattr(w.evidence, "smoke_result", SmokeResult(
                False, "POST /invocations answered 500")),
                         "smoke failed: POST /invocations answered 500",
                         [Phase.DEPLOYING, Phase.SMOKE, Phase.ROLLING_BACK], id="smoke-fails"),
            pytest.param(lambda w: setattr(w.cluster, "grow_fails", "pod iris-blue-2 "
                                           "unschedulable: Insufficient nvidia.com/gpu"),
                         "primary failed to take the new version: canary could not grow to 2 "
                         "replica(s) for promotion: canary failed: pod iris-blue-2 "
                         "unschedulable", [*FULL_RELEASE[:-1], Phase.ROLLING_BACK],
                         id="canary-cannot-grow"),
        ],
    )
    def test_a_broken_canary_rolls_back(self, world: World, break_it: Callable[[World], None],
                                        reason: str, entered: list[Phase]) -> None:
        promoted(world)
        break_it(world)
        result = world.release("2")
        assert result.outcome is ReleaseOutcome.ROLLED_BACK
        assert reason in result.reason
        assert phases(result) == [*entered, Phase.ROLLED_BACK]
        assert world.status.primary == track("1")
        assert reason in world.models.tags("2")["modelrelease.reason"]
        assert world.cluster.changed()[-1] == "remove_canary blue"
        assert_primary_untouched(world)  # a promotion that cannot grow switches nothing
        assert_consistent(world)

    @pytest.mark.parametrize(("phase", "entered"), [
        pytest.param(Phase.DEPLOYING, [Phase.DEPLOYING], id="while-deploying"),
        pytest.param(Phase.SMOKE, [Phase.DEPLOYING, Phase.SMOKE], id="while-smoke-testing"),
        pytest.param(Phase.ANALYSING, [Phase.DEPLOYING, Phase.SMOKE, Phase.ANALYSING],
                     id="while-analysing"),
        pytest.param(Phase.PROMOTING, FULL_RELEASE[:-1], id="while-promoting"),
    ])
    def test_an_abort_rolls_back_and_says_who(self, world: World, phase: Phase,
                                              entered: list[Phase]) -> None:
        promoted(world)
        world.cluster.abort_when = (phase, "ana@laptop")
        result = world.release("2")

        reason = f"aborted by ana@laptop in phase {phase}"
        assert result.outcome is ReleaseOutcome.ROLLED_BACK and reason in result.reason
        assert phases(result) == [*entered, Phase.ROLLING_BACK, Phase.ROLLED_BACK]
        status = world.status
        assert (status.phase, status.primary, status.canary) == (ROLLED_BACK, track("1"), None)
        assert reason in (status.reason or "")
        assert history(status) == [("1", PROMOTED), ("2", ROLLED_BACK)]
        assert reason in world.models.tags("2")["modelrelease.reason"]
        assert world.cluster.holder is None  # the lock is released
        assert world.cluster.primary_slot is Slot.GREEN  # mid-promotion: switched back
        # asked while analysing, the hold stops after its look (the fake looks once)
        assert [a.stopped for a in world.evidence.analysed] == (
            [True] if phase is Phase.ANALYSING else [False] * len(world.evidence.analysed))
        assert_consistent(world)

    @pytest.mark.parametrize(("executor", "phase"), [
        pytest.param("deploy_canary", Phase.DEPLOYING, id="while-deploying"),
        pytest.param("smoke", Phase.SMOKE, id="while-smoke-testing"),
        pytest.param("analyse_step", Phase.ANALYSING, id="while-analysing"),
        pytest.param("promote", Phase.PROMOTING, id="while-promoting"),
    ])
    def test_ctrl_c_in_flight_rolls_back_then_goes_on(self, world: World, executor: str,
                                                     phase: Phase) -> None:
        promoted(world)
        world.executed.before[executor] = interrupt(KeyboardInterrupt())
        with pytest.raises(KeyboardInterrupt):
            world.release("2")

        reason = f"aborted by an interrupt (Ctrl-C) in phase {phase}"
        status = world.status
        assert (status.phase, status.primary, status.canary) == (ROLLED_BACK, track("1"), None)
        assert reason in (status.reason or "")
        assert history(status) == [("1", PROMOTED), ("2", ROLLED_BACK)]
        assert world.cluster.changed()[-1] == "remove_canary blue"
        assert world.cluster.holder is None  # the lock is released on the way out
        assert_primary_untouched(world)
        assert_consistent(world)

    def test_who_an_interrupt_came_from_is_the_callers_to_say(self, world: World) -> None:
        class Cancelled(BaseException):
            """What Prefect raises on a cancel (its TerminationSignal)."""

        promoted(world)
        world.executed.before["analyse_step"] = interrupt(Cancelled())
        with pytest.raises(Cancelled):
            world.release("2", interrupted=lambda stop: "a Prefect cancel of flow run x"
                           if isinstance(stop, Cancelled) else None)
        assert world.status.phase == ROLLED_BACK
        assert "aborted by a Prefect cancel of flow run x in phase Analysing" in (
            world.status.reason or "")

    @pytest.mark.parametrize("stop", [SystemExit(1), GeneratorExit()],
                             ids=["system-exit", "generator-exit"])
    def test_an_interrupt_nobody_claims_goes_on_unhandled(self, world: World,
                                                          stop: BaseException) -> None:
        promoted(world)
        world.executed.before["analyse_step"] = interrupt(stop)
        with pytest.raises(type(stop)):
            world.release("2")
        # left in flight, as a killed process leaves it: the next release resumes it
        assert world.status.phase == ReleasePhase.ANALYSING
        assert world.status.canary == track("2")
        assert world.cluster.holder is None

    def test_ctrl_c_while_rolling_back_leaves_the_rollback_to_the_next_release(
            self, world: World) -> None:
        promoted(world)
        world.evidence.smoke_result = SmokeResult(False, "POST /invocations answered 500")
        world.executed.before["roll_back"] = interrupt(KeyboardInterrupt())
        with pytest.raises(KeyboardInterrupt):
            world.release("2")
        assert world.status.phase == ReleasePhase.ROLLING_BACK
        del world.executed.before["roll_back"]
        world.evidence.smoke_result = SmokeResult(True, "")
        assert world.release("2").outcome is ReleaseOutcome.ROLLED_BACK  # resumed, finished
        assert world.status.canary is None
        assert_primary_untouched(world)

    def test_an_abort_of_another_release_changes_nothing(self, world: World) -> None:
        promoted(world)
        world.cluster.request_abort("an-earlier-release", "ana@laptop")
        assert world.release("2").outcome is ReleaseOutcome.PROMOTED

    def test_a_primary_failing_after_the_switch_gets_the_previous_image_back(
            self, world: World) -> None:
        promoted(world)
        world.cluster.as_primary[V2.digest] = Readiness(
            RolloutState.FAILED, "pod iris-blue-3 container model-server OOMKilled")
        result = world.release("2")

        assert result.outcome is ReleaseOutcome.ROLLED_BACK
        assert "primary failed to take the new version: pod iris-blue-3" in result.reason
        assert world.cluster.changed() == [
            "deploy_canary blue", "scale_canary blue", "scale_canary blue",
            "promote blue",  # the switch to version 2
            "promote green",  # version 1 back: its pods still ran in green
            "remove_canary blue"]
        assert world.cluster.primary_slot is Slot.GREEN
        assert world.status.primary == track("1")
        assert history(world.status)[-1] == ("2", ROLLED_BACK)
        assert_consistent(world)

    def test_a_previous_primary_that_does_not_come_back_stops_the_release(
            self, world: World) -> None:
        promoted(world)
        world.cluster.as_primary[V2.digest] = Readiness(RolloutState.FAILED, "OOMKilled")
        world.cluster.as_primary[V1.digest] = Readiness(RolloutState.FAILED, "node gone")
        with pytest.raises(KubeApiError, match="did not come back: node gone; the new version "
                                               "keeps serving"):
            world.release("2")
        # the record says what a re-run must finish: the rollback of version 2
        assert (world.status.phase, world.status.canary) == (Phase.ROLLING_BACK, track("2"))
        assert world.models.tagged == []


# -- resume and supersede --------------------------------------------------------------------------


class TestResume:
    """A re-run for the release the record shows in flight (same image) picks it up."""

    @pytest.mark.parametrize(
        ("phase", "step", "weight", "deployed", "switched", "outcome", "entered", "analysed"),
        [
            pytest.param(ReleasePhase.DEPLOYING, 0, 0, False, False, ReleaseOutcome.PROMOTED,
                         FULL_RELEASE, 2, id="deploying-before-the-canary"),
            pytest.param(ReleasePhase.DEPLOYING, 0, 0, True, False, ReleaseOutcome.PROMOTED,
                         FULL_RELEASE, 2, id="deploying-after-the-canary"),
            pytest.param(ReleasePhase.SMOKE, 0, 0, True, False, ReleaseOutcome.PROMOTED,
                         FULL_RELEASE[1:], 2, id="smoke"),
            pytest.param(ReleasePhase.ANALYSING, 0, 10, True, False, ReleaseOutcome.PROMOTED,
                         FULL_RELEASE[2:], 2, id="analysing-step-1"),
            pytest.param(ReleasePhase.ANALYSING, 1, 50, True, False, ReleaseOutcome.PROMOTED,
                         FULL_RELEASE[3:], 1, id="analysing-step-2"),
            pytest.param(ReleasePhase.PROMOTING, 1, 100, True, False, ReleaseOutcome.PROMOTED,
                         FULL_RELEASE[4:], 0, id="promoting-before-the-switch"),
            pytest.param(ReleasePhase.PROMOTING, 1, 100, True, True, ReleaseOutcome.PROMOTED,
                         FULL_RELEASE[4:], 0, id="promoting-after-the-switch"),
            pytest.param(ReleasePhase.ROLLING_BACK, 0, 10, True, False,
                         ReleaseOutcome.ROLLED_BACK, [Phase.ROLLING_BACK, Phase.ROLLED_BACK], 0,
                         id="rolling-back"),
            pytest.param(ReleasePhase.ROLLING_BACK, 0, 10, False, False,
                         ReleaseOutcome.ROLLED_BACK, [Phase.ROLLING_BACK, Phase.ROLLED_BACK], 0,
                         id="rolling-back-canary-already-gone"),
        ],
    )
    def test_the_release_in_flight_is_resumed(
            self, world: World, phase: ReleasePhase, step: int, weight: int, deployed: bool,
            switched: bool, outcome: ReleaseOutcome, entered: list[Phase],
            analysed: int) -> None:
        in_flight(world, phase, "2", step=step, weight=weight, reason=STEP_FAILED,
                  deployed=deployed, switched=switched)
        result = world.release("2")

        assert result.outcome is outcome
        assert phases(result) == entered
        assert len(world.evidence.analysed) == analysed
        assert "r-2" not in [entry.release_id for entry in world.status.history]
        if outcome is ReleaseOutcome.PROMOTED:
            assert world.status.primary == track("2")
            assert history(world.status) == [("1", PROMOTED), ("2", PROMOTED)]
            assert world.cluster.deployment(Track.CANARY) is None
        else:  # the rollback's cause, as recorded, is what the version is tagged with
            assert result.reason == f"rolled back: {STEP_FAILED}"
            assert world.models.tags("2")["modelrelease.reason"] == STEP_FAILED
            assert_primary_untouched(world)
        if switched:  # found done: not scaled or switched again
            assert world.cluster.changed() == ["promote green", "remove_canary green"]
        assert_consistent(world)

    def test_a_rollback_interrupted_after_the_switch_restores_the_previous_primary(
            self, world: World) -> None:
        in_flight(world, ReleasePhase.ROLLING_BACK, "2", step=1, weight=100, switched=True,
                  reason="primary failed to take the new version: OOMKilled")
        result = world.release("2")
        assert result.outcome is ReleaseOutcome.ROLLED_BACK
        assert world.cluster.serves(Track.PRIMARY, V1.digest)
        assert_consistent(world)


SUPERSEDED = [
    pytest.param(ReleasePhase.DEPLOYING, 0, 0, False, id="deploying"),
    pytest.param(ReleasePhase.SMOKE, 0, 0, True, id="smoke"),
    pytest.param(ReleasePhase.ANALYSING, 1, 50, True, id="analysing"),
    pytest.param(ReleasePhase.PROMOTING, 1, 100, True, id="promoting"),
    pytest.param(ReleasePhase.ROLLING_BACK, 0, 10, True, id="rolling-back"),
]


class TestSupersede:
    """Another version's release in flight is rolled back first, then this one runs."""

    @pytest.mark.parametrize(("phase", "step", "weight", "deployed"), SUPERSEDED)
    def test_the_other_release_is_rolled_back_first(
            self, world: World, phase: ReleasePhase, step: int, weight: int,
            deployed: bool) -> None:
        in_flight(world, phase, "2", step=step, weight=weight, deployed=deployed)
        result = world.release("3")

        assert result.outcome is ReleaseOutcome.PROMOTED
        assert phases(result) == FULL_RELEASE
        status = world.status
        assert history(status) == [("1", PROMOTED), ("2", ROLLED_BACK), ("3", PROMOTED)]
        other = status.history[1]
        assert other.release_id == "r-2" and other.digest == V2.digest
        assert other.reason is not None and f"superseded while {phase}" in other.reason
        assert world.models.tagged[0] == Tagged("2", {
            "modelrelease.status": "rolled_back",
            "modelrelease.reason": f"superseded while {phase}: rolling back the unfinished "
                                   "release; version 3 is released instead",
            "modelrelease.release_id": "r-2", "modelrelease.image_digest": V2.digest}, None)
        assert world.cluster.changed()[:2] == ["remove_canary blue", "deploy_canary blue"]
        assert status.primary == track("3")
        assert V2.digest not in [d.digest for d in world.cluster.slots.values()]
        assert_consistent(world)

    @pytest.mark.parametrize(
        ("script", "outcome", "recorded", "primary"),
        [
            pytest.param([FAIL], ReleaseOutcome.ROLLED_BACK, ROLLED_BACK, "1",
                         id="then-rolled-back"),
            pytest.param([], ReleaseOutcome.PROMOTED, PROMOTED, "3", id="then-promoted"),
        ],
    )
    def test_a_switched_promotion_gets_the_previous_primary_back(
            self, world: World, script: list[Scripted], outcome: ReleaseOutcome,
            recorded: ReleasePhase, primary: str) -> None:
        in_flight(world, ReleasePhase.PROMOTING, "2", step=1, weight=100, switched=True)
        assert world.cluster.serves(Track.PRIMARY, V2.digest)
        world.evidence.script = script
        result = world.release("3")

        assert result.outcome is outcome
        assert world.cluster.changed()[:3] == ["promote green", "remove_canary blue",
                                               "deploy_canary blue"]
        assert world.cluster.serves(Track.PRIMARY, image_of(primary).digest)
        assert world.status.primary == track(primary)
        assert history(world.status)[1:] == [("2", ROLLED_BACK), ("3", recorded)]
        assert_consistent(world)

    def test_a_switched_first_release_superseded_is_consistent(self, world: World) -> None:
        """A first release whose promotion had switched is stepped down, not left serving."""
        world.cluster.seed(Track.CANARY, V2, "2", replicas=2, release_id="r-2")
        world.cluster.primary_slot = world.cluster.primary_slot.other  # switched to blue
        world.cluster.status = ModelEndpointStatus(
            phase=ReleasePhase.PROMOTING, release_id="r-2", step=0, weight=100,
            canary=track("2"), reason="step 1 passed; promoting")
        world.evidence.script = [FAIL]
        world.release("3")
        assert_consistent(world)

    def test_the_superseded_versions_tags_are_not_lost(self, world: World) -> None:
        """Its tags stay pending (the run stops there), and the next run applies them first."""
        in_flight(world, ReleasePhase.ANALYSING, "2", step=0, weight=10)
        world.models.tag_failures = 1  # MLflow drops the superseded version's tags
        with pytest.raises(MlflowError, match=r"supersede version 2 .* tags are pending"):
            world.release("3")
        assert history(world.status)[-1] == ("2", ROLLED_BACK)
        assert not world.cluster.serves(Track.CANARY, V2.digest)  # rolled back all the same
        assert world.release("3").outcome is ReleaseOutcome.PROMOTED
        assert world.models.tags("2").get("modelrelease.status") == "rolled_back"


# -- MLflow tags -----------------------------------------------------------------------------------


class TestPendingTags:
    """MLflow down never undoes a release; the tags it missed are applied by the next run."""

    @pytest.mark.parametrize(
        ("entry_phase", "alias", "expected"),
        [
            pytest.param(PROMOTED, "production", {"modelrelease.status": "promoted"},
                         id="promoted"),
            pytest.param(ROLLED_BACK, None, {"modelrelease.status": "rolled_back",
                                             "modelrelease.reason": STEP_FAILED},
                         id="rolled-back"),
        ],
    )
    def test_pending_tags_are_applied_first(self, world: World, entry_phase: ReleasePhase,
                                            alias: str | None,
                                            expected: dict[str, str]) -> None:
        promoted(world, tags_applied=False)
        last = HistoryEntry(release_id="r-2", version="2", phase=entry_phase,
                            digest=V2.digest, reason=STEP_FAILED, finished_at=T0)
        world.cluster.status = world.status.model_copy(update={
            "release_id": "r-2", "history": [*world.status.history, last]})
        result = world.release("3")

        assert world.models.tagged[0] == Tagged("2", {
            "modelrelease.release_id": "r-2", "modelrelease.image_digest": V2.digest,
            **expected}, alias)
        names = world.cluster.names()
        assert names.index("write_conditions") < names.index("lock")
        assert result.outcome is ReleaseOutcome.PROMOTED
        assert condition(world.status).status == "True"
        assert "version 3 tagged promoted" in (condition(world.status).message or "")

    def test_mlflow_still_down_changes_nothing(self, world: World) -> None:
        promoted(world, tags_applied=False)
        world.models.down = True
        before = world.status
        with pytest.raises(MlflowError, match="apply pending tags of model iris-clf version 1"
                           ) as caught:
            world.release("2")
        assert caught.value.retriable
        assert world.cluster.names() == ["read_status"]
        assert world.status == before
        assert world.models.tagged == []

    @pytest.mark.parametrize(
        ("script", "outcome", "status_tag"),
        [
            pytest.param([], ReleaseOutcome.PROMOTED, "promoted", id="promotion"),
            pytest.param([PASS, FAIL], ReleaseOutcome.ROLLED_BACK, "rolled_back",
                         id="rollback"),
        ],
    )
    def test_mlflow_down_at_the_end_is_applied_by_the_next_run(
            self, world: World, script: list[Scripted], outcome: ReleaseOutcome,
            status_tag: str) -> None:
        promoted(world)
        world.evidence.script = script
        hook = {ReleaseOutcome.PROMOTED: "promote", ReleaseOutcome.ROLLED_BACK: "roll_back"}
        world.executed.before[hook[outcome]] = lambda: setattr(world.models, "down", True)
        first = world.release("2")

        assert first.outcome is outcome
        pending = condition(world.status)
        assert (pending.status, pending.reason) == ("False", "MlflowUnavailable")
        assert "tags of version 2 not applied" in (pending.message or "")
        assert world.models.tagged == []

        world.models.down = False
        world.release("2")
        applied = world.models.tagged[0]
        assert (applied.version, applied.tags["modelrelease.status"]) == ("2", status_tag)
        assert applied.tags["modelrelease.release_id"] == first.release_id
        assert condition(world.status).status == "True"
        assert_consistent(world)


# -- refusals --------------------------------------------------------------------------------------


class TestRefusals:
    """What a release refuses, or finds done, it leaves exactly as it was."""

    def test_a_held_lock_is_a_release_in_progress(self, world: World) -> None:
        promoted(world)
        world.cluster.held_by_other = "abc123-7"
        before = world.status
        with pytest.raises(ReleaseInProgress, match="another release holds its lock"):
            world.release("2")
        assert world.cluster.changed() == []
        assert "write_status" not in world.cluster.names()
        assert world.status == before
        assert world.images.built == []

    def test_already_released_takes_no_lock(self, world: World) -> None:
        promoted(world, "2")
        result = world.release("2")
        assert result.outcome is ReleaseOutcome.ALREADY_RELEASED
        assert (result.reason, result.image, result.release_id) == ("already primary",
                                                                    V2.image, "r-1")
        assert world.cluster.names() == ["read_status", "has_primary"]
        assert world.images.built == []

    def test_already_released_by_the_release_that_held_the_lock(self, world: World) -> None:
        promoted(world)
        finished = world.status.model_copy(update={"primary": track("2"),
                                                   "release_id": "r-other"})

        def the_other_release_finished() -> None:
            world.cluster.status = finished
            world.cluster.seed(Track.PRIMARY, V2, "2")

        world.cluster.on_lock = the_other_release_finished
        result = world.release("2")
        assert result.outcome is ReleaseOutcome.ALREADY_RELEASED
        assert result.release_id == "r-other"
        assert world.cluster.changed() == []
        assert world.calls == []  # no image built

    @pytest.mark.parametrize(
        ("break_it", "error", "message"),
        [
            pytest.param(lambda w: setattr(w.cluster, "denied", ("patch deployments",)),
                         KubeApiError, "may not patch deployments", id="permission-denied"),
            pytest.param(lambda w: setattr(w.models, "without_example", frozenset({"2"})),
                         InvalidInput, "has no input example", id="no-input-example"),
            pytest.param(lambda w: setattr(w.models, "down", True),
                         MlflowError, "download model models:/iris-clf/2", id="mlflow-down"),
        ],
    )
    def test_a_preflight_refusal_changes_nothing(
            self, world: World, break_it: Callable[[World], None],
            error: type[PipelineError], message: str) -> None:
        promoted(world)
        break_it(world)
        before = world.status
        with pytest.raises(error, match=message):
            world.release("2")
        assert "lock" not in world.cluster.names()
        assert world.cluster.changed() == []
        assert world.status == before

    def test_an_executor_that_observes_nothing_stops_the_release(self, world: World) -> None:
        promoted(world)
        world.executed.lost = frozenset({"smoke"})
        with pytest.raises(InvalidInput, match="nothing to observe in phase Smoke"):
            world.release("2")
        assert world.status.phase is ReleasePhase.SMOKE  # in flight: a re-run resumes it


# -- drills ----------------------------------------------------------------------------------------


class TestDrill:
    """A rollback drill re-releases the primary's own image with a fault, and never promotes."""

    @pytest.mark.parametrize(
        ("script", "reason"),
        [
            pytest.param([], rollout.UNDETECTED, id="fault-undetected"),
            pytest.param([FAIL], STEP_FAILED, id="fault-detected"),
        ],
    )
    def test_a_drill_is_always_rolled_back(self, endpoint: ModelEndpoint,
                                           script: list[Scripted], reason: str) -> None:
        fault = drill_fault(Fault.LATENCY)
        world = World(endpoint, FakeCluster(endpoint, canary_fault=fault),
                      evidence=FakeEvidence(script))
        promoted(world)
        world.cluster.calls.clear()
        result = world.release("1", fault=fault)

        assert result.outcome is ReleaseOutcome.ROLLED_BACK
        assert reason in result.reason
        assert "promote" not in world.executed.names
        assert world.models.tagged == []
        assert world.images.built == [] and "build-image" not in world.calls
        assert world.cluster.changed()[0] == "deploy_canary blue"
        assert world.status.primary == track("1")
        assert history(world.status) == [("1", PROMOTED), ("1", ROLLED_BACK)]
        assert_primary_untouched(world)
        assert_consistent(world)

    def test_the_drills_canary_carries_the_fault(self, endpoint: ModelEndpoint) -> None:
        fault = drill_fault(Fault.ERRORS)
        world = World(endpoint, FakeCluster(endpoint, canary_fault=fault))
        promoted(world)
        seen: list[FaultSetting | None] = []

        def look_at_the_canary() -> None:
            canary = world.cluster.deployment(Track.CANARY)
            seen.append(None if canary is None else canary.fault)

        world.executed.before["smoke"] = look_at_the_canary
        world.release("1", fault=fault)
        assert seen == [fault]

    @pytest.mark.parametrize(
        ("seed", "version", "message"),
        [
            pytest.param(lambda w: None, "1", "it has no primary to drill", id="no-primary"),
            pytest.param(lambda w: in_flight(w, ReleasePhase.ANALYSING, "2"), "1",
                         "a release is in flight (phase Analysing)", id="release-in-flight"),
            pytest.param(promoted, "2", "its primary is version 1, not 2",
                         id="not-the-primarys-version"),
        ],
    )
    def test_a_drill_that_cannot_run_changes_nothing(
            self, world: World, seed: Callable[[World], None], version: str,
            message: str) -> None:
        seed(world)
        before = world.cluster.status
        fault = drill_fault(Fault.CRASH)
        with pytest.raises(InvalidInput, match=re.escape(message)):
            world.release(version, fault=fault)
        assert world.cluster.changed() == []
        assert world.cluster.status == before
        assert world.models.tagged == []
