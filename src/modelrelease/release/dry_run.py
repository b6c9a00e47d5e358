"""``plan_release``: a dry run. What a release would do, found out without changing anything.

It resolves the version in MLflow, asks the registry whether the image is already built
(reads only), renders every object the release would apply, runs the same permission
preflight as a release (SelfSubjectAccessReviews, which store nothing), reads the
endpoint's live request rate from its primary pods' counters and computes the canary
plan (``domain.dry_run``). It takes no lock, pushes no blob, applies no object, writes
no status, Event or MLflow tag.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from modelrelease.adapters.kube import KubeCluster
from modelrelease.adapters.mlflow_registry import MlflowRegistry
from modelrelease.adapters.pod_metrics import running, scrape
from modelrelease.adapters.prefect_secrets import with_secret_blocks
from modelrelease.build.builder import BuildRequest, ImageBuilder
from modelrelease.domain import live
from modelrelease.domain.dry_run import DryRun, canary_plan, render_dry_run
from modelrelease.domain.manifests import (
    LABEL_TRACK,
    Slots,
    Track,
    render_endpoint_resource,
    render_release,
)
from modelrelease.domain.plan import model_uri
from modelrelease.domain.rollout import ReleaseOutcome
from modelrelease.release.gateway_router import check_gateway
from modelrelease.release.kube_endpoint import NEEDS, KubeEndpoint, require_namespace
from modelrelease.release.models import ReleaseModels
from modelrelease.release.pod_evidence import PodEvidence
from modelrelease.release.preflight import preflight as check_first
from modelrelease.render import PLACEHOLDER_DIGEST, dump_documents
from modelrelease.settings import PipelineSettings
from modelrelease.spec import (
    ModelEndpoint,
    ReleasePhase,
    ReleaseRequest,
    load_endpoint,
    spec_hash,
)

Say = Callable[[str], None]
RELEASE_ID = "dry-run"


@dataclass(frozen=True)
class PlannedRelease:
    """A dry run's findings and its markdown report."""

    dry_run: DryRun
    report: str

    def summary(self) -> str:
        """The one-line JSON summary the CLI prints last."""
        import json

        return json.dumps({"endpoint": self.dry_run.endpoint, "outcome": ReleaseOutcome.PLANNED,
                           "version": self.dry_run.version, "image": self.dry_run.image,
                           "eta_s": round(self.dry_run.plan.seconds, 1),
                           "reason": self.dry_run.image_note})


def plan_release(request: ReleaseRequest, settings: PipelineSettings | None = None, *,
                 say: Say = print) -> PlannedRelease:
    """Plan the release ``request`` asks for, changing nothing; see the module doc.

    Raises:
        InvalidInput: bad endpoint file, missing namespace, no input example when required.
        ModelNotFound: the model, version or alias does not resolve.
        ImageNotFound: the serving base is not in the registry.
        KubeApiError: the identity lacks a permission the release needs.
    """
    settings = with_secret_blocks(settings or PipelineSettings())
    endpoint = request.applied_to(load_endpoint(request.endpoint_file(
        settings.release.endpoints_dir)))
    where = f"{endpoint.namespace}/{endpoint.name}"
    models = MlflowRegistry(settings.mlflow)
    version = models.resolve(model_uri(endpoint))
    say(f"{where}: {model_uri(endpoint)} is version {version.version} (run {version.run_id})")
    cluster = KubeCluster(settings.kube)
    try:
        require_namespace(cluster, endpoint)
        check_gateway(cluster, endpoint)  # a release would refuse it: so does its plan
        world = KubeEndpoint(endpoint, cluster)
        check_first(world, ReleaseModels(models, settings.build.cache_dir), endpoint, version)
        preflight = (f"passed: this identity may do all {len(NEEDS)} things a release does "
                     f"in namespace {endpoint.namespace}")
        say(f"{where}: preflight {preflight}")
        builder = ImageBuilder(settings, models=models, progress=lambda line: None)
        try:
            image, image_note = builder.find_built(BuildRequest(
                model=version.uri, base=endpoint.spec.image.base,
                to=endpoint.spec.image.repository))
        finally:
            builder.registry.close()
        say(f"{where}: image {image or 'not built'}: {image_note}")
        status = world.read_status()
        primary_deployment = world.deployment(Track.PRIMARY)
        replicas = world.primary_replicas()
        first = primary_deployment is None
        serving = None
        if not first and status is not None and status.primary is not None:
            serving = (f"version {status.primary.version} ({status.primary.image}), "
                       f"{replicas} replica(s)")
            if (status.phase == ReleasePhase.PROMOTED
                    and status.primary.version == version.version
                    and status.spec_hash == spec_hash(endpoint)):
                serving += ("; it is this version with this spec already, so a release "
                            "would change nothing")
        elif not first:
            serving = f"{replicas} primary replica(s) with no release record"
        if (status is not None and status.phase is not None and status.phase.in_flight
                and status.canary is not None):
            serving = (f"{serving or 'nothing'}; a release of version {status.canary.version} "
                       f"is in flight ({status.phase.value}): a "
                       "release would resume it if it is this image, else roll it back first")
        live_rps, live_note = ((None, "none yet (no primary)") if first else
                               _live_rate(PodEvidence(world, settings, models)))
        plan = canary_plan(endpoint, first_release=first, primary_replicas=replicas,
                           load_rate=settings.release.load_rate, live_rps=live_rps)
        pinned = image or f"{endpoint.spec.image.repository}@{PLACEHOLDER_DIGEST}"
        objects = _objects(endpoint, world.slots(), pinned, version.version,
                           plan.steps[0].canary_replicas,
                           max(replicas, endpoint.spec.autoscaling.min_replicas))
    finally:
        cluster.close()
    header = "" if image else (f"# PLACEHOLDER image digest {PLACEHOLDER_DIGEST}: the real "
                               "one is known once the release has built and pushed it.\n")
    dry = DryRun(endpoint=where, model=str(model_uri(endpoint)), version=version.version,
                 run_id=version.run_id, image=image, image_note=image_note, primary=serving,
                 preflight=preflight, live_note=live_note,
                 objects=tuple(_describe(o) for o in objects), plan=plan)
    for warning in plan.warnings:
        say(f"{where}: warning: {warning}")
    return PlannedRelease(dry, render_dry_run(dry, dump_documents(objects, header)))


def _objects(endpoint: ModelEndpoint, slots: Slots, image: str, version: str,
             canary_replicas: int, primary_replicas: int) -> list[dict[str, Any]]:
    """In apply order: the record, the Services and the canary, then what promotion applies.

    Promotion re-applies the canary's own slot as the primary (its pods are not restarted)
    and switches the Services, autoscaler and disruption budget to it.
    """
    def release(track: Track, slots: Slots, replicas: int) -> list[dict[str, Any]]:
        return render_release(endpoint, image=image, model_version=version,
                              release_id=RELEASE_ID, track=track, slots=slots,
                              replicas=replicas)

    return [render_endpoint_resource(endpoint),
            *release(Track.CANARY, slots, canary_replicas),
            *release(Track.PRIMARY, Slots(slots.canary), primary_replicas)]


def _describe(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    line = f"{obj.get('kind')} {meta.get('namespace')}/{meta.get('name')}"
    replicas = (obj.get("spec") or {}).get("replicas")
    track = (meta.get("labels") or {}).get(LABEL_TRACK)
    return line + (f" ({track}, {replicas} replica(s))" if obj.get("kind") == "Deployment"
                   else "")


def _live_rate(world: PodEvidence) -> tuple[float | None, str]:
    """Live requests per second the primary's pods served, averaged since each started."""
    pods = running(world.kube.cluster.pods(world.namespace,
                                           world.kube.pod_selector(Track.PRIMARY)))
    texts, failures = scrape(world.access, world.namespace, pods)
    now = datetime.now(UTC)
    rate, counted = 0.0, 0
    for pod in pods:
        name = str(pod["metadata"]["name"])
        started = (pod.get("status") or {}).get("startTime")
        if name not in texts or not started:
            continue
        try:
            traffic = live.PodTraffic.of(texts[name])
        except ValueError as exc:
            failures.append(f"pod {name}: /metrics unreadable: {exc}")
            continue
        served = traffic.total.requests - (traffic.generated.requests
                                           if traffic.generated else 0)
        age = (now - datetime.fromisoformat(str(started).replace("Z", "+00:00"))
               ).total_seconds()
        rate += served / max(age, 1.0)
        counted += 1
    if not counted:
        return None, "unknown: " + ("; ".join(failures) or "no running primary pod")
    return rate, (f"{rate:.2f} requests/s on the primary ({counted} pod(s), live requests "
                  "counted since each pod started)"
                  + (f"; unread: {'; '.join(failures)}" if failures else ""))
