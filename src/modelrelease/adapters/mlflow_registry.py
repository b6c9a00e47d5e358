"""The MLflow model registry: resolve versions, download their artifacts.

Works with ``mlflow-skinny``. Every ``MlflowException`` is translated into
``ModelNotFound``, ``ArtifactsMissing`` or ``MlflowError``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from modelrelease.adapters.retry import retrying
from modelrelease.domain.model import ModelUri, ModelVersion
from modelrelease.errors import ArtifactsMissing, MlflowError, ModelNotFound
from modelrelease.settings import MlflowConfig

log = logging.getLogger(__name__)
_GLOBAL_URI_LOCK = threading.Lock()
_NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")
_REFUSED = ("PERMISSION_DENIED", "UNAUTHENTICATED", "CUSTOMER_UNAUTHORIZED")
T = TypeVar("T")
_NOT_FOUND_FIX = ("register it in MLflow (or set that alias or stage), or fix the endpoint's "
                  "spec.model (or --version/--alias)")


class ModelRegistry(Protocol):
    """What the pipeline needs from a model registry."""

    def resolve(self, uri: ModelUri) -> ModelVersion:
        """Resolve a version, alias or stage to one model version."""
        ...

    def download(self, version: ModelVersion, dest: Path) -> Path:
        """Download the version's artifacts into ``dest``; return the model directory."""
        ...


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "error_code", ""))


class MlflowRegistry:
    """``ModelRegistry`` over an MLflow tracking server."""

    def __init__(self, config: MlflowConfig) -> None:
        import os

        from mlflow.tracking import MlflowClient

        self.config = config
        if config.username is not None:
            os.environ.setdefault("MLFLOW_TRACKING_USERNAME", config.username)
        if config.password is not None:
            os.environ.setdefault("MLFLOW_TRACKING_PASSWORD", config.password.get_secret_value())
        self._client = MlflowClient(tracking_uri=config.tracking_uri,
                                    registry_uri=config.tracking_uri)

    @contextmanager
    def _as_global(self) -> Iterator[None]:
        """Make this server MLflow's global tracking and registry URI for a moment.

        ``download_artifacts`` resolves ``models:/`` URIs (and MLflow 3's logged-model
        sources behind them) against the global URIs, whatever its arguments say.
        """
        import mlflow
        from mlflow.tracking._model_registry import utils as registry_utils
        from mlflow.tracking._tracking_service import utils as tracking_utils

        names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
        with _GLOBAL_URI_LOCK:
            # set_*_uri also export environment variables; put back exactly what was there,
            # so nothing leaks into this process's later calls or its subprocesses.
            saved = (tracking_utils._tracking_uri, registry_utils._registry_uri)
            environment = {name: os.environ.get(name) for name in names}
            mlflow.set_tracking_uri(self.tracking_uri)
            mlflow.set_registry_uri(self.tracking_uri)
            try:
                yield
            finally:
                tracking_utils._tracking_uri, registry_utils._registry_uri = saved
                for name, value in environment.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value

    @property
    def tracking_uri(self) -> str:
        """The tracking URI in use."""
        return str(self._client._tracking_client.tracking_uri)

    def _version(self, raw: Any) -> ModelVersion:
        return ModelVersion(
            name=raw.name,
            version=str(raw.version),
            source=str(raw.source or ""),
            run_id=raw.run_id or None,
            created=ModelVersion.created_from_ms(raw.creation_timestamp),
            aliases=tuple(sorted(getattr(raw, "aliases", None) or ())),
            stage=raw.current_stage or None,
            tags=dict(raw.tags or {}),
        )

    def retrying(self, what: str, fn: Callable[[], T]) -> T:
        """Run ``fn``, retrying a retriable ``MlflowError`` with bounded exponential back-off.

        MLflow down or restarting is waited out for ``MlflowConfig.retries`` tries; then
        the error names the server and what to check.

        Raises:
            MlflowError: still failing after the last try (or not retriable).
        """
        def give_up(exc: MlflowError, tries: int, seconds: float) -> MlflowError:
            return MlflowError(
                f"{exc.message} (gave up after {tries} tries in {seconds:.1f}s); check that "
                f"the MLflow server at {self.tracking_uri} is up, or point "
                "MODELRELEASE_MLFLOW__TRACKING_URI at it, then run the release again",
                retriable=True)

        return retrying(what, fn, retry_on=MlflowError, retries=self.config.retries,
                        backoff_s=self.config.backoff_s,
                        backoff_max_s=self.config.backoff_max_s, give_up=give_up)

    def resolve(self, uri: ModelUri) -> ModelVersion:
        """Resolve ``uri`` to one model version (retried while MLflow is unreachable).

        Raises:
            ModelNotFound: the model, version, alias or stage does not exist.
            MlflowError: MLflow failed or is unreachable, after the retries (retriable).
        """
        return self.retrying(f"resolve model {uri}", lambda: self._resolve(uri))

    def _resolve(self, uri: ModelUri) -> ModelVersion:
        from mlflow.exceptions import MlflowException

        what = f"resolve model {uri}"
        try:
            if uri.alias:
                raw = self._client.get_model_version_by_alias(uri.name, uri.alias)
            elif uri.version:
                raw = self._client.get_model_version(uri.name, uri.version)
            else:
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)
                    found = self._client.get_latest_versions(uri.name, stages=[uri.stage])
                if not found:
                    raise ModelNotFound(f"{what}: no version of {uri.name} is in stage "
                                        f"{uri.stage}; {_NOT_FOUND_FIX}")
                raw = found[0]
        except MlflowException as exc:
            if _error_code(exc) in _NOT_FOUND:
                raise ModelNotFound(f"{what}: {exc.message.rstrip('. ')}; {_NOT_FOUND_FIX}"
                                    ) from exc
            raise _mlflow_error(what, exc) from exc
        except OSError as exc:
            raise MlflowError(f"{what}: MLflow unreachable: {exc}", retriable=True) from exc
        return self._version(raw)

    def download(self, version: ModelVersion, dest: Path) -> Path:
        """Download the version's artifacts (MLmodel, weights, env files, input example).

        The directory appears complete or not at all, once: concurrent calls for one
        ``dest`` download it once and all return it.

        Raises:
            ArtifactsMissing: the artifacts cannot be found or have no MLmodel file.
        """
        if (dest / "MLmodel").is_file():
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        # one download per version at a time, across threads and processes: a second one
        # waits, then finds it complete (replacing it would pull files from under a build
        # that is reading them)
        with _locked(dest.parent / f".{dest.name}.lock"):
            if (dest / "MLmodel").is_file():
                return dest
            return self._download(version, dest)

    def _download(self, version: ModelVersion, dest: Path) -> Path:
        from mlflow.artifacts import download_artifacts
        from mlflow.exceptions import MlflowException

        what = f"download model {version.uri}"
        tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=dest.parent))
        try:
            with self._as_global():
                path = Path(download_artifacts(artifact_uri=version.uri, dst_path=str(tmp)))
            if not (path / "MLmodel").is_file():
                raise ArtifactsMissing(
                    f"{what}: no MLmodel file in the artifacts at {version.source}; "
                    "was the model logged with mlflow.<flavor>.log_model?"
                )
            shutil.rmtree(dest, ignore_errors=True)
            path.replace(dest)
        except MlflowException as exc:
            raise ArtifactsMissing(
                f"{what}: artifacts at {version.source} cannot be downloaded: {exc.message}"
            ) from exc
        except OSError as exc:
            raise ArtifactsMissing(
                f"{what}: artifacts at {version.source} cannot be downloaded: {exc}"
            ) from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log.debug("downloaded %s to %s", version.uri, dest)
        return dest

    def read_run_artifact(self, run_id: str, path: str) -> str:
        """The text of one file among a run's artifacts (e.g. a sample set of inputs).

        Raises:
            ArtifactsMissing: the run has no such file, or it cannot be downloaded or read.
        """
        from mlflow.artifacts import download_artifacts
        from mlflow.exceptions import MlflowException

        what = f"download artifact {path} of run {run_id}"
        with tempfile.TemporaryDirectory(prefix="modelrelease-artifact-") as tmp:
            try:
                with self._as_global():
                    found = download_artifacts(run_id=run_id, artifact_path=path, dst_path=tmp)
                text = Path(found).read_text(encoding="utf-8")
            except MlflowException as exc:
                raise ArtifactsMissing(f"{what}: {exc.message}") from exc
            except (OSError, UnicodeDecodeError) as exc:
                raise ArtifactsMissing(f"{what}: {exc}") from exc
        log.debug("read artifact %s of run %s (%d characters)", path, run_id, len(text))
        return text


def _mlflow_error(what: str, exc: Any) -> MlflowError:
    """An ``MlflowException`` as an ``MlflowError``: retriable unless MLflow refused us."""
    return MlflowError(f"{what}: {exc.message}", retriable=_error_code(exc) not in _REFUSED)


def tag_version(registry: MlflowRegistry, version: ModelVersion, tags: dict[str, str],
                alias: str | None = None) -> None:
    """Set tags (and optionally move an alias) on a model version; idempotent, retried.

    Raises:
        MlflowError: MLflow refused, or is still unreachable after the retries (retriable).
    """
    from mlflow.exceptions import MlflowException

    what = f"tag model {version.uri}"

    def once() -> None:
        try:
            for key, value in tags.items():
                registry._client.set_model_version_tag(version.name, version.version, key,
                                                       value[:5000])
            if alias:
                registry._client.set_registered_model_alias(version.name, alias,
                                                            version.version)
        except MlflowException as exc:
            raise _mlflow_error(what, exc) from exc
        except OSError as exc:
            raise MlflowError(f"{what}: MLflow unreachable: {exc}", retriable=True) from exc

    registry.retrying(what, once)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the block."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
