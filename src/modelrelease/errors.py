"""The pipeline's exception tree.

Adapters translate vendor errors (``httpx.HTTPError``, ``MlflowException``,
``kubernetes.client.ApiException``) into these, with ``raise ... from exc``, so no
vendor exception reaches a task. ``retriable`` tells a task's retry condition
whether another try can help (429, 5xx, timeouts, dropped connections).

    PipelineError
    ├── InvalidInput            bad spec, bad reference, bad option: fix the input
    │   └── UnsafeModelDir      a model directory escaping itself (symlink outside)
    ├── ModelNotFound           unknown model, version, alias or stage in MLflow
    ├── ArtifactsMissing        the version resolves but its files cannot be downloaded
    ├── MlflowError             MLflow answered with an error or could not be reached
    ├── RegistryError           an OCI registry error (status, code)
    │   ├── ImageNotFound       manifest or blob unknown (404)
    │   └── RegistryAuthError   401/403: missing or wrong credentials
    ├── BuildError              a build step outside the registry failed (pip, tar)
    ├── KubeApiError            the Kubernetes API refused or failed
    ├── RolloutTimeout          a rollout did not converge in time
    ├── ReleaseInProgress       another release holds the endpoint's lock
    ├── DrillFailed             a rollback drill found a part that does not hold
    ├── PrefectError            the Prefect server refused or could not be reached
    └── StackError              the local stack could not start or stop
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose.

    Args:
        message: What failed, in the house format ``<verb> <kind> <name>: <cause>``.
        retriable: Whether retrying the same call may succeed.
    """

    retriable_default = False

    def __init__(self, message: str, *, retriable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retriable = self.retriable_default if retriable is None else retriable


class InvalidInput(PipelineError):
    """The input is wrong; the message says which field and how to fix it."""


class UnsafeModelDir(InvalidInput):
    """A model directory holds a link that points outside it."""


class ModelNotFound(PipelineError):
    """MLflow has no such registered model, version, alias or stage."""


class ArtifactsMissing(PipelineError):
    """The model version exists but its artifacts cannot be downloaded."""


class MlflowError(PipelineError):
    """MLflow failed or could not be reached."""


class RegistryError(PipelineError):
    """An OCI registry answered with an error.

    Args:
        message: What failed.
        status: The HTTP status, or 0 when no response arrived.
        code: The distribution error code (``MANIFEST_UNKNOWN``, ...), if any.
        retriable: Defaults to True for 429, 5xx and no response.
    """

    def __init__(
        self, message: str, *, status: int = 0, code: str = "", retriable: bool | None = None
    ) -> None:
        if retriable is None:
            retriable = status == 0 or status == 429 or status >= 500
        super().__init__(message, retriable=retriable)
        self.status = status
        self.code = code


class ImageNotFound(RegistryError):
    """The manifest or blob does not exist in the registry."""


class RegistryAuthError(RegistryError):
    """The registry refused the credentials (or none were given)."""


class BuildError(PipelineError):
    """A build step outside the registry failed (dependency install, layer write)."""


class KubeApiError(PipelineError):
    """The Kubernetes API refused or failed a call.

    Args:
        message: What failed.
        status: The HTTP status, or 0 when the API server could not be reached.
        retriable: Whether another try may help (429, 5xx, unreachable).
    """

    def __init__(self, message: str, *, status: int = 0, retriable: bool | None = None) -> None:
        super().__init__(message, retriable=retriable)
        self.status = status


class RolloutTimeout(PipelineError):
    """A rollout did not converge before its deadline."""


class ReleaseInProgress(PipelineError):
    """Another release of the same endpoint holds its lock."""


class DrillFailed(PipelineError):
    """A rollback drill ran, and a part of it did not hold (the message says which)."""


class StackError(PipelineError):
    """The local stack could not be started, reached or stopped."""


class PrefectError(PipelineError):
    """The Prefect server refused a request or could not be reached."""
