"""The ``ModelEndpoint``: model, image, resources, autoscaling, canary policy, drill."""

from __future__ import annotations

import json
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Final, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from modelrelease.domain.agreement import Kind as AgreementKind
from modelrelease.domain.agreement import OnFailure
from modelrelease.domain.approval import OnTimeout
from modelrelease.domain.durations import format_duration
from modelrelease.domain.reference import ImageRef
from modelrelease.spec.status import ModelEndpointStatus
from modelrelease.spec.values import (
    Alias,
    ArtifactPath,
    CronSchedule,
    Duration,
    EndpointName,
    ExtendedResource,
    Fault,
    GatewayName,
    Hold,
    Hostname,
    ImageBase,
    ImageRepository,
    ModelName,
    Namespace,
    Quantity,
    SpecModel,
    Weight,
    invalid,
    valid_cpu,
    valid_memory,
)


class Stage(StrEnum):
    """An MLflow registry stage a release may follow (case-insensitive in the file)."""

    STAGING = "Staging"
    PRODUCTION = "Production"


def _stage(value: object) -> object:
    if isinstance(value, str):
        for stage in Stage:
            if value.strip().lower() == stage.value.lower():
                return stage.value
    return value


class ModelRef(SpecModel):
    """Which MLflow model version to release: by exactly one of alias, version or stage."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [{
        "rule": "[has(self.alias), has(self.version), has(self.stage)]"
                ".filter(x, x).size() == 1",
        "message": "set exactly one of alias, version or stage",
    }]})

    name: ModelName = Field(examples=["iris-clf"])
    """The registered model's name in MLflow."""
    alias: Alias | None = Field(default=None, examples=["champion"])
    """Release whatever version carries this alias."""
    version: Annotated[int, Field(ge=1)] | None = Field(default=None, examples=[3])
    """Release this version number."""
    stage: Annotated[Stage, BeforeValidator(_stage)] | None = None
    """Release the newest version in this stage (MLflow's deprecated stages)."""

    @model_validator(mode="after")
    def _exactly_one(self) -> ModelRef:
        chosen = [k for k in ("alias", "version", "stage") if getattr(self, k) is not None]
        if len(chosen) == 1:
            return self
        if not chosen:
            raise invalid("model_selector",
                          "names no version: add exactly one of alias (e.g. alias: champion), "
                          "version (e.g. version: 3) or stage (e.g. stage: Production)")
        raise invalid("model_selector",
                      "sets {chosen}: keep exactly one of alias, version or stage",
                      chosen=" and ".join(chosen))


class ImageSpec(SpecModel):
    """Where the release pushes the model's image, and the serving base it builds on."""

    repository: ImageRepository = Field(examples=["registry.example.com/ml/iris"])
    """Repository for the built images, without tag or digest (the release pins each one)."""
    base: ImageBase = Field(examples=["registry.example.com/ml/serving-base@sha256:<digest>"])
    """Serving base image, pinned by digest (best) or tag."""

    @property
    def base_ref(self) -> ImageRef:
        """The base as a parsed reference."""
        return ImageRef.parse(self.base)

    @property
    def repository_ref(self) -> ImageRef:
        """The repository as a parsed (unpinned) reference."""
        return ImageRef.parse(self.repository)


Accelerators = dict[ExtendedResource, Annotated[int, Field(ge=1, le=64)]]


class Resources(SpecModel):
    """What one serving replica requests; accelerators are requested and limited alike."""

    cpu: Annotated[Quantity, AfterValidator(valid_cpu)] = Field(examples=["500m"])
    """CPU request in cores (``1``, ``0.5``) or millicores (``500m``)."""
    memory: Annotated[Quantity, AfterValidator(valid_memory)] = Field(examples=["512Mi"])
    """Memory request and limit, e.g. ``512Mi`` or ``2Gi``."""
    accelerators: Accelerators = Field(default_factory=dict,
                                       examples=[{"nvidia.com/gpu": 1}])
    """Extended resources per replica, e.g. ``{nvidia.com/gpu: 1}``."""


_MIN_REPLICAS: Final = 1
_MAX_REPLICAS: Final = 3


class Autoscaling(SpecModel):
    """The primary's HorizontalPodAutoscaler."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [{
        "rule": f"(has(self.minReplicas) ? self.minReplicas : {_MIN_REPLICAS}) <= "
                f"(has(self.maxReplicas) ? self.maxReplicas : {_MAX_REPLICAS})",
        "message": "minReplicas must not exceed maxReplicas",
    }]})

    min_replicas: Annotated[int, Field(ge=1, le=100)] = _MIN_REPLICAS
    """Fewest primary replicas."""
    max_replicas: Annotated[int, Field(ge=1, le=100)] = _MAX_REPLICAS
    """Most primary replicas."""
    target_utilization: Annotated[int, Field(ge=1, le=100)] = 70
    """Average CPU utilization (percent of the request) the autoscaler aims for."""

    @model_validator(mode="after")
    def _ordered(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise invalid(
                "replicas_order",
                "must be at most maxReplicas ({max}): raise maxReplicas or lower minReplicas",
                max=self.max_replicas, at=("minReplicas",),
            )
        return self


def _step_weight(value: int) -> int:
    if value == 0:
        raise invalid("step_weight_zero",
                      "a step at weight 0 sends the canary no traffic: start at 1 or more")
    return value


_MAX_APPROVAL_WAIT: Final = timedelta(days=7)


def _approval_timeout(value: timedelta) -> timedelta:
    if value <= timedelta(0) or value > _MAX_APPROVAL_WAIT:
        raise invalid("approval_timeout",
                      "{value} is not a wait for an answer: use between 1s and 7d (168h), "
                      "e.g. 1h", value=json.dumps(format_duration(value)))
    return value


class ApprovalGate(SpecModel):
    """A person approves the step once it passed its checks, before the release goes on.

    The release waits with the canary at the step's weight; the Prefect UI shows the
    paused flow run's form (approve or reject, a name, a comment). Rejected: rollback,
    with the comment as the reason. Only releases run by Prefect can ask: the CLI
    refuses an endpoint with approval gates. A rollback drill never waits.
    """

    timeout: Annotated[Duration, AfterValidator(_approval_timeout)] = Field(
        default=timedelta(hours=1), examples=["1h"])
    """How long to wait for an answer."""
    on_timeout: OnTimeout = OnTimeout.ROLLBACK
    """rollback: no answer in time rolls the release back. continue: it goes on as if
    approved."""


_BAKE_LIMITS: Final = (timedelta(seconds=10), timedelta(hours=24))


def _bake_duration(value: timedelta) -> timedelta:
    low, high = _BAKE_LIMITS
    if not low <= value <= high:
        raise invalid("bake_duration",
                      "{value} is not a bake: use between 10s and 24h, e.g. 10m",
                      value=json.dumps(format_duration(value)))
    return value


class Bake(SpecModel):
    """After promotion, watch the new primary's live traffic before the release is over.

    The previous version's pods stay warm at zero traffic meanwhile; a breach of the
    checks' SLOs (``maxErrorRate``, ``latency.p95Ms`` / ``p99Ms``) in live traffic rolls
    back to them in seconds, with the reason. After the bake they are scaled to zero and
    their Deployment is kept, the target of ``modelrelease rollback``. A first release has
    nothing to go back to: it is not baked.
    """

    duration: Annotated[Duration, AfterValidator(_bake_duration)] = Field(
        default=timedelta(minutes=10), examples=["10m"])
    """How long to watch the new primary."""


def _shadow_share(value: int) -> int:
    if value == 0:
        raise invalid("step_shadow_zero",
                      "a shadow step copying 0% copies nothing: use 1 to 100 (100 copies every "
                      "live request)")
    return value


class CanaryStep(SpecModel):
    """One step: ``weight`` percent of live traffic to the canary, or ``shadow``: copies.

    A step sends ``weight`` percent of live traffic to the canary, or copies ``shadow``
    percent of it there unseen, then judges after ``hold``. A shadow step gives the canary
    no users: the primary's pods copy that share of the live requests they answer to the
    canary (after the user has the primary's answer) and the judge compares the two on
    those real inputs. Shadow steps come before the weighted ones. A first release has no
    primary to copy from: its steps are replaced by one step at 100%, as always.
    """

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [{
        "rule": "has(self.weight) != has(self.shadow)",
        "message": "a step has either weight (live traffic) or shadow (copies of it), "
                   "not both, not neither",
    }]})

    weight: Annotated[Weight, AfterValidator(_step_weight)] | None = Field(
        default=None, examples=[10], json_schema_extra={"minimum": 1})
    """Percent of live traffic for the canary during this step."""
    shadow: Annotated[Weight, AfterValidator(_shadow_share)] | None = Field(
        default=None, examples=[100], json_schema_extra={"minimum": 1})
    """Percent of the live requests copied to the canary during this step (users see only
    the primary's answers)."""
    hold: Hold = Field(examples=["30s"])
    """How long to generate load and collect samples before judging this step."""
    approval: ApprovalGate | None = None
    """Wait for a person to approve the step once it passed (unset: go on at once)."""

    @model_validator(mode="after")
    def _one_kind(self) -> CanaryStep:
        if (self.weight is None) == (self.shadow is None):
            raise invalid("step_kind", "give either weight (percent of live traffic, e.g. "
                                       "10) or shadow (percent of it copied, e.g. 100), not "
                                       "both, not neither")
        return self


class LatencyCheck(SpecModel):
    """Latency limits for the canary: absolute SLOs and regression against the primary."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [{
        "rule": "!has(self.p95Ms) || !has(self.p99Ms) || self.p95Ms <= self.p99Ms",
        "message": "p95Ms must not exceed p99Ms",
    }]})

    p95_ms: Annotated[float, Field(gt=0)] | None = Field(default=None, examples=[50])
    """Highest acceptable 95th-percentile latency, in milliseconds."""
    p99_ms: Annotated[float, Field(gt=0)] | None = Field(default=None, examples=[120])
    """Highest acceptable 99th-percentile latency, in milliseconds."""
    max_regression: Annotated[float, Field(ge=0, le=10)] = 0.2
    """How much slower than the primary the canary may be (0.2 = 20%)."""

    @model_validator(mode="after")
    def _ordered(self) -> LatencyCheck:
        if self.p95_ms is not None and self.p99_ms is not None and self.p95_ms > self.p99_ms:
            raise invalid("percentile_order",
                          "must be at most p99Ms ({p99}): a 95th percentile cannot exceed "
                          "the 99th", p99=f"{self.p99_ms:g}", at=("p95Ms",))
        return self


class AgreementCheck(SpecModel):
    """Output agreement: the same inputs go to canary and primary, their answers compared.

    The inputs are the version's input example plus, when ``samples`` names one, a sample
    set from its MLflow run. On by default, where it cannot misfire: a classifier's exact
    agreement is judged only once ``minSamples`` rows were compared, and score/regression
    distances (PSI, KS) are judged only against thresholds you set. Every figure goes into
    the report either way. A first release (no primary) skips the check.
    """

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [{
        "rule": "(has(self.minSamples) ? self.minSamples : 20) <= "
                "(has(self.maxSamples) ? self.maxSamples : 500)",
        "message": "minSamples must not exceed maxSamples",
    }]})

    enabled: bool = True
    """Run the check at every step (false: never)."""
    kind: AgreementKind = AgreementKind.AUTO
    """classification (exact agreement), regression (PSI/KS of the output values) or auto
    (regression when the primary answers any float, else classification)."""
    min_agreement: Annotated[float, Field(ge=0, le=1)] = 0.95
    """Lowest share of rows a classifier's canary must answer exactly as the primary."""
    max_psi: Annotated[float, Field(gt=0)] | None = Field(default=None, examples=[0.2])
    """Highest population stability index of the canary's outputs against the primary's
    (a classifier's class shares, or binned scores); unset: reported, not judged. 0.1-0.2
    is the usual 'moderate shift' band."""
    max_ks: Annotated[float, Field(gt=0, le=1)] | None = Field(default=None, examples=[0.2])
    """Highest two-sample Kolmogorov-Smirnov statistic between the arms' output values
    (regression only); unset: reported, not judged."""
    samples: ArtifactPath | None = Field(default=None, examples=["agreement/samples.json"])
    """A file of inputs in the version's MLflow run (JSON rows, records or a serving
    payload, or CSV with a header), sent after the input example's rows."""
    min_samples: Annotated[int, Field(ge=1, le=10_000)] = 20
    """Fewest rows compared before the check may fail or pass a step; fewer is reported as
    not judged and leaves the step to the latency and error checks."""
    max_samples: Annotated[int, Field(ge=1, le=10_000)] = 500
    """Most rows sent to each arm per step (the input example's first)."""
    on_failure: OnFailure = OnFailure.ROLLBACK
    """rollback: a failed check fails the step. hold: it makes the step inconclusive, so it
    is extended (and rolled back if the outputs still disagree after the extensions)."""

    @model_validator(mode="after")
    def _ordered(self) -> AgreementCheck:
        if self.min_samples > self.max_samples:
            raise invalid("samples_order",
                          "must be at most maxSamples ({max}): raise maxSamples or lower "
                          "minSamples", max=self.max_samples, at=("minSamples",))
        return self


SliceValue = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class SliceCheck(SpecModel):
    """Judge each slice of the traffic on its own (one tenant, locale, input shape).

    A regression confined to one slice (10% of requests 50% slower) vanishes in the
    average over all requests. With this set, the generated load sends ``mix``'s slice
    values in those proportions, each request carries its value (in the ``header`` or in
    the input ``column``), and the judge runs the latency and error-rate checks inside
    each slice, canary against primary of the same slice, on the slices that reach
    ``minRequests`` per arm. The serving pods count live requests per slice value too
    (the header's value, or the column's when every row of a JSON request has the same
    one), so live traffic is judged per slice as well, values outside the mix included.
    The slices share one part of the error budget, so ten slices do not mean ten times
    the false rollbacks. The report names a slice that fails.
    """

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [{
        "rule": "has(self.header) != has(self.column)",
        "message": "set exactly one of header and column",
    }]})

    header: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,64}$")] | None = Field(
        default=None, examples=["X-Tenant"])
    """The request header whose value is the slice (sent by the generated load)."""
    column: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = Field(
        default=None, examples=["locale"])
    """An input column of the model's input example whose value is the slice: the
    generated load sets it to each slice value in turn (typed as the example's value)."""
    mix: Annotated[dict[SliceValue, Annotated[float, Field(gt=0)]],
                   Field(min_length=1, max_length=100)] = Field(
        examples=[{"de": 0.1, "en": 0.6, "fr": 0.3}])
    """Slice values and their weights in the generated load (normalised to 1)."""
    max_slices: Annotated[int, Field(ge=1, le=100)] = 10
    """Most slices judged (the most frequent); the error budget is split over this many."""
    min_requests: Annotated[int, Field(ge=2)] = 50
    """Requests per arm a slice needs before it is judged."""

    @property
    def key(self) -> str:
        """Where the slice value is, as the report and the pods' metrics say it."""
        return f"header {self.header}" if self.header is not None else f"column {self.column}"

    @model_validator(mode="after")
    def _one_key(self) -> SliceCheck:
        if (self.header is None) == (self.column is None):
            raise invalid("slice_key", "set exactly one of header (a request header) and "
                          "column (an input column) to say where the slice value is")
        if len(self.mix) > self.max_slices:
            raise invalid("slice_mix", "names {count} slice values but maxSlices is {max}: "
                          "raise maxSlices or drop values from the mix",
                          count=len(self.mix), max=self.max_slices, at=("mix",))
        return self


class CanaryChecks(SpecModel):
    """How each step is judged: canary against primary, and against absolute limits."""

    latency: LatencyCheck = Field(default_factory=LatencyCheck)
    """Latency limits."""
    max_error_rate: Annotated[float, Field(ge=0, le=1)] = 0.01
    """Highest acceptable share of failed requests (0.01 = 1%)."""
    min_requests: Annotated[int, Field(ge=1)] = 200
    """Fewest requests per arm before a step may pass; fewer is inconclusive, never a pass."""
    agreement: AgreementCheck = Field(default_factory=AgreementCheck)
    """Output agreement: canary and primary answer the same inputs alike."""
    slices: SliceCheck | None = None
    """Judge each slice of the traffic on its own (unset: the whole traffic only)."""


def _default_steps() -> list[CanaryStep]:
    return [CanaryStep(weight=10, hold=timedelta(seconds=30)),
            CanaryStep(weight=50, hold=timedelta(seconds=60))]


class CanaryPolicy(SpecModel):
    """The canary's traffic steps and the checks each step must pass."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [{
        "rule": "!has(self.steps) || (self.steps.filter(s, has(s.weight)).map(s, s.weight)"
                ".isSorted() && self.steps.all(s, !has(s.weight) || self.steps.filter(t, "
                "has(t.weight) && t.weight == s.weight).size() == 1))",
        "message": "step weights must strictly increase",
    }, {
        "rule": "!has(self.steps) || self.steps.map(s, has(s.weight)).isSorted()",
        "message": "shadow steps come before the weighted ones",
    }]})

    steps: Annotated[list[CanaryStep], Field(min_length=1, max_length=20)] = Field(
        default_factory=_default_steps, examples=[[{"weight": 10, "hold": "30s"}]])
    """Steps: shadow ones first, then weights strictly increasing."""
    checks: CanaryChecks = Field(default_factory=CanaryChecks)
    """How each step is judged."""
    bake: Bake | None = None
    """Watch the new primary after promotion, the previous version warm (unset: no bake)."""

    @field_validator("steps")
    @classmethod
    def _increasing(cls, steps: list[CanaryStep]) -> list[CanaryStep]:
        last: tuple[int, int] | None = None  # the last weighted step: index, weight
        for index, step in enumerate(steps):
            if step.weight is None:
                if last is not None:
                    raise invalid("steps_shadow_first",
                                  "a shadow step must come before the weighted steps (step "
                                  "{prev} has weight {weight}): move it up",
                                  prev=last[0], weight=last[1], at=(index, "shadow"))
                continue
            if last is not None and step.weight <= last[1]:
                raise invalid("steps_order",
                              "must be greater than step {prev}'s weight ({weight})",
                              prev=last[0], weight=last[1], at=(index, "weight"))
            last = (index, step.weight)
        return steps


class Promotion(SpecModel):
    """What a promoted version gets in MLflow."""

    alias: Alias = "production"
    """The alias moved to the promoted version."""
    tags: bool = True
    """Tag the version with the release's outcome, image digest and release id."""


class SmokePolicy(SpecModel):
    """The smoke test before any traffic."""

    require_input_example: bool = True
    """Refuse a model without an input example (true), or smoke-test ``/ping`` alone (false)."""


class Drill(SpecModel):
    """A scheduled rollback drill: release a deliberately bad canary and prove it is undone."""

    schedule: CronSchedule = Field(examples=["0 3 * * 1"])
    """Cron schedule (5 fields, or @daily and friends)."""
    fault: Fault = Fault.LATENCY
    """What the drill's canary does wrong."""


class Router(StrEnum):
    """What splits live traffic between the primary and the canary."""

    REPLICA_RATIO = "replica-ratio"
    """``Service E`` selects both tracks' pods: the canary's share of ready replicas."""
    GATEWAY_API = "gateway-api"
    """An ``HTTPRoute`` on a Gateway the cluster already runs: exact weights."""


class GatewayRef(SpecModel):
    """The Gateway (``gateway.networking.k8s.io/v1``) the endpoint's HTTPRoute attaches to."""

    name: GatewayName = Field(examples=["public-gateway"])
    """The Gateway's name."""
    namespace: Namespace | None = Field(default=None, examples=["gateways"])
    """Its namespace (unset: the endpoint's own); the Gateway must allow routes from the
    endpoint's namespace (``listeners[].allowedRoutes``)."""


class TrafficPolicy(SpecModel):
    """How live traffic reaches the canary during weighted steps."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [{
        "rule": "(has(self.router) && self.router == 'gateway-api') == has(self.gateway)",
        "message": "router gateway-api needs a gateway ({name, namespace}); router "
                   "replica-ratio (when unset) takes none",
    }, {
        "rule": "!has(self.hostname) || has(self.gateway)",
        "message": "a hostname is for router gateway-api (its HTTPRoute's hostnames)",
    }]})

    router: Router = Router.REPLICA_RATIO
    """``replica-ratio`` (any cluster: weights as replica shares) or ``gateway-api``
    (a Gateway the cluster runs: the release owns ``HTTPRoute E`` and sets exact weights)."""
    gateway: GatewayRef | None = Field(default=None,
                                       examples=[{"name": "public-gateway",
                                                  "namespace": "gateways"}])
    """The Gateway the route attaches to (``router: gateway-api`` only)."""
    hostname: Hostname | None = Field(default=None, examples=["iris.models.example.com"])
    """The host users call (the route's ``hostnames``; unset: every host the Gateway's
    listener takes). ``router: gateway-api`` only."""

    @model_validator(mode="after")
    def _router_needs(self) -> TrafficPolicy:
        if self.router is Router.GATEWAY_API and self.gateway is None:
            raise invalid("traffic_gateway",
                          "router gateway-api needs the Gateway its HTTPRoute attaches to: "
                          "add gateway: {name: <gateway>, namespace: <its namespace>} (kubectl "
                          "get gateways -A lists them)", at=("gateway",))
        if self.router is Router.REPLICA_RATIO:
            extra = [key for key in ("gateway", "hostname") if getattr(self, key) is not None]
            if extra:
                raise invalid("traffic_replica_ratio",
                              "{fields} only apply to router gateway-api: set router: "
                              "gateway-api, or remove them (the default router splits "
                              "traffic by replicas through Service E)",
                              fields=" and ".join(extra), at=(extra[0],))
        return self


class EndpointSpec(SpecModel):
    """The desired state of one model endpoint."""

    model: ModelRef = Field(examples=[{"name": "iris-clf", "alias": "champion"}])
    """Which MLflow model version to serve."""
    image: ImageSpec = Field(examples=[{"repository": "registry.example.com/ml/iris",
                                        "base": "registry.example.com/ml/serving-base:1"}])
    """Where images go and what they build on."""
    resources: Resources = Field(examples=[{"cpu": "500m", "memory": "512Mi"}])
    """Per-replica requests."""
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    """The primary's autoscaler."""
    canary: CanaryPolicy = Field(default_factory=CanaryPolicy)
    """Traffic steps and checks."""
    traffic: TrafficPolicy = Field(default_factory=TrafficPolicy)
    """What splits live traffic (unset: the replica ratio, through Service E)."""
    promotion: Promotion = Field(default_factory=Promotion)
    """MLflow alias and tags on promotion."""
    smoke: SmokePolicy = Field(default_factory=SmokePolicy)
    """Smoke-test policy."""
    drill: Drill | None = None
    """Optional scheduled rollback drill."""


class EndpointMetadata(SpecModel):
    """The endpoint's name (prefix of every object it owns) and namespace."""

    name: EndpointName = Field(examples=["iris"])
    """Endpoint name: a DNS-1035 label of at most 55 characters."""
    namespace: Namespace = Field(examples=["ml"])
    """Namespace every object of the endpoint lives in."""



class ModelEndpoint(SpecModel):
    """A model endpoint: the file under ``deployments/endpoints/`` and the custom resource."""

    api_version: Literal["modelrelease.io/v1alpha1"] = "modelrelease.io/v1alpha1"
    """Always modelrelease.io/v1alpha1."""
    kind: Literal["ModelEndpoint"] = "ModelEndpoint"
    """Always ModelEndpoint."""
    metadata: EndpointMetadata = Field(examples=[{"name": "iris", "namespace": "ml"}])
    """Name and namespace."""
    spec: EndpointSpec
    """Desired state."""
    status: ModelEndpointStatus | None = None
    """The release record (written by the pipeline, never by hand)."""

    @property
    def name(self) -> str:
        """The endpoint's name."""
        return self.metadata.name

    @property
    def namespace(self) -> str:
        """The endpoint's namespace."""
        return self.metadata.namespace
