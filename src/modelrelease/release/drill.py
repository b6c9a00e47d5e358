"""``run_drill``: prove on a live endpoint that a bad release is caught and undone.

It releases the current primary's own image again as a canary carrying an injected fault
(``run_release(..., fault=...)``, which never promotes), while a steady client calls the
primary's Service through the API server; then it checks that the previous version is
still restorable (its image digest still pulls, its MLflow version still resolves).
``domain.drill`` decides whether every part held and measures the times; the result goes
to the ModelEndpoint's ``status.lastDrill``, a Kubernetes Event and a markdown report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from modelrelease.adapters.kube import KubeCluster
from modelrelease.adapters.mlflow_registry import MlflowRegistry
from modelrelease.adapters.oci_registry import RegistryClient
from modelrelease.adapters.pod_access import PodAccess
from modelrelease.adapters.probe import SteadyClient
from modelrelease.domain.drill import (
    Check,
    DrillEvidence,
    DrillVerdict,
    drill_blocker,
    judge_drill,
    previous_release,
    render_drill_report,
)
from modelrelease.domain.fault import drill_fault
from modelrelease.domain.manifests import Track, service_name
from modelrelease.domain.model import ModelUri
from modelrelease.domain.notifications import Notification, drill_notice
from modelrelease.domain.reference import ImageRef
from modelrelease.domain.rollout import Milestones, ReleaseOutcome, milestones
from modelrelease.errors import InvalidInput, PipelineError
from modelrelease.release.driver import ReleaseResult, Say, run_release
from modelrelease.release.kube_endpoint import KubeEndpoint
from modelrelease.release.models import ReleaseModels
from modelrelease.release.ports import Call, direct
from modelrelease.release.steps import Execute, direct_step
from modelrelease.settings import PipelineSettings
from modelrelease.spec import (
    DrillRecord,
    Fault,
    ModelEndpoint,
    ReleasePhase,
    ReleaseRequest,
    TrackStatus,
    load_endpoint,
)


@dataclass
class DrillResult:
    """How a drill went: the verdict, its times and the report."""

    endpoint: str
    name: str
    fault: Fault
    verdict: DrillVerdict
    version: str
    previous: TrackStatus | None
    release_id: str
    primary_ok: int
    primary_failed: int
    report: str

    @property
    def passed(self) -> bool:
        """Whether every part of the drill held."""
        return self.verdict.passed

    @property
    def notification(self) -> Notification:
        """What the drill tells people: passed or failed, and why."""
        return Notification(drill_notice(self.passed), self.endpoint, self.version,
                            self.verdict.reason, self.release_id)

    def summary(self) -> dict[str, Any]:
        """The drill in one JSON-able mapping (the flow's return value)."""
        return {"endpoint": self.endpoint, "fault": self.fault.value, "passed": self.passed,
                "time_to_detect_s": self.verdict.time_to_detect_s,
                "time_to_restore_s": self.verdict.time_to_restore_s,
                "version": self.version,
                "previous_version": self.previous.version if self.previous else None,
                "release_id": self.release_id, "primary_ok": self.primary_ok,
                "primary_failed": self.primary_failed, "reason": self.verdict.reason}

    def line(self) -> str:
        """The one-line JSON summary."""
        return json.dumps(self.summary())


def restorable(settings: PipelineSettings, endpoint: ModelEndpoint,
               previous: TrackStatus) -> tuple[Check, ...]:
    """Whether ``previous`` can still be restored: its image and its MLflow version."""
    image = previous.image or f"{endpoint.spec.image.repository}@{previous.digest}"
    try:
        with RegistryClient(settings.registry) as registry:
            ref = ImageRef.parse(image)
            pulls = registry.manifest_exists(ref, previous.digest or ref.reference)
        detail = (f"{image} is in the registry" if pulls else
                  f"{image} is no longer in the registry (HEAD manifest: 404)")
    except PipelineError as exc:
        pulls, detail = False, f"{image}: {exc.message}"
    uri = ModelUri(name=endpoint.spec.model.name, version=previous.version)
    try:
        found = MlflowRegistry(settings.mlflow).resolve(uri)
        resolves, said = True, f"{uri} resolves (run {found.run_id})"
    except PipelineError as exc:
        resolves, said = False, exc.message
    return (Check("previous image still pulls", pulls, detail),
            Check("previous MLflow version still resolves", resolves, said))


def run_drill(endpoint_ref: str, fault: Fault | None = None,
              settings: PipelineSettings | None = None, *, say: Say = print,
              call: Call = direct, execute: Execute = direct_step) -> DrillResult:
    """Drill ``endpoint_ref`` (a name or a ModelEndpoint file) with ``fault``; see the doc.

    ``fault`` defaults to the spec's ``drill.fault``, else latency. The result says whether
    the drill held; it is recorded in the ModelEndpoint's status either way.

    Raises:
        InvalidInput: bad endpoint file, or an endpoint that cannot be drilled now (no
            primary, a release in flight).
    """
    settings = settings or PipelineSettings()
    request = ReleaseRequest(endpoint=endpoint_ref)
    endpoint = load_endpoint(request.endpoint_file(settings.release.endpoints_dir))
    chosen = fault or (endpoint.spec.drill.fault if endpoint.spec.drill else Fault.LATENCY)
    setting = drill_fault(chosen)
    where = f"{endpoint.namespace}/{endpoint.name}"
    cluster = KubeCluster(settings.kube)
    try:
        world = KubeEndpoint(endpoint, cluster)
        models = ReleaseModels(MlflowRegistry(settings.mlflow), settings.build.cache_dir)
        access = PodAccess(cluster, settings.kube.pod_access, endpoint.namespace,
                           service_name(endpoint))
        before = world.read_status()
        blocker = drill_blocker(before)
        if blocker is not None or before is None or before.primary is None:
            raise InvalidInput(f"drill endpoint {where}: {blocker}")
        primary = before.primary
        previous = previous_release(before, endpoint.spec.image.repository)
        say(f"{where}: drill with fault {setting.env_value()} on a canary of version "
            f"{primary.version} ({primary.image}); previous version "
            f"{previous.version if previous else '-'}")
        version = call("resolve-model", lambda: models.resolve(
            ModelUri(endpoint.spec.model.name, version=primary.version)))
        body = models.files(version).serving_example or {}
        url = access.url(endpoint.namespace, service_name(endpoint, Track.PRIMARY),
                         "invocations")
        release = ReleaseRequest(endpoint=endpoint_ref, version=int(primary.version))
        with SteadyClient(access, url, body) as background:
            try:
                result = run_release(release, settings, say=say, call=call, execute=execute,
                                     fault=setting)
            except PipelineError as exc:
                say(f"{where}: the drill's release failed: {exc.message}")
                result = ReleaseResult(where, ReleaseOutcome.FAILED, "the drill's release failed: "
                                       f"{exc.message}", primary.version, "", "", 0.0)
        checks: tuple[Check, ...] = ()
        if previous is not None:
            checks = call("check-restorable", lambda: restorable(settings, endpoint, previous))
        times = milestones(result.phases) if result.phases else Milestones()
        verdict = judge_drill(DrillEvidence(
            rolled_back=result.outcome is ReleaseOutcome.ROLLED_BACK, reason=result.reason,
            times=times,
            primary_ok=background.ok, primary_failures=tuple(background.failed),
            restorable=checks))
        report = render_drill_report(endpoint=where, fault=setting.env_value(),
                                     version=primary.version, previous=previous,
                                     verdict=verdict, release_report=result.report)
        _record(world, before.phase, DrillRecord(
            finished_at=datetime.now(UTC), fault=chosen, passed=verdict.passed,
            time_to_detect_s=verdict.time_to_detect_s,
            time_to_restore_s=verdict.time_to_restore_s, version=primary.version,
            previous_version=previous.version if previous else None,
            release_id=result.release_id or None, reason=verdict.reason[:1000]))
        say(f"{where}: drill {'passed' if verdict.passed else 'FAILED'}: {verdict.reason}")
        return DrillResult(where, endpoint.name, chosen, verdict, primary.version, previous,
                           result.release_id, background.ok, len(background.failed), report)
    finally:
        cluster.close()


def _record(world: KubeEndpoint, phase: ReleasePhase | None, record: DrillRecord) -> None:
    """Write ``status.lastDrill``, an Event, and the phase the drill found once it is over.

    The drill's rollback stays in the history; the endpoint's own phase goes back to what
    it was (its primary never changed), so the next release is judged as before.
    """
    status = world.read_status()
    if status is None:
        return
    update: dict[str, Any] = {"last_drill": record}
    if status.phase == ReleasePhase.ROLLED_BACK and status.canary is None:
        update["phase"] = phase
    world.write_status(status.model_copy(update=update))
    world.event("DrillPassed" if record.passed else "DrillFailed",
                f"rollback drill ({record.fault.value}): {record.reason}"[:1000],
                warning=not record.passed)
