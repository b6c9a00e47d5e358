"""Validation errors as one line per problem: the camelCase field, what is wrong, the fix."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from types import UnionType
from typing import Annotated, Any, Final, Union, get_args, get_origin

import yaml
from pydantic import (
    ValidationError,
)
from pydantic.fields import FieldInfo

from modelrelease.spec.endpoint import ModelEndpoint
from modelrelease.spec.values import shown

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
        return loc, f"{_PLAIN[kind]}, got {shown(value)}{_example(loc, info)}"
    bounds = {
        "greater_than": "greater than {gt}", "greater_than_equal": "at least {ge}",
        "less_than": "less than {lt}", "less_than_equal": "at most {le}",
    }
    if kind in bounds:
        return loc, "must be " + bounds[kind].format(**ctx) + f", got {shown(value)}"
    if kind == "too_short":
        return loc, f"needs at least {ctx['min_length']} item(s){_example(loc, info)}"
    if kind == "too_long":
        return loc, f"has {ctx['actual_length']} items; at most {ctx['max_length']} allowed"
    if kind in ("literal_error", "enum"):
        return loc, f"must be {ctx['expected']}, got {shown(value)}"
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
