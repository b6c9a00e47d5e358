"""In-memory fakes of the interfaces a release works through (``release.ports``).

Each fake keeps the semantics of the real adapter it stands for, and nothing more:

* ``FakeCluster`` is ``release.kube_endpoint.KubeEndpoint``: the status record (stored
  as the API server would, a JSON round trip that validates it), two slots (``blue`` and
  ``green``) of which one is the primary (green while there is none, as ``Slots()``
  says), the canary in the other one, promotion by scaling the canary's slot and then
  switching, the Lease and the permission preflight. Every call is kept in ``calls``
  (``"deploy_canary blue"``, ``"health canary"``, ...) so a test can check their order.
* ``FakeEvidence`` is ``release.pod_evidence.PodEvidence`` with a script: the smoke
  result and, per analysed step, the generated load's outcome (real ``analysis.Verdict``
  values), live traffic's evidence and the agreement.
* ``FakeModels`` is ``release.models.ReleaseModels``: versions, their files, tags and
  aliases; while ``down`` (or for the next ``tag_failures`` tags) it raises
  ``MlflowError(retriable=True)`` as the real client does after its retries.
* ``FakeImages`` is ``release.images.RegistryImages``: one image per version, pinned by a
  digest derived from the version (``image_of``).

Traffic needs no fake: the real ``ReplicaRatioRouter`` runs over the ``FakeCluster``
(``ports_of``), and so does the real ``GatewayRouter``, over ``FakeRoutes`` too (the
route as the API server holds it; the real one in ``tests/e2e/test_gateway.py``).
``tests/contract.py`` holds what both the fake and the real cluster must do;
``tests/fast/test_fakes_contract.py`` runs it against the fake.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from modelrelease.adapters.loadgen import Variant
from modelrelease.adapters.model_files import ModelFiles
from modelrelease.domain import agreement, analysis, live
from modelrelease.domain.abort import abort_request, asked_by
from modelrelease.domain.analysis import (
    AnalysisPolicy,
    ArmStats,
    Check,
    CheckStatus,
    Metric,
    Outcome,
    SliceRow,
)
from modelrelease.domain.approval import Answer, Question
from modelrelease.domain.fault import FaultSetting
from modelrelease.domain.manifests import Slot, Slots, Track, pinned_image
from modelrelease.domain.model import ModelUri, ModelVersion
from modelrelease.domain.readiness import Readiness, RolloutState
from modelrelease.domain.shadow import ShadowEvidence
from modelrelease.domain.smoke import SmokeResult
from modelrelease.errors import KubeApiError, MlflowError, ModelNotFound
from modelrelease.release.gateway_router import GatewayRouter
from modelrelease.release.ports import Image, Ports, Traffic
from modelrelease.release.replica_router import ReplicaRatioRouter
from modelrelease.spec import (
    Condition,
    ModelEndpoint,
    ModelEndpointStatus,
    ReleasePhase,
    Router,
    spec_hash,
)

REPOSITORY = "127.0.0.1:5000/ml/iris"
"""The image repository of ``tests.unit.test_spec.VALID`` (where ``FakeImages`` pushes)."""
MUTATING = ("deploy_canary", "scale_canary", "promote", "remove_canary")
"""The ``FakeCluster`` calls that change a slot (each recorded with the slot it changed)."""


def image_of(version: str, repository: str = REPOSITORY) -> Image:
    """The image ``FakeImages`` gives ``version``: pinned by a digest derived from it."""
    digest = "sha256:" + hashlib.sha256(f"{repository}:{version}".encode()).hexdigest()
    return Image(f"{repository}@{digest}", digest, reused=False)


# -- the cluster ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deployed:
    """One slot's Deployment, as its annotations and spec tell it."""

    image: str
    digest: str
    version: str
    replicas: int
    spec_hash: str
    release_id: str
    fault: FaultSetting | None = None
    """The rollback drill's fault, on a canary Deployment only."""


def _stored(status: ModelEndpointStatus) -> ModelEndpointStatus:
    """``status`` as the API server keeps it: JSON, validated again on the way back."""
    return ModelEndpointStatus.model_validate(status.model_dump(mode="json", by_alias=True))


class FakeCluster:
    """One endpoint's record, slots and lock in memory (a ``ports.Cluster``).

    Knobs a test sets: ``status`` (the record), ``slots`` and ``primary_slot`` (see
    ``seed``), ``held_by_other`` (the Lease's holder), ``denied`` (missing permissions),
    ``canary_health`` (the canary's readiness whenever its slot has a Deployment, e.g.
    ``Readiness(FAILED, "CrashLoopBackOff")``), ``as_primary`` (the primary's readiness
    while it runs a given digest: an image that fails only once it is the primary),
    ``not_ready_polls`` (how many looks at a track see it still progressing),
    ``grow_fails`` (why the canary cannot grow for promotion) and ``on_lock`` (what
    happens once the lock is taken, e.g. another release finishing just before).
    """

    POLLS = 50
    """Looks ``wait_ready`` takes before it gives up (it never sleeps)."""

    def __init__(self, endpoint: ModelEndpoint, *, status: ModelEndpointStatus | None = None,
                 canary_fault: FaultSetting | None = None) -> None:
        self.endpoint = endpoint
        self.spec_hash = spec_hash(endpoint)
        self.canary_fault = canary_fault
        self.status: ModelEndpointStatus | None = None if status is None else _stored(status)
        self.record = False
        """Whether the ModelEndpoint resource was applied (``ensure_record``)."""
        self.events: list[tuple[str, str, bool]] = []
        self.holder: str | None = None
        self.held_by_other: str | None = None
        self.on_lock: Callable[[], None] | None = None
        self.denied: tuple[str, ...] = ()
        self.slots: dict[Slot, Deployed] = {}
        self.primary_slot: Slot = Slots().primary
        self.canary_health: Readiness | None = None
        self.as_primary: dict[str, Readiness] = {}
        self.not_ready_polls: dict[Track, int] = {}
        self.grow_fails: str | None = None
        self.abort_annotation: str | None = None
        """The ModelEndpoint's ``modelrelease.io/abort`` annotation."""
        self.abort_when: tuple[ReleasePhase, str] | None = None
        """(phase, who): ``who`` runs ``modelrelease abort`` once the status shows it."""
        self.calls: list[str] = []
        self.canary_live = False
        """Whether ``Service E`` selects the canary's pods too (``route_live``)."""
        self.routes: list[bool] = []
        """Each ``route_live`` call's ``canary``, in order."""

    # -- for tests ---------------------------------------------------------------------------

    @property
    def conditions(self) -> list[Condition]:
        """The recorded status's conditions."""
        return [] if self.status is None else list(self.status.conditions)

    def slot_of(self, track: Track) -> Slot:
        """The slot holding ``track`` now."""
        return Slots(self.primary_slot).of(track)

    def deployment(self, track: Track) -> Deployed | None:
        """The Deployment of a track's slot, or None."""
        return self.slots.get(self.slot_of(track))

    def seed(self, track: Track, image: Image, version: str, *, replicas: int = 2,
             release_id: str = "seeded", spec: str | None = None) -> None:
        """Put a Deployment of ``image`` in a track's slot (``spec``: its spec hash)."""
        self.slots[self.slot_of(track)] = Deployed(image.image, image.digest, version, replicas,
                                                   spec or self.spec_hash, release_id)

    def names(self) -> list[str]:
        """The calls made, by method name alone."""
        return [call.split(" ", 1)[0] for call in self.calls]

    def changed(self) -> list[str]:
        """The calls that changed a slot, with the slot (``"remove_canary green"``)."""
        return [call for call in self.calls if call.split(" ", 1)[0] in MUTATING]

    # -- the record --------------------------------------------------------------------------

    def read_status(self) -> ModelEndpointStatus | None:
        """The ModelEndpoint's status, or None when it has none yet."""
        self.calls.append("read_status")
        return None if self.status is None else _stored(self.status)

    def write_status(self, status: ModelEndpointStatus) -> None:
        """Replace the recorded status (and abort, if ``abort_when`` says so)."""
        self.calls.append("write_status")
        self.status = _stored(status)
        if self.abort_when and status.phase == self.abort_when[0] and status.release_id:
            self.request_abort(status.release_id, self.abort_when[1])
            self.abort_when = None

    def request_abort(self, release_id: str, by: str) -> None:
        """Ask the release ``release_id`` to stop (the annotation, as the real one writes)."""
        self.calls.append(f"request_abort {by}")
        self.abort_annotation = abort_request(release_id, by)

    def abort_requested(self, release_id: str) -> str | None:
        """Who asked the release ``release_id`` to stop, or None."""
        return asked_by(self.abort_annotation, release_id)

    def write_conditions(self, conditions: list[Condition]) -> None:
        """Replace the status's conditions alone (a merge patch: the rest stays)."""
        self.calls.append("write_conditions")
        current = self.status or ModelEndpointStatus()
        self.status = _stored(current.model_copy(update={"conditions": list(conditions)}))

    def ensure_record(self) -> None:
        """Apply the ModelEndpoint resource."""
        self.calls.append("ensure_record")
        self.record = True

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        """An event on the ModelEndpoint."""
        self.calls.append(f"event {reason}")
        self.events.append((reason, message, warning))

    def check_permissions(self) -> None:
        """Refuse (403) when ``denied`` names permissions the identity lacks."""
        self.calls.append("check_permissions")
        if self.denied:
            where = f"{self.endpoint.namespace}/{self.endpoint.name}"
            raise KubeApiError(f"release endpoint {where}: forbidden: User \"tester\" may not "
                               f"{', '.join(self.denied)} in namespace "
                               f"{self.endpoint.namespace}", status=403)

    def lock(self, holder: str, ttl_seconds: int, wait_seconds: float
             ) -> AbstractContextManager[bool]:
        """Hold the endpoint's lock while inside; False if another holder has it."""
        self.calls.append("lock")
        return self._lease(holder)

    @contextmanager
    def _lease(self, holder: str) -> Iterator[bool]:
        if self.held_by_other is not None or self.holder not in (None, holder):
            yield False  # the real Lease waits up to wait_seconds: nobody lets go here
            return
        outer = self.holder
        self.holder = holder
        try:
            if self.on_lock is not None:
                self.on_lock()
            yield True
        finally:
            self.holder = outer

    # -- the slots ---------------------------------------------------------------------------

    def has_primary(self) -> bool:
        """Whether the primary's slot has a Deployment."""
        self.calls.append("has_primary")
        return self.deployment(Track.PRIMARY) is not None

    def health(self, track: Track) -> Readiness:
        """A track's rollout: ready, progressing, or failed with the reason."""
        self.calls.append(f"health {track}")
        return self._health(track)

    def _health(self, track: Track) -> Readiness:
        deployed = self.deployment(track)
        if deployed is None:
            return Readiness(RolloutState.PROGRESSING, f"{track} deployment not created yet")
        scripted = (self.canary_health if track is Track.CANARY
                    else self.as_primary.get(deployed.digest))
        if scripted is not None:
            return scripted
        wanted = deployed.replicas
        if self.not_ready_polls.get(track, 0) > 0:
            self.not_ready_polls[track] -= 1
            return Readiness(RolloutState.PROGRESSING, f"0 of {wanted} updated replicas "
                             f"available (0 updated, {wanted} total)", 0, wanted)
        return Readiness(RolloutState.READY, f"{wanted} of {wanted} updated replicas available",
                         wanted, wanted)

    def wait_ready(self, track: Track, timeout: float) -> str | None:
        """Wait for a track to be ready; why not, if it fails or ``POLLS`` looks run out."""
        self.calls.append(f"wait_ready {track}")
        return self._wait_ready(track, timeout)

    def _wait_ready(self, track: Track, timeout: float) -> str | None:
        readiness = self._health(track)
        for _ in range(self.POLLS):
            if readiness.state is RolloutState.READY:
                return None
            if readiness.state is RolloutState.FAILED:
                return f"{track} failed: {readiness.reason}"
            readiness = self._health(track)
        return f"{track} not ready after {timeout:.0f}s: {readiness.reason}"

    def primary_replicas(self) -> int:
        """Replicas the primary runs now (0 when there is none)."""
        self.calls.append("primary_replicas")
        primary = self.deployment(Track.PRIMARY)
        return 0 if primary is None else primary.replicas

    def canary_replicas(self) -> int:
        """Replicas the canary's slot runs now (0 when it has none)."""
        self.calls.append("canary_replicas")
        canary = self.deployment(Track.CANARY)
        return 0 if canary is None else canary.replicas

    def serves(self, track: Track, digest: str, same_spec: bool = False) -> bool:
        """Whether a track's Deployment runs the image ``digest`` (and this endpoint's spec)."""
        self.calls.append(f"serves {track}")
        return self._serves(track, digest, same_spec)

    def _serves(self, track: Track, digest: str, same_spec: bool) -> bool:
        found = self.deployment(track)
        return (found is not None and found.digest == digest
                and (not same_spec or found.spec_hash == self.spec_hash))

    def _put(self, slot: Slot, image: str, version: str, release_id: str, replicas: int,
             fault: FaultSetting | None) -> None:
        """Apply a slot's Deployment (the image must be pinned, as the renderer insists)."""
        where = f"deployment {self.endpoint.namespace}/{self.endpoint.name}-{slot.value}"
        digest = str(pinned_image(image, what=where).digest)
        self.slots[slot] = Deployed(image, digest, version, replicas, self.spec_hash,
                                    release_id, fault)

    def deploy_canary(self, image: str, version: str, release_id: str, replicas: int,
                      live: bool = True) -> None:
        """Apply the canary's Deployment in the slot the primary is not in."""
        slot = self.slot_of(Track.CANARY)
        self.calls.append(f"deploy_canary {slot}")
        self._put(slot, image, version, release_id, replicas, self.canary_fault)
        self.canary_live = live

    def route_live(self, canary: bool) -> None:
        """Whether the endpoint's Service sends the canary users (``canary_live``)."""
        self.routes.append(canary)
        self.canary_live = canary

    def scale_canary(self, image: str, version: str, release_id: str, replicas: int) -> None:
        """Change the canary's replica count (re-applying its Deployment)."""
        slot = self.slot_of(Track.CANARY)
        self.calls.append(f"scale_canary {slot}")
        self._put(slot, image, version, release_id, replicas, self.canary_fault)

    def promote(self, image: str, version: str, release_id: str, replicas: int,
                timeout: float) -> Readiness:
        """Scale the canary's slot, and once it is ready make it the primary's.

        A promotion resumed after its switch (the primary already serves this image with
        this spec) finds it done; a canary that cannot grow leaves everything routed as it
        was and the readiness FAILED.
        """
        slot = self.slot_of(Track.CANARY)
        self.calls.append(f"promote {slot}")
        where = f"promote {self.endpoint.namespace}/{self.endpoint.name}"
        digest = str(pinned_image(image, what=where).digest)
        if self._serves(Track.PRIMARY, digest, same_spec=True):
            return self._health(Track.PRIMARY)
        self._put(slot, image, version, release_id, replicas, self.canary_fault)
        failure = self._wait_ready(Track.CANARY, timeout)
        if failure is None and self.grow_fails is not None:
            failure = f"canary failed: {self.grow_fails}"
        if failure is not None:
            return Readiness(RolloutState.FAILED, f"canary could not grow to {replicas} "
                             f"replica(s) for promotion: {failure}")
        self._put(slot, image, version, release_id, replicas, None)  # re-applied as primary
        self.primary_slot = slot
        return self._health(Track.PRIMARY)

    def step_down(self) -> None:
        """The other (empty) slot becomes the primary's: the Services select it."""
        self.calls.append(f"step_down {self.primary_slot}")
        self.primary_slot = self.primary_slot.other

    def remove_canary(self) -> None:
        """Delete the canary's slot Deployment (after a promotion: the previous primary's)."""
        slot = self.slot_of(Track.CANARY)
        self.calls.append(f"remove_canary {slot}")
        self.slots.pop(slot, None)

    def wait_gone(self, track: Track) -> None:
        """Nothing to wait for: a removed Deployment's pods are gone at once here."""
        self.calls.append(f"wait_gone {track}")


# -- the evidence --------------------------------------------------------------------------------

CANARY_STATS = ArmStats(400, 1, 0.0025, 4.0, 9.5, 12.0)
PRIMARY_STATS = ArmStats(400, 0, 0.0, 3.9, 9.0, 11.5)
JUDGED: Mapping[Outcome, tuple[CheckStatus, str]] = {
    Outcome.PASS: (CheckStatus.PASS, "latency within tolerance: canary 4.0 ms vs primary "
                                     "3.9 ms (limit +20%)"),
    Outcome.FAIL: (CheckStatus.FAIL, "latency regression: canary p50 40.0 ms vs primary "
                                     "3.9 ms (limit +20%)"),
    Outcome.INCONCLUSIVE: (CheckStatus.HOLD, "error rate: not yet shown below 1.0% "
                                             "(1 of 400 failed)"),
}
"""Each outcome of the generated load's judge, with its check's status and reason."""
THIN = live.LiveEvidence(live.LiveOutcome.THIN, "live traffic too thin: 3 canary requests")
SKIPPED = agreement.AgreementVerdict(agreement.Outcome.SKIPPED, "no signature outputs to "
                                                                "compare")


def judged(outcome: Outcome, slices: tuple[SliceRow, ...] = ()) -> analysis.Verdict:
    """A generated-load verdict of ``outcome``, as the sequential judge returns one.

    With ``slices``, the verdict carries the ``SLICES`` check and its table too.
    """
    status, reason = JUDGED[outcome]
    checks: tuple[Check, ...] = (
        Check(Metric.LATENCY_REGRESSION, status, 4.0, 3.9, 0.2, 0.5, 0.002, reason),)
    if slices:
        checks += (Check(Metric.SLICES, CheckStatus.PASS, None, None, None, None, None,
                         f"{len(slices)} slices within limits", slices),)
    return analysis.Verdict(outcome, (reason,), CANARY_STATS, PRIMARY_STATS, checks,
                            look=5, looks=5, requests_per_arm=400)


@dataclass(frozen=True)
class Scripted:
    """What one analysed step finds: the generated load's outcome, live traffic, agreement."""

    outcome: Outcome = Outcome.PASS
    live: live.LiveEvidence = THIN
    agreed: agreement.AgreementVerdict = SKIPPED
    lag: str | None = None
    slices: tuple[SliceRow, ...] = ()
    """The generated load's slice table (an endpoint with ``spec.canary.checks.slices``)."""
    shadow: ShadowEvidence | None = None
    """What a shadow step's copies show (None: a pass on 300 copies)."""


SMOKE_PASSED = SmokeResult(True, "/invocations answered 1 prediction")
PASS, FAIL, HOLD = Scripted(Outcome.PASS), Scripted(Outcome.FAIL), Scripted(Outcome.INCONCLUSIVE)


@dataclass(frozen=True)
class Analysed:
    """One call of ``FakeEvidence.analyse``: how long it was asked to hold, for which release."""

    hold: timedelta
    first_release: bool
    variants: tuple[Variant, ...]
    stopped: bool = False
    """Whether ``stop()`` said True after its (one) look."""


BAKED = live.LiveEvidence(live.LiveOutcome.PASS, "the new primary's live traffic (pod metrics, "
                          "400 requests): no breach")


@dataclass
class FakeWindow:
    """A bake's window on the new primary (a ``ports.LiveWindow``): the scripted looks."""

    track: Track
    looks: list[live.LiveEvidence]
    seen: list[tuple[int, int]] = field(default_factory=list)
    """Each look's ``(min_requests, looks)``: the policy and the split it was judged with."""

    def look(self, policy: AnalysisPolicy, looks: int) -> live.LiveEvidence:
        """The next scripted look; past the script, no breach."""
        self.seen.append((policy.min_requests, looks))
        index = len(self.seen) - 1
        return self.looks[index] if index < len(self.looks) else BAKED


class FakeEvidence:
    """Scripted evidence (a ``ports.Evidence``): smoke, then one ``Scripted`` per step.

    Steps beyond the script pass. ``via`` is None until a check has reached the pods.
    ``bake``: what a bake's looks find, in order (past it: no breach); ``windows`` holds
    each bake's window.
    """

    def __init__(self, steps: Sequence[Scripted] = (), *,
                 smoke: SmokeResult = SMOKE_PASSED,
                 bake: Sequence[live.LiveEvidence] = ()) -> None:
        self.bake = list(bake)
        self.windows: list[FakeWindow] = []
        self.script = list(steps)
        self.smoke_result = smoke
        self.smoked = 0
        self.analysed: list[Analysed] = []
        self.agreements: list[str] = []
        self.copies: list[FakeCopies] = []
        self._via: str | None = None

    @property
    def via(self) -> str | None:
        """How the checks reached the pods, once they have."""
        return self._via

    def smoke(self, files: ModelFiles) -> SmokeResult:
        """The scripted smoke result."""
        self.smoked += 1
        self._via = "fake service"
        return self.smoke_result

    def _current(self) -> Scripted:
        index = len(self.analysed) - 1
        return self.script[index] if index < len(self.script) else PASS

    def analyse(self, hold: timedelta, files: ModelFiles, first_release: bool,
                variants: tuple[Variant, ...], stop: Callable[[], bool] = lambda: False,
                ) -> tuple[analysis.Verdict, live.LiveEvidence, str | None]:
        """The next scripted step's generated-load verdict and live evidence (no waiting)."""
        self.analysed.append(Analysed(hold, first_release, variants, stop()))
        self._via = "fake service"
        step = self._current()
        return judged(step.outcome, step.slices), step.live, step.lag

    def agreement(self, version: ModelVersion, files: ModelFiles,
                  first_release: bool) -> agreement.AgreementVerdict:
        """The current scripted step's agreement."""
        self.agreements.append(version.version)
        return self._current().agreed

    def watch(self, track: Track) -> FakeWindow:
        """A window whose looks are ``bake``'s (one script shared by every bake)."""
        self.windows.append(FakeWindow(track, self.bake))
        return self.windows[-1]

    def shadow(self, percent: int, hold: timedelta) -> FakeCopies:
        """Copies for the step about to be analysed: its script's ``shadow``."""
        self.copies.append(FakeCopies(self, percent, hold))
        return self.copies[-1]


@dataclass
class FakeCopies:
    """A shadow step's copies (a ``ports.ShadowWindow``): the current step's scripted ones."""

    evidence: FakeEvidence
    percent: int
    hold: timedelta
    closed: bool = False
    waited: bool = False
    """Whether the step asked to wait out its hold (it had not failed already)."""

    def close(self, wait: bool, stop: Callable[[], bool]) -> ShadowEvidence:
        """The scripted evidence of the step being analysed (no waiting: ``waited`` says)."""
        self.closed, self.waited = True, wait
        found = self.evidence._current().shadow
        return found or ShadowEvidence(live.LiveOutcome.PASS, "shadow on 300 copies of live "
                                       "requests: within the checks", 300, self.percent)


# -- MLflow and the registry -----------------------------------------------------------------------

OUTPUTS = json.dumps([{"type": "long"}])
EXAMPLE = {"dataframe_split": {"columns": ["sepal length (cm)", "sepal width (cm)",
                                           "petal length (cm)", "petal width (cm)"],
                               "data": [[5.1, 3.5, 1.4, 0.2]]}}


@dataclass(frozen=True)
class Tagged:
    """One ``tag`` call MLflow accepted."""

    version: str
    tags: Mapping[str, str]
    alias: str | None


@dataclass
class FakeModels:
    """Registered versions of one model, their files, tags and aliases (a ``ModelRegistry``)."""

    name: str = "iris-clf"
    versions: Sequence[str] = ("1", "2", "3", "4")
    without_example: frozenset[str] = frozenset()
    down: bool = False
    """MLflow unreachable: every call raises ``MlflowError(retriable=True)``."""
    tag_failures: int = 0
    """How many of the next ``tag`` calls fail as if MLflow were down."""
    tagged: list[Tagged] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)
    """Alias to version."""

    def version(self, version: str) -> ModelVersion:
        """The registered ``version`` (for a test to release)."""
        if version not in self.versions:
            raise ModelNotFound(f"resolve model {self.name} version {version}: no such version")
        return ModelVersion(self.name, version, f"models:/m-{version}", f"run-{version}",
                            datetime(2026, 1, int(version), tzinfo=UTC))

    def tags(self, version: str) -> dict[str, str]:
        """Every tag set on ``version`` so far (later values win)."""
        out: dict[str, str] = {}
        for call in self.tagged:
            if call.version == version:
                out |= call.tags
        return out

    def _reach(self, what: str) -> None:
        if self.down:
            raise MlflowError(f"{what}: MLflow unreachable: connection refused", retriable=True)

    def resolve(self, uri: ModelUri) -> ModelVersion:
        """The version ``uri`` names: by number or alias (stages are not modelled)."""
        self._reach(f"resolve {uri}")
        if uri.alias is not None:
            if uri.alias not in self.aliases:
                raise ModelNotFound(f"resolve {uri}: model {self.name} has no alias "
                                    f"{uri.alias}")
            return self.version(self.aliases[uri.alias])
        if uri.version is None:
            raise ModelNotFound(f"resolve {uri}: stages are not modelled by the fake")
        return self.version(uri.version)

    def files(self, version: ModelVersion) -> ModelFiles:
        """The version's signature and input example (none for ``without_example``)."""
        self._reach(f"download model {version.uri}")
        if version.version in self.without_example:
            return ModelFiles(outputs=OUTPUTS, serving_example=None, rows=0)
        return ModelFiles(outputs=OUTPUTS, serving_example=EXAMPLE, rows=1)

    def tag(self, version: ModelVersion, tags: Mapping[str, str],
            alias: str | None = None) -> None:
        """Tag the version (and move ``alias`` to it)."""
        self._reach(f"tag model {version.uri}")
        if self.tag_failures > 0:
            self.tag_failures -= 1
            raise MlflowError(f"tag model {version.uri}: MLflow unreachable: connection "
                              "reset", retriable=True)
        self.tagged.append(Tagged(version.version, dict(tags), alias))
        if alias is not None:
            self.aliases[alias] = version.version


class FakeImages:
    """One image per version, "built" the first time it is asked for (an ``ImageStore``)."""

    def __init__(self, repository: str = REPOSITORY) -> None:
        self.repository = repository
        self.built: list[str] = []

    def image_for(self, version: ModelVersion) -> Image:
        """``image_of(version)``, re-used from the second time on."""
        image = image_of(version.version, self.repository)
        reused = version.version in self.built
        self.built.append(version.version)
        return replace(image, reused=reused, seconds=0.0 if reused else 1.5,
                       bytes_uploaded=0 if reused else 4096)


@dataclass
class FakeApprovals:
    """Approvers who answer from a script, in order (an ``Approvals``).

    Each answer is given at once; ``None`` in the script is nobody answering in time.
    A release stopped meanwhile (``stopped()`` names someone) ends the wait as the real
    one does. ``asked`` keeps every question.
    """

    script: list[Answer | None] = field(default_factory=list)
    asked: list[Question] = field(default_factory=list)

    def ask(self, question: Question, stopped: Callable[[], str | None]) -> Answer:
        """The next scripted answer, unless the release was stopped."""
        self.asked.append(question)
        who = stopped()
        if who is not None:
            return Answer(None, stopped_by=who)
        answer = self.script.pop(0) if self.script else None
        return answer or Answer(None)


def as_the_api_server_holds(route: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of an HTTPRoute with the defaults the API server fills in: each rule's match
    (path prefix ``/``), a header match's type, each backend's group, kind and weight."""
    held: dict[str, Any] = json.loads(json.dumps(route))
    for rule in held["spec"]["rules"]:
        rule.setdefault("matches", [{"path": {"type": "PathPrefix", "value": "/"}}])
        for match in rule["matches"]:
            for header in match.get("headers", ()):
                header.setdefault("type", "Exact")
        for ref in rule["backendRefs"]:
            ref.setdefault("group", "")
            ref.setdefault("kind", "Service")
            ref.setdefault("weight", 1)
    return held


class FakeRoutes:
    """``KubeEndpoint``'s ``read_route`` / ``apply_route``: the endpoint's HTTPRoute as the
    API server holds it (``as_the_api_server_holds``).

    ``tamper`` changes the held route on the first read (someone else's edit mid-release);
    ``applied`` keeps the split of each applied route: the canary's weight, 0 when the
    canary is not a backend.
    """

    def __init__(self, tamper: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.route: dict[str, Any] | None = None
        self.applied: list[int] = []
        self.tamper = tamper

    def read_route(self) -> dict[str, Any] | None:
        if self.tamper is not None and self.route is not None:
            self.tamper(self.route)
            self.tamper = None
        return json.loads(json.dumps(self.route)) if self.route is not None else None

    def apply_route(self, route: Mapping[str, Any]) -> None:
        held = as_the_api_server_holds(route)
        self.route = held
        split = held["spec"]["rules"][-1]["backendRefs"]
        self.applied.append(sum(ref["weight"] for ref in split
                                if ref["name"].endswith("-canary")))


def ports_of(endpoint: ModelEndpoint, cluster: FakeCluster, models: FakeModels,
             images: FakeImages, evidence: FakeEvidence,
             approvals: FakeApprovals | None = None, routes: FakeRoutes | None = None
             ) -> Ports:
    """The fakes as a release's ports, with a real router as its traffic.

    ``ReplicaRatioRouter`` over the ``FakeCluster``, or the ``GatewayRouter`` over it and
    ``routes`` for an endpoint with ``traffic.router: gateway-api``.
    """

    def router(image: str, version: str, release_id: str, first: bool) -> Traffic:
        if endpoint.spec.traffic.router is Router.GATEWAY_API:
            assert routes is not None, "a gateway-api endpoint's world needs FakeRoutes"
            return GatewayRouter(cluster, routes, endpoint, image, version, release_id, first)
        return ReplicaRatioRouter(cluster, endpoint, image, version, release_id, first)

    return Ports(cluster, models, images, evidence, router, approvals)
