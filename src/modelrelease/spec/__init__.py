"""The ``ModelEndpoint`` spec, its status, and ``ReleaseRequest``: the one source of truth.

One YAML file per endpoint under ``deployments/endpoints/``::

    apiVersion: modelrelease.io/v1alpha1
    kind: ModelEndpoint
    metadata: {name: iris, namespace: ml}
    spec:
      model: {name: iris-clf, alias: champion}      # or version: 3, or stage: Production
      image: {repository: REGISTRY/ml/iris, base: REGISTRY/ml/serving-base@sha256:...}
      resources: {cpu: "1", memory: 2Gi, accelerators: {nvidia.com/gpu: 1}}
      autoscaling: {minReplicas: 2, maxReplicas: 10, targetUtilization: 70}
      canary:
        steps: [{weight: 10, hold: 30s}, {weight: 50, hold: 60s}]
        checks: {latency: {p95Ms: 50, p99Ms: 120, maxRegression: 0.2},
                 maxErrorRate: 0.01, minRequests: 200}

The same models validate that file (:func:`load_endpoint`, one message line per problem,
naming the field in the file's own camelCase terms and the fix), generate the CRD's
``openAPIV3Schema`` (``scripts/gen-crd``), type the custom resource's status (the durable
release record) and become the Prefect UI's form (:class:`ReleaseRequest`).

The package imports only the standard library, pydantic, PyYAML, ``modelrelease.domain`` and
``modelrelease.errors``, so pure domain code may import it.

Modules: ``values`` (names, durations, quantities, references: the value types and the
models' base), ``endpoint`` (the ``ModelEndpoint`` and its parts), ``status`` (the
custom resource's status), ``request`` (``ReleaseRequest``), ``files`` (loading, dumping,
hashing endpoint files) and ``messages`` (validation errors as one line per problem).
Everything public is importable from ``modelrelease.spec``.
"""

from modelrelease.domain.agreement import Kind as AgreementKind
from modelrelease.domain.agreement import OnFailure
from modelrelease.domain.durations import format_duration
from modelrelease.spec.endpoint import (
    Accelerators,
    AgreementCheck,
    ApprovalGate,
    Autoscaling,
    Bake,
    CanaryChecks,
    CanaryPolicy,
    CanaryStep,
    Drill,
    EndpointMetadata,
    EndpointSpec,
    GatewayRef,
    ImageSpec,
    LatencyCheck,
    ModelEndpoint,
    ModelRef,
    Promotion,
    Resources,
    Router,
    SliceCheck,
    SliceValue,
    SmokePolicy,
    Stage,
    TrafficPolicy,
)
from modelrelease.spec.files import (
    endpoint_document,
    endpoint_yaml,
    load_endpoint,
    load_endpoints,
    parse_endpoint,
    parse_resource,
    spec_hash,
)
from modelrelease.spec.messages import (
    Loc,
    describe_errors,
)
from modelrelease.spec.request import (
    EndpointRequest,
    ReleaseRequest,
    RollbackRequest,
)
from modelrelease.spec.status import (
    Condition,
    DrillRecord,
    HistoryEntry,
    ModelEndpointStatus,
    Outcome,
    ReleasePhase,
    TrackStatus,
    Verdict,
)
from modelrelease.spec.values import (
    API_VERSION,
    GROUP,
    HISTORY_LIMIT,
    KIND,
    MAX_ENDPOINT_NAME,
    VERSION,
    Alias,
    ArtifactPath,
    CronSchedule,
    Duration,
    EndpointName,
    ExtendedResource,
    Fault,
    Hold,
    ImageBase,
    ImageRepository,
    ModelName,
    Namespace,
    Quantity,
    SpecModel,
    Weight,
    parse_duration,
    quantity_value,
)

__all__ = [
    "API_VERSION",
    "GROUP",
    "HISTORY_LIMIT",
    "KIND",
    "MAX_ENDPOINT_NAME",
    "VERSION",
    "Accelerators",
    "AgreementCheck",
    "AgreementKind",
    "Alias",
    "ApprovalGate",
    "ArtifactPath",
    "Autoscaling",
    "Bake",
    "CanaryChecks",
    "CanaryPolicy",
    "CanaryStep",
    "Condition",
    "CronSchedule",
    "Drill",
    "DrillRecord",
    "Duration",
    "EndpointMetadata",
    "EndpointName",
    "EndpointRequest",
    "EndpointSpec",
    "ExtendedResource",
    "Fault",
    "GatewayRef",
    "HistoryEntry",
    "Hold",
    "ImageBase",
    "ImageRepository",
    "ImageSpec",
    "LatencyCheck",
    "Loc",
    "ModelEndpoint",
    "ModelEndpointStatus",
    "ModelName",
    "ModelRef",
    "Namespace",
    "OnFailure",
    "Outcome",
    "Promotion",
    "Quantity",
    "ReleasePhase",
    "ReleaseRequest",
    "Resources",
    "RollbackRequest",
    "Router",
    "SliceCheck",
    "SliceValue",
    "SmokePolicy",
    "SpecModel",
    "Stage",
    "TrackStatus",
    "TrafficPolicy",
    "Verdict",
    "Weight",
    "describe_errors",
    "endpoint_document",
    "endpoint_yaml",
    "format_duration",
    "load_endpoint",
    "load_endpoints",
    "parse_duration",
    "parse_endpoint",
    "parse_resource",
    "quantity_value",
    "spec_hash",
]
