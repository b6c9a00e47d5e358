"""``KubeEndpoint``: one endpoint's objects in Kubernetes, the ``Cluster`` of a release.

Its record (the ModelEndpoint resource and status), its two slots (``E-blue`` and
``E-green``, which track each holds read from ``Service E-primary``), the Services, the
primary's autoscaler and disruption budget, its Lease and the permission preflight.
Objects come from ``domain.manifests``; readiness is judged by ``domain.readiness``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

from modelrelease.adapters.kube import KubeCluster
from modelrelease.domain.abort import ANNOTATION_ABORT, abort_request, asked_by
from modelrelease.domain.fault import FaultSetting
from modelrelease.domain.gateway import API_VERSION as ROUTE_API
from modelrelease.domain.gateway import KIND as ROUTE_KIND
from modelrelease.domain.gateway import route_name
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
    render_primary_extras,
    render_release,
    render_services,
    service_name,
    shadow_token_of,
    slots_of,
)
from modelrelease.domain.readiness import Readiness, RolloutState, assess
from modelrelease.errors import InvalidInput, KubeApiError
from modelrelease.spec import Condition, ModelEndpoint, ModelEndpointStatus, spec_hash

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
SHADOW_NEEDS: tuple[tuple[str, str, str], ...] = (
    *((verb, "", "pods/proxy") for verb in ("get", "update", "delete")),
)
"""What a release with shadow steps does beside: tell each primary pod to copy, and read."""


def endpoint_status(cluster: KubeCluster, endpoint: ModelEndpoint) -> ModelEndpointStatus | None:
    """The status of ``endpoint``'s ModelEndpoint in the cluster, or None when it has none."""
    found = cluster.get(CR_API, CR_KIND, endpoint.name, endpoint.namespace)
    if not found or not found.get("status"):
        return None
    return ModelEndpointStatus.model_validate(found["status"])


def endpoint_statuses(cluster: KubeCluster, namespace: str | None = None
                      ) -> list[tuple[str, str, ModelEndpointStatus | None]]:
    """``(namespace, name, status)`` of every ModelEndpoint (in ``namespace``, or in all)."""
    found = []
    for item in cluster.list_objects(CR_API, CR_KIND, namespace):
        meta = item.get("metadata") or {}
        status = item.get("status")
        found.append((str(meta.get("namespace")), str(meta.get("name")),
                      ModelEndpointStatus.model_validate(status) if status else None))
    return sorted(found, key=lambda entry: (entry[0], entry[1]))


def require_namespace(cluster: KubeCluster, endpoint: ModelEndpoint) -> None:
    """Refuse an endpoint whose namespace does not exist (the release creates none).

    Raises:
        InvalidInput: the namespace is missing, with the fix.
    """
    if not cluster.namespace_exists(endpoint.namespace):
        raise InvalidInput(f"release endpoint {endpoint.namespace}/{endpoint.name}: namespace "
                           f"{endpoint.namespace} does not exist; create it (kubectl create "
                           f"namespace {endpoint.namespace}) or fix metadata.namespace")


class KubeEndpoint:
    """One endpoint's record, slots, Services and lock in a cluster (a ``ports.Cluster``)."""

    def __init__(self, endpoint: ModelEndpoint, cluster: KubeCluster,
                 canary_fault: FaultSetting | None = None) -> None:
        self.endpoint = endpoint
        self.cluster = cluster
        self.namespace = endpoint.namespace
        self.canary_fault = canary_fault
        """A rollback drill's fault, injected into the canary Deployment only."""

    # -- the record ---------------------------------------------------------------------

    def read_status(self) -> ModelEndpointStatus | None:
        """The ModelEndpoint's status, or None when it has none yet."""
        return endpoint_status(self.cluster, self.endpoint)

    def ensure_record(self) -> None:
        """Apply the ModelEndpoint custom resource (its spec; the status is ours)."""
        self.cluster.apply(render_endpoint_resource(self.endpoint))

    def request_abort(self, release_id: str, by: str) -> None:
        """Ask the release ``release_id`` to stop: annotation ``modelrelease.io/abort``."""
        self.cluster.merge_patch(CR_API, CR_KIND, self.endpoint.name, self.namespace, {
            "metadata": {"annotations": {ANNOTATION_ABORT: abort_request(release_id, by)}}})

    def abort_requested(self, release_id: str) -> str | None:
        """Who asked the release ``release_id`` to stop, or None."""
        found = self.cluster.get(CR_API, CR_KIND, self.endpoint.name, self.namespace) or {}
        annotations = (found.get("metadata") or {}).get("annotations") or {}
        return asked_by(annotations.get(ANNOTATION_ABORT), release_id)

    def write_status(self, status: ModelEndpointStatus) -> None:
        """Replace the recorded status."""
        # A merge patch keeps keys it does not mention: send nulls so cleared fields go.
        body = status.model_dump(mode="json", by_alias=True)
        self.cluster.patch_status(CR_API, CR_KIND, self.endpoint.name, self.namespace, body)

    def write_conditions(self, conditions: list[Condition]) -> None:
        """Replace the status's conditions alone (the merge patch leaves the rest as it is)."""
        body = {"conditions": [c.model_dump(mode="json", by_alias=True) for c in conditions]}
        self.cluster.patch_status(CR_API, CR_KIND, self.endpoint.name, self.namespace, body)

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        """A Kubernetes Event on the ModelEndpoint."""
        found = self.cluster.get(CR_API, CR_KIND, self.endpoint.name, self.namespace)
        if found:
            self.cluster.event(found, reason, message, warning)

    def check_permissions(self) -> None:
        """Refuse, before anything changes, an identity that lacks what a release does.

        Raises:
            KubeApiError: a permission in ``NEEDS`` is missing (403), with the fix.
        """
        shadow = any(step.shadow for step in self.endpoint.spec.canary.steps)
        missing = self.cluster.denied(self.namespace, (*NEEDS, *(SHADOW_NEEDS if shadow else ())))
        if missing:
            raise KubeApiError(
                f"release endpoint {self.namespace}/{self.endpoint.name}: forbidden: User "
                f"\"{self.cluster.identity()}\" may not {', '.join(missing)} in namespace "
                f"{self.namespace}; grant "
                "it in the pipeline's Role (deployments/kubernetes/rbac.yaml) or release as "
                "an identity that has it", status=403)

    def lock(self, holder: str, ttl_seconds: int, wait_seconds: float
             ) -> AbstractContextManager[bool]:
        """Hold the Lease ``modelrelease-E`` while inside; yields False if another has it."""
        return self.cluster.lease(self.namespace, f"modelrelease-{self.endpoint.name}", holder,
                                  ttl_seconds=ttl_seconds, wait_seconds=wait_seconds)

    # -- the slots ----------------------------------------------------------------------

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

    def has_primary(self) -> bool:
        """Whether the primary's slot has a Deployment."""
        return self.deployment(Track.PRIMARY) is not None

    def pod_selector(self, track: Track) -> str:
        """The label selector of a track's pods now."""
        return label_selector(self.endpoint, self.slots().of(track))

    def health(self, track: Track, slots: Slots | None = None) -> Readiness:
        """A track's rollout: ready, progressing, or failed with the reason."""
        slots = slots or self.slots()
        deployment = self.deployment(track, slots)
        if deployment is None:
            return Readiness(RolloutState.PROGRESSING, f"{track} deployment not created yet")
        pods = self.cluster.pods(self.namespace,
                                 label_selector(self.endpoint, slots.of(track)))
        return assess(deployment, pods)

    def wait_ready(self, track: Track, timeout: float, slots: Slots | None = None
                   ) -> str | None:
        """Wait for a track to be ready; the failure reason if it fails or times out.

        The slots are read once (the track's slot does not move while we wait on it).
        """
        slots = slots or self.slots()
        deadline = time.monotonic() + timeout
        while True:
            readiness = self.health(track, slots)
            if readiness.state == RolloutState.READY:
                return None
            if readiness.state == RolloutState.FAILED:
                return f"{track} failed: {readiness.reason}"
            if time.monotonic() > deadline:
                return f"{track} not ready after {timeout:.0f}s: {readiness.reason}"
            time.sleep(0.5)

    def primary_replicas(self) -> int:
        """Replicas the primary runs now (0 when there is none)."""
        return self._replicas(Track.PRIMARY)

    def canary_replicas(self) -> int:
        """Replicas the canary's slot runs now (0 when it has none)."""
        return self._replicas(Track.CANARY)

    def _replicas(self, track: Track) -> int:
        found = self.deployment(track)
        if found is None or (found.get("metadata") or {}).get("deletionTimestamp"):
            return 0
        return int((found.get("spec") or {}).get("replicas") or 0)

    def serves(self, track: Track, digest: str, same_spec: bool = False,
               slots: Slots | None = None) -> bool:
        """Whether a track's Deployment runs the image ``digest`` (and this endpoint spec).

        A Deployment being deleted (its pods draining) serves nothing any more.
        """
        found = self.deployment(track, slots) or {}
        if (found.get("metadata") or {}).get("deletionTimestamp"):
            return False
        template = ((found.get("spec") or {}).get("template") or {}).get("metadata") or {}
        applied = (found.get("metadata") or {}).get("annotations") or {}
        return ((template.get("annotations") or {}).get(ANNOTATION_IMAGE_DIGEST) == digest
                and (not same_spec
                     or applied.get(ANNOTATION_SPEC_HASH) == spec_hash(self.endpoint)))

    def _apply(self, track: Track, image: str, version: str, release_id: str,
               replicas: int, slots: Slots, live: bool | None = None) -> None:
        """Apply a track's Deployment in its slot, and the Services (primary: HPA and PDB too).

        A Deployment of that slot still being deleted (an earlier release's) is waited out
        first: applying to it would only update an object about to vanish.
        """
        self._wait_deleted(slots.of(track))
        for obj in render_release(self.endpoint, image=image, model_version=version,
                                  release_id=release_id, track=track, slots=slots,
                                  replicas=replicas,
                                  fault=self.canary_fault if track is Track.CANARY else None,
                                  shadow_token=self.shadow_token(track, slots),
                                  canary_live=live):
            self.cluster.apply(obj)

    def shadow_token(self, track: Track, slots: Slots | None = None) -> str:
        """The token of a track's pods' shadow control: the one its Deployment has, or new.

        Kept for the Deployment's life, so re-applying it (scaling, promotion) restarts no
        pod; a new Deployment gets a new random one.
        """
        return shadow_token_of(self.deployment(track, slots)) or secrets.token_hex(16)

    def route_live(self, canary: bool) -> None:
        """``Service E`` selects the canary's slot too (``canary``), or the primary's alone.

        A shadow step takes the canary out of live traffic; the next weighted step puts it
        back. Changing a Service's selector restarts no pod.
        """
        services = render_services(self.endpoint, self.slots(), canary_live=canary)
        self.cluster.apply(services[0])

    def read_route(self) -> dict[str, Any] | None:
        """``HTTPRoute E`` as the API server holds it (the ``gateway-api`` router's), or None."""
        return self.cluster.get(ROUTE_API, ROUTE_KIND, route_name(self.endpoint), self.namespace)

    def apply_route(self, route: Mapping[str, Any]) -> None:
        """Create or update ``HTTPRoute E`` (server-side apply)."""
        self.cluster.apply(route)

    def _wait_deleted(self, slot: Slot, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            existing = self.cluster.get("apps/v1", "Deployment",
                                        deployment_name(self.endpoint, slot), self.namespace)
            if not existing or not existing.get("metadata", {}).get("deletionTimestamp"):
                return
            time.sleep(0.5)

    def deploy_canary(self, image: str, version: str, release_id: str, replicas: int,
                      live: bool = True) -> None:
        """Apply the canary's Deployment in the slot the primary is not in, and the Services.

        ``live``: whether ``Service E`` sends it users (not while a shadow step starts).
        """
        self._apply(Track.CANARY, image, version, release_id, replicas, self.slots(), live)

    def scale_canary(self, image: str, version: str, release_id: str, replicas: int,
                     slots: Slots | None = None) -> None:
        """Change the canary's replica count (the traffic weight, by replica ratio)."""
        slots = slots or self.slots()
        self.cluster.apply(render_deployment(
            self.endpoint, image=image, model_version=version, release_id=release_id,
            slot=slots.canary, track=Track.CANARY, replicas=replicas,
            fault=self.canary_fault, shadow_token=self.shadow_token(Track.CANARY, slots)))

    def promote(self, image: str, version: str, release_id: str, replicas: int,
                timeout: float) -> Readiness:
        """Make the canary's slot the primary, with no second rollout of the model.

        The canary's Deployment is scaled to ``replicas`` (pods it already runs keep
        serving), or to the primary's count if its autoscaler raised it meanwhile, and
        once all are ready the Services ``E-primary`` / ``E-canary``, the
        autoscaler and the disruption budget switch slots: the verified pods are the
        primary. Until then nothing routes differently, so a canary that cannot grow
        leaves the primary as it was. A promotion resumed after its switch (the primary
        already serves this image with this spec) finds it done.

        Returns:
            The new primary's readiness; FAILED (nothing switched) when the canary's slot
            is not ready within ``timeout`` seconds.
        """
        digest = pinned_image(image, what=f"promote {self.namespace}/{self.endpoint.name}")
        slots = self.slots()
        if self.serves(Track.PRIMARY, str(digest.digest), same_spec=True, slots=slots):
            return self.health(Track.PRIMARY, slots)  # switched before a restart: done
        deadline = time.monotonic() + timeout
        while True:
            self.scale_canary(image, version, release_id, replicas, slots)
            failure = self.wait_ready(Track.CANARY, max(0.0, deadline - time.monotonic()),
                                      slots)
            if failure is not None:
                return Readiness(RolloutState.FAILED, f"canary could not grow to {replicas} "
                                 f"replica(s) for promotion: {failure}")
            # the primary's autoscaler may have scaled it up while the canary grew: the
            # new primary starts at the count it chose, never fewer
            scaled = self._replicas(Track.PRIMARY)
            if scaled <= replicas:
                break
            replicas = scaled
        switched = Slots(slots.canary)
        self._apply(Track.PRIMARY, image, version, release_id, replicas, switched)
        return self.health(Track.PRIMARY, switched)

    def step_down(self) -> None:
        """The Services, autoscaler and disruption budget select the other (empty) slot.

        Used to undo a first release whose promotion had switched: the endpoint had no
        primary before it, so the undone version's slot becomes the canary's, and
        ``remove_canary`` deletes it.
        """
        slots = Slots(self.slots().canary)
        for obj in (*render_services(self.endpoint, slots, canary_live=False),
                    *render_primary_extras(self.endpoint, slots)):
            self.cluster.apply(obj)

    def remove_canary(self) -> None:
        """Delete the canary's slot Deployment (its pods drain through their preStop hook).

        After a promotion that is the previous primary's slot.
        """
        self.cluster.delete("apps/v1", "Deployment",
                            deployment_name(self.endpoint, self.slots().canary), self.namespace)

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
