"""Every Kubernetes object a release applies for endpoint ``E`` in namespace ``N``, as dicts.

Pure functions of the validated :class:`~modelrelease.spec.ModelEndpoint` and a few
release facts (pinned image, model version, release id): the same input gives the same
objects, byte for byte, with no clock and no randomness.

- Two slots, ``Deployment E-blue`` and ``E-green``, pods labelled
  ``modelrelease.io/slot=blue|green`` and ``app.kubernetes.io/name=E``. One slot holds the
  primary, the other the canary; promotion does not roll the primary to the canary's
  image but makes the verified canary's slot the primary (its pods keep serving), and
  removes the other. The Deployment's own ``track=primary|canary`` label says which it
  is now (changing it restarts no pod: pod templates never carry the track). Hardened
  pods (non-root 1000:1000, read-only root filesystem, no capabilities, seccomp
  RuntimeDefault, no service-account token); images only by digest; readiness and
  liveness ``GET /ping`` on the ``http`` port (8080).
- ``Service E`` selects both slots (live traffic follows ready replicas, see
  :mod:`modelrelease.domain.traffic`); ``Service E-primary`` / ``E-canary`` the slot of
  each track (what the checks probe). Their selectors are what promotion switches; their
  names never change.
- ``HorizontalPodAutoscaler E-primary`` (autoscaling/v2, scaling the primary's slot) and
  ``PodDisruptionBudget E-primary`` (its pods).
- The ``ModelEndpoint`` custom resource itself, and the CustomResourceDefinition whose
  ``openAPIV3Schema`` is generated from the pydantic models (:func:`render_crd`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from modelrelease.domain.fault import ENV as FAULT_ENV
from modelrelease.domain.fault import FaultSetting
from modelrelease.domain.live import SLICE_COLUMN_ENV, SLICE_HEADER_ENV
from modelrelease.domain.reference import ImageRef
from modelrelease.domain.shadow import TARGET_ENV as SHADOW_TARGET_ENV
from modelrelease.domain.shadow import TOKEN_ENV as SHADOW_TOKEN_ENV
from modelrelease.errors import InvalidInput
from modelrelease.spec import (
    GROUP,
    KIND,
    VERSION,
    ModelEndpoint,
    endpoint_document,
    spec_hash,
)

__all__ = [
    "ANNOTATION_IMAGE_DIGEST",
    "ANNOTATION_MODEL",
    "ANNOTATION_MODEL_VERSION",
    "ANNOTATION_RELEASE_ID",
    "ANNOTATION_SPEC_HASH",
    "CONTAINER_NAME",
    "FIELD_MANAGER",
    "LABEL_COMPONENT",
    "LABEL_INSTANCE",
    "LABEL_MANAGED_BY",
    "LABEL_NAME",
    "LABEL_SLOT",
    "LABEL_TRACK",
    "LABEL_VERSION",
    "MANAGED_BY",
    "PLURAL",
    "PORT_NAME",
    "SERVICE_PORT",
    "SERVING_PORT",
    "Slot",
    "Slots",
    "Track",
    "crd_name",
    "deployment_name",
    "label_selector",
    "label_value",
    "pinned_image",
    "render_crd",
    "render_deployment",
    "render_endpoint_resource",
    "render_primary_extras",
    "render_release",
    "render_services",
    "selector",
    "service_name",
    "shadow_target",
    "shadow_token_of",
    "slots_of",
    "structural_schema",
]

FIELD_MANAGER: Final = "modelrelease"
"""Server-side apply field manager of every object here."""
MANAGED_BY: Final = "modelrelease"
PLURAL: Final = "modelendpoints"

LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_INSTANCE: Final = "app.kubernetes.io/instance"
LABEL_VERSION: Final = "app.kubernetes.io/version"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_TRACK: Final = "track"
LABEL_SLOT: Final = f"{GROUP}/slot"
PRE_STOP_SLEEP_S: Final = 2
# The common scrape convention on pods, so a standard Prometheus finds their /metrics.
SCRAPE: Final = {"prometheus.io/scrape": "true", "prometheus.io/port": "8080",
                 "prometheus.io/path": "/metrics"}
COMPONENT: Final = "model-server"

ANNOTATION_MODEL: Final = f"{GROUP}/model"
ANNOTATION_MODEL_VERSION: Final = f"{GROUP}/model-version"
ANNOTATION_IMAGE_DIGEST: Final = f"{GROUP}/image-digest"
ANNOTATION_RELEASE_ID: Final = f"{GROUP}/release-id"
ANNOTATION_SPEC_HASH: Final = f"{GROUP}/spec-hash"

CONTAINER_NAME: Final = "model-server"
PORT_NAME: Final = "http"
SERVING_PORT: Final = 8080
"""The port the serving entrypoint listens on (``MODELRELEASE_PORT``)."""
SERVICE_PORT: Final = 80
"""The port of the three Services (target: the container's ``http`` port)."""
RUN_AS: Final = 1000
"""The serving base's unprivileged user and group."""
DEFAULT_PROGRESS_DEADLINE_S: Final = 120
TERMINATION_GRACE_S: Final = 10
TMP_SIZE: Final = "1Gi"


class Track(StrEnum):
    """The two roles of an endpoint's Deployments: serving, and under test."""

    PRIMARY = "primary"
    CANARY = "canary"


class Slot(StrEnum):
    """The two Deployments of an endpoint, ``E-blue`` and ``E-green``: each holds a track."""

    BLUE = "blue"
    GREEN = "green"

    @property
    def other(self) -> Slot:
        """The slot that is not this one."""
        return Slot.GREEN if self is Slot.BLUE else Slot.BLUE


@dataclass(frozen=True)
class Slots:
    """Which slot holds the primary now; the canary goes to the other one."""

    primary: Slot = Slot.GREEN
    """A first release finds no primary: green is empty, so its canary goes to blue."""

    @property
    def canary(self) -> Slot:
        """The slot that is not the primary's."""
        return self.primary.other

    def of(self, track: Track) -> Slot:
        """The slot holding ``track``."""
        return self.primary if track is Track.PRIMARY else self.canary


def slots_of(primary_service: Mapping[str, Any] | None) -> Slots:
    """Where the tracks are, read from ``Service E-primary``'s selector (none yet: the default).

    The Service's selector is what promotion switches, so it is the truth of which slot
    the primary is in.
    """
    selected = ((primary_service or {}).get("spec") or {}).get("selector") or {}
    slot = selected.get(LABEL_SLOT)
    return Slots(Slot(slot)) if slot in (Slot.BLUE.value, Slot.GREEN.value) else Slots()


def deployment_name(endpoint: ModelEndpoint, slot: Slot) -> str:
    """``E-blue`` or ``E-green``."""
    return f"{endpoint.name}-{slot.value}"


def service_name(endpoint: ModelEndpoint, track: Track | None = None) -> str:
    """``E`` (both tracks) or ``E-primary`` / ``E-canary``."""
    return endpoint.name if track is None else f"{endpoint.name}-{track.value}"


def selector(endpoint: ModelEndpoint, slot: Slot | None = None) -> dict[str, str]:
    """Labels selecting the endpoint's pods, of one slot or of both."""
    labels = {LABEL_NAME: endpoint.name}
    if slot is not None:
        labels[LABEL_SLOT] = slot.value
    return labels


def label_selector(endpoint: ModelEndpoint, slot: Slot | None = None) -> str:
    """``selector`` as the API's ``labelSelector`` string (``k=v,k=v``)."""
    return ",".join(f"{k}={v}" for k, v in selector(endpoint, slot).items())


def label_value(text: str) -> str:
    """``text`` made a valid label value: ``[A-Za-z0-9]`` at both ends, ``-_.`` inside, <= 63.

    ``<resolved at release>`` becomes ``resolved-at-release``.
    """
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "-" for c in text)
    while "--" in cleaned:
        cleaned = cleaned.replace("--", "-")
    return cleaned[:63].strip("-_.")


def pinned_image(image: str, *, what: str) -> ImageRef:
    """Parse ``image`` and insist on a digest.

    Raises:
        InvalidInput: ``image`` is not a reference, or is not pinned by digest.
    """
    try:
        ref = ImageRef.parse(image)
    except InvalidInput as exc:
        raise InvalidInput(f"render {what}: {exc.message}") from None
    if ref.digest is None:
        raise InvalidInput(
            f"render {what}: image {image!r} is not pinned by digest; "
            f"pass {ref.registry}/{ref.repository}@sha256:<digest> (images are always by digest)"
        )
    return ref


def _labels(endpoint: ModelEndpoint, track: Track | None) -> dict[str, str]:
    """A Service's labels (and the autoscaler's and disruption budget's): its track, if one."""
    labels = {
        LABEL_NAME: endpoint.name,
        LABEL_INSTANCE: service_name(endpoint, track),
        LABEL_COMPONENT: COMPONENT,
        LABEL_MANAGED_BY: MANAGED_BY,
    }
    if track is not None:
        labels[LABEL_TRACK] = track.value
    return labels


def _pod_labels(endpoint: ModelEndpoint, slot: Slot, model_version: str) -> dict[str, str]:
    """A slot's pod labels: never the track, which promotion changes without a restart."""
    labels = {
        LABEL_NAME: endpoint.name,
        LABEL_INSTANCE: deployment_name(endpoint, slot),
        LABEL_COMPONENT: COMPONENT,
        LABEL_MANAGED_BY: MANAGED_BY,
    }
    if version := label_value(model_version):
        labels[LABEL_VERSION] = version
    labels[LABEL_SLOT] = slot.value
    return labels


def _metadata(endpoint: ModelEndpoint, name: str, labels: Mapping[str, str],
              annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": endpoint.namespace,
                                "labels": dict(labels)}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return metadata


def _resources(endpoint: ModelEndpoint) -> dict[str, Any]:
    """Requests cpu+memory; limits memory (no CPU limit: throttling hurts latency).

    Extended resources must have requests equal to limits, so both carry them.
    """
    spec = endpoint.spec.resources
    requests: dict[str, Any] = {"cpu": spec.cpu, "memory": spec.memory}
    limits: dict[str, Any] = {"memory": spec.memory}
    for name in sorted(spec.accelerators):
        requests[name] = str(spec.accelerators[name])
        limits[name] = str(spec.accelerators[name])
    return {"requests": requests, "limits": limits}


def _security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _probe(period: int, failures: int, timeout: int = 1) -> dict[str, Any]:
    return {
        "httpGet": {"path": "/ping", "port": PORT_NAME, "scheme": "HTTP"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": timeout,
        "successThreshold": 1,
    }


def _slice_env(endpoint: ModelEndpoint) -> list[dict[str, str]]:
    """Where the pods read a request's slice value, so live traffic is judged per slice."""
    check = endpoint.spec.canary.checks.slices
    if check is None:
        return []
    if check.header is not None:
        return [{"name": SLICE_HEADER_ENV, "value": check.header}]
    return [{"name": SLICE_COLUMN_ENV, "value": str(check.column)}]


def shadow_target(endpoint: ModelEndpoint) -> str:
    """Where a pod copies live requests during a shadow step: ``Service E-canary``."""
    return (f"http://{service_name(endpoint, Track.CANARY)}.{endpoint.namespace}.svc:"
            f"{SERVICE_PORT}")


def shadow_token_of(deployment: Mapping[str, Any] | None) -> str | None:
    """The shadow token a rendered (or read back) Deployment gives its pods, if any."""
    containers = (((deployment or {}).get("spec") or {}).get("template") or {}).get(
        "spec", {}).get("containers") or []
    return next((str(env["value"]) for container in containers
                 for env in container.get("env") or []
                 if env.get("name") == SHADOW_TOKEN_ENV and "value" in env), None)


def _shadow_env(endpoint: ModelEndpoint, token: str | None) -> list[dict[str, str]]:
    if token is None:
        return []
    return [{"name": SHADOW_TARGET_ENV, "value": shadow_target(endpoint)},
            {"name": SHADOW_TOKEN_ENV, "value": token}]


def render_deployment(
    endpoint: ModelEndpoint,
    *,
    image: str,
    model_version: str,
    release_id: str,
    slot: Slot,
    track: Track,
    replicas: int | None,
    progress_deadline_seconds: int = DEFAULT_PROGRESS_DEADLINE_S,
    fault: FaultSetting | None = None,
    shadow_token: str | None = None,
) -> dict[str, Any]:
    """``Deployment E-<slot>`` serving ``image`` (which must be pinned by digest) as ``track``.

    Args:
        endpoint: The validated endpoint.
        image: ``REGISTRY/REPO@sha256:...`` (a tag alongside the digest is dropped).
        model_version: The MLflow version the image holds.
        release_id: The release applying it (Deployment annotation only, so re-applying
            the same image under another release id restarts no pod).
        slot: The Deployment (``E-blue`` or ``E-green``).
        track: What it is now, primary or canary: a label of the Deployment alone, so
            promoting a canary re-applies it with no change to its pods.
        replicas: Replica count, or None to leave it to the HorizontalPodAutoscaler
            (the primary once its autoscaler exists).
        progress_deadline_seconds: When the Deployment reports ProgressDeadlineExceeded.
        fault: A fault for the serving entrypoint to inject (``MODELRELEASE_FAULT``): a
            rollback drill's canary only; None (no fault) otherwise.
        shadow_token: The token of the pods' shadow control (``domain.shadow``): with it
            they may be told to copy live requests to ``Service E-canary``, the one target
            they are given. It stays the same for the slot's life (the adapter reads it
            back), so re-applying the Deployment restarts no pod. None: no shadow control.

    Raises:
        InvalidInput: The image is not pinned by digest, or a count is out of range.
    """
    name = deployment_name(endpoint, slot)
    what = f"deployment {endpoint.namespace}/{name}"
    ref = pinned_image(image, what=what)
    if replicas is not None and replicas < 0:
        raise InvalidInput(f"render {what}: replicas must be 0 or more, got {replicas}")
    if progress_deadline_seconds < 1:
        raise InvalidInput(f"render {what}: progress deadline must be at least 1 second, "
                           f"got {progress_deadline_seconds}")
    assert ref.digest is not None
    pod_annotations = {
        ANNOTATION_MODEL: endpoint.spec.model.name,
        ANNOTATION_MODEL_VERSION: model_version,
        ANNOTATION_IMAGE_DIGEST: ref.digest,
    }
    annotations = {**pod_annotations, ANNOTATION_RELEASE_ID: release_id,
                   ANNOTATION_SPEC_HASH: spec_hash(endpoint)}
    labels = _pod_labels(endpoint, slot, model_version)
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": f"{ref.registry}/{ref.repository}@{ref.digest}",
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": PORT_NAME, "containerPort": SERVING_PORT, "protocol": "TCP"}],
        "env": [{"name": "MODELRELEASE_PORT", "value": str(SERVING_PORT)},
                # what the pod's /metrics reports as modelrelease_model_info
                {"name": "MODELRELEASE_MODEL_NAME", "value": endpoint.spec.model.name},
                {"name": "MODELRELEASE_MODEL_VERSION", "value": model_version},
                {"name": "MODELRELEASE_IMAGE_DIGEST", "value": ref.digest},
                *_slice_env(endpoint),
                *([] if fault is None else [{"name": FAULT_ENV, "value": fault.env_value()}]),
                *_shadow_env(endpoint, shadow_token)],
        "resources": _resources(endpoint),
        # Loading a model may take minutes: liveness only starts once /ping has answered.
        "startupProbe": _probe(period=2, failures=150),
        "readinessProbe": _probe(period=1, failures=3),
        "livenessProbe": _probe(period=5, failures=6, timeout=3),
        "securityContext": _security_context(),
        # Let EndpointSlices drop a terminating pod before its server stops, so no
        # request is routed to a closed port during a rollout or a canary removal.
        "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SLEEP_S}}},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE}}],
    }
    accelerators = sorted(endpoint.spec.resources.accelerators)
    if accelerators:
        pod_spec["tolerations"] = [
            {"key": name, "operator": "Exists", "effect": "NoSchedule"} for name in accelerators
        ]
    spec: dict[str, Any] = {}
    if replicas is not None:
        spec["replicas"] = replicas
    spec.update({
        "revisionHistoryLimit": 3,
        "progressDeadlineSeconds": progress_deadline_seconds,
        "selector": {"matchLabels": selector(endpoint, slot)},
        # Never below the current ready count while rolling: traffic keeps being served.
        "strategy": {"type": "RollingUpdate",
                     "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": {
            "metadata": {"labels": labels, "annotations": {**pod_annotations, **SCRAPE}},
            "spec": pod_spec,
        },
    })
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(endpoint, name, {**labels, LABEL_TRACK: track.value},
                              annotations),
        "spec": spec,
    }


def render_services(endpoint: ModelEndpoint, slots: Slots, *, canary_live: bool
                    ) -> list[dict[str, Any]]:
    """``Service E`` (the live endpoint) and ``E-primary`` / ``E-canary``.

    ``E-primary`` selects the primary's slot and ``E-canary`` the other; promotion is
    applying them again with the slots swapped. ``Service E`` selects both slots while the
    canary takes live traffic (``canary_live``: a release's canary, by replica ratio), and
    the primary's slot alone otherwise: after a promotion the previous version's pods,
    warm through a bake, get no live traffic.
    """
    services = []
    for track in (None, Track.PRIMARY, Track.CANARY):
        slot = slots.primary if track is None and not canary_live else (
            None if track is None else slots.of(track))
        services.append({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _metadata(endpoint, service_name(endpoint, track),
                                  _labels(endpoint, track)),
            "spec": {
                "type": "ClusterIP",
                "selector": selector(endpoint, slot),
                "ports": [{"name": PORT_NAME, "port": SERVICE_PORT, "targetPort": PORT_NAME,
                           "protocol": "TCP"}],
            },
        })
    return services


def render_primary_extras(endpoint: ModelEndpoint, slots: Slots) -> list[dict[str, Any]]:
    """The primary's HorizontalPodAutoscaler (autoscaling/v2) and PodDisruptionBudget.

    Both are named ``E-primary`` and point at the primary's slot.
    """
    name = service_name(endpoint, Track.PRIMARY)
    labels = _labels(endpoint, Track.PRIMARY)
    scaling = endpoint.spec.autoscaling
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(endpoint, name, labels),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                               "name": deployment_name(endpoint, slots.primary)},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [{
                "type": "Resource",
                "resource": {"name": "cpu", "target": {
                    "type": "Utilization", "averageUtilization": scaling.target_utilization,
                }},
            }],
        },
    }
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(endpoint, name, labels),
        "spec": {
            # One at a time, never none: minAvailable would block every drain at 1 replica.
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector(endpoint, slots.primary)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }
    return [hpa, pdb]


def render_release(
    endpoint: ModelEndpoint,
    *,
    image: str,
    model_version: str,
    release_id: str,
    track: Track,
    slots: Slots,
    replicas: int | None,
    progress_deadline_seconds: int = DEFAULT_PROGRESS_DEADLINE_S,
    fault: FaultSetting | None = None,
    shadow_token: str | None = None,
    canary_live: bool | None = None,
) -> list[dict[str, Any]]:
    """What to apply for ``track`` in its slot: Services, Deployment, the primary's extras.

    The three Services (selecting ``slots``; ``Service E`` both slots for the canary's
    track, the primary's alone for the primary's, or as ``canary_live`` says: a canary
    that starts in a shadow step gets no users), the Deployment of ``track``'s slot and,
    for the primary, its autoscaler and disruption budget. Other arguments as in
    :func:`render_deployment`.
    """
    deployment = render_deployment(
        endpoint, image=image, model_version=model_version, release_id=release_id,
        slot=slots.of(track), track=track, replicas=replicas,
        progress_deadline_seconds=progress_deadline_seconds, fault=fault,
        shadow_token=shadow_token,
    )
    extras = render_primary_extras(endpoint, slots) if track is Track.PRIMARY else []
    live = track is Track.CANARY if canary_live is None else canary_live
    return [*render_services(endpoint, slots, canary_live=live), deployment, *extras]


def render_endpoint_resource(endpoint: ModelEndpoint) -> dict[str, Any]:
    """The ``ModelEndpoint`` custom resource (spec only; the status is the pipeline's)."""
    document = endpoint_document(endpoint)
    document["metadata"] = _metadata(endpoint, endpoint.name, {LABEL_MANAGED_BY: MANAGED_BY})
    return document


# ----------------------------------------------------------------------------------------------
# The CustomResourceDefinition
# ----------------------------------------------------------------------------------------------

# What a structural schema may say (apiextensions.k8s.io/v1 JSONSchemaProps), kept as is.
_KEEP: Final = frozenset({
    "type", "format", "description", "properties", "required", "items",
    "additionalProperties", "enum", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "minLength", "maxLength", "pattern", "minItems", "maxItems",
    "minProperties", "maxProperties", "multipleOf", "nullable", "anyOf",
    "x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-validations", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type", "x-kubernetes-embedded-resource",
})
# JSON Schema that carries no validation the API server would do, or that it refuses.
_DROP: Final = frozenset({
    "title", "default", "examples", "propertyNames", "readOnly", "writeOnly", "deprecated",
    "$defs", "$schema", "uniqueItems",
})
_FORMATS: Final = frozenset({"date-time", "date", "duration", "byte", "uuid", "int32",
                              "int64", "float", "double", "email", "hostname", "uri"})


_ORDER: Final = (
    "description", "type", "format", "nullable", "enum", "minimum", "exclusiveMinimum",
    "maximum", "exclusiveMaximum", "minLength", "maxLength", "pattern", "minItems", "maxItems",
    "minProperties", "maxProperties", "multipleOf", "anyOf", "x-kubernetes-int-or-string",
    "properties", "required", "items", "additionalProperties",
)


def _rank(key: str) -> tuple[int, str]:
    """Keywords in a readable, fixed order; the rest (x-kubernetes-*) after, by name."""
    return (_ORDER.index(key), "") if key in _ORDER else (len(_ORDER), key)


def _deref(node: Mapping[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    """``node`` with its ``$ref`` (if any) replaced by the referenced schema, siblings kept."""
    result = dict(node)
    ref = result.pop("$ref", None)
    if ref is None:
        return result
    name = str(ref).rsplit("/", 1)[-1]
    if name not in defs:
        raise ValueError(f"schema $ref {ref!r} is not in $defs")
    return {**defs[name], **result}


def _convert(node: Mapping[str, Any], defs: Mapping[str, Any], path: str) -> dict[str, Any]:
    node = _deref(node, defs)
    while "allOf" in node:
        parts = node.pop("allOf")
        if len(parts) != 1:
            raise ValueError(f"{path}: allOf with {len(parts)} schemas is not structural")
        node = {**_deref(parts[0], defs), **node}
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        branches = [_deref(b, defs) for b in node.pop("anyOf")]
        others = [b for b in branches if b.get("type") != "null"]
        if len(others) != 1:
            raise ValueError(f"{path}: anyOf over {len(others)} types is not structural")
        node = {**others[0], **node}
        if len(branches) > 1:
            node["nullable"] = True
        return _convert(node, defs, path)
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if isinstance(node.get("exclusiveMinimum"), int | float) and \
            not isinstance(node["exclusiveMinimum"], bool):
        node["minimum"], node["exclusiveMinimum"] = node["exclusiveMinimum"], True
    if isinstance(node.get("exclusiveMaximum"), int | float) and \
            not isinstance(node["exclusiveMaximum"], bool):
        node["maximum"], node["exclusiveMaximum"] = node["exclusiveMaximum"], True
    if node.get("additionalProperties") is False:
        del node["additionalProperties"]  # pruning drops unknown fields; strict apply refuses
    if node.get("format") not in (None, *_FORMATS):
        del node["format"]
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key not in _KEEP:
            raise ValueError(f"{path}: JSON Schema keyword {key!r} has no CRD equivalent")
        if key == "properties":
            out[key] = {name: _convert(child, defs, f"{path}.{name}")
                        for name, child in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, Mapping):
            out[key] = _convert(value, defs, f"{path}[]")
        elif key == "description":
            out[key] = str(value).replace("``", "")
        else:
            out[key] = copy.deepcopy(value)
    out = {key: out[key] for key in sorted(out, key=_rank)}
    if "type" not in out and not (out.get("x-kubernetes-int-or-string")
                                  or out.get("x-kubernetes-preserve-unknown-fields")):
        raise ValueError(f"{path}: no type (a structural schema needs one everywhere)")
    return out


def structural_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A pydantic JSON Schema as a Kubernetes structural ``openAPIV3Schema``.

    ``$ref`` inlined; ``X | None`` as ``nullable``; ``const`` as a one-value ``enum``;
    numeric ``exclusiveMinimum`` as OpenAPI 3.0's boolean form; ``title``, ``default``,
    ``examples`` and other non-validating or refused keywords dropped. Int-or-string nodes
    keep their ``anyOf``.

    Raises:
        ValueError: The schema needs something a structural schema cannot say (a union of
            types, a keyword with no CRD equivalent, a node without a type).
    """
    defs = schema.get("$defs") or {}
    return _convert(schema, defs, "")


def crd_name() -> str:
    """``modelendpoints.modelrelease.io``."""
    return f"{PLURAL}.{GROUP}"


def render_crd() -> dict[str, Any]:
    """The ``modelendpoints.modelrelease.io`` CustomResourceDefinition.

    Its schema is generated from :class:`~modelrelease.spec.ModelEndpoint` (status included,
    with unknown fields preserved so an older pipeline never prunes a newer one's record).
    """
    schema = structural_schema(ModelEndpoint.model_json_schema(by_alias=True))
    properties = schema["properties"]
    properties["apiVersion"] = {"type": "string"}
    properties["kind"] = {"type": "string"}
    properties["metadata"] = {"type": "object"}
    properties["status"].pop("nullable", None)
    schema["required"] = ["spec"]
    columns = [
        ("Model", "string", ".spec.model.name"),
        ("Primary", "string", ".status.primary.version"),
        ("Canary", "string", ".status.canary.version"),
        ("Weight", "integer", ".status.weight"),
        ("Phase", "string", ".status.phase"),
        ("Cost/h", "number", ".status.costPerHour"),
        ("Age", "date", ".metadata.creationTimestamp"),
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": crd_name(),
                     "labels": {LABEL_NAME: "modelrelease", LABEL_MANAGED_BY: MANAGED_BY}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": ["me", "mep"],
                "categories": ["modelrelease"],
            },
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": name, "type": kind, "jsonPath": path}
                    for name, kind, path in columns
                ],
                "schema": {"openAPIV3Schema": schema},
            }],
        },
    }

