"""What a release does to the world, one method per action of the state machine.

Kubernetes (Deployments, Services, the ModelEndpoint record), MLflow (alias and tags)
and the model pods (smoke test, generated load, metrics) by the path ``PodAccess`` picks:
the Service's ClusterIP where it is reachable, else the API server's proxy.
Every call goes through ``call(name, fn)``, which the Prefect flow turns into task runs.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx

from modelrelease.adapters.kube import KubeCluster
from modelrelease.adapters.loadgen import Target, Variant, generate_load
from modelrelease.adapters.mlflow_registry import MlflowRegistry, tag_version
from modelrelease.adapters.model_files import ModelFiles
from modelrelease.adapters.pod_access import PodAccess, get_once_routed
from modelrelease.adapters.pod_metrics import running, scrape
from modelrelease.adapters.probe import ask
from modelrelease.adapters.prometheus import Prometheus
from modelrelease.domain import agreement, analysis, live, sample_set
from modelrelease.domain.fault import FaultSetting
from modelrelease.domain.manifests import (
    ANNOTATION_IMAGE_DIGEST,
    ANNOTATION_SPEC_HASH,
    Slot,
    Slots,
    Track,
    deployment_name,
    label_selector,
    pinned_image,
    render_deployment,
    render_endpoint_resource,
    render_release,
    service_name,
    slots_of,
)
from modelrelease.domain.model import ModelVersion
from modelrelease.domain.plan import agreement_policy, analysis_policy
from modelrelease.domain.readiness import Readiness, RolloutState, assess
from modelrelease.domain.slice_mix import slice_requests
from modelrelease.domain.smoke import SmokeResult, check_response
from modelrelease.domain.traffic import split_by_replicas
from modelrelease.errors import InvalidInput, KubeApiError, PipelineError
from modelrelease.settings import PipelineSettings
from modelrelease.spec import Condition, ModelEndpoint, ModelEndpointStatus, spec_hash

T = TypeVar("T")
Call = Callable[[str, Callable[[], Any]], Any]
CR_API, CR_KIND = "modelrelease.io/v1alpha1", "ModelEndpoint"
NEEDS: tuple[tuple[str, str, str], ...] = (
    *((verb, "modelrelease.io", "modelendpoints") for verb in ("get", "create", "patch")),
    ("patch", "modelrelease.io", "modelendpoints/status"),
    *((verb, "apps", "deployments") for verb in ("get", "create", "patch", "delete")),
    *((verb, "", "services") for verb in ("create", "patch")),
    *((verb, "autoscaling", "horizontalpodautoscalers") for verb in ("create", "patch")),
    *((verb, "policy", "poddisruptionbudgets") for verb in ("create", "patch")),
    ("list", "", "pods"), ("get", "", "pods"), ("get", "", "services"),
    *((verb, "", "services/proxy") for verb in ("get", "create")),
    *((verb, "coordination.k8s.io", "leases") for verb in ("get", "create", "update", "delete")),
)
"""What a release does in its endpoint's namespace: ``(verb, API group, resource)``."""


def direct(name: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` as it is (the CLI's way; the flow wraps each call in a Prefect task)."""
    return fn()


def endpoint_status(cluster: KubeCluster, endpoint: ModelEndpoint) -> ModelEndpointStatus | None:
    """The status of ``endpoint``'s ModelEndpoint in the cluster, or None when it has none."""
    found = cluster.get(CR_API, CR_KIND, endpoint.name, endpoint.namespace)
    if not found or not found.get("status"):
        return None
    return ModelEndpointStatus.model_validate(found["status"])


def require_namespace(cluster: KubeCluster, endpoint: ModelEndpoint) -> None:
    """Refuse an endpoint whose namespace does not exist (the release creates none).

    Raises:
        InvalidInput: the namespace is missing, with the fix.
    """
    if not cluster.namespace_exists(endpoint.namespace):
        raise InvalidInput(f"release endpoint {endpoint.namespace}/{endpoint.name}: namespace "
                           f"{endpoint.namespace} does not exist; create it (kubectl create "
                           f"namespace {endpoint.namespace}) or fix metadata.namespace")


class ReleaseWorld:
    """One endpoint's objects in the cluster, its model in MLflow, and its pods."""

    def __init__(self, endpoint: ModelEndpoint, settings: PipelineSettings,
                 cluster: KubeCluster, models: MlflowRegistry, call: Call = direct) -> None:
        self.endpoint = endpoint
        self.settings = settings
        self.cluster = cluster
        self.models = models
        self.call = call
        self.access = PodAccess(cluster, settings.kube.pod_access, endpoint.namespace,
                                service_name(endpoint))
        """How smoke, load, agreement and scraping reach the pods (ClusterIP or proxy)."""
        self.namespace = endpoint.namespace
        self.canary_fault: FaultSetting | None = None
        """A rollback drill's fault, injected into the canary Deployment only."""
        self.prometheus = Prometheus(settings.prometheus) if settings.prometheus.url else None
        """Where live traffic is read when configured; otherwise from the pods themselves."""

    # -- the record ---------------------------------------------------------------------

    def read_status(self) -> ModelEndpointStatus | None:
        """The ModelEndpoint's status, or None when it has none yet."""
        return endpoint_status(self.cluster, self.endpoint)

    def ensure_record(self) -> dict[str, Any]:
        """Apply the ModelEndpoint custom resource (its spec; the status is ours)."""
        applied: dict[str, Any] = self.call(
            "apply-modelendpoint",
            lambda: self.cluster.apply(render_endpoint_resource(self.endpoint)))
        return applied

    def write_status(self, status: ModelEndpointStatus) -> None:
        """Replace the recorded status."""
        # A merge patch keeps keys it does not mention: send nulls so cleared fields go.
        body = status.model_dump(mode="json", by_alias=True)
        self.call("record-status", lambda: self.cluster.patch_status(
            CR_API, CR_KIND, self.endpoint.name, self.namespace, body))

    def write_conditions(self, conditions: list[Condition]) -> None:
        """Replace the status's conditions alone (the merge patch leaves the rest as it is)."""
        body = {"conditions": [c.model_dump(mode="json", by_alias=True) for c in conditions]}
        self.call("record-conditions", lambda: self.cluster.patch_status(
            CR_API, CR_KIND, self.endpoint.name, self.namespace, body))

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        """A Kubernetes Event on the ModelEndpoint."""
        found = self.cluster.get(CR_API, CR_KIND, self.endpoint.name, self.namespace)
        if found:
            self.cluster.event(found, reason, message, warning)

    def preflight(self, version: ModelVersion) -> tuple[Variant, ...]:
        """Refuse now, before anything changes, what would otherwise fail halfway.

        Returns:
            The generated load's slice mix, built once here for every step's ``analyse``.

        Raises:
            KubeApiError: the identity lacks a permission the release needs (403).
            InvalidInput: the version has no input example and the spec requires one, or
                the spec's slices cannot be sent with it.
        """
        where = f"{self.namespace}/{self.endpoint.name}"
        missing = self.cluster.denied(self.namespace, NEEDS)
        if missing:
            raise KubeApiError(
                f"release endpoint {where}: forbidden: this identity may not "
                f"{', '.join(missing)} in namespace {self.namespace}; grant it in the "
                "pipeline's Role (deployments/kubernetes/rbac.yaml) or release as an identity "
                "that has it", status=403)
        files = self.model_files(version)
        if self.endpoint.spec.smoke.require_input_example and files.serving_example is None:
            raise InvalidInput(
                f"release endpoint {where}: model {version.name} version {version.version} "
                "has no input example, so the smoke test has nothing to send; log the model "
                "with one (input_example=...) or set spec.smoke.requireInputExample: false "
                "to smoke-test /ping alone")
        return self.slice_variants(files, where)

    def slice_variants(self, files: ModelFiles, where: str) -> tuple[Variant, ...]:
        """The generated load's slice mix (``spec.canary.checks.slices``; none: ``()``).

        Raises:
            InvalidInput: a column slice the input example cannot carry.
        """
        check = self.endpoint.spec.canary.checks.slices
        if check is None:
            return ()
        try:
            shapes = slice_requests(check, files.serving_example)
        except ValueError as exc:
            raise InvalidInput(f"release endpoint {where}: "
                               f"spec.canary.checks.slices: {exc}") from None
        return tuple(Variant(s.value, s.weight,
                             None if s.payload is None else json.dumps(s.payload).encode(),
                             s.headers) for s in shapes)

    # -- deployments ----------------------------------------------------------------------

    def slots(self) -> Slots:
        """Which slot holds the primary now (``Service E-primary``'s selector says)."""
        return slots_of(self.cluster.get("v1", "Service",
                                          service_name(self.endpoint, Track.PRIMARY),
                                          self.namespace))

    def deployment(self, track: Track, slots: Slots | None = None) -> dict[str, Any] | None:
        """The Deployment of a track's slot, or None."""
        slot = (slots or self.slots()).of(track)
        return self.cluster.get("apps/v1", "Deployment", deployment_name(self.endpoint, slot),
                                self.namespace)

    def health(self, track: Track) -> Readiness:
        """A track's rollout: ready, progressing, or failed with the reason."""
        slots = self.slots()
        deployment = self.deployment(track, slots)
        if deployment is None:
            return Readiness(RolloutState.PROGRESSING, f"{track} deployment not created yet")
        pods = self.cluster.pods(self.namespace,
                                 label_selector(self.endpoint, slots.of(track)))
        return assess(deployment, pods)

    def wait_ready(self, track: Track, timeout: float) -> str | None:
        """Wait for a track to be ready; the failure reason if it fails or times out."""
        deadline = time.monotonic() + timeout
        while True:
            readiness = self.health(track)
            if readiness.state == RolloutState.READY:
                return None
            if readiness.state == RolloutState.FAILED:
                return f"{track} failed: {readiness.reason}"
            if time.monotonic() > deadline:
                return f"{track} not ready after {timeout:.0f}s: {readiness.reason}"
            time.sleep(0.5)

    def primary_replicas(self) -> int:
        """Replicas the primary runs now (0 when there is none)."""
        primary = self.deployment(Track.PRIMARY)
        return int((primary or {}).get("spec", {}).get("replicas") or 0)

    def serves(self, track: Track, digest: str, same_spec: bool = False) -> bool:
        """Whether a track's Deployment runs the image ``digest`` (and this endpoint spec)."""
        found = self.deployment(track) or {}
        template = ((found.get("spec") or {}).get("template") or {}).get("metadata") or {}
        applied = (found.get("metadata") or {}).get("annotations") or {}
        return ((template.get("annotations") or {}).get(ANNOTATION_IMAGE_DIGEST) == digest
                and (not same_spec
                     or applied.get(ANNOTATION_SPEC_HASH) == spec_hash(self.endpoint)))

    def apply_track(self, track: Track, image: str, version: str, release_id: str,
                    replicas: int, slots: Slots | None = None) -> None:
        """Apply a track's Deployment in its slot, and the Services (primary: HPA and PDB too).

        A Deployment of that slot still being deleted (an earlier release's) is waited out
        first: applying to it would only update an object about to vanish.
        """
        slots = slots or self.slots()
        self._wait_deleted(slots.of(track))
        objects = render_release(self.endpoint, image=image, model_version=version,
                                 release_id=release_id, track=track, slots=slots,
                                 replicas=replicas,
                                 fault=self.canary_fault if track is Track.CANARY else None)
        self.call(f"apply-{track}", lambda: [self.cluster.apply(o) for o in objects])

    def _wait_deleted(self, slot: Slot, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            existing = self.cluster.get("apps/v1", "Deployment",
                                        deployment_name(self.endpoint, slot), self.namespace)
            if not existing or not existing.get("metadata", {}).get("deletionTimestamp"):
                return
            time.sleep(0.5)

    def scale_canary(self, image: str, version: str, release_id: str, replicas: int) -> None:
        """Change the canary's replica count (the traffic weight, by replica ratio)."""
        obj = render_deployment(self.endpoint, image=image, model_version=version,
                                release_id=release_id, slot=self.slots().canary,
                                track=Track.CANARY, replicas=replicas,
                                fault=self.canary_fault)
        self.call("scale-canary", lambda: self.cluster.apply(obj))

    def promote(self, image: str, version: str, release_id: str, replicas: int,
                timeout: float) -> Readiness:
        """Make the canary's slot the primary, with no second rollout of the model.

        The canary's Deployment is scaled to ``replicas`` (pods it already runs keep
        serving), and once all are ready the Services ``E-primary`` / ``E-canary``, the
        autoscaler and the disruption budget switch slots: the verified pods are the
        primary. Until then nothing routes differently, so a canary that cannot grow
        leaves the primary as it was. A promotion resumed after its switch (the primary
        already serves this image with this spec) finds it done.

        Returns:
            The new primary's readiness; FAILED (nothing switched) when the canary's slot
            is not ready within ``timeout`` seconds.
        """
        digest = pinned_image(image, what=f"promote {self.namespace}/{self.endpoint.name}")
        if self.serves(Track.PRIMARY, str(digest.digest), same_spec=True):
            return self.health(Track.PRIMARY)  # switched before a restart: done
        self.scale_canary(image, version, release_id, replicas)
        failure = self.wait_ready(Track.CANARY, timeout)
        if failure is not None:
            return Readiness(RolloutState.FAILED, f"canary could not grow to {replicas} "
                             f"replica(s) for promotion: {failure}")
        self.apply_track(Track.PRIMARY, image, version, release_id, replicas,
                         Slots(self.slots().canary))
        return self.health(Track.PRIMARY)

    def canary_replicas_for(self, weight: int, first_release: bool) -> tuple[int, float]:
        """Canary replicas for ``weight`` beside the primary, and the weight they give."""
        if first_release:
            return self.endpoint.spec.autoscaling.min_replicas, 100.0
        split = split_by_replicas(self.primary_replicas(), weight,
                                  max_canary=self.endpoint.spec.autoscaling.max_replicas)
        return split.canary, split.effective

    def remove_canary(self) -> None:
        """Delete the canary's slot Deployment (its pods drain through their preStop hook).

        After a promotion that is the previous primary's slot.
        """
        slot = self.slots().canary
        self.call("remove-canary", lambda: self.cluster.delete(
            "apps/v1", "Deployment", deployment_name(self.endpoint, slot), self.namespace))

    def wait_gone(self, track: Track, timeout: float = 60.0) -> None:
        """Wait until a track's slot has neither pods nor a Deployment left."""
        slot = self.slots().of(track)
        label = label_selector(self.endpoint, slot)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (
                self.cluster.pods(self.namespace, label)
                or self.cluster.get("apps/v1", "Deployment",
                                    deployment_name(self.endpoint, slot), self.namespace)):
            time.sleep(0.25)

    # -- checks -----------------------------------------------------------------------------

    def smoke(self, files: ModelFiles) -> SmokeResult:
        """``/ping``, then ``/invocations`` with the model's own input example."""
        canary = service_name(self.endpoint, Track.CANARY)

        def run() -> SmokeResult:
            with self.access.client(timeout=30) as http:
                # the canary's pods are Ready; the route to them may lag a moment
                ping = get_once_routed(http, self.access.url(self.namespace, canary, "ping"))
                if ping.status_code != 200:
                    return SmokeResult(False, f"GET /ping answered {ping.status_code}")
                if files.serving_example is None:
                    if self.endpoint.spec.smoke.require_input_example:
                        return SmokeResult(False, "the model version has no input example; "
                                                  "log one (input_example=...) or set "
                                                  "spec.smoke.requireInputExample: false")
                    return SmokeResult(True, "/ping answered 200 (no input example to send)")
                answer = http.post(self.access.url(self.namespace, canary, "invocations"),
                                   json=files.serving_example)
                if answer.status_code != 200:
                    return SmokeResult(False, f"POST /invocations answered {answer.status_code}"
                                              f": {answer.text[:300]}")
                try:
                    body = answer.json()
                except ValueError:
                    return SmokeResult(False, f"POST /invocations answered non-JSON: "
                                              f"{answer.text[:200]}")
                return check_response(files.outputs, files.rows, body)

        try:
            result: SmokeResult = self.call("smoke", run)
        except httpx.HTTPError as exc:
            return SmokeResult(False, f"smoke request failed: {type(exc).__name__}: {exc}")
        return result

    def analyse(self, hold: timedelta, files: ModelFiles, first_release: bool,
                variants: tuple[Variant, ...]
                ) -> tuple[analysis.Verdict, live.LiveEvidence, str | None]:
        """Load both arms at once for ``hold`` (in looks) and judge them sequentially.

        ``variants``: the slice mix ``preflight`` built.
        A first release has no primary: its samples stand for both arms, so only the
        absolute checks (error rate, p95/p99 SLOs) can fail it. The pods' own metrics,
        read before the first look and after the last, say what real users sent meanwhile
        (``domain.live``). Returns the generated load's verdict, live traffic's evidence
        (``domain.verdict.step_verdict`` combines them) and why the load lagged, if it did.
        """
        rate = self.settings.release.load_rate
        policy = analysis_policy(self.endpoint, hold, rate)
        body = json.dumps(files.serving_example or {}).encode()
        method = "POST" if files.serving_example else "GET"
        path = "invocations" if files.serving_example else "ping"
        headers = {"Content-Type": "application/json", live.GENERATED_HEADER: "judge"}
        arms = [Target("canary", self.access.url(self.namespace, service_name(
            self.endpoint, Track.CANARY), path), method, body if method == "POST" else None,
            headers, variants)]
        if not first_release:
            arms.append(Target("primary", self.access.url(self.namespace, service_name(
                self.endpoint, Track.PRIMARY), path), method,
                body if method == "POST" else None, headers, variants))
        per_look = max(1, policy.max_requests // policy.looks)
        judge = analysis.SequentialJudge()
        verdict: analysis.Verdict | None = None
        lag: str | None = None

        def one_look() -> Any:
            return asyncio.run(generate_load(arms, rate, max_requests=per_look,
                                             transport=self.access.transport()))

        began = time.time()
        before = {} if self.prometheus else self.scrape_tracks(first_release)
        sent: dict[str, Counter[str]] = {"canary": Counter(), "primary": Counter()}
        for _ in range(policy.looks):
            report = self.call("generate-load", one_look)
            lag = lag or report.lag_reason
            for name, arm in report.arms.items():
                sent[name].update(str(r.status) for r in arm.requests if r.status is not None)
            canary = report.arms["canary"].samples()
            primary = canary if first_release else report.arms["primary"].samples()
            judge, verdict = analysis.look(judge, analysis.Samples(canary, primary), policy)
            if verdict.decided:
                break
        assert verdict is not None
        slices = self.endpoint.spec.canary.checks.slices
        key = None if slices is None else slices.key
        if self.prometheus is None:
            found = live.evidence(before, self.scrape_tracks(first_release), sent, policy,
                                  slice_key=key)
        else:
            before, after = self.read_prometheus(first_release, began)
            found = live.evidence(before, after, sent, policy, via=self.prometheus.via,
                                  slice_key=key)
        return verdict, found, lag

    def _tracks(self, first_release: bool) -> list[tuple[Track, str]]:
        """The tracks a step compares, each with its pods' label selector."""
        slots = self.slots()
        return [(track, label_selector(self.endpoint, slots.of(track)))
                for track in ((Track.CANARY,) if first_release
                              else (Track.CANARY, Track.PRIMARY))]

    def read_prometheus(self, first_release: bool, began: float
                        ) -> tuple[dict[str, live.TrackScrape], dict[str, live.TrackScrape]]:
        """Each track's pods' counters at ``began`` and now, from the configured Prometheus."""
        assert self.prometheus is not None
        prometheus = self.prometheus

        def names(label: str) -> Callable[[], list[str]]:
            return lambda: [str(p["metadata"]["name"])
                            for p in running(self.cluster.pods(self.namespace, label))]

        try:
            pods = {track.value: self.call(f"list-{track}-pods", names(label))
                    for track, label in self._tracks(first_release)}
        except PipelineError as exc:
            return {}, {track.value: live.TrackScrape({}, (str(exc),))
                        for track, _ in self._tracks(first_release)}

        def read() -> tuple[dict[str, live.TrackScrape], dict[str, live.TrackScrape]]:
            return prometheus.read_window(self.namespace, pods, began)

        scraped: tuple[dict[str, live.TrackScrape], dict[str, live.TrackScrape]] = self.call(
            "read-prometheus", read)
        return scraped

    def scrape_tracks(self, first_release: bool) -> dict[str, live.TrackScrape]:
        """Each track's pods' request counters now (``/metrics`` through the pod proxy)."""
        out: dict[str, live.TrackScrape] = {}
        for track, label in self._tracks(first_release):

            def read(label: str = label) -> tuple[dict[str, str], list[str]]:
                return scrape(self.access, self.namespace, self.cluster.pods(self.namespace, label))

            try:
                texts, failures = self.call(f"scrape-{track}-metrics", read)
            except PipelineError as exc:
                texts, failures = {}, [str(exc)]
            pods: dict[str, live.PodTraffic] = {}
            for name, text in texts.items():
                try:
                    pods[name] = live.PodTraffic.of(text)
                except ValueError as exc:
                    failures.append(f"pod {name}: /metrics unreadable: {exc}")
            out[track.value] = live.TrackScrape(pods, tuple(failures))
        return out

    def agreement(self, version: ModelVersion, files: ModelFiles,
                  first_release: bool) -> agreement.AgreementVerdict:
        """The same inputs to canary and primary; their outputs compared (``domain.agreement``).

        The inputs are the input example's rows, then the sample set's (``samples`` in the
        version's run). A sample set that is named but missing or unfit fails the check.
        """
        check = self.endpoint.spec.canary.checks.agreement
        policy = agreement_policy(self.endpoint)
        if first_release or not check.enabled:
            return agreement.AgreementVerdict(agreement.Outcome.SKIPPED, (
                "first release: no primary to compare with" if first_release
                else "off (agreement.enabled: false)"))
        example, unfit = None, "the version has no input example and agreement.samples is unset"
        if files.serving_example is not None:
            try:
                example = sample_set.from_payload(files.serving_example)
            except ValueError as exc:
                unfit = f"the input example cannot be split into rows: {exc}"
        try:
            samples = None if check.samples is None else sample_set.parse_samples(
                self.models.read_run_artifact(version.run_id or "(none)", check.samples),
                check.samples)
            batch = sample_set.merge(example, samples, check.max_samples)
        except (ValueError, PipelineError) as exc:
            return agreement.AgreementVerdict(
                agreement.Outcome.FAIL, f"sample set {check.samples} of run {version.run_id} "
                f"unusable: {exc}", on_failure=policy.on_failure)
        if batch is None:
            return agreement.AgreementVerdict(agreement.Outcome.INCONCLUSIVE, unfit,
                                              on_failure=policy.on_failure)
        body = batch.payload()

        def both() -> list[agreement.Answer]:
            with self.access.client(timeout=60) as http:
                return [ask(http, self.access.url(self.namespace, service_name(
                    self.endpoint, track), "invocations"), body)
                    for track in (Track.CANARY, Track.PRIMARY)]

        canary, primary = self.call("compare-outputs", both)
        return agreement.judge(canary, primary, policy)

    # -- MLflow ---------------------------------------------------------------------------

    def model_files(self, version: ModelVersion) -> ModelFiles:
        """The version's signature and input example (downloaded once, cached)."""
        cache = self.settings.build.cache_dir / "models" / version.name / version.version
        return ModelFiles.read(self.models.download(version, Path(cache)))

    def tag(self, version: ModelVersion, tags: dict[str, str], alias: str | None = None) -> None:
        """Tag the MLflow version (and move the alias on promotion)."""
        self.call("tag-mlflow", lambda: tag_version(self.models, version, tags, alias))


class ReplicaRatioRouter:
    """The default ``TrafficRouter``: the canary's share of ready replicas is its weight.

    ``Service E`` selects both slots, so live traffic follows ready replicas; setting a
    weight scales the canary's slot beside the primary (see ``domain.traffic``).
    """

    def __init__(self, world: ReleaseWorld, image: str, version: str, release_id: str,
                 first_release: bool) -> None:
        self.world = world
        self.image = image
        self.version = version
        self.release_id = release_id
        self.first_release = first_release
        self.replicas = 0

    def set_weight(self, endpoint: ModelEndpoint, weight: int) -> float:
        """Scale the canary for ``weight`` percent; return the percent it really gets."""
        replicas, effective = self.world.canary_replicas_for(weight, self.first_release)
        self.world.scale_canary(self.image, self.version, self.release_id, replicas)
        self.replicas = replicas
        return effective
