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

This module imports only the standard library, pydantic, PyYAML, ``modelrelease.domain`` and
``modelrelease.errors``, so pure domain code may import it.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from modelrelease.domain.agreement import Kind as AgreementKind
from modelrelease.domain.agreement import OnFailure
from modelrelease.domain.reference import ImageRef
from modelrelease.errors import InvalidInput

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
    "Autoscaling",
    "CanaryChecks",
    "CanaryPolicy",
    "CanaryStep",
    "Condition",
    "Drill",
    "DrillRecord",
    "EndpointMetadata",
    "EndpointSpec",
    "Fault",
    "HistoryEntry",
    "ImageSpec",
    "LatencyCheck",
    "ModelEndpoint",
    "ModelEndpointStatus",
    "ModelRef",
    "OnFailure",
    "Outcome",
    "Promotion",
    "ReleasePhase",
    "ReleaseRequest",
    "Resources",
    "SmokePolicy",
    "Stage",
    "TrackStatus",
    "Verdict",
    "Weight",
    "endpoint_document",
    "endpoint_yaml",
    "format_duration",
    "load_endpoint",
    "parse_duration",
    "parse_endpoint",
    "parse_resource",
    "quantity_value",
    "spec_hash",
]

GROUP: Final = "modelrelease.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = "modelrelease.io/v1alpha1"
KIND: Final = "ModelEndpoint"

MAX_ENDPOINT_NAME: Final = 55
"""63 (a Kubernetes name) minus len("-primary"): every object name derived from it fits."""

HISTORY_LIMIT: Final = 20
"""How many past releases the status keeps."""

_MAX_NAME: Final = 63
_MAX_HOLD: Final = timedelta(hours=24)

# ----------------------------------------------------------------------------------------------
# Value types
# ----------------------------------------------------------------------------------------------


def _error(kind: str, message: str, **context: Any) -> PydanticCustomError:
    """A validation error whose message already says what is wrong and how to fix it.

    ``at`` in ``context`` (a tuple of keys and indexes) names a field below the one being
    validated, so a check made on a parent can point at the exact child field.
    """
    return PydanticCustomError(kind, message, context or None)


def _show(value: object) -> str:
    """A short rendering of a user's value for an error message."""
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return json.dumps(text)
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value) if not isinstance(value, float) else repr(value)
    return f"a {type(value).__name__}"


def _suggest_name(value: str, limit: int) -> str:
    """A valid DNS-1035 label close to ``value``, for the fix hint."""
    text = re.sub(r"[^a-z0-9-]+", "-", value.lower())
    text = re.sub(r"-{2,}", "-", text).lstrip("-0123456789")[:limit].strip("-")
    return text or "my-endpoint"


_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _endpoint_name(value: str) -> str:
    if not _DNS1035.match(value):
        raise _error(
            "endpoint_name",
            "{value} is not a valid Kubernetes name: use lowercase letters, digits and '-', "
            "starting with a letter and ending with a letter or digit, e.g. {fix}",
            value=_show(value), fix=json.dumps(_suggest_name(value, MAX_ENDPOINT_NAME)),
        )
    if len(value) > MAX_ENDPOINT_NAME:
        raise _error(
            "endpoint_name_length",
            "{value} is {length} characters; at most {limit} fit, since the Deployments are "
            "named NAME-primary and NAME-canary (63 at most): shorten it, e.g. {fix}",
            value=_show(value), length=len(value), limit=MAX_ENDPOINT_NAME,
            fix=json.dumps(_suggest_name(value, MAX_ENDPOINT_NAME)),
        )
    return value


def _namespace(value: str) -> str:
    if not _DNS1123.match(value) or len(value) > _MAX_NAME:
        fix = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]+", "-", value.lower()))
        fix = fix[:_MAX_NAME].strip("-") or "default"
        raise _error(
            "namespace",
            "{value} is not a valid namespace: at most 63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit, e.g. {fix}",
            value=_show(value), fix=json.dumps(fix),
        )
    return value


EndpointName = Annotated[
    str,
    AfterValidator(_endpoint_name),
    Field(json_schema_extra={"pattern": _DNS1035.pattern, "maxLength": MAX_ENDPOINT_NAME}),
]
"""An endpoint name: a DNS-1035 label (a Service needs one) short enough for its suffixes."""

Namespace = Annotated[
    str,
    AfterValidator(_namespace),
    Field(json_schema_extra={"pattern": _DNS1123.pattern, "maxLength": _MAX_NAME}),
]
"""A Kubernetes namespace: a DNS-1123 label."""

Weight = Annotated[int, Field(ge=0, le=100)]
"""A share of live traffic, in percent."""

# --- durations --------------------------------------------------------------------------------

_GO_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$")
_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_ISO_DURATION = re.compile(
    r"^P(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_UNIT_US: Final = {
    "ms": Decimal(1_000), "s": Decimal(1_000_000), "m": Decimal(60_000_000),
    "h": Decimal(3_600_000_000), "days": Decimal(86_400_000_000),
    "hours": Decimal(3_600_000_000), "minutes": Decimal(60_000_000),
    "seconds": Decimal(1_000_000),
}
_DURATION_HINT = "use e.g. 30s, 2m, 1h30m, PT30S or a number of seconds"


def _micros(amount: Decimal) -> timedelta:
    return timedelta(microseconds=int(amount.to_integral_value()))


def parse_duration(value: object) -> timedelta:
    """Read ``30s``, ``2m``, ``1h30m``, ``250ms``, ISO-8601 (``PT30S``) or seconds.

    Raises:
        PydanticCustomError: The value is none of those, or negative.
    """
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _error("duration", "{value} is not a duration: " + _DURATION_HINT,
                     value=_show(value))
    elif isinstance(value, int | float):
        try:
            result = _micros(Decimal(repr(value)) * _UNIT_US["s"])
        except (InvalidOperation, OverflowError, ValueError):
            raise _error("duration", "{value} is not a duration: " + _DURATION_HINT,
                         value=_show(value)) from None
    else:
        text = value.strip()
        try:
            if _GO_DURATION.match(text):
                total = sum((Decimal(n) * _UNIT_US[u] for n, u in _GO_PART.findall(text)),
                            Decimal(0))
                result = _micros(total)
            elif (iso := _ISO_DURATION.match(text)) and text not in ("P", "PT") \
                    and not text.endswith("T"):
                total = sum((Decimal(n) * _UNIT_US[k] for k, n in iso.groupdict().items() if n),
                            Decimal(0))
                result = _micros(total)
            else:
                result = _micros(Decimal(text) * _UNIT_US["s"])
                if not text[:1].isdigit() and not text.startswith("-"):
                    raise ValueError(text)
        except (InvalidOperation, OverflowError, ValueError):
            raise _error("duration", "{value} is not a duration: " + _DURATION_HINT,
                         value=_show(value)) from None
    if result < timedelta(0):
        raise _error("duration_negative", "{value} is negative: durations count forward",
                     value=_show(value))
    return result


def format_duration(value: timedelta) -> str:
    """The short form :func:`parse_duration` reads back: ``1h30m``, ``30s``, ``1.5s``, ``0s``."""
    micros = value // timedelta(microseconds=1)
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    hours, rest = divmod(micros, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds, fraction = divmod(rest, 1_000_000)
    text = f"{hours}h" if hours else ""
    text += f"{minutes}m" if minutes else ""
    if fraction:
        text += f"{seconds}.{fraction:06d}".rstrip("0") + "s"
    elif seconds or not text:
        text += f"{seconds}s"
    return sign + text


def _hold(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise _error("hold_zero",
                     "a hold of 0s collects no requests to judge: use e.g. 30s")
    if value > _MAX_HOLD:
        raise _error("hold_long", "{value} is longer than 24h: use e.g. 30m",
                     value=json.dumps(format_duration(value)))
    return value


_INT_OR_STRING: Final[dict[str, Any]] = {
    "anyOf": [{"type": "integer"}, {"type": "string"}],
    "x-kubernetes-int-or-string": True,
}

Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema({**_INT_OR_STRING, "description": "30s, 2m, 1h30m, PT30S or seconds"}),
]
"""A length of time, written ``30s`` / ``2m`` / ``1h`` / ISO-8601 / seconds; a ``timedelta``."""

Hold = Annotated[Duration, AfterValidator(_hold)]

# --- Kubernetes quantities --------------------------------------------------------------------

_QUANTITY = re.compile(
    r"^(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)
_QUANTITY_PATTERN: Final = (
    r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?[0-9]+))?$"
)
_SUFFIX: Final = {
    "": Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12, "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}


def quantity_value(quantity: str) -> Decimal:
    """The number a Kubernetes quantity stands for (``500m`` -> 0.5, ``1Ki`` -> 1024).

    Raises:
        ValueError: ``quantity`` is not a non-negative quantity.
    """
    match = _QUANTITY.match(quantity)
    if not match:
        raise ValueError(f"not a Kubernetes quantity: {quantity!r}")
    number, suffix = Decimal(match.group("number")), match.group("suffix") or ""
    if suffix[:1] in ("e", "E"):
        return number.scaleb(int(suffix[1:]))
    return number * _SUFFIX[suffix]


def _quantity_text(value: object) -> object:
    """YAML numbers (``cpu: 1``, ``cpu: 0.5``) as the quantity strings they stand for."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value)
    return value


def _quantity(value: str) -> str:
    text = value.strip()
    try:
        amount = quantity_value(text)
    except ValueError:
        raise _error(
            "quantity",
            "{value} is not a Kubernetes quantity: write a number with an optional unit, "
            "e.g. 500m or 2 for cpu, 512Mi or 2Gi for memory",
            value=_show(value),
        ) from None
    if amount <= 0:
        raise _error("quantity_zero", "{value} must be greater than zero", value=_show(value))
    return text


def _cpu(value: str) -> str:
    amount = quantity_value(value)
    if amount < Decimal("0.001") or amount > 1024:
        raise _error(
            "cpu",
            "{value} is {cores} cores: cpu counts cores (1, 0.5) or millicores (500m), "
            "between 1m and 1024",
            value=_show(value), cores=f"{amount.normalize():f}",
        )
    return value


def _memory(value: str) -> str:
    amount = quantity_value(value)
    if amount < 2**20:
        number = _QUANTITY.match(value).group("number")  # type: ignore[union-attr]
        raise _error(
            "memory",
            "{value} is only {amount} bytes: write the unit, e.g. {fix}",
            value=_show(value), amount=f"{amount.normalize():f}", fix=json.dumps(f"{number}Mi"),
        )
    return value


_QUANTITY_SCHEMA: Final = {**_INT_OR_STRING, "pattern": _QUANTITY_PATTERN}

Quantity = Annotated[
    str,
    BeforeValidator(_quantity_text),
    AfterValidator(_quantity),
    WithJsonSchema(_QUANTITY_SCHEMA),
]
"""A positive Kubernetes quantity (``500m``, ``2``, ``512Mi``); YAML numbers are accepted."""

_EXTENDED = re.compile(
    r"^(?P<domain>[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)"
    r"/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)


def _extended_resource(value: str) -> str:
    match = _EXTENDED.match(value)
    if value in ("cpu", "memory", "ephemeral-storage"):
        raise _error("extended_resource",
                     "{value} is not an accelerator: set it as resources.{name} instead",
                     value=_show(value), name=value)
    if not match or len(value) > 253:
        raise _error(
            "extended_resource",
            "{value} is not an extended resource name: use DOMAIN/NAME, e.g. nvidia.com/gpu",
            value=_show(value),
        )
    domain = match.group("domain")
    if domain == "kubernetes.io" or domain.endswith(".kubernetes.io"):
        raise _error(
            "extended_resource",
            "{value} is in the reserved kubernetes.io domain: use a vendor's, e.g. nvidia.com/gpu",
            value=_show(value),
        )
    return value


ExtendedResource = Annotated[str, AfterValidator(_extended_resource)]

# --- MLflow names -----------------------------------------------------------------------------

_MODEL_NAME = re.compile(r"^[^/@\s]+$")
_ALIAS = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_VERSION_LIKE = re.compile(r"^[vV]\d+$")


def _model_name(value: str) -> str:
    if not _MODEL_NAME.match(value):
        raise _error(
            "model_name",
            "{value} is not a registered model name the pipeline can address: no spaces, "
            "'/' or '@' (models:/NAME@ALIAS), e.g. iris-clf",
            value=_show(value),
        )
    return value


def _alias(value: str) -> str:
    if not _ALIAS.match(value):
        raise _error("alias",
                     "{value} is not an MLflow alias: use letters, digits, '_' and '-', "
                     "e.g. champion", value=_show(value))
    if value.lower() == "latest" or _VERSION_LIKE.match(value):
        raise _error("alias",
                     "{value} is reserved by MLflow (latest, v<number>): pick another alias, "
                     "e.g. champion", value=_show(value))
    return value


ModelName = Annotated[str, AfterValidator(_model_name),
                      Field(json_schema_extra={"pattern": _MODEL_NAME.pattern})]
Alias = Annotated[str, AfterValidator(_alias),
                  Field(json_schema_extra={"pattern": _ALIAS.pattern})]

# --- image references -------------------------------------------------------------------------


def _image_ref(value: str) -> ImageRef:
    try:
        return ImageRef.parse(value)
    except InvalidInput as exc:
        cause = exc.message.split(": ", 1)[-1]
        raise _error("image_reference", "{value} is not an image reference: {cause}",
                     value=_show(value), cause=cause) from None


def _repository(value: str) -> str:
    text = value.strip()
    ref = _image_ref(text)
    if ref.tag or ref.digest:
        bare = f"{ref.registry}/{ref.repository}"
        raise _error(
            "image_repository",
            "{value} carries a tag or digest, but the release tags and pins each image itself: "
            "write the repository alone, e.g. {fix}",
            value=_show(value), fix=json.dumps(bare),
        )
    return text


def _base(value: str) -> str:
    text = value.strip()
    ref = _image_ref(text)
    if not (ref.tag or ref.digest):
        raise _error(
            "image_base",
            "{value} names no tag or digest, so the base could change under a release: "
            "pin it, e.g. {fix}",
            value=_show(value), fix=json.dumps(f"{text}@sha256:<digest>"),
        )
    return text


ImageRepository = Annotated[str, AfterValidator(_repository)]
ImageBase = Annotated[str, AfterValidator(_base)]

# --- cron -------------------------------------------------------------------------------------

_CRON_MACROS: Final = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
_CRON_ITEM = re.compile(r"^(\*|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?$")
_CRON_RANGES: Final = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_CRON_FIELDS: Final = ("minute", "hour", "day of month", "month", "day of week")


def _cron(value: str) -> str:
    text = " ".join(value.split())
    if text in _CRON_MACROS:
        return text
    fields = text.split(" ")
    hint = "e.g. '0 3 * * 1' (Mondays 03:00) or @daily"
    if len(fields) != 5:
        raise _error(
            "cron",
            "{value} has {count} fields; a cron schedule has 5 (minute hour day-of-month "
            "month day-of-week), " + hint,
            value=_show(value), count=len(fields) if text else 0,
        )
    for position, (field, (low, high)) in enumerate(zip(fields, _CRON_RANGES, strict=True)):
        for item in field.split(","):
            if not _CRON_ITEM.match(item):
                raise _error("cron", "{value}: {name} field {field} is not cron syntax, " + hint,
                             value=_show(value), name=_CRON_FIELDS[position],
                             field=json.dumps(field))
            for number in re.findall(r"(?<![/0-9])[0-9]+", item):
                if not low <= int(number) <= high:
                    raise _error(
                        "cron", "{value}: {name} {number} is outside {low}-{high}, " + hint,
                        value=_show(value), name=_CRON_FIELDS[position], number=number,
                        low=low, high=high,
                    )
    return text


CronSchedule = Annotated[str, AfterValidator(_cron)]

# --- artifact paths ---------------------------------------------------------------------------


def _artifact_path(value: str) -> str:
    parts = value.split("/")
    if value.startswith("/") or "\\" in value or any(p in ("", ".", "..") for p in parts):
        raise _error(
            "artifact_path",
            "{value} is not a path inside the run's artifacts: use a relative path without "
            "'..', e.g. \"agreement/samples.json\"", value=_show(value))
    if not value.lower().endswith((".json", ".csv")):
        raise _error(
            "artifact_path",
            "{value} must be a .json or .csv file of inputs, e.g. \"agreement/samples.csv\"",
            value=_show(value))
    return value


ArtifactPath = Annotated[str, AfterValidator(_artifact_path)]
"""A file in an MLflow run's artifacts, relative to the run's artifact root."""

# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
        use_attribute_docstrings=True,
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


class ModelRef(_Model):
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
            raise _error("model_selector",
                         "names no version: add exactly one of alias (e.g. alias: champion), "
                         "version (e.g. version: 3) or stage (e.g. stage: Production)")
        raise _error("model_selector",
                     "sets {chosen}: keep exactly one of alias, version or stage",
                     chosen=" and ".join(chosen))


class ImageSpec(_Model):
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


class Resources(_Model):
    """What one serving replica requests; accelerators are requested and limited alike."""

    cpu: Annotated[Quantity, AfterValidator(_cpu)] = Field(examples=["500m"])
    """CPU request in cores (``1``, ``0.5``) or millicores (``500m``)."""
    memory: Annotated[Quantity, AfterValidator(_memory)] = Field(examples=["512Mi"])
    """Memory request and limit, e.g. ``512Mi`` or ``2Gi``."""
    accelerators: Accelerators = Field(default_factory=dict,
                                       examples=[{"nvidia.com/gpu": 1}])
    """Extended resources per replica, e.g. ``{nvidia.com/gpu: 1}``."""


_MIN_REPLICAS: Final = 1
_MAX_REPLICAS: Final = 3


class Autoscaling(_Model):
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
            raise _error(
                "replicas_order",
                "must be at most maxReplicas ({max}): raise maxReplicas or lower minReplicas",
                max=self.max_replicas, at=("minReplicas",),
            )
        return self


def _step_weight(value: int) -> int:
    if value == 0:
        raise _error("step_weight_zero",
                     "a step at weight 0 sends the canary no traffic: start at 1 or more")
    return value


class CanaryStep(_Model):
    """One traffic step: send ``weight`` percent to the canary, then judge after ``hold``."""

    weight: Annotated[Weight, AfterValidator(_step_weight)] = Field(
        examples=[10], json_schema_extra={"minimum": 1})
    """Percent of live traffic for the canary during this step."""
    hold: Hold = Field(examples=["30s"])
    """How long to generate load and collect samples before judging this step."""


class LatencyCheck(_Model):
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
            raise _error("percentile_order",
                         "must be at most p99Ms ({p99}): a 95th percentile cannot exceed "
                         "the 99th", p99=f"{self.p99_ms:g}", at=("p95Ms",))
        return self


class AgreementCheck(_Model):
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
            raise _error("samples_order",
                         "must be at most maxSamples ({max}): raise maxSamples or lower "
                         "minSamples", max=self.max_samples, at=("minSamples",))
        return self


SliceValue = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class SliceCheck(_Model):
    """Judge each slice of the traffic on its own (one tenant, locale, input shape).

    A regression confined to one slice (10% of requests 50% slower) vanishes in the
    average over all requests. With this set, the generated load sends ``mix``'s slice
    values in those proportions, each request carries its value (in the ``header`` or in
    the input ``column``), and the judge runs the latency and error-rate checks inside
    each slice, canary against primary of the same slice, on the slices that reach
    ``minRequests`` per arm. The slices share one part of the error budget, so ten
    slices do not mean ten times the false rollbacks. The report names a slice that fails.
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

    @model_validator(mode="after")
    def _one_key(self) -> SliceCheck:
        if (self.header is None) == (self.column is None):
            raise _error("slice_key", "set exactly one of header (a request header) and "
                         "column (an input column) to say where the slice value is")
        if len(self.mix) > self.max_slices:
            raise _error("slice_mix", "names {count} slice values but maxSlices is {max}: "
                         "raise maxSlices or drop values from the mix",
                         count=len(self.mix), max=self.max_slices, at=("mix",))
        return self


class CanaryChecks(_Model):
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


class CanaryPolicy(_Model):
    """The canary's traffic steps and the checks each step must pass."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [{
        "rule": "!has(self.steps) || (self.steps.map(s, s.weight).isSorted() && "
                "self.steps.all(s, self.steps.filter(t, t.weight == s.weight).size() == 1))",
        "message": "step weights must strictly increase",
    }]})

    steps: Annotated[list[CanaryStep], Field(min_length=1, max_length=20)] = Field(
        default_factory=_default_steps, examples=[[{"weight": 10, "hold": "30s"}]])
    """Traffic steps, weights strictly increasing."""
    checks: CanaryChecks = Field(default_factory=CanaryChecks)
    """How each step is judged."""

    @field_validator("steps")
    @classmethod
    def _increasing(cls, steps: list[CanaryStep]) -> list[CanaryStep]:
        for index in range(1, len(steps)):
            if steps[index].weight <= steps[index - 1].weight:
                raise _error("steps_order",
                             "must be greater than step {prev}'s weight ({weight})",
                             prev=index - 1, weight=steps[index - 1].weight,
                             at=(index, "weight"))
        return steps


class Promotion(_Model):
    """What a promoted version gets in MLflow."""

    alias: Alias = "production"
    """The alias moved to the promoted version."""
    tags: bool = True
    """Tag the version with the release's outcome, image digest and release id."""


class SmokePolicy(_Model):
    """The smoke test before any traffic."""

    require_input_example: bool = True
    """Refuse a model without an input example (true), or smoke-test ``/ping`` alone (false)."""


class Fault(StrEnum):
    """What a rollback drill breaks in its deliberately bad canary."""

    LATENCY = "latency"
    ERRORS = "errors"
    CRASH = "crash"


class Drill(_Model):
    """A scheduled rollback drill: release a deliberately bad canary and prove it is undone."""

    schedule: CronSchedule = Field(examples=["0 3 * * 1"])
    """Cron schedule (5 fields, or @daily and friends)."""
    fault: Fault = Fault.LATENCY
    """What the drill's canary does wrong."""


class EndpointSpec(_Model):
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
    promotion: Promotion = Field(default_factory=Promotion)
    """MLflow alias and tags on promotion."""
    smoke: SmokePolicy = Field(default_factory=SmokePolicy)
    """Smoke-test policy."""
    drill: Drill | None = None
    """Optional scheduled rollback drill."""


class EndpointMetadata(_Model):
    """The endpoint's name (prefix of every object it owns) and namespace."""

    name: EndpointName = Field(examples=["iris"])
    """Endpoint name: a DNS-1035 label of at most 55 characters."""
    namespace: Namespace = Field(examples=["ml"])
    """Namespace every object of the endpoint lives in."""


# --- status -----------------------------------------------------------------------------------


class ReleasePhase(StrEnum):
    """Where an endpoint's release stands, as the custom resource's status records it.

    Every phase of the state machine (:class:`modelrelease.domain.rollout.Phase`, same
    values) plus what the flow records outside it: ``Building`` (the image, before the state
    machine starts) and ``Failed`` (the pipeline could not decide; see the reason).
    """

    PENDING = "Pending"
    BUILDING = "Building"
    DEPLOYING = "Deploying"
    SMOKE = "Smoke"
    ANALYSING = "Analysing"
    PROMOTING = "Promoting"
    ROLLING_BACK = "RollingBack"
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    FAILED = "Failed"


class Outcome(StrEnum):
    """A judgement's outcome: too few samples is inconclusive, never a pass."""

    PASSED = "Passed"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"


class TrackStatus(_Model):
    """The model version and image one track serves."""

    version: str
    """MLflow model version."""
    digest: str | None = None
    """Image digest (``sha256:...``)."""
    image: str | None = None
    """Full image reference, pinned by digest."""


class Verdict(_Model):
    """The last judgement, with its numbers."""

    outcome: Outcome
    """Passed, Failed or Inconclusive."""
    reasons: list[str] = Field(default_factory=list)
    """Why, one line each."""
    numbers: dict[str, float] = Field(default_factory=dict)
    """The figures behind it (p99_ms_canary, error_rate_primary, ...)."""


class HistoryEntry(_Model):
    """One past release."""

    release_id: str
    """The release's id."""
    version: str
    """MLflow model version released."""
    phase: ReleasePhase
    """How it ended (or where it stopped)."""
    digest: str | None = None
    """Image digest."""
    reason: str | None = None
    """Why it ended that way."""
    finished_at: datetime | None = None
    """When it ended."""
    spec_hash: str | None = None
    """``spec_hash`` of the spec it was released with."""


class DrillRecord(_Model):
    """The last rollback drill: did the pipeline catch its fault and undo it, and how fast."""

    finished_at: datetime
    """When it ended."""
    fault: Fault
    """What its canary did wrong."""
    passed: bool
    """Whether every part held: fault detected, rolled back, primary served throughout,
    previous version still restorable."""
    time_to_detect_s: Annotated[float, Field(ge=0)] | None = None
    """Seconds from the faulty canary's start to the rollback decision."""
    time_to_restore_s: Annotated[float, Field(ge=0)] | None = None
    """Seconds from the rollback decision to the primary serving alone."""
    version: str | None = None
    """The model version drilled (the primary's)."""
    previous_version: str | None = None
    """The version a rollback would go back to, checked restorable."""
    release_id: str | None = None
    """The drill's release id."""
    reason: str = ""
    """Why it passed or failed, one line per part that did not hold."""


class Condition(_Model):
    """A Kubernetes-style condition."""

    type: str
    """Condition type, e.g. Ready."""
    status: Literal["True", "False", "Unknown"]
    """True, False or Unknown."""
    reason: str | None = None
    """One CamelCase word."""
    message: str | None = None
    """Human-readable detail."""
    last_transition_time: datetime | None = None
    """When status last changed."""
    observed_generation: int | None = None
    """The generation the condition was computed for."""


class ModelEndpointStatus(_Model):
    """The durable release record, read by a restarted flow to resume or roll back."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})

    phase: ReleasePhase | None = None
    """Where the current or last release stands."""
    release_id: str | None = None
    """The current or last release."""
    reason: Annotated[str, Field(max_length=1000)] | None = None
    """Why the current or last release is where it is (a rollback's cause, kept so that a
    re-run finishing a rollback tags it with the same cause)."""
    step: Annotated[int, Field(ge=0)] | None = None
    """Index of the current canary step."""
    weight: Weight = 0
    """Canary's share of live traffic now, in percent (effective, not requested)."""
    primary: TrackStatus | None = None
    """What the primary serves."""
    canary: TrackStatus | None = None
    """What the canary serves, while there is one."""
    last_verdict: Verdict | None = None
    """The last judgement."""
    history: Annotated[list[HistoryEntry], Field(max_length=HISTORY_LIMIT)] = Field(
        default_factory=list)
    """Past releases, newest last (the oldest are dropped beyond the limit)."""
    conditions: list[Condition] = Field(default_factory=list)
    """Kubernetes-style conditions."""
    observed_generation: int | None = None
    """The spec generation this status describes."""
    spec_hash: str | None = None
    """``spec_hash`` of the spec the primary was released with."""
    cost_per_hour: Annotated[float, Field(ge=0)] | None = None
    """Estimated cost per hour of the endpoint's replicas (primary and canary), from the
    price table."""
    last_drill: DrillRecord | None = None
    """The last rollback drill's result and times."""

    def with_history(self, entry: HistoryEntry) -> ModelEndpointStatus:
        """This status with ``entry`` appended, dropping the oldest beyond the limit."""
        history = [*self.history, entry][-HISTORY_LIMIT:]
        return self.model_copy(update={"history": history})


class ModelEndpoint(_Model):
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


# --- flow parameters --------------------------------------------------------------------------


class ReleaseRequest(_Model):
    """Parameters of one release (the Prefect flow's form).

    ``endpoint`` is an endpoint name (``deployments/endpoints/NAME.yaml``) or a path to a
    ModelEndpoint file; ``version`` or ``alias`` overrides the file's model selector and
    ``canary`` its canary policy.
    """

    endpoint: Annotated[str, Field(min_length=1, max_length=253, title="Endpoint",
                                   examples=["iris"])]
    """Endpoint name, or path to its ModelEndpoint YAML file."""
    version: Annotated[int, Field(ge=1)] | None = Field(default=None, title="Model version")
    """Release this model version instead of the file's selector."""
    alias: Alias | None = Field(default=None, title="Model alias")
    """Release the version with this alias instead of the file's selector."""
    canary: CanaryPolicy | None = Field(default=None, title="Canary policy")
    """Use this canary policy instead of the file's."""
    dry_run: bool = Field(default=False, title="Dry run")
    """Plan and render, change nothing."""

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if _is_path(value):
            return value
        return _endpoint_name(value)

    @model_validator(mode="after")
    def _one_override(self) -> ReleaseRequest:
        if self.version is not None and self.alias is not None:
            raise _error("override", "sets version and alias: keep one of them", at=("alias",))
        return self

    def endpoint_file(self, endpoints_dir: Path) -> Path:
        """The file to load: ``endpoint`` itself if it is a path, else NAME.yaml in the dir."""
        if _is_path(self.endpoint):
            return Path(self.endpoint)
        return endpoints_dir / f"{self.endpoint}.yaml"

    def applied_to(self, endpoint: ModelEndpoint) -> ModelEndpoint:
        """``endpoint`` with this request's overrides (model selector, canary policy)."""
        spec = endpoint.spec
        if self.version is not None or self.alias is not None:
            model = ModelRef(name=spec.model.name, version=self.version, alias=self.alias)
            spec = spec.model_copy(update={"model": model})
        if self.canary is not None:
            spec = spec.model_copy(update={"canary": self.canary})
        return endpoint.model_copy(update={"spec": spec})


def _is_path(value: str) -> bool:
    return "/" in value or os.sep in value or value.endswith((".yaml", ".yml"))


# ----------------------------------------------------------------------------------------------
# Loading, dumping, hashing
# ----------------------------------------------------------------------------------------------


def endpoint_document(endpoint: ModelEndpoint, *, status: bool = False) -> dict[str, Any]:
    """``endpoint`` as the plain camelCase document it is written as (no nulls)."""
    exclude = None if status else {"status"}
    return endpoint.model_dump(mode="json", by_alias=True, exclude_none=True, exclude=exclude)


def endpoint_yaml(endpoint: ModelEndpoint) -> str:
    """``endpoint`` as YAML that :func:`load_endpoint` reads back to an equal model."""
    return yaml.safe_dump(endpoint_document(endpoint), sort_keys=False, allow_unicode=True)


def spec_hash(endpoint: ModelEndpoint) -> str:
    """A stable ``sha256:<hex>`` of the spec with its defaults filled in (for idempotency).

    Two files that differ only in formatting, key order or spelled-out defaults hash alike.
    """
    document = endpoint.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    data = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(data.encode()).hexdigest()


def parse_resource(obj: Mapping[str, Any], *, source: str | None = None) -> ModelEndpoint:
    """A ModelEndpoint custom resource as read from the cluster, status included.

    The API server adds metadata (uid, resourceVersion, managedFields, ...) that a file
    must not carry; only ``metadata.name`` and ``metadata.namespace`` are kept.

    Raises:
        InvalidInput: The resource is not a valid ModelEndpoint.
    """
    metadata = obj.get("metadata")
    data = dict(obj)
    if isinstance(metadata, Mapping):
        data["metadata"] = {k: metadata[k] for k in ("name", "namespace") if k in metadata}
        source = source or f"modelendpoint {metadata.get('namespace')}/{metadata.get('name')}"
    return parse_endpoint(data, source=source or "modelendpoint")


def load_endpoint(path: str | os.PathLike[str]) -> ModelEndpoint:
    """Read and validate a ModelEndpoint YAML file.

    Raises:
        InvalidInput: The file cannot be read, is not YAML, or is not a valid
            ModelEndpoint; one line per problem, ``FILE: FIELD.PATH: problem and fix``.
    """
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{source}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise InvalidInput(f"{source}: cannot read: {exc.strerror or exc}; check the path (an "
                           "endpoint name is looked up in MODELRELEASE_RELEASE__ENDPOINTS_DIR)"
                           ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f"line {mark.line + 1}, column {mark.column + 1}: "
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context = getattr(exc, "context", None)
        if context and context.startswith("while"):
            problem = f"{problem} ({context})"
        elif context:
            problem = f"{context} {problem}"
        raise InvalidInput(f"{source}: {where}not valid YAML: {problem}") from None
    except RecursionError:
        raise InvalidInput(f"{source}: not valid YAML: nested too deeply") from None
    return parse_endpoint(data, source=source)


def load_endpoints(directory: str | os.PathLike[str]) -> dict[str, ModelEndpoint]:
    """Every ``NAME.yaml`` ModelEndpoint file in ``directory``, by NAME (a release's name).

    Raises:
        InvalidInput: The directory does not exist, or a file in it is not a valid
            ModelEndpoint (the message names the file).
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise InvalidInput(f"{folder}: no such directory of ModelEndpoint files; set "
                           "MODELRELEASE_RELEASE__ENDPOINTS_DIR to the folder holding them")
    return {path.stem: load_endpoint(path) for path in sorted(folder.glob("*.yaml"))}


def parse_endpoint(data: object, *, source: str = "<input>") -> ModelEndpoint:
    """Validate an already-parsed document as a ModelEndpoint.

    Raises:
        InvalidInput: One line per problem, ``SOURCE: FIELD.PATH: problem and fix``.
    """
    if data is None:
        raise InvalidInput(f"{source}: empty: expected a ModelEndpoint document "
                           "(apiVersion, kind, metadata, spec)")
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{source}: is {_show(data)}, expected a ModelEndpoint mapping "
                           "(apiVersion, kind, metadata, spec)")
    try:
        return ModelEndpoint.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput("\n".join(
            f"{source}: {path}: {' '.join(message.splitlines())}"
            for path, message in describe_errors(exc)
        )) from None


# --- error messages ---------------------------------------------------------------------------

Loc = tuple[str | int, ...]
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _strip(annotation: Any) -> Any:
    """The type inside ``Annotated[...]`` and ``X | None``."""
    while get_origin(annotation) in (Annotated, Union, UnionType):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    return annotation


def _fields(annotation: Any) -> dict[str, FieldInfo]:
    """A model's fields by alias (what the file says); {} for anything else."""
    fields: dict[str, FieldInfo] = getattr(annotation, "model_fields", {})
    return {field.alias or name: field for name, field in fields.items()}


def _walk(loc: Loc) -> tuple[str, Any, FieldInfo | None]:
    """The file's spelling of a pydantic ``loc``, the type holding its last part, its field.

    The field is None for list items and map values. Paths read
    ``spec.canary.steps[1].weight``; map keys in brackets: ``accelerators["a.io/b"]``.
    """
    text, current, parent = "", _strip(ModelEndpoint), None
    info: FieldInfo | None = None
    for part in loc:
        if part == "[key]":
            continue
        parent, info = current, None
        if get_origin(current) is dict:
            text += f"[{json.dumps(part)}]"
            current = get_args(current)[1]
        elif isinstance(part, int):
            text += f"[{part}]"
            current = get_args(current)[0] if get_origin(current) is list else None
        else:
            if not _IDENTIFIER.match(part):
                text += f"[{json.dumps(part)}]"
            else:
                text += f".{part}" if text else part
            info = _fields(current).get(part)
            current = info.annotation if info is not None else None
        current = _strip(current)
    return text or "(document)", parent, info


def _example(loc: Loc, info: FieldInfo | None) -> str:
    """``, e.g. key: value`` from the field's examples, or ''."""
    if info is None or not info.examples:
        return ""
    value = yaml.safe_dump(info.examples[0], default_flow_style=True, width=1000,
                           sort_keys=False)
    value = value.strip().removesuffix("...").strip()
    return f", e.g. {loc[-1]}: {value}"


_PLAIN: Final = {
    "int_type": "must be a whole number", "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number", "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false", "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "dict_type": "must be a mapping", "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "list_type": "must be a list",
    "datetime_type": "must be a date-time (RFC 3339)",
    "datetime_parsing": "must be a date-time (RFC 3339)",
    "datetime_from_date_parsing": "must be a date-time (RFC 3339)",
}


def _message(error: Mapping[str, Any]) -> tuple[Loc, str]:
    loc: Loc = tuple(error["loc"])
    kind: str = error["type"]
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    value = error.get("input")
    if "at" in ctx:
        loc = (*loc, *ctx["at"])
    if kind in _CUSTOM_KINDS:
        return loc, str(error["msg"])
    _, parent, info = _walk(loc)
    if kind == "missing":
        return loc, "required" + (_example(loc, info) or ": add it")
    if kind == "extra_forbidden":
        allowed = list(_fields(parent))
        key = str(loc[-1])
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        return loc, f"unknown field{hint} (allowed: {', '.join(allowed)})" if allowed \
            else f"unknown field{hint}"
    if kind in _PLAIN:
        return loc, f"{_PLAIN[kind]}, got {_show(value)}{_example(loc, info)}"
    bounds = {
        "greater_than": "greater than {gt}", "greater_than_equal": "at least {ge}",
        "less_than": "less than {lt}", "less_than_equal": "at most {le}",
    }
    if kind in bounds:
        return loc, "must be " + bounds[kind].format(**ctx) + f", got {_show(value)}"
    if kind == "too_short":
        return loc, f"needs at least {ctx['min_length']} item(s){_example(loc, info)}"
    if kind == "too_long":
        return loc, f"has {ctx['actual_length']} items; at most {ctx['max_length']} allowed"
    if kind in ("literal_error", "enum"):
        return loc, f"must be {ctx['expected']}, got {_show(value)}"
    message = str(error["msg"])
    return loc, message[:1].lower() + message[1:]


_CUSTOM_KINDS: Final = frozenset({
    "endpoint_name", "endpoint_name_length", "namespace", "duration", "duration_negative",
    "hold_zero", "hold_long", "quantity", "quantity_zero", "cpu", "memory",
    "extended_resource", "model_name", "alias", "image_reference", "image_repository",
    "image_base", "cron", "model_selector", "replicas_order", "step_weight_zero",
    "percentile_order", "steps_order", "override", "artifact_path", "samples_order",
})


def describe_errors(exc: ValidationError) -> list[tuple[str, str]]:
    """``(field path in the file's camelCase terms, message with the fix)`` per error."""
    lines: list[tuple[str, str]] = []
    for error in exc.errors(include_url=False):
        loc, message = _message(error)
        lines.append((_walk(loc)[0], message))
    return lines
