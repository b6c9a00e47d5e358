"""The spec's value types: names, durations, quantities, image references, cron, paths.

Each is an ``Annotated`` type whose validator says what is wrong and how to fix it, in
the file's own terms; ``SpecModel`` is the base of every model of the spec.
"""

from __future__ import annotations

import ipaddress
import json
import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from modelrelease.domain.durations import format_duration
from modelrelease.domain.reference import ImageRef
from modelrelease.errors import InvalidInput

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


def invalid(kind: str, message: str, **context: Any) -> PydanticCustomError:
    """A validation error whose message already says what is wrong and how to fix it.

    ``at`` in ``context`` (a tuple of keys and indexes) names a field below the one being
    validated, so a check made on a parent can point at the exact child field.
    """
    return PydanticCustomError(kind, message, context or None)


def shown(value: object) -> str:
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


def valid_endpoint_name(value: str) -> str:
    """``value`` if it can name an endpoint (DNS-1035, short enough for its Deployments)."""
    if not _DNS1035.match(value):
        raise invalid(
            "endpoint_name",
            "{value} is not a valid Kubernetes name: use lowercase letters, digits and '-', "
            "starting with a letter and ending with a letter or digit, e.g. {fix}",
            value=shown(value), fix=json.dumps(_suggest_name(value, MAX_ENDPOINT_NAME)),
        )
    if len(value) > MAX_ENDPOINT_NAME:
        raise invalid(
            "endpoint_name_length",
            "{value} is {length} characters; at most {limit} fit, since the Deployments are "
            "named NAME-primary and NAME-canary (63 at most): shorten it, e.g. {fix}",
            value=shown(value), length=len(value), limit=MAX_ENDPOINT_NAME,
            fix=json.dumps(_suggest_name(value, MAX_ENDPOINT_NAME)),
        )
    return value


def _namespace(value: str) -> str:
    if not _DNS1123.match(value) or len(value) > _MAX_NAME:
        fix = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]+", "-", value.lower()))
        fix = fix[:_MAX_NAME].strip("-") or "default"
        raise invalid(
            "namespace",
            "{value} is not a valid namespace: at most 63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit, e.g. {fix}",
            value=shown(value), fix=json.dumps(fix),
        )
    return value


EndpointName = Annotated[
    str,
    AfterValidator(valid_endpoint_name),
    Field(json_schema_extra={"pattern": _DNS1035.pattern, "maxLength": MAX_ENDPOINT_NAME}),
]
"""An endpoint name: a DNS-1035 label (a Service needs one) short enough for its suffixes."""

Namespace = Annotated[
    str,
    AfterValidator(_namespace),
    Field(json_schema_extra={"pattern": _DNS1123.pattern, "maxLength": _MAX_NAME}),
]
"""A Kubernetes namespace: a DNS-1123 label."""

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_MAX_SUBDOMAIN: Final = 253


def _gateway_name(value: str) -> str:
    if not _SUBDOMAIN.match(value) or len(value) > _MAX_SUBDOMAIN:
        raise invalid("gateway_name",
                      "{value} is not a valid Gateway name: lowercase letters, digits, '-' "
                      "and '.', starting and ending with a letter or digit (as `kubectl get "
                      "gateways -A` lists it), e.g. \"public-gateway\"", value=shown(value))
    return value


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _hostname(value: str) -> str:
    if not _HOSTNAME.match(value) or len(value) > _MAX_SUBDOMAIN or _is_ip(value):
        raise invalid("hostname",
                      "{value} is not a hostname an HTTPRoute takes: lowercase DNS labels "
                      "joined by '.', optionally starting with '*.', no port and no IP "
                      "address, e.g. \"iris.models.example.com\"", value=shown(value))
    return value


GatewayName = Annotated[
    str,
    AfterValidator(_gateway_name),
    Field(json_schema_extra={"pattern": _SUBDOMAIN.pattern, "maxLength": _MAX_SUBDOMAIN}),
]
"""A Gateway's name: a DNS-1123 subdomain."""

Hostname = Annotated[
    str,
    AfterValidator(_hostname),
    Field(json_schema_extra={"pattern": _HOSTNAME.pattern, "maxLength": _MAX_SUBDOMAIN}),
]
"""A hostname as the Gateway API takes it (``*.`` wildcard allowed, no IP, no port)."""

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
        raise invalid("duration", "{value} is not a duration: " + _DURATION_HINT,
                      value=shown(value))
    elif isinstance(value, int | float):
        try:
            result = _micros(Decimal(repr(value)) * _UNIT_US["s"])
        except (InvalidOperation, OverflowError, ValueError):
            raise invalid("duration", "{value} is not a duration: " + _DURATION_HINT,
                          value=shown(value)) from None
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
            raise invalid("duration", "{value} is not a duration: " + _DURATION_HINT,
                          value=shown(value)) from None
    if result < timedelta(0):
        raise invalid("duration_negative", "{value} is negative: durations count forward",
                      value=shown(value))
    return result


def _hold(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise invalid("hold_zero",
                      "a hold of 0s collects no requests to judge: use e.g. 30s")
    if value > _MAX_HOLD:
        raise invalid("hold_long", "{value} is longer than 24h: use e.g. 30m",
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
        raise invalid(
            "quantity",
            "{value} is not a Kubernetes quantity: write a number with an optional unit, "
            "e.g. 500m or 2 for cpu, 512Mi or 2Gi for memory",
            value=shown(value),
        ) from None
    if amount <= 0:
        raise invalid("quantity_zero", "{value} must be greater than zero", value=shown(value))
    return text


def valid_cpu(value: str) -> str:
    """``value`` if it is a CPU quantity between 1m and 1024 cores."""
    amount = quantity_value(value)
    if amount < Decimal("0.001") or amount > 1024:
        raise invalid(
            "cpu",
            "{value} is {cores} cores: cpu counts cores (1, 0.5) or millicores (500m), "
            "between 1m and 1024",
            value=shown(value), cores=f"{amount.normalize():f}",
        )
    return value


def valid_memory(value: str) -> str:
    """``value`` if it is a memory quantity of at least 1Mi (less: the unit was forgotten)."""
    amount = quantity_value(value)
    if amount < 2**20:
        number = _QUANTITY.match(value).group("number")  # type: ignore[union-attr]
        raise invalid(
            "memory",
            "{value} is only {amount} bytes: write the unit, e.g. {fix}",
            value=shown(value), amount=f"{amount.normalize():f}", fix=json.dumps(f"{number}Mi"),
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
        raise invalid("extended_resource",
                      "{value} is not an accelerator: set it as resources.{name} instead",
                      value=shown(value), name=value)
    if not match or len(value) > 253:
        raise invalid(
            "extended_resource",
            "{value} is not an extended resource name: use DOMAIN/NAME, e.g. nvidia.com/gpu",
            value=shown(value),
        )
    domain = match.group("domain")
    if domain == "kubernetes.io" or domain.endswith(".kubernetes.io"):
        raise invalid(
            "extended_resource",
            "{value} is in the reserved kubernetes.io domain: use a vendor's, e.g. nvidia.com/gpu",
            value=shown(value),
        )
    return value


ExtendedResource = Annotated[str, AfterValidator(_extended_resource)]

# --- MLflow names -----------------------------------------------------------------------------

_MODEL_NAME = re.compile(r"^[^/@\s]+$")
_ALIAS = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_VERSION_LIKE = re.compile(r"^[vV]\d+$")


def _model_name(value: str) -> str:
    if not _MODEL_NAME.match(value):
        raise invalid(
            "model_name",
            "{value} is not a registered model name the pipeline can address: no spaces, "
            "'/' or '@' (models:/NAME@ALIAS), e.g. iris-clf",
            value=shown(value),
        )
    return value


def _alias(value: str) -> str:
    if not _ALIAS.match(value):
        raise invalid("alias",
                      "{value} is not an MLflow alias: use letters, digits, '_' and '-', "
                      "e.g. champion", value=shown(value))
    if value.lower() == "latest" or _VERSION_LIKE.match(value):
        raise invalid("alias",
                      "{value} is reserved by MLflow (latest, v<number>): pick another alias, "
                      "e.g. champion", value=shown(value))
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
        raise invalid("image_reference", "{value} is not an image reference: {cause}",
                      value=shown(value), cause=cause) from None


def _repository(value: str) -> str:
    text = value.strip()
    ref = _image_ref(text)
    if ref.tag or ref.digest:
        bare = f"{ref.registry}/{ref.repository}"
        raise invalid(
            "image_repository",
            "{value} carries a tag or digest, but the release tags and pins each image itself: "
            "write the repository alone, e.g. {fix}",
            value=shown(value), fix=json.dumps(bare),
        )
    return text


def _base(value: str) -> str:
    text = value.strip()
    ref = _image_ref(text)
    if not (ref.tag or ref.digest):
        raise invalid(
            "image_base",
            "{value} names no tag or digest, so the base could change under a release: "
            "pin it, e.g. {fix}",
            value=shown(value), fix=json.dumps(f"{text}@sha256:<digest>"),
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
        raise invalid(
            "cron",
            "{value} has {count} fields; a cron schedule has 5 (minute hour day-of-month "
            "month day-of-week), " + hint,
            value=shown(value), count=len(fields) if text else 0,
        )
    for position, (field, (low, high)) in enumerate(zip(fields, _CRON_RANGES, strict=True)):
        for item in field.split(","):
            if not _CRON_ITEM.match(item):
                raise invalid("cron", "{value}: {name} field {field} is not cron syntax, " + hint,
                              value=shown(value), name=_CRON_FIELDS[position],
                              field=json.dumps(field))
            for number in re.findall(r"(?<![/0-9])[0-9]+", item):
                if not low <= int(number) <= high:
                    raise invalid(
                        "cron", "{value}: {name} {number} is outside {low}-{high}, " + hint,
                        value=shown(value), name=_CRON_FIELDS[position], number=number,
                        low=low, high=high,
                    )
    return text


CronSchedule = Annotated[str, AfterValidator(_cron)]

# --- artifact paths ---------------------------------------------------------------------------


def _artifact_path(value: str) -> str:
    parts = value.split("/")
    if value.startswith("/") or "\\" in value or any(p in ("", ".", "..") for p in parts):
        raise invalid(
            "artifact_path",
            "{value} is not a path inside the run's artifacts: use a relative path without "
            "'..', e.g. \"agreement/samples.json\"", value=shown(value))
    if not value.lower().endswith((".json", ".csv")):
        raise invalid(
            "artifact_path",
            "{value} must be a .json or .csv file of inputs, e.g. \"agreement/samples.csv\"",
            value=shown(value))
    return value


ArtifactPath = Annotated[str, AfterValidator(_artifact_path)]
"""A file in an MLflow run's artifacts, relative to the run's artifact root."""


class SpecModel(BaseModel):
    """The base of every spec model: camelCase aliases, no extra keys, frozen."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
        use_attribute_docstrings=True,
    )



class Fault(StrEnum):
    """What a rollback drill breaks in its deliberately bad canary."""

    LATENCY = "latency"
    ERRORS = "errors"
    CRASH = "crash"
