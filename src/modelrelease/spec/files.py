"""Endpoint files and resources: loading, validating, dumping and hashing them."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    ValidationError,
)

from modelrelease.errors import InvalidInput
from modelrelease.spec.endpoint import ModelEndpoint
from modelrelease.spec.messages import describe_errors
from modelrelease.spec.values import shown

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
        raise InvalidInput(f"{source}: is {shown(data)}, expected a ModelEndpoint mapping "
                           "(apiVersion, kind, metadata, spec)")
    try:
        return ModelEndpoint.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput("\n".join(
            f"{source}: {path}: {' '.join(message.splitlines())}"
            for path, message in describe_errors(exc)
        )) from None
