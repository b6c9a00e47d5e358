"""``preflight``: refuse, before anything changes, what would otherwise fail halfway."""

from __future__ import annotations

import json

from modelrelease.adapters.loadgen import Variant
from modelrelease.adapters.model_files import ModelFiles
from modelrelease.domain.model import ModelVersion
from modelrelease.domain.slice_mix import slice_requests
from modelrelease.errors import InvalidInput
from modelrelease.release.ports import Cluster, ModelRegistry
from modelrelease.spec import ModelEndpoint


def preflight(cluster: Cluster, models: ModelRegistry, endpoint: ModelEndpoint,
              version: ModelVersion) -> tuple[ModelFiles, tuple[Variant, ...]]:
    """Permissions, the input example and the slices, checked before any change.

    Returns:
        The version's files, and the generated load's slice mix built once for every step.

    Raises:
        KubeApiError: the identity lacks a permission the release needs (403).
        InvalidInput: the version has no input example and the spec requires one, or
            the spec's slices cannot be sent with it.
    """
    where = f"{endpoint.namespace}/{endpoint.name}"
    cluster.check_permissions()
    files = models.files(version)
    if endpoint.spec.smoke.require_input_example and files.serving_example is None:
        raise InvalidInput(
            f"release endpoint {where}: model {version.name} version {version.version} "
            "has no input example, so the smoke test has nothing to send; log the model "
            "with one (input_example=...) or set spec.smoke.requireInputExample: false "
            "to smoke-test /ping alone")
    return files, slice_variants(endpoint, files)


def slice_variants(endpoint: ModelEndpoint, files: ModelFiles) -> tuple[Variant, ...]:
    """The generated load's slice mix (``spec.canary.checks.slices``; none: ``()``).

    Raises:
        InvalidInput: a column slice the input example cannot carry.
    """
    check = endpoint.spec.canary.checks.slices
    if check is None:
        return ()
    try:
        shapes = slice_requests(check, files.serving_example)
    except ValueError as exc:
        raise InvalidInput(f"release endpoint {endpoint.namespace}/{endpoint.name}: "
                           f"spec.canary.checks.slices: {exc}") from None
    return tuple(Variant(s.value, s.weight,
                         None if s.payload is None else json.dumps(s.payload).encode(),
                         s.headers) for s in shapes)
