"""``run_release``: resolve, lock, build, then drive the rollout state machine to its end.

The loop is short: record the transition, carry out its actions (one executor each, in
``release.steps``), observe, and ask ``domain.rollout.step`` what comes next. Every
decision, and its reason, comes from the domain; the world is reached only through the
interfaces of ``release.ports`` (``release_with`` takes them, so the fast tier runs whole
releases on fakes). The ModelEndpoint's status is written after every transition, so a
re-run resumes (same version) or rolls back (another version) what it finds, and never
leaves a canary behind.

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

from modelrelease.adapters.kube import KubeCluster
from modelrelease.adapters.mlflow_registry import MlflowRegistry
from modelrelease.adapters.prefect_secrets import with_secret_blocks
from modelrelease.costs import prices as price_table
from modelrelease.domain import rollout
from modelrelease.domain.approval import approval_refusal, approval_tags, needs_asking
from modelrelease.domain.cost import PriceTable, endpoint_cost
from modelrelease.domain.drill import drill_blocker
from modelrelease.domain.fault import FaultSetting
from modelrelease.domain.model import ModelVersion
from modelrelease.domain.notifications import STEP_NOTICES, Notification, notice_of
from modelrelease.domain.plan import FIRST_NOT_BAKED, approval_gate, model_uri, rollout_policy
from modelrelease.domain.report import render_report
from modelrelease.domain.status_record import (
    Released,
    in_flight_tracks,
    status_after,
    with_condition,
)
from modelrelease.errors import InvalidInput, MlflowError
from modelrelease.release.gateway_router import GatewayRouter, check_gateway
from modelrelease.release.images import RegistryImages
from modelrelease.release.kube_endpoint import KubeEndpoint, require_namespace
from modelrelease.release.lock import holding_lock
from modelrelease.release.models import ReleaseModels
from modelrelease.release.pod_evidence import PodEvidence
from modelrelease.release.ports import Approvals, Call, Image, Ports, Traffic, direct
from modelrelease.release.preflight import preflight
from modelrelease.release.replica_router import ReplicaRatioRouter
from modelrelease.release.steps import (
    EXECUTORS,
    TAGGED,
    Execute,
    ReleaseRun,
    check_health,
    direct_step,
    tag,
    undo_canary,
)
from modelrelease.settings import PipelineSettings, ReleaseConfig
from modelrelease.spec import (
    HistoryEntry,
    ModelEndpoint,
    ModelEndpointStatus,
    ReleasePhase,
    ReleaseRequest,
    Router,
    load_endpoint,
    spec_hash,
)

Say = Callable[[str], None]
Notify = Callable[[Notification], None]
"""Tells people about a release's milestones (the flows post each as a Prefect event).

Telling is best effort, so it must not raise: ``tasks.notices.telling``, the one that posts,
turns a refusal into a warning in the run's log."""
Interrupted = Callable[[BaseException], str | None]
"""Who stopped a release, given an interrupt that reached its loop (a ``BaseException``
that is not an ``Exception``), or None to let that interrupt pass unhandled."""


def ctrl_c(stop: BaseException) -> str | None:
    """The default :data:`Interrupted`: Ctrl-C aborts the release in flight."""
    return "an interrupt (Ctrl-C)" if isinstance(stop, KeyboardInterrupt) else None


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


class Timeline:
    """What a release said, and when (seconds since it started)."""

    def __init__(self, say: Say) -> None:
        self.say = say
        self.started = time.monotonic()
        self.lines: list[tuple[float, str]] = []

    def elapsed(self) -> float:
        """Seconds since the release started."""
        return time.monotonic() - self.started

    def note(self, line: str) -> None:
        """Say ``line`` and keep it (the same "waiting for ..." line again is dropped)."""
        if self.lines and self.lines[-1][1] == line:
            return
        self.lines.append((self.elapsed(), line))
        self.say(line)


def run_release(request: ReleaseRequest, settings: PipelineSettings | None = None, *,
                say: Say = print, call: Call = direct, execute: Execute = direct_step,
                fault: FaultSetting | None = None, interrupted: Interrupted = ctrl_c,
                notify: Notify | None = None, approvals: Approvals | None = None
                ) -> ReleaseResult:
    """Release the model version ``request`` names to its endpoint; see the module doc.

    With ``fault``, run a rollback drill instead: ``request`` must name the primary's
    version, which is released again as a canary with that fault and always rolled back.
    ``call`` runs the outside calls around the loop (resolve, build), ``execute`` each
    step's executor: the flow makes them Prefect task runs. An interrupt that
    ``interrupted`` names someone for (Ctrl-C; the flow adds a Prefect cancel) aborts the
    release in flight: it rolls back at once, then the interrupt goes on. ``notify`` is
    told each milestone (``domain.notifications``), and must not raise (:data:`Notify`).
    ``approvals`` answers the endpoint's approval gates (``domain.approval``); without it,
    an endpoint with any is refused up front.

    Raises:
        InvalidInput: bad endpoint file, missing namespace, unknown model (as ModelNotFound),
            approval gates that nobody can answer.
        ReleaseInProgress: another release holds the endpoint and waiting is not allowed.
    """
    if request.dry_run:  # a release that changes the world is never what a dry run asked
        raise InvalidInput(f"release {request.endpoint}: the request is a dry run, which "
                           "changes nothing: plan it with release.dry_run.plan_release "
                           "(modelrelease release --dry-run)")
    settings = with_secret_blocks(settings or PipelineSettings())
    timeline = Timeline(say)
    loaded = load_endpoint(request.endpoint_file(settings.release.endpoints_dir))
    endpoint = request.applied_to(loaded)
    registry = MlflowRegistry(settings.mlflow)
    models = ReleaseModels(registry, settings.build.cache_dir)
    version = call("resolve-model", lambda: models.resolve(model_uri(endpoint)))
    timeline.note(f"{endpoint.namespace}/{endpoint.name}: {model_uri(endpoint)} is version "
                  f"{version.version} (run {version.run_id})")
    endpoint = loaded if fault is not None else endpoint  # a drill leaves the spec as it is
    cluster = KubeCluster(settings.kube)
    try:
        require_namespace(cluster, endpoint)
        check_gateway(cluster, endpoint)
        kube = KubeEndpoint(endpoint, cluster, canary_fault=fault)

        def router(image: str, version: str, release_id: str, first: bool) -> Traffic:
            if endpoint.spec.traffic.router is Router.GATEWAY_API:
                return GatewayRouter(kube, kube, endpoint, image, version, release_id, first)
            return ReplicaRatioRouter(kube, endpoint, image, version, release_id, first)

        ports = Ports(kube, models, RegistryImages(endpoint, settings, registry),
                      PodEvidence(kube, settings, registry), router, approvals)
        return release_with(ports, endpoint, version, settings.release, price_table(settings),
                            timeline, call=call, execute=execute, fault=fault,
                            interrupted=interrupted, notify=notify)
    finally:
        cluster.close()


def release_with(ports: Ports, endpoint: ModelEndpoint, version: ModelVersion,
                 options: ReleaseConfig, prices: PriceTable, timeline: Timeline, *,
                 call: Call = direct, execute: Execute = direct_step,
                 fault: FaultSetting | None = None, interrupted: Interrupted = ctrl_c,
                 notify: Notify | None = None) -> ReleaseResult:
    """Release ``version`` to ``endpoint`` through ``ports``: everything after resolving it.

    Pending MLflow tags first, "already released", the preflight, the lock, the image,
    then the rollout to its end. The fast tier calls it with fakes. See ``run_release``
    for ``interrupted`` and ``notify``.

    Raises:
        ReleaseInProgress: another release holds the endpoint's lock.
        MlflowError: the last release's pending tags still cannot be applied.
    """
    where = f"{endpoint.namespace}/{endpoint.name}"
    cluster = ports.cluster
    status = cluster.read_status() or ModelEndpointStatus()
    status = _apply_pending_tags(ports, endpoint, status, version, timeline.note)
    digest_hash = spec_hash(endpoint)

    def already_released(status: ModelEndpointStatus) -> ReleaseResult | None:
        if (fault is None and status.phase == ReleasePhase.PROMOTED
                and status.primary is not None and status.primary.version == version.version
                and status.spec_hash == digest_hash and cluster.has_primary()):
            timeline.note(f"{where}: version {version.version} with this spec is already "
                          "primary")
            return ReleaseResult(where, rollout.ReleaseOutcome.ALREADY_RELEASED,
                                 "already primary", version.version,
                                 status.primary.image or "", status.release_id or "",
                                 timeline.elapsed(), timeline=timeline.lines)
        return None

    if (done := already_released(status)) is not None:
        return done
    asks = needs_asking([approval_gate(s.approval) for s in endpoint.spec.canary.steps],
                        drill=fault is not None)
    if asks is not None and ports.approvals is None:  # refused before anything changes
        raise InvalidInput(approval_refusal(where, asks))
    files, variants = preflight(cluster, ports.models, endpoint, version)
    release_id = uuid.uuid4().hex[:12]
    with holding_lock(cluster, f"{release_id}-{version.version}", options,
                      f"release endpoint {where}"):
        # the release that held the lock meanwhile may have released this very version
        status = cluster.read_status() or status
        if (done := already_released(status)) is not None:
            return done
        if fault is not None:  # a drill: the primary's own image, as the record has it now
            image = _primary_image(status, version.version, where)
        else:
            image = call("build-image", lambda: ports.images.image_for(version))
        timeline.note(f"{where}: image {image.image} ({'re-used' if image.reused else 'built'}"
                      f" in {image.seconds:.1f}s, {image.bytes_uploaded} bytes uploaded)")
        cluster.ensure_record()
        first = not cluster.has_primary()
        policy = replace(rollout_policy(endpoint, first_release=first), drill=fault is not None)
        if first and endpoint.spec.canary.bake is not None:
            timeline.note(f"{where}: {FIRST_NOT_BAKED}")
        run = ReleaseRun(ports, ports.traffic(image.image, version.version, release_id, first),
                         endpoint, version, image, release_id, first, policy, files, variants,
                         in_flight_tracks(status)[1], timeline.note)
        return _drive(run, status, prices, timeline, execute, interrupted, notify)


def _drive(run: ReleaseRun, status: ModelEndpointStatus, prices: PriceTable,
           timeline: Timeline, execute: Execute, interrupted: Interrupted,
           notify: Notify | None) -> ReleaseResult:
    """Observe, step, execute, until the rollout ends; then promote's last words and report.

    An interrupt in flight that ``interrupted`` names someone for is an abort: the rollback
    runs here and now (its executors called directly: the flow run is being torn down),
    then the interrupt is raised again, with the lock released on its way out.
    """
    cluster, endpoint = run.ports.cluster, run.endpoint
    status, transition = _start(run, status)
    released = Released(run.release_id, run.version.version, run.image.digest, run.image.image,
                        spec_hash(endpoint))
    phases: list[tuple[float, rollout.Phase]] = []

    def record(state: rollout.State) -> None:
        # what the endpoint costs now: primary and canary replicas together
        cost = endpoint_cost(endpoint.spec.resources,
                             cluster.primary_replicas() + run.canary_replicas, prices)
        cluster.write_status(status_after(
            status, state.phase, released, reason=state.reason, step=state.step,
            weight=state.weight, previous=run.previous, last_verdict=run.last_verdict,
            cost_per_hour=cost, tagged=run.tagged, now=datetime.now(UTC),
            aborted_by=state.aborted_by))

    def tell(before: rollout.State, after: rollout.State) -> None:
        notice = notice_of(before, after, drill=run.policy.drill)
        if notify is None or notice is None:
            return
        notify(Notification(notice, run.where, run.version.version, after.reason,
                            run.release_id, before.step + 1 if notice in STEP_NOTICES else None))

    def drive(transition: rollout.Transition, execute: Execute) -> None:
        while True:
            timeline.note(f"{run.where}: {transition.reason}")
            phases.append((timeline.elapsed(), transition.state.phase))
            record(transition.state)
            tell(run.state, transition.state)
            run.state = transition.state
            if run.state.phase.terminal:
                return
            observed: rollout.Observation | None = None
            for action in transition.actions:
                observed = execute(EXECUTORS[type(action)], run, action) or observed
            observed = observed or execute(check_health, run, run.state.phase)
            if rollout.abortable(run.state.phase) and (
                    asked := cluster.abort_requested(run.release_id)) is not None:
                observed = rollout.Aborted(asked)  # what was observed meanwhile no longer counts
            if observed is None:
                raise InvalidInput(f"release endpoint {run.where}: nothing to observe in phase "
                                   f"{run.state.phase} after {transition.actions}")
            transition = rollout.step(run.state, observed, run.policy, datetime.now(UTC))

    try:
        drive(transition, execute)
    except BaseException as stop:
        who = None if isinstance(stop, Exception) else interrupted(stop)
        if who is None or not rollout.abortable(run.state.phase):
            raise
        drive(rollout.step(run.state, rollout.Aborted(who), run.policy, datetime.now(UTC)),
              direct_step)
        raise

    promoted = run.state.phase == rollout.Phase.PROMOTED
    if promoted:
        _retire_previous(run)
        run.tagged = tag(run.ports.models, run.version, run.note, run.where, {
            "modelrelease.status": rollout.ReleaseOutcome.PROMOTED,
            "modelrelease.release_id": run.release_id,
            "modelrelease.image_digest": run.image.digest} | approval_tags(run.answers),
            alias=endpoint.spec.promotion.alias, record=endpoint.spec.promotion.tags)
        cluster.event("Promoted", f"version {run.version.version} ({run.image.image}) is "
                                  "primary")
        run.canary_replicas = 0
        record(run.state)
    outcome = (rollout.ReleaseOutcome.PROMOTED if promoted
               else rollout.ReleaseOutcome.ROLLED_BACK)
    cost = endpoint_cost(endpoint.spec.resources, max(1, endpoint.spec.autoscaling.min_replicas),
                         prices)
    report = render_report(endpoint=run.where, version=run.version.version,
                           image=run.image.image, outcome=run.state.phase.value,
                           reason=run.state.reason, timeline=timeline.lines, steps=run.steps,
                           canary_cost_per_hour=cost, reached=run.ports.evidence.via,
                           approvals=[answer.line(step) for step, answer in run.answers])
    return ReleaseResult(run.where, outcome, run.state.reason, run.version.version,
                         run.image.image, run.release_id, timeline.elapsed(),
                         run.hold_seconds, report, timeline.lines, phases)


def _retire_previous(run: ReleaseRun) -> None:
    """After a promotion, the previous primary's slot goes; after a bake it is kept.

    Kept at no replicas (its pods drain, unrouted), it is where ``modelrelease rollback``
    finds that version's Deployment.
    """
    previous = run.previous
    if run.policy.bake is None or previous is None or not previous.image:
        run.ports.cluster.remove_canary()  # its pods drain, unrouted
        return
    run.ports.cluster.scale_canary(previous.image, previous.version, run.release_id, 0)
    run.note(f"{run.where}: version {previous.version} scaled to 0 replicas, kept for "
             "`modelrelease rollback`")


def _start(run: ReleaseRun, status: ModelEndpointStatus
           ) -> tuple[ModelEndpointStatus, rollout.Transition]:
    """The first transition: resume the release in flight, supersede it, or begin.

    ``domain.rollout.resume`` decides from the record; another version's unfinished
    release is rolled back first (``_supersede``). Returns the record as it is then.
    """
    now = datetime.now(UTC)
    releasing = in_flight_tracks(status)[0]
    if status.phase is None or not status.phase.in_flight or releasing is None:
        return status, rollout.step(rollout.State(), rollout.Begin(), run.policy, now)
    state = rollout.State(phase=status.phase, step=status.step or 0, weight=status.weight,
                          since=now, reason=status.reason or "",
                          aborted_by=status.aborted_by or "")
    same = releasing.digest == run.image.digest
    transition = rollout.resume(state, same, run.policy, now)
    if same:
        return status, transition
    status = _supersede(run, status, transition)  # another version's: undo it first
    return status, rollout.step(rollout.State(), rollout.Begin(), run.policy,
                                datetime.now(UTC))


def _supersede(run: ReleaseRun, status: ModelEndpointStatus,
               transition: rollout.Transition) -> ModelEndpointStatus:
    """Roll back the unfinished release of another version that the record shows.

    A run killed mid-release leaves its canary (and its phase) behind; a later run for a
    different version first undoes it like any rollback: the canary goes, mid-promotion
    the primary gets its previous image back, the other version is tagged rolled back in
    MLflow and gets its history entry. The release asked for then starts from the
    beginning. Returns the record as it is now.

    Raises:
        MlflowError: the other version's tags could not be applied; they stay pending (so
            this release's own tags cannot overwrite that), and the next run applies them.
    """
    other, previous = in_flight_tracks(status)
    assert other is not None
    (undo,) = [a for a in transition.actions if isinstance(a, rollout.Rollback)]
    reason = f"{undo.reason}; version {run.version.version} is released instead"
    run.note(f"{run.where}: version {other.version}'s release was left unfinished "
             f"({status.phase}): rolling it back first")
    undo_canary(run.ports.cluster, reason, previous=previous,
                restore=undo.restore_primary, undone=other.digest or "",
                release_id=status.release_id or "",
                timeout=run.policy.promote_timeout.total_seconds())
    tagged = tag(run.ports.models, replace(run.version, version=other.version), run.note,
                 run.where, {"modelrelease.status": rollout.ReleaseOutcome.ROLLED_BACK,
                             "modelrelease.reason": reason,
                             "modelrelease.release_id": status.release_id or "",
                             "modelrelease.image_digest": other.digest or ""},
                 record=run.endpoint.spec.promotion.tags)
    updated = status.model_copy(update={
        "phase": ReleasePhase.ROLLED_BACK, "reason": reason[:1000], "canary": None,
        "primary": previous,
        "weight": 0, "step": None,
        "conditions": with_condition(status.conditions, tagged)}).with_history(HistoryEntry(
            release_id=status.release_id or "", version=other.version,
            phase=ReleasePhase.ROLLED_BACK, digest=other.digest, reason=reason[:500],
            finished_at=datetime.now(UTC)))
    run.ports.cluster.write_status(updated)
    if tagged.status == "False":  # kept pending: the next run applies it before releasing
        raise MlflowError(f"supersede version {other.version} of {run.where}: rolled back, "
                          f"but its MLflow tags are pending: {tagged.message}; release again "
                          "once MLflow answers", retriable=True)
    return updated


def _apply_pending_tags(ports: Ports, endpoint: ModelEndpoint, status: ModelEndpointStatus,
                        version: ModelVersion, note: Say) -> ModelEndpointStatus:
    """Apply the MLflow tags the last release could not (MLflow was down); the new status.

    Raises:
        MlflowError: MLflow still refuses them (after its retries).
    """
    pending = any(c.type == TAGGED and c.status == "False" for c in status.conditions)
    entry = next((h for h in reversed(status.history) if h.release_id == status.release_id),
                 None)
    if not pending or entry is None:
        return status
    where = f"{endpoint.namespace}/{endpoint.name}"
    tags = {"modelrelease.release_id": entry.release_id,
            "modelrelease.image_digest": entry.digest or ""}
    alias = None
    if entry.phase == ReleasePhase.PROMOTED:
        tags["modelrelease.status"] = rollout.ReleaseOutcome.PROMOTED
        alias = endpoint.spec.promotion.alias
    else:
        tags |= {"modelrelease.status": rollout.ReleaseOutcome.ROLLED_BACK,
                 "modelrelease.reason": entry.reason or ""}
    condition = tag(ports.models, replace(version, version=entry.version), note, where, tags,
                    alias, record=endpoint.spec.promotion.tags)
    if condition.status == "False":
        raise MlflowError(f"apply pending tags of model {version.name} version "
                          f"{entry.version}: {condition.message}", retriable=True)
    note(f"{where}: applied the pending MLflow tags of version {entry.version}")
    updated = status.model_copy(update={"conditions": with_condition(status.conditions, condition)})
    ports.cluster.write_conditions(updated.conditions)
    return updated


def _primary_image(status: ModelEndpointStatus, version: str, where: str) -> Image:
    """The primary's image for a drill of ``version``, or why the endpoint cannot be drilled."""
    blocker = drill_blocker(status)
    if blocker is None and status.primary is not None and status.primary.version != version:
        blocker = f"its primary is version {status.primary.version}, not {version}"
    if blocker is not None or status.primary is None:
        raise InvalidInput(f"drill endpoint {where}: {blocker}")
    return Image(status.primary.image or "", status.primary.digest or "", reused=True)
