"""One executor per action of the rollout state machine; each returns what it observed.

``deploy_canary``, ``smoke``, ``set_weight``, ``analyse_step``, ``await_approval``,
``promote``, ``start_bake``, ``bake_look``, ``roll_back`` and ``wait`` carry out the
actions ``domain.rollout.step`` returns, and ``check_health`` observes when an action gave
nothing to observe. They work only through the interfaces of ``release.ports``, so the
same functions run against the cluster (the CLI calls them as they are, the flow as the
named Prefect tasks of ``tasks/steps.py``) and against the fast tier's fakes. Every
decision stays in ``domain/``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from modelrelease.adapters.loadgen import Variant
from modelrelease.adapters.model_files import ModelFiles
from modelrelease.domain import rollout
from modelrelease.domain.analysis import Metric, SliceRow
from modelrelease.domain.analysis import Outcome as JudgeOutcome
from modelrelease.domain.analysis import Verdict as JudgeVerdict
from modelrelease.domain.approval import Answer, Question, approval_tags
from modelrelease.domain.durations import format_duration
from modelrelease.domain.manifests import Track
from modelrelease.domain.model import ModelVersion
from modelrelease.domain.plan import bake_policy
from modelrelease.domain.readiness import RolloutState
from modelrelease.domain.report import StepRecord
from modelrelease.domain.status_record import verdict_record
from modelrelease.domain.verdict import step_verdict
from modelrelease.errors import KubeApiError, MlflowError
from modelrelease.release.ports import Cluster, Image, LiveWindow, ModelRegistry, Ports, Traffic
from modelrelease.spec import Condition, ModelEndpoint, TrackStatus, Verdict

Say = Callable[[str], None]
TAGGED = "MlflowTagged"
"""The status condition saying whether the last release's MLflow tags are applied."""


@dataclass
class ReleaseRun:
    """One release under way: what it releases, where, under which policy, what it saw."""

    ports: Ports
    traffic: Traffic
    endpoint: ModelEndpoint
    version: ModelVersion
    image: Image
    release_id: str
    first_release: bool
    policy: rollout.RolloutPolicy
    files: ModelFiles
    variants: tuple[Variant, ...]
    previous: TrackStatus | None
    """The primary before this release: what a rollback mid-promotion restores."""
    note: Say
    state: rollout.State = field(default_factory=rollout.State)
    """Where the state machine is: the transition whose actions are being carried out."""
    steps: list[StepRecord] = field(default_factory=list)
    hold_seconds: float = 0.0
    last_verdict: Verdict | None = None
    canary_replicas: int = 0
    tagged: Condition | None = None
    """How tagging the version in MLflow went, once tried."""
    answers: list[tuple[int, Answer]] = field(default_factory=list)
    """The approval questions' answers: (step, 1-based; answer)."""
    bake: LiveWindow | None = None
    """The new primary's live traffic since its bake began, once it has."""

    @property
    def where(self) -> str:
        """``namespace/name`` of the endpoint."""
        return f"{self.endpoint.namespace}/{self.endpoint.name}"


Observed = rollout.Observation | None
Executor = Callable[[ReleaseRun, Any], Observed]
Execute = Callable[[Executor, ReleaseRun, Any], Observed]
"""How the driver runs an executor: as it is (``direct_step``) or as a Prefect task."""


def direct_step(executor: Executor, run: ReleaseRun, action: Any) -> Observed:
    """Run ``executor`` as it is (the CLI's way)."""
    return executor(run, action)


def deploy_canary(run: ReleaseRun, action: rollout.DeployCanary) -> Observed:
    """Start the canary beside the primary at the first step's weight."""
    first = run.policy.steps[0]
    replicas, effective = run.traffic.canary_replicas_for(first.weight, first.shadow)
    run.ports.cluster.deploy_canary(run.image.image, run.version.version, run.release_id,
                                    replicas,
                                    live=run.traffic.live_through_service() and not first.shadow)
    run.canary_replicas = replicas
    share = (f"no users, copies of {first.shadow}% of live requests" if first.shadow
             else f"{effective:.0f}% of traffic")
    run.ports.cluster.event("CanaryCreated", f"canary {run.image.image} with {replicas} "
                                             f"replica(s), {share}")
    return None


def smoke(run: ReleaseRun, action: rollout.RunSmoke) -> Observed:
    """``/ping`` and the model's input example on the canary."""
    result = run.ports.evidence.smoke(run.files)
    run.note(f"{run.where}: checks reach the pods through {run.ports.evidence.via}")
    return rollout.SmokeChecked(result.passed, result.reason)


def set_weight(run: ReleaseRun, action: rollout.SetWeight) -> Observed:
    """Give the canary the step's share of live traffic."""
    replicas, effective = run.traffic.set_weight(action.weight, action.shadow)
    run.canary_replicas = replicas
    if action.shadow:
        run.note(f"{run.where}: canary at {replicas} replica(s), out of live traffic; the "
                 f"primary's pods copy {action.shadow}% of live requests to it")
    else:
        run.note(f"{run.where}: canary at {replicas} replica(s) = {effective:.0f}% of live "
                 f"traffic (asked {action.weight}%)")
    return None


def analyse_step(run: ReleaseRun, action: rollout.Analyse) -> Observed:
    """Judge one step: generated load, live traffic and agreement, combined into a verdict."""
    unready = run.ports.cluster.wait_ready(Track.CANARY,
                                           run.policy.deploy_timeout.total_seconds())
    if unready is not None:
        return rollout.StepJudged(JudgeOutcome.FAIL, unready)
    evidence = run.ports.evidence
    copies = evidence.shadow(action.shadow, action.hold) if action.shadow else None
    began = time.monotonic()
    def aborted() -> bool:
        return run.ports.cluster.abort_requested(run.release_id) is not None

    failed = True
    try:
        judged, found, lag = evidence.analyse(action.hold, run.files, run.first_release,
                                              run.variants, stop=aborted)
        failed = judged.outcome is JudgeOutcome.FAIL
    finally:  # the copies stop with the step, whatever ends it; they need the whole hold
        # unless the step failed already (the generated load may be decided early)
        shadowed = None if copies is None else copies.close(wait=not failed, stop=aborted)
    run.hold_seconds += time.monotonic() - began
    if lag:
        run.note(f"{run.where}: load generator: {lag}")
    if (changed := run.traffic.changed_by_others()) is not None:
        return rollout.StepJudged(JudgeOutcome.FAIL, f"stopped: {changed}")
    agreed = evidence.agreement(run.version, run.files, run.first_release)
    verdict = step_verdict(judged, (found.check, agreed.check,
                                    *(() if shadowed is None else (shadowed.check,))))
    run.steps.append(StepRecord(run.state.step + 1, run.state.weight, verdict.outcome.value,
                                verdict.canary, verdict.primary, verdict.reasons, agreed,
                                found, *slice_table(verdict, run.endpoint), shadow=shadowed,
                                router=run.traffic.name))
    run.last_verdict = verdict_record(verdict, agreed.numbers, found.numbers,
                                      *(() if shadowed is None else (shadowed.numbers,)))
    return rollout.StepJudged.of(verdict)


def await_approval(run: ReleaseRun, action: rollout.AwaitApproval) -> Observed:
    """Ask a person to approve the step that just passed; wait for the answer.

    An abort meanwhile ends the wait at once. ``release_with`` refuses an endpoint with
    approval gates before anything changes when nobody can answer (``ports.approvals``).
    """
    approvals = run.ports.approvals
    assert approvals is not None, "release_with refuses gates that nobody can answer"
    question = Question(run.where, run.version.version, run.release_id, action.step + 1,
                        len(run.policy.steps), run.state.weight, action.gate.timeout,
                        action.gate.on_timeout,
                        tuple(run.last_verdict.reasons) if run.last_verdict else (),
                        run.policy.steps[action.step].shadow)
    run.note(f"{run.where}: waiting up to {format_duration(action.gate.timeout)} for a person "
             f"to approve step {question.step} (in the Prefect UI: the paused flow run)")
    run.ports.cluster.event("AwaitingApproval", f"step {question.step} of version "
                                                f"{run.version.version} waits for approval")
    answer = approvals.ask(question, lambda: run.ports.cluster.abort_requested(run.release_id))
    run.answers.append((question.step, answer))
    return rollout.Answered(answer)


def promote(run: ReleaseRun, action: rollout.Promote) -> Observed:
    """The verified canary's pods become the primary (at the primary's replica count)."""
    cluster = run.ports.cluster
    replicas = max(cluster.primary_replicas(), run.endpoint.spec.autoscaling.min_replicas)
    readiness = cluster.promote(run.image.image, run.version.version, run.release_id,
                                replicas, run.policy.promote_timeout.total_seconds())
    run.traffic.primary_alone()  # the new primary's, or (nothing switched) still the old one's
    # a bake keeps the previous primary's pods (now the canary's slot) warm: paid for too
    run.canary_replicas = 0 if run.policy.bake is None else cluster.canary_replicas()
    return rollout.PrimaryHealth(readiness)


def start_bake(run: ReleaseRun, action: rollout.StartBake) -> Observed:
    """Start counting the new primary's live traffic; the previous version stays warm."""
    run.bake = run.ports.evidence.watch(Track.PRIMARY)
    run.canary_replicas = run.ports.cluster.canary_replicas()  # warm, at no traffic
    kept = f"version {run.previous.version}" if run.previous else "the previous version"
    run.note(f"{run.where}: baking; {kept} stays warm in the other slot "
             f"({run.canary_replicas} replica(s)) with no traffic")
    return None


def bake_look(run: ReleaseRun, action: rollout.BakeLook) -> Observed:
    """Judge the new primary's live traffic since the bake began."""
    assert run.bake is not None, "domain.rollout starts every bake (StartBake) before a look"
    found = run.bake.look(bake_policy(run.endpoint), action.looks)
    return rollout.Baked(action.look, found.outcome, found.reason)


def roll_back(run: ReleaseRun, action: rollout.Rollback) -> Observed:
    """Remove the canary (restoring the previous primary if promotion had switched)."""
    run.traffic.primary_alone()  # users off the canary before its pods go
    undo_canary(run.ports.cluster, action.reason, previous=run.previous,
                restore=action.restore_primary, undone=run.image.digest,
                release_id=run.release_id, timeout=run.policy.promote_timeout.total_seconds())
    run.canary_replicas = 0
    if not run.policy.drill:  # a drill's version is the primary's: not rolled back
        run.tagged = tag(run.ports.models, run.version, run.note, run.where, {
            "modelrelease.status": rollout.ReleaseOutcome.ROLLED_BACK,
            "modelrelease.reason": action.reason,
            "modelrelease.release_id": run.release_id,
            "modelrelease.image_digest": run.image.digest} | approval_tags(run.answers),
            record=run.endpoint.spec.promotion.tags)
    return rollout.CleanedUp()


def wait(run: ReleaseRun, action: rollout.Wait) -> Observed:
    """Let time pass before the next observation; a wait of seconds ends on an abort."""
    deadline = time.monotonic() + action.seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 1.0))
        if left > 1.0 and run.ports.cluster.abort_requested(run.release_id) is not None:
            return None  # the driver sees the abort next
    return None


def check_health(run: ReleaseRun, phase: rollout.Phase) -> Observed:
    """The readiness the phase waits on, when its actions observed nothing."""
    track = rollout.health_track(phase)
    return None if track is None else rollout.health_of(track, run.ports.cluster.health(track))


EXECUTORS: dict[type, Executor] = {
    rollout.DeployCanary: deploy_canary,
    rollout.RunSmoke: smoke,
    rollout.SetWeight: set_weight,
    rollout.Analyse: analyse_step,
    rollout.AwaitApproval: await_approval,
    rollout.Promote: promote,
    rollout.StartBake: start_bake,
    rollout.BakeLook: bake_look,
    rollout.Rollback: roll_back,
    rollout.Wait: wait,
}
"""The executor of each action."""


def undo_canary(cluster: Cluster, reason: str, *, previous: TrackStatus | None,
                restore: bool, undone: str, release_id: str, timeout: float) -> None:
    """Remove the canary (waiting until its pods are gone); with ``restore``, fix the primary.

    A promotion cut off after its switch left the undone version (image ``undone``) in
    the primary's slot. With ``restore``, the ``previous`` primary's image is promoted
    back (into the other slot, where its pods may still run); an endpoint that had no
    primary before has its primary stepped down, so the undone version goes entirely.
    Where the primary still serves the previous image, restoring changes nothing.

    Raises:
        KubeApiError: the previous primary does not come back (the new one keeps serving).
    """
    if restore and previous is not None and previous.image and previous.digest:
        if not cluster.serves(Track.PRIMARY, previous.digest):
            restored = cluster.promote(previous.image, previous.version, release_id,
                                       max(cluster.primary_replicas(), 1), timeout)
            if restored.state != RolloutState.READY:
                raise KubeApiError(f"roll back: the previous primary {previous.image} did "
                                   f"not come back: {restored.reason}; the new version "
                                   "keeps serving")
    elif restore and previous is None and cluster.serves(Track.PRIMARY, undone):
        cluster.step_down()  # a first release had become primary: nothing to go back to
    cluster.remove_canary()
    cluster.wait_gone(Track.CANARY)
    cluster.event("RolledBack", reason, warning=True)


def tag(models: ModelRegistry, version: ModelVersion, note: Say, where: str,
        tags: dict[str, str], alias: str | None = None, *, record: bool) -> Condition:
    """Tag ``version`` in MLflow; when MLflow stays down, a pending condition, not a failure.

    The cluster already holds the outcome: MLflow being down must not turn a finished
    promotion or rollback into a crash. The next run applies the pending tags. ``record``
    is the endpoint's ``promotion.tags``: false sets no tags, and only moves ``alias``.
    """
    now = datetime.now(UTC)
    status = tags["modelrelease.status"]
    if not record and alias is None:
        return Condition(type=TAGGED, status="True", reason="TagsOff",
                         message=f"version {version.version} {status}; not tagged "
                         "(promotion.tags: false)", last_transition_time=now)
    try:
        models.tag(version, tags if record else {}, alias=alias)
    except MlflowError as exc:
        note(f"{where}: MLflow tags of version {version.version} pending: {exc.message}")
        return Condition(type=TAGGED, status="False", reason="MlflowUnavailable",
                         message=f"tags of version {version.version} not applied; the next "
                         f"release of the endpoint applies them: {exc.message}"[:1000],
                         last_transition_time=now)
    if not record:
        return Condition(type=TAGGED, status="True", reason="TagsOff",
                         message=f"version {version.version} {status}: alias {alias} moved, "
                         "not tagged (promotion.tags: false)", last_transition_time=now)
    return Condition(type=TAGGED, status="True", reason="Tagged",
                     message=f"version {version.version} tagged {status}",
                     last_transition_time=now)


def slice_table(verdict: JudgeVerdict, endpoint: ModelEndpoint
                ) -> tuple[tuple[SliceRow, ...], str]:
    """The verdict's slice table and where the slice value is (no slices: ``((), "")``)."""
    check = endpoint.spec.canary.checks.slices
    rows = next((c.slices for c in verdict.checks if c.metric is Metric.SLICES), ())
    if check is None:
        return (), ""
    return rows, check.key
