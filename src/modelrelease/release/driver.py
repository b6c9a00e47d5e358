"""``run_release``: resolve, lock, build, then drive the rollout state machine to its end.

The loop only executes the actions ``domain.rollout.step`` returns and feeds back what it
observed; every decision, and its reason, comes from the domain. The ModelEndpoint's
status is written after every transition, so a re-run resumes (same version) or rolls
back (another version) what it finds, and never leaves a canary behind.

A rollback drill (``fault=``) re-releases the primary's own image as a canary carrying
that fault: no build, no "already released" shortcut, no MLflow tags, and never a
promotion (``RolloutPolicy.drill``).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from modelrelease.adapters.kube import KubeCluster
from modelrelease.adapters.loadgen import Variant
from modelrelease.adapters.mlflow_registry import MlflowRegistry
from modelrelease.adapters.oci_registry import PushStats
from modelrelease.adapters.prefect_secrets import with_secret_blocks
from modelrelease.build.builder import BuildRequest, BuildResult, ImageBuilder
from modelrelease.costs import prices as price_table
from modelrelease.domain import rollout
from modelrelease.domain.analysis import Metric, SliceRow
from modelrelease.domain.analysis import Outcome as JudgeOutcome
from modelrelease.domain.analysis import Verdict as JudgeVerdict
from modelrelease.domain.cost import hourly_cost
from modelrelease.domain.drill import drill_blocker
from modelrelease.domain.fault import FaultSetting
from modelrelease.domain.manifests import Track
from modelrelease.domain.plan import model_uri, rollout_policy
from modelrelease.domain.readiness import RolloutState
from modelrelease.domain.report import StepRecord, render_report
from modelrelease.domain.status_record import (
    Released,
    status_after,
    verdict_record,
    with_condition,
)
from modelrelease.domain.traffic import TrafficRouter
from modelrelease.domain.verdict import step_verdict
from modelrelease.errors import InvalidInput, KubeApiError, MlflowError, ReleaseInProgress
from modelrelease.release.world import (
    Call,
    ReleaseWorld,
    ReplicaRatioRouter,
    direct,
    require_namespace,
)
from modelrelease.settings import PipelineSettings
from modelrelease.spec import (
    Condition,
    HistoryEntry,
    ModelEndpoint,
    ModelEndpointStatus,
    ReleasePhase,
    ReleaseRequest,
    TrackStatus,
    Verdict,
    load_endpoint,
    spec_hash,
)

Say = Callable[[str], None]


@dataclass
class ReleaseResult:
    """How a release ended."""

    endpoint: str
    outcome: rollout.ReleaseOutcome
    reason: str
    version: str
    image: str
    release_id: str
    seconds: float
    hold_seconds: float = 0.0
    report: str = ""
    timeline: list[tuple[float, str]] = field(default_factory=list)
    phases: list[tuple[float, rollout.Phase]] = field(default_factory=list)
    """Seconds into the release at which each transition left it in which phase."""

    def summary(self) -> str:
        """The one-line JSON summary the CLI prints last."""
        return json.dumps({"endpoint": self.endpoint, "outcome": self.outcome,
                           "version": self.version, "image": self.image,
                           "release_id": self.release_id, "seconds": round(self.seconds, 2),
                           "reason": self.reason})


def run_release(request: ReleaseRequest, settings: PipelineSettings | None = None, *,
                say: Say = print, call: Call = direct,
                fault: FaultSetting | None = None) -> ReleaseResult:
    """Release the model version ``request`` names to its endpoint; see the module doc.

    With ``fault``, run a rollback drill instead: ``request`` must name the primary's
    version, which is released again as a canary with that fault and always rolled back.

    Raises:
        InvalidInput: bad endpoint file, missing namespace, unknown model (as ModelNotFound).
        ReleaseInProgress: another release holds the endpoint and waiting is not allowed.
    """
    if request.dry_run:  # a release that changes the world is never what a dry run asked
        raise InvalidInput(f"release {request.endpoint}: the request is a dry run, which "
                           "changes nothing: plan it with release.dry_run.plan_release "
                           "(modelrelease release --dry-run)")
    settings = with_secret_blocks(settings or PipelineSettings())
    started = time.monotonic()
    timeline: list[tuple[float, str]] = []

    def note(line: str) -> None:
        if timeline and timeline[-1][1] == line:
            return  # the same "waiting for ..." line again says nothing new
        timeline.append((time.monotonic() - started, line))
        say(line)

    loaded = load_endpoint(request.endpoint_file(settings.release.endpoints_dir))
    endpoint = request.applied_to(loaded)
    where = f"{endpoint.namespace}/{endpoint.name}"
    models = MlflowRegistry(settings.mlflow)
    version = call("resolve-model", lambda: models.resolve(model_uri(endpoint)))
    note(f"{where}: {model_uri(endpoint)} is version {version.version} (run {version.run_id})")
    endpoint = loaded if fault is not None else endpoint  # a drill leaves the spec as it is
    cluster = KubeCluster(settings.kube)
    try:
        require_namespace(cluster, endpoint)
        world = ReleaseWorld(endpoint, settings, cluster, models, call)
        status = world.read_status() or ModelEndpointStatus()
        status = _apply_pending_tags(world, status, version, note)
        digest_hash = spec_hash(endpoint)

        def already_released(status: ModelEndpointStatus) -> ReleaseResult | None:
            if (fault is None and status.phase == ReleasePhase.PROMOTED
                    and status.primary is not None
                    and status.primary.version == version.version
                    and status.spec_hash == digest_hash and world.deployment(Track.PRIMARY)):
                note(f"{where}: version {version.version} with this spec is already primary")
                return ReleaseResult(where, rollout.ReleaseOutcome.ALREADY_RELEASED,
                                     "already primary",
                                     version.version, status.primary.image or "",
                                     status.release_id or "", time.monotonic() - started,
                                     timeline=timeline)
            return None

        if (done := already_released(status)) is not None:
            return done
        # permissions, input example, slices: refuse before any change
        variants = world.preflight(version)
        release_id = uuid.uuid4().hex[:12]
        holder = f"{release_id}-{version.version}"
        with cluster.lease(endpoint.namespace, f"modelrelease-{endpoint.name}", holder,
                           ttl_seconds=settings.release.lock_ttl_s,
                           wait_seconds=settings.release.wait_for_lock_s) as got:
            if not got:
                raise ReleaseInProgress(
                    f"release endpoint {where}: another release holds its lock; wait for it "
                    "or allow waiting with MODELRELEASE_RELEASE__WAIT_FOR_LOCK_S")
            # the release that held the lock meanwhile may have released this very version
            status = world.read_status() or status
            if (done := already_released(status)) is not None:
                return done
            return _release(world, version, release_id, status, digest_hash, note, timeline,
                            started, settings, variants, fault)
    finally:
        cluster.close()


def _release(world: ReleaseWorld, version: Any, release_id: str, status: ModelEndpointStatus,
             digest_hash: str, note: Say, timeline: list[tuple[float, str]], started: float,
             settings: PipelineSettings, variants: tuple[Variant, ...],
             fault: FaultSetting | None = None) -> ReleaseResult:
    endpoint = world.endpoint
    where = f"{endpoint.namespace}/{endpoint.name}"
    if fault is not None:  # a drill: the primary's own image, as the record has it now
        status = world.read_status() or status
        built: BuildResult | _Pinned = _primary_image(status, version.version, where)
        world.canary_fault = fault
    else:
        builder = ImageBuilder(settings, models=world.models, progress=lambda line: None)
        try:
            built = world.call("build-image", lambda: builder.build(BuildRequest(
                model=version.uri, base=endpoint.spec.image.base,
                to=endpoint.spec.image.repository)))
        finally:
            builder.registry.close()
    image = built.image
    note(f"{where}: image {image} ({'re-used' if built.reused else 'built'} in "
         f"{built.seconds:.1f}s, {built.stats.bytes_uploaded} bytes uploaded)")
    world.ensure_record()
    previous = status.primary
    first = world.deployment(Track.PRIMARY) is None
    policy = replace(rollout_policy(endpoint, first_release=first), drill=fault is not None)
    files = world.model_files(version)
    prices = price_table(settings)
    steps: list[StepRecord] = []
    hold_seconds = 0.0
    last_verdict: Verdict | None = None
    canary_replicas = 0
    phases: list[tuple[float, rollout.Phase]] = []
    tagged: Condition | None = None  # how tagging the version in MLflow went, once tried

    state = rollout.State()
    if status.phase is not None and status.phase.in_flight and status.canary is not None:
        state = rollout.State(phase=status.phase, step=status.step or 0, weight=status.weight,
                              since=datetime.now(UTC), reason=status.reason or "")
        same = status.canary.digest == built.digest
        transition = rollout.resume(state, same, policy, datetime.now(UTC))
        if not same:  # another version's release: undo it, then release this one
            status = _supersede(world, status, transition, version, note,
                                    policy.promote_timeout.total_seconds())
            state = rollout.State()
            transition = rollout.step(state, rollout.Begin(), policy, datetime.now(UTC))
    else:
        transition = rollout.step(state, rollout.Begin(), policy, datetime.now(UTC))

    router = ReplicaRatioRouter(world, image, version.version, release_id, first)
    _router: TrafficRouter = router  # the replica-ratio router is one TrafficRouter

    released = Released(release_id, version.version, built.digest, image, digest_hash)

    def record(phase: rollout.Phase) -> None:
        # what the endpoint costs now: primary and canary replicas together
        cost = hourly_cost(endpoint.spec.resources.cpu, endpoint.spec.resources.memory,
                           dict(endpoint.spec.resources.accelerators),
                           world.primary_replicas() + canary_replicas, prices)
        world.write_status(status_after(
            status, phase, released, reason=transition.state.reason,
            step=transition.state.step, weight=transition.state.weight, previous=previous,
            last_verdict=last_verdict, cost_per_hour=cost, tagged=tagged,
            now=datetime.now(UTC)))

    while True:
        note(f"{where}: {transition.reason}")
        phases.append((time.monotonic() - started, transition.state.phase))
        record(transition.state.phase)
        state = transition.state
        if state.phase.terminal:
            break
        observation: rollout.Observation | None = None
        for action in transition.actions:
            match action:
                case rollout.DeployCanary():
                    canary_replicas, effective = world.canary_replicas_for(
                        policy.steps[0].weight, first)
                    world.apply_track(Track.CANARY, image, version.version, release_id,
                                      canary_replicas)
                    world.event("CanaryCreated", f"canary {image} with {canary_replicas} "
                                                 f"replica(s), {effective:.0f}% of traffic")
                case rollout.RunSmoke():
                    result = world.smoke(files)
                    note(f"{where}: checks reach the pods through {world.access.via}")
                    observation = rollout.SmokeChecked(result.passed, result.reason)
                case rollout.SetWeight(weight=weight):
                    effective = router.set_weight(endpoint, weight)
                    canary_replicas = router.replicas
                    note(f"{where}: canary at {canary_replicas} replica(s) = "
                         f"{effective:.0f}% of live traffic (asked {weight}%)")
                case rollout.Analyse(hold=hold):
                    ready = world.wait_ready(Track.CANARY,
                                             policy.deploy_timeout.total_seconds())
                    if ready is not None:
                        observation = rollout.StepJudged(JudgeOutcome.FAIL, ready)
                        continue
                    began = time.monotonic()
                    judged, found, lag = world.analyse(hold, files, first, variants)
                    hold_seconds += time.monotonic() - began
                    if lag:
                        note(f"{where}: load generator: {lag}")
                    agreed = world.agreement(version, files, first)
                    verdict = step_verdict(judged, (found.check, agreed.check))
                    steps.append(StepRecord(state.step + 1, state.weight, verdict.outcome.value,
                                            verdict.canary, verdict.primary, verdict.reasons,
                                            agreed, found, *_slice_table(verdict, endpoint)))
                    last_verdict = verdict_record(verdict, agreed.numbers, found.numbers)
                    observation = rollout.StepJudged.of(verdict)
                case rollout.Promote():  # the verified canary's pods become the primary
                    replicas = max(world.primary_replicas(),
                                   endpoint.spec.autoscaling.min_replicas)
                    observation = rollout.PrimaryHealth(world.promote(
                        image, version.version, release_id, replicas,
                        policy.promote_timeout.total_seconds()))
                    canary_replicas = 0
                case rollout.Rollback(reason=reason, restore_primary=restore):
                    _undo_canary(world, reason, previous if restore else None, release_id,
                                 policy.promote_timeout.total_seconds())
                    canary_replicas = 0
                    if fault is None:  # a drill's version is the primary's: not rolled back
                        tagged = _tag(world, version, note, {
                            "modelrelease.status": rollout.ReleaseOutcome.ROLLED_BACK,
                            "modelrelease.reason": reason,
                            "modelrelease.release_id": release_id,
                            "modelrelease.image_digest": built.digest})
                    observation = rollout.CleanedUp()
                case rollout.Wait(seconds=seconds):
                    time.sleep(seconds)
        if observation is None:
            observation = rollout.health_observation(state.phase, world.health)
        if observation is None:
            raise InvalidInput(f"release endpoint {where}: nothing to observe in phase "
                               f"{state.phase} after {transition.actions}")
        transition = rollout.step(state, observation, policy, datetime.now(UTC))

    promoted = state.phase == rollout.Phase.PROMOTED
    if promoted:
        world.remove_canary()  # the previous primary's slot: its pods drain, unrouted
        tagged = _tag(world, version, note, {"modelrelease.status":
                                             rollout.ReleaseOutcome.PROMOTED,
                                             "modelrelease.release_id": release_id,
                                             "modelrelease.image_digest": built.digest},
                      alias=endpoint.spec.promotion.alias)
        world.event("Promoted", f"version {version.version} ({image}) is primary")
        canary_replicas = 0
        record(state.phase)
    outcome = (rollout.ReleaseOutcome.PROMOTED if promoted
               else rollout.ReleaseOutcome.ROLLED_BACK)
    cost = hourly_cost(endpoint.spec.resources.cpu, endpoint.spec.resources.memory,
                       dict(endpoint.spec.resources.accelerators),
                       max(1, endpoint.spec.autoscaling.min_replicas), prices)
    report = render_report(endpoint=where, version=version.version, image=image,
                           outcome=state.phase.value, reason=state.reason, timeline=timeline,
                           steps=steps, canary_cost_per_hour=cost,
                           reached=world.access.via if world.access.path else None)
    return ReleaseResult(where, outcome, state.reason, version.version, image, release_id,
                         time.monotonic() - started, hold_seconds, report, timeline, phases)


def _undo_canary(world: ReleaseWorld, reason: str, restore: TrackStatus | None,
                 release_id: str, timeout: float) -> None:
    """Remove the canary (waiting until its pods are gone); ``restore`` as primary, if not.

    A promotion interrupted after its switch left the new version in the primary's slot:
    the previous image is promoted back (into the other slot, where its pods may still
    run) before the canary's slot is removed.
    """
    if (restore is not None and restore.image and restore.digest
            and not world.serves(Track.PRIMARY, restore.digest)):
        restored = world.promote(restore.image, restore.version, release_id,
                                 max(world.primary_replicas(), 1), timeout)
        if restored.state != RolloutState.READY:
            raise KubeApiError(f"roll back {world.namespace}/{world.endpoint.name}: the "
                               f"previous primary {restore.image} did not come back: "
                               f"{restored.reason}; the new version keeps serving")
    world.remove_canary()
    world.wait_gone(Track.CANARY)
    world.event("RolledBack", reason, warning=True)


def _supersede(world: ReleaseWorld, status: ModelEndpointStatus,
               transition: rollout.Transition, version: Any, note: Say,
               timeout: float) -> ModelEndpointStatus:
    """Roll back the unfinished release of another version that the record shows.

    A run killed mid-release leaves its canary (and its phase) behind; a later run for a
    different version first undoes it like any rollback: the canary goes, mid-promotion
    the primary gets its previous image back, the other version is tagged rolled back in
    MLflow and gets its history entry. The release asked for then starts from the
    beginning. Returns the record as it is now.
    """
    assert status.canary is not None
    other = status.canary
    (undo,) = [a for a in transition.actions if isinstance(a, rollout.Rollback)]
    reason = f"{undo.reason}; version {version.version} is released instead"
    note(f"{world.namespace}/{world.endpoint.name}: version {other.version}'s release was "
         f"left unfinished ({status.phase}): rolling it back first")
    _undo_canary(world, reason, status.primary if undo.restore_primary else None,
                 status.release_id or "", timeout)
    tagged = _tag(world, replace(version, version=other.version), note, {
        "modelrelease.status": rollout.ReleaseOutcome.ROLLED_BACK, "modelrelease.reason": reason,
        "modelrelease.release_id": status.release_id or "",
        "modelrelease.image_digest": other.digest or ""})
    updated = status.model_copy(update={
        "phase": ReleasePhase.ROLLED_BACK, "reason": reason[:1000], "canary": None,
        "weight": 0, "step": None,
        "conditions": with_condition(status.conditions, tagged)}).with_history(HistoryEntry(
            release_id=status.release_id or "", version=other.version,
            phase=ReleasePhase.ROLLED_BACK, digest=other.digest, reason=reason[:500],
            finished_at=datetime.now(UTC)))
    world.write_status(updated)
    return updated


TAGGED = "MlflowTagged"
"""The status condition saying whether the last release's MLflow tags are applied."""


def _tag(world: ReleaseWorld, version: Any, note: Say, tags: dict[str, str],
         alias: str | None = None) -> Condition:
    """Tag ``version`` in MLflow; when MLflow stays down, a pending condition, not a failure.

    The cluster already holds the outcome: MLflow being down must not turn a finished
    promotion or rollback into a crash. The next run applies the pending tags.
    """
    now = datetime.now(UTC)
    try:
        world.tag(version, tags, alias=alias)
    except MlflowError as exc:
        note(f"{world.namespace}/{world.endpoint.name}: MLflow tags of version "
             f"{version.version} pending: {exc.message}")
        return Condition(type=TAGGED, status="False", reason="MlflowUnavailable",
                         message=f"tags of version {version.version} not applied; the next "
                         f"release of the endpoint applies them: {exc.message}"[:1000],
                         last_transition_time=now)
    return Condition(type=TAGGED, status="True", reason="Tagged",
                     message=f"version {version.version} tagged "
                     f"{tags['modelrelease.status']}", last_transition_time=now)


def _apply_pending_tags(world: ReleaseWorld, status: ModelEndpointStatus, version: Any,
                        note: Say) -> ModelEndpointStatus:
    """Apply the MLflow tags the last release could not (MLflow was down); the new status.

    Raises:
        MlflowError: MLflow still refuses them (after its retries).
    """
    pending = any(c.type == TAGGED and c.status == "False" for c in status.conditions)
    entry = next((h for h in reversed(status.history) if h.release_id == status.release_id),
                 None)
    if not pending or entry is None:
        return status
    tags = {"modelrelease.release_id": entry.release_id,
            "modelrelease.image_digest": entry.digest or ""}
    alias = None
    if entry.phase == ReleasePhase.PROMOTED:
        tags["modelrelease.status"] = rollout.ReleaseOutcome.PROMOTED
        alias = world.endpoint.spec.promotion.alias
    else:
        tags |= {"modelrelease.status": rollout.ReleaseOutcome.ROLLED_BACK,
                 "modelrelease.reason": entry.reason or ""}
    condition = _tag(world, replace(version, version=entry.version), note, tags, alias)
    if condition.status == "False":
        raise MlflowError(f"apply pending tags of model {version.name} version "
                          f"{entry.version}: {condition.message}", retriable=True)
    note(f"{world.namespace}/{world.endpoint.name}: applied the pending MLflow tags of "
         f"version {entry.version}")
    updated = status.model_copy(update={"conditions": with_condition(status.conditions, condition)})
    world.write_conditions(updated.conditions)
    return updated


@dataclass(frozen=True)
class _Pinned:
    """An image already in the registry, released as it is (a drill's canary)."""

    image: str
    digest: str
    reused: bool = True
    seconds: float = 0.0
    stats: PushStats = field(default_factory=PushStats)


def _primary_image(status: ModelEndpointStatus, version: str, where: str) -> _Pinned:
    """The primary's image for a drill of ``version``, or why the endpoint cannot be drilled."""
    blocker = drill_blocker(status)
    if blocker is None and status.primary is not None and status.primary.version != version:
        blocker = f"its primary is version {status.primary.version}, not {version}"
    if blocker is not None or status.primary is None:
        raise InvalidInput(f"drill endpoint {where}: {blocker}")
    return _Pinned(status.primary.image or "", status.primary.digest or "")


def _slice_table(verdict: JudgeVerdict, endpoint: ModelEndpoint
                 ) -> tuple[tuple[SliceRow, ...], str]:
    """The verdict's slice table and where the slice value is (no slices: ``((), "")``)."""
    check = endpoint.spec.canary.checks.slices
    rows = next((c.slices for c in verdict.checks if c.metric is Metric.SLICES), ())
    if check is None:
        return (), ""
    return rows, check.key
