"""The release state machine: one pure transition function, actions as values.

    step(state, observation, policy, now) -> Transition(next_state, actions, reason)

Phases, in order: PENDING -> DEPLOYING (canary pods starting) -> SMOKE -> ANALYSING
(one canary step after another; after a step with an approval gate, AWAITING_APPROVAL
until someone answers) -> PROMOTING (-> BAKING, with ``canary.bake``) -> PROMOTED; any
failure -> ROLLING_BACK -> ROLLED_BACK. Nothing outside this module compares phases; the
flow only executes the actions it is given and reports what it observed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeAlias

from modelrelease.domain.analysis import Outcome, Verdict
from modelrelease.domain.approval import Answer, Decision, Gate, OnTimeout
from modelrelease.domain.bake import BakePlan
from modelrelease.domain.durations import format_duration
from modelrelease.domain.live import LiveOutcome
from modelrelease.domain.manifests import Track
from modelrelease.domain.readiness import Readiness, RolloutState
from modelrelease.spec.status import ReleasePhase

POLL_S = 0.5
"""How long to wait before looking at a rollout again."""
UNDETECTED = "drill: fault not detected"
"""The rollback reason of a drill whose faulty canary passed every step."""


Phase: TypeAlias = ReleasePhase
"""Where a release stands: the one phase enum, recorded as is in the status."""


class ReleaseOutcome(StrEnum):
    """How a release ended.

    The CLI's and the flow's ``outcome``, and the MLflow ``modelrelease.status`` tag.
    """

    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    ALREADY_RELEASED = "already_released"  # the version is primary with this spec: nothing done
    PLANNED = "planned"  # a dry run: nothing changed
    FAILED = "failed"  # the pipeline refused or could not finish (bad input, a server down)


# -- what the policy says ---------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One canary step: the canary's share of traffic, how long to judge it.

    With ``shadow``, the canary gets no live traffic (``weight`` is 0): that percent of it
    is copied there instead (``domain.shadow``). With ``approval``, a person approves the
    step once it passed, before the release goes on.
    """

    weight: int
    hold: timedelta
    approval: Gate | None = None
    shadow: int = 0

    def describe(self) -> str:
        """``weight 10`` or ``shadow 100%`` (copies of live traffic)."""
        return f"shadow {self.shadow}%" if self.shadow else f"weight {self.weight}"


@dataclass(frozen=True)
class RolloutPolicy:
    """The steps and the patience of a release.

    A drill's canary carries an injected fault: it is never promoted. Passing every step
    rolls it back too, with the reason :data:`UNDETECTED`. With ``bake``, a promotion is
    watched before the release is over (``domain.bake``).
    """

    steps: tuple[Step, ...]
    deploy_timeout: timedelta = timedelta(minutes=3)
    promote_timeout: timedelta = timedelta(minutes=3)
    max_extensions: int = 2
    drill: bool = False
    bake: BakePlan | None = None

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError("a rollout needs at least one step")


# -- what the flow observed ------------------------------------------------------------------


@dataclass(frozen=True)
class Begin:
    """The release starts (the image is built and pinned)."""


@dataclass(frozen=True)
class CanaryHealth:
    """The canary Deployment's readiness."""

    readiness: Readiness


@dataclass(frozen=True)
class SmokeChecked:
    """The smoke test's result."""

    passed: bool
    reason: str


@dataclass(frozen=True)
class StepJudged:
    """The judge's verdict on the current step: its outcome and why."""

    outcome: Outcome
    reason: str

    @classmethod
    def of(cls, verdict: Verdict) -> StepJudged:
        """The step's verdict (``domain.verdict.step_verdict``), its reasons on one line."""
        return cls(verdict.outcome, "; ".join(verdict.reasons))


@dataclass(frozen=True)
class Answered:
    """The answer to a step's approval question: a decision, or none in time."""

    answer: Answer


@dataclass(frozen=True)
class PrimaryHealth:
    """The primary's readiness once promotion made the canary's slot the primary."""

    readiness: Readiness


@dataclass(frozen=True)
class Baked:
    """What look ``look`` of a bake found in the new primary's live traffic."""

    look: int
    outcome: LiveOutcome
    reason: str


@dataclass(frozen=True)
class CleanedUp:
    """The rollback finished: the canary is gone (and the primary restored if needed)."""


@dataclass(frozen=True)
class Aborted:
    """Someone stopped the release from outside (``modelrelease abort``, a Prefect cancel)."""

    by: str


def abortable(phase: Phase) -> bool:
    """Whether an abort changes anything in ``phase`` (in flight, not rolling back yet)."""
    return phase.in_flight and phase is not Phase.ROLLING_BACK


Observation = (Begin | CanaryHealth | SmokeChecked | StepJudged | Answered | PrimaryHealth
               | Baked | CleanedUp | Aborted)


def health_track(phase: Phase) -> Track | None:
    """Whose readiness to read when a transition's actions gave nothing to observe.

    Deploying waits on the canary's rollout, promoting on the primary's; every other
    phase is observed by its actions' results (None).
    """
    return {Phase.DEPLOYING: Track.CANARY, Phase.PROMOTING: Track.PRIMARY}.get(phase)


def health_of(track: Track, readiness: Readiness) -> Observation:
    """A track's readiness as the observation the state machine takes."""
    return CanaryHealth(readiness) if track is Track.CANARY else PrimaryHealth(readiness)


# -- what the flow must do -------------------------------------------------------------------


@dataclass(frozen=True)
class DeployCanary:
    """Create the canary Deployment and the per-track Services."""


@dataclass(frozen=True)
class RunSmoke:
    """Smoke-test the canary."""


@dataclass(frozen=True)
class SetWeight:
    """Give the canary this share of the live traffic, or (``shadow``) copies of that share.

    A shadow step's weight is 0: users never reach the canary.
    """

    weight: int
    shadow: int = 0


@dataclass(frozen=True)
class Analyse:
    """Send load to both arms for ``hold`` and judge them (``shadow``: on copies too)."""

    hold: timedelta
    shadow: int = 0


@dataclass(frozen=True)
class AwaitApproval:
    """Ask a person to approve step ``step`` (0-based); wait up to ``gate.timeout``."""

    step: int
    gate: Gate


@dataclass(frozen=True)
class Promote:
    """Make the verified canary's slot the primary (no pod restarts), then remove the old one."""


@dataclass(frozen=True)
class StartBake:
    """Begin watching the new primary's live traffic (the previous version stays warm)."""


@dataclass(frozen=True)
class BakeLook:
    """Judge the new primary's live traffic since the bake began: look ``look`` of ``looks``."""

    look: int
    looks: int


@dataclass(frozen=True)
class Rollback:
    """Remove the canary; restore the primary's previous image if promotion had begun."""

    reason: str
    restore_primary: bool = False


@dataclass(frozen=True)
class Wait:
    """Look again after ``seconds``."""

    seconds: float


Action = (DeployCanary | RunSmoke | SetWeight | Analyse | AwaitApproval | Promote | StartBake
          | BakeLook | Rollback | Wait)


# -- the state and the transition ------------------------------------------------------------


@dataclass(frozen=True)
class State:
    """A release's position: phase, step, weight, and since when."""

    phase: Phase = Phase.PENDING
    step: int = 0
    weight: int = 0
    extensions: int = 0
    since: datetime | None = None
    reason: str = ""
    history: tuple[str, ...] = field(default_factory=tuple)
    aborted_by: str = ""  # who stopped the release in flight (``Aborted``), if anyone


@dataclass(frozen=True)
class Transition:
    """The next state, what to do, and why (one line, with numbers)."""

    state: State
    actions: tuple[Action, ...]
    reason: str


def _to(state: State, phase: Phase, now: datetime, reason: str,
        *actions: Action, aborted_by: str = "", **changes: int) -> Transition:
    line = f"{state.phase}→{phase}: {reason}"
    moved = replace(state, phase=phase, since=now if phase != state.phase else state.since,
                    reason=reason, history=(*state.history, line)[-20:],
                    aborted_by=aborted_by or state.aborted_by, **changes)
    return Transition(moved, tuple(actions), line)


def _stay(state: State, reason: str, *actions: Action) -> Transition:
    return Transition(state, tuple(actions), f"{state.phase}: {reason}")


def _elapsed(state: State, now: datetime) -> timedelta:
    return now - state.since if state.since else timedelta(0)


def _next_step(state: State, policy: RolloutPolicy, now: datetime, why: str) -> Transition:
    index = state.step + 1 if state.phase in (Phase.ANALYSING, Phase.AWAITING_APPROVAL) else 0
    if index >= len(policy.steps) and policy.drill:
        return _to(state, Phase.ROLLING_BACK, now, f"{why}; {UNDETECTED}",
                   Rollback(UNDETECTED))
    if index >= len(policy.steps):
        return _to(state, Phase.PROMOTING, now, f"{why}; promoting", Promote(),
                   weight=100)
    target = policy.steps[index]
    what = (f"shadow: copies of {target.shadow}% of live requests (weight {state.weight}→0)"
            if target.shadow else f"weight {state.weight}→{target.weight}")
    return _to(state, Phase.ANALYSING, now,
               f"{why}; step {index + 1}/{len(policy.steps)} {what} for "
               f"{target.hold.total_seconds():.0f}s",
               SetWeight(target.weight, target.shadow), Analyse(target.hold, target.shadow),
               step=index, weight=target.weight, extensions=0)


def step(state: State, observation: Observation, policy: RolloutPolicy,
         now: datetime) -> Transition:
    """Decide what follows ``observation`` in ``state``."""
    match state.phase, observation:
        case phase, _ if phase.terminal:
            return _stay(state, f"release already {phase}; nothing to do")
        case Phase.ROLLING_BACK, Aborted():
            return _stay(state, f"already rolling back ({state.reason}); abort changes nothing")
        case phase, Aborted(by=who) if phase.in_flight:
            # mid-promotion the switch may be made, and baking it is: the previous primary
            # is restored (while baking, its pods are still warm)
            text = f"aborted by {who} in phase {phase}"
            return _to(state, Phase.ROLLING_BACK, now, text,
                       Rollback(text, restore_primary=phase in SWITCHED), aborted_by=who)
        case Phase.PENDING, Begin():
            return _to(state, Phase.DEPLOYING, now, "deploying the canary", DeployCanary())
        case Phase.DEPLOYING, CanaryHealth(readiness=r) if r.state == RolloutState.READY:
            return _to(state, Phase.SMOKE, now, f"canary ready: {r.reason}", RunSmoke())
        case Phase.DEPLOYING, CanaryHealth(readiness=r) if r.state == RolloutState.FAILED:
            return _to(state, Phase.ROLLING_BACK, now, f"canary failed: {r.reason}",
                       Rollback(f"canary failed: {r.reason}"))
        case Phase.DEPLOYING, CanaryHealth(readiness=r):
            waited = _elapsed(state, now)
            if waited > policy.deploy_timeout:
                why = (f"canary not ready after {waited.total_seconds():.0f}s "
                       f"(limit {policy.deploy_timeout.total_seconds():.0f}s): {r.reason}")
                return _to(state, Phase.ROLLING_BACK, now, why, Rollback(why))
            return _stay(state, f"waiting for the canary: {r.reason}", Wait(POLL_S))
        case Phase.SMOKE, SmokeChecked(passed=True, reason=why):
            return _next_step(state, policy, now, f"smoke passed: {why}")
        case Phase.SMOKE, SmokeChecked(reason=why):
            return _to(state, Phase.ROLLING_BACK, now, f"smoke failed: {why}",
                       Rollback(f"smoke failed: {why}"))
        case Phase.ANALYSING, StepJudged(outcome=Outcome.PASS, reason=why):
            gate = policy.steps[state.step].approval
            if gate is None or policy.drill:  # a drill runs unattended: it never waits
                return _next_step(state, policy, now, f"step {state.step + 1} passed: {why}")
            return _to(state, Phase.AWAITING_APPROVAL, now,
                       f"step {state.step + 1} passed: {why}; waiting up to "
                       f"{format_duration(gate.timeout)} for approval",
                       AwaitApproval(state.step, gate))
        case Phase.AWAITING_APPROVAL, Answered(answer=answer):
            return _answered(state, answer, policy, now)
        case Phase.ANALYSING, StepJudged(outcome=Outcome.FAIL, reason=why):
            text = (f"step {state.step + 1} failed at "
                    f"{policy.steps[state.step].describe()}: {why}")
            return _to(state, Phase.ROLLING_BACK, now, text, Rollback(text))
        case Phase.ANALYSING, StepJudged(reason=why):
            if state.extensions < policy.max_extensions:
                current = policy.steps[state.step]
                return Transition(
                    replace(state, extensions=state.extensions + 1),
                    (Analyse(current.hold, current.shadow),),
                    f"{state.phase}: step {state.step + 1} inconclusive ({why}); extending "
                    f"{state.extensions + 1}/{policy.max_extensions}")
            text = (f"step {state.step + 1} still inconclusive after {policy.max_extensions} "
                    f"extensions: {why}")
            return _to(state, Phase.ROLLING_BACK, now, text, Rollback(text))
        case Phase.PROMOTING, PrimaryHealth(readiness=r) if r.state == RolloutState.READY:
            if policy.bake is None:
                return _to(state, Phase.PROMOTED, now,
                           f"primary serves the new version: {r.reason}")
            return _to(state, Phase.BAKING, now, f"primary serves the new version: {r.reason}; "
                       f"baking {policy.bake.describe()}, the previous version warm",
                       *_bake_looks(policy.bake, 1, start=True), weight=0)
        case Phase.BAKING, Baked(outcome=LiveOutcome.FAIL, reason=why):
            text = f"bake failed at look {observation.look}: {why}"
            return _to(state, Phase.ROLLING_BACK, now, text, Rollback(text, restore_primary=True))
        case Phase.BAKING, Baked(look=look, reason=why) if policy.bake and look < policy.bake.looks:
            return _stay(state, f"bake look {look}/{policy.bake.looks}: {why}",
                         *_bake_looks(policy.bake, look + 1))
        case Phase.BAKING, Baked(outcome=outcome, reason=why):
            over = "bake passed" if outcome is LiveOutcome.PASS else "bake over, nothing judged"
            return _to(state, Phase.PROMOTED, now, f"{over}: {why}")
        case Phase.PROMOTING, PrimaryHealth(readiness=r) if r.state == RolloutState.FAILED:
            text = f"primary failed to take the new version: {r.reason}"
            return _to(state, Phase.ROLLING_BACK, now, text, Rollback(text, restore_primary=True))
        case Phase.PROMOTING, PrimaryHealth(readiness=r):
            waited = _elapsed(state, now)
            if waited > policy.promote_timeout:
                text = (f"primary not ready {waited.total_seconds():.0f}s after promotion: "
                        f"{r.reason}")
                return _to(state, Phase.ROLLING_BACK, now, text,
                           Rollback(text, restore_primary=True))
            return _stay(state, f"waiting for the primary: {r.reason}", Wait(POLL_S))
        case Phase.ROLLING_BACK, CleanedUp():
            return _to(state, Phase.ROLLED_BACK, now, f"rolled back: {state.reason}", weight=0)
        case _:
            return _stay(state, f"ignored {type(observation).__name__} in phase {state.phase}")


SWITCHED = frozenset({Phase.PROMOTING, Phase.BAKING})
"""Phases in which the primary may serve the new version: undoing restores the previous."""


def _bake_looks(plan: BakePlan, look: int, *, start: bool = False) -> tuple[Action, ...]:
    """Wait an interval, then look (``start``: open the bake's window first)."""
    return ((StartBake(),) if start else ()) + (Wait(plan.interval.total_seconds()),
                                                BakeLook(look, plan.looks))


def _answered(state: State, answer: Answer, policy: RolloutPolicy, now: datetime
              ) -> Transition:
    if answer.stopped_by:  # aborted while waiting: as any abort
        return step(state, Aborted(answer.stopped_by), policy, now)
    gate = policy.steps[state.step].approval or Gate()
    line = answer.line(state.step + 1, gate.timeout)
    if answer.decision is Decision.APPROVE:
        return _next_step(state, policy, now, line)
    if answer.decision is None and gate.on_timeout is OnTimeout.CONTINUE:
        return _next_step(state, policy, now, f"{line}; going on (onTimeout: continue)")
    return _to(state, Phase.ROLLING_BACK, now, line, Rollback(line))


def resume(state: State, same_release: bool, policy: RolloutPolicy,
           now: datetime) -> Transition:
    """Where a re-run picks up a release it finds in the cluster.

    The same release in flight resumes at its phase (re-judging the current step); a
    different one is rolled back first, so no canary is ever orphaned.
    """
    if state.phase.terminal or state.phase == Phase.PENDING:
        return _stay(state, "nothing in flight")
    # From PROMOTING or ROLLING_BACK the primary may already serve the new version (the
    # promotion's switch was made): the rollback restores the previous one. Where it
    # still serves that one, restoring changes nothing.
    restore = state.phase in (*SWITCHED, Phase.ROLLING_BACK)
    if not same_release:
        text = f"superseded while {state.phase}: rolling back the unfinished release"
        return _to(state, Phase.ROLLING_BACK, now, text, Rollback(text, restore_primary=restore))
    match state.phase:
        case Phase.DEPLOYING:  # killed before or after creating it: apply it (again)
            return _stay(state, "resuming: deploying the canary", DeployCanary())
        case Phase.SMOKE:
            return _stay(state, "resuming: smoke test", RunSmoke())
        case Phase.ANALYSING:
            current = policy.steps[min(state.step, len(policy.steps) - 1)]
            return _stay(state, f"resuming: re-judging step {state.step + 1}",
                         SetWeight(state.weight, current.shadow),
                         Analyse(current.hold, current.shadow))
        case Phase.AWAITING_APPROVAL:
            gate = policy.steps[min(state.step, len(policy.steps) - 1)].approval or Gate()
            return _stay(state, f"resuming: asking again for approval of step {state.step + 1}",
                         AwaitApproval(state.step, gate))
        case Phase.PROMOTING:
            return _stay(state, "resuming: promotion", Promote())
        case Phase.BAKING:
            if policy.bake is None:
                return _to(state, Phase.PROMOTED, now,
                           "resumed a bake the spec no longer has: promoted")
            return _stay(state, "resuming: baking again from the start",
                         *_bake_looks(policy.bake, 1, start=True))
        case _:
            return _stay(state, f"resuming: rollback ({state.reason})",
                         Rollback(state.reason or "resumed rollback", restore_primary=restore))


@dataclass(frozen=True)
class Milestones:
    """When, in seconds into a release, its milestones were reached.

    The canary deployed, the rollback decided, the rollback done (canary gone, primary
    alone); None where that never happened.
    """

    canary_deployed: float | None = None
    rollback_decided: float | None = None
    rolled_back: float | None = None


def milestones(entered: Iterable[tuple[float, Phase]]) -> Milestones:
    """The milestones of a release from when it entered each phase (the first time counts)."""
    first: dict[Phase, float] = {}
    for seconds, phase in entered:
        first.setdefault(phase, seconds)
    return Milestones(first.get(Phase.DEPLOYING), first.get(Phase.ROLLING_BACK),
                      first.get(Phase.ROLLED_BACK))
