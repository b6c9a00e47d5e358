"""The small interfaces a release works through: what it needs of the world, nothing more.

The adapters implement them (``release.kube_endpoint.KubeEndpoint``,
``release.pod_evidence.PodEvidence``, ``release.models.ReleaseModels``,
``release.images.RegistryImages``, ``release.traffic.ReplicaRatioRouter``); the fast
tier's in-memory fakes implement them too (``tests/fakes.py``), and one contract test per
interface runs against both, so a fake cannot drift from the real adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from modelrelease.adapters.loadgen import Variant
from modelrelease.adapters.model_files import ModelFiles
from modelrelease.domain import agreement, analysis, live
from modelrelease.domain.approval import Answer, Question
from modelrelease.domain.manifests import Track
from modelrelease.domain.model import ModelUri, ModelVersion
from modelrelease.domain.readiness import Readiness
from modelrelease.domain.shadow import ShadowEvidence
from modelrelease.domain.smoke import SmokeResult
from modelrelease.spec import Condition, ModelEndpointStatus

T = TypeVar("T")
Call = Callable[[str, Callable[[], Any]], Any]
"""How a release runs one outside call: ``call(name, fn)`` (the flow makes it a task run)."""


def direct(name: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` as it is (the CLI's way; the flow wraps each call in a Prefect task)."""
    return fn()


class Cluster(Protocol):
    """One endpoint's objects in Kubernetes: its record, its two slots and its lock."""

    def read_status(self) -> ModelEndpointStatus | None:
        """The ModelEndpoint's status, or None when it has none yet."""
        ...

    def write_status(self, status: ModelEndpointStatus) -> None:
        """Replace the recorded status."""
        ...

    def write_conditions(self, conditions: list[Condition]) -> None:
        """Replace the status's conditions alone."""
        ...

    def request_abort(self, release_id: str, by: str) -> None:
        """Ask the release ``release_id`` to stop (``modelrelease abort``)."""
        ...

    def abort_requested(self, release_id: str) -> str | None:
        """Who asked the release ``release_id`` to stop, or None."""
        ...

    def ensure_record(self) -> None:
        """Apply the ModelEndpoint resource (its spec)."""
        ...

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        """An event on the ModelEndpoint."""
        ...

    def check_permissions(self) -> None:
        """Refuse (``KubeApiError`` 403) an identity that lacks what a release does."""
        ...

    def lock(self, holder: str, ttl_seconds: int, wait_seconds: float
             ) -> AbstractContextManager[bool]:
        """Hold the endpoint's lock while inside; yields False if another holder has it."""
        ...

    def has_primary(self) -> bool:
        """Whether the endpoint has a primary Deployment."""
        ...

    def health(self, track: Track) -> Readiness:
        """A track's rollout: ready, progressing, or failed with the reason."""
        ...

    def wait_ready(self, track: Track, timeout: float) -> str | None:
        """Wait for a track to be ready; why not, if it fails or times out."""
        ...

    def primary_replicas(self) -> int:
        """Replicas the primary runs now (0 when there is none)."""
        ...

    def canary_replicas(self) -> int:
        """Replicas the canary's slot runs now (after a promotion: the previous primary's)."""
        ...

    def serves(self, track: Track, digest: str, same_spec: bool = False) -> bool:
        """Whether a track runs the image ``digest`` (and this endpoint's spec)."""
        ...

    def deploy_canary(self, image: str, version: str, release_id: str, replicas: int,
                      live: bool = True) -> None:
        """Create (or re-apply) the canary beside the primary, and the Services.

        ``live``: whether the endpoint's Service sends it users (not for a shadow step).
        """
        ...

    def route_live(self, canary: bool) -> None:
        """The endpoint's Service selects the canary's pods too (``canary``), or not."""
        ...

    def scale_canary(self, image: str, version: str, release_id: str, replicas: int) -> None:
        """Change the canary's replica count."""
        ...

    def promote(self, image: str, version: str, release_id: str, replicas: int,
                timeout: float) -> Readiness:
        """Make the canary (serving ``image``) the primary; the new primary's readiness."""
        ...

    def step_down(self) -> None:
        """The primary's slot stops being the primary; ``remove_canary`` then removes it."""
        ...

    def remove_canary(self) -> None:
        """Delete the canary's Deployment (after a promotion: the previous primary's)."""
        ...

    def wait_gone(self, track: Track) -> None:
        """Wait until a track has neither pods nor a Deployment left."""
        ...


class Traffic(Protocol):
    """How much live traffic the canary gets (``TrafficRouter``).

    ``shadow``: a shadow step's share of live requests copied to the canary, which then
    gets no users (weight 0) but the replicas to answer the copies.
    """

    name: str
    """What splits the traffic, for the report (``replica ratio``)."""

    def canary_replicas_for(self, weight: int, shadow: int = 0) -> tuple[int, float]:
        """Canary replicas for ``weight`` percent (or copies), and the percent they give."""
        ...

    def set_weight(self, weight: int, shadow: int = 0) -> tuple[int, float]:
        """Give the canary ``weight`` percent: its replicas and the percent it really gets."""
        ...

    def live_through_service(self) -> bool:
        """Whether ``Service E`` sends the canary users (the replica ratio).

        Not where a gateway's route does.
        """
        ...

    def changed_by_others(self) -> str | None:
        """Why the split is no longer what the release set (someone else changed it).

        None if it is; asked after each step's hold, before its verdict counts.
        """
        ...

    def primary_alone(self) -> None:
        """Send all live traffic to the primary (after a promotion, before a rollback)."""
        ...


class Routes(Protocol):
    """The endpoint's ``HTTPRoute`` (the ``gateway-api`` router's object)."""

    def read_route(self) -> dict[str, Any] | None:
        """The route as the API server holds it, or None."""
        ...

    def apply_route(self, route: Mapping[str, Any]) -> None:
        """Create or update the route (server-side apply)."""
        ...


class LiveWindow(Protocol):
    """One track's live traffic from the moment the window was opened (``Evidence.watch``)."""

    def look(self, policy: analysis.AnalysisPolicy, looks: int) -> live.LiveEvidence:
        """What real users sent the track since then, judged against the SLOs alone.

        As ``domain.bake.judge_bake`` judges it; ``looks``: how many looks share ``alpha``.
        """
        ...


class ShadowWindow(Protocol):
    """A shadow step's copies of live requests, under way (``Evidence.shadow``)."""

    def close(self, wait: bool, stop: Callable[[], bool]) -> ShadowEvidence:
        """Stop the copies and judge what they showed (``domain.shadow.judge_shadow``).

        ``wait``: first let them run to the end of the step's hold, unless ``stop()`` says
        True (an abort).
        """
        ...


class Evidence(Protocol):
    """What the judge is fed: smoke answers, generated load, live traffic, agreement."""

    @property
    def via(self) -> str | None:
        """How the checks reached the pods, once they have (for the report)."""
        ...

    def smoke(self, files: ModelFiles) -> SmokeResult:
        """``/ping``, then ``/invocations`` with the model's input example, on the canary."""
        ...

    def analyse(self, hold: timedelta, files: ModelFiles, first_release: bool,
                variants: tuple[Variant, ...], stop: Callable[[], bool] = lambda: False,
                ) -> tuple[analysis.Verdict, live.LiveEvidence, str | None]:
        """Generated load's verdict, live traffic's evidence, and why the load lagged.

        ``stop()`` is asked after each look: True ends the hold there (an abort).
        """
        ...

    def agreement(self, version: ModelVersion, files: ModelFiles,
                  first_release: bool) -> agreement.AgreementVerdict:
        """The same inputs to both tracks, their answers compared."""
        ...

    def watch(self, track: Track) -> LiveWindow:
        """Start counting what real users send ``track``'s pods (a bake's window)."""
        ...

    def shadow(self, percent: int, hold: timedelta) -> ShadowWindow:
        """Tell the primary's pods to copy ``percent`` of live requests to the canary."""
        ...


class ModelRegistry(Protocol):
    """Registered model versions: resolved, read, tagged (MLflow)."""

    def resolve(self, uri: ModelUri) -> ModelVersion:
        """The version ``uri`` names (a version, alias or stage)."""
        ...

    def files(self, version: ModelVersion) -> ModelFiles:
        """The version's signature and input example."""
        ...

    def tag(self, version: ModelVersion, tags: Mapping[str, str],
            alias: str | None = None) -> None:
        """Tag the version (and move ``alias`` to it); ``MlflowError`` when that fails."""
        ...


@dataclass(frozen=True)
class Image:
    """An image a release deploys, pinned by digest, and how it came to be."""

    image: str
    digest: str
    reused: bool
    seconds: float = 0.0
    bytes_uploaded: int = 0


class ImageStore(Protocol):
    """Where a version's serving image comes from (built and pushed, or already there)."""

    def image_for(self, version: ModelVersion) -> Image:
        """The version's image, built and pushed when it is not there yet."""
        ...


class Approvals(Protocol):
    """Asks a person to approve a canary step (the flow: a paused Prefect flow run)."""

    def ask(self, question: Question, stopped: Callable[[], str | None]) -> Answer:
        """Wait for the answer, at most ``question.timeout`` (then a ``None`` decision).

        ``stopped`` says who stopped the release meanwhile (an abort), if anyone: the
        wait ends at once with that in ``Answer.stopped_by``.
        """
        ...


@dataclass(frozen=True)
class Ports:
    """Everything a release touches, behind the interfaces above."""

    cluster: Cluster
    models: ModelRegistry
    images: ImageStore
    evidence: Evidence
    traffic: Callable[[str, str, str, bool], Traffic]
    """The router for ``(image, version, release_id, first_release)``."""
    approvals: Approvals | None = None
    """Who answers approval gates; None where nobody can (the CLI refuses such endpoints)."""
