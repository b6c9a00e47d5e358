"""Where MLflow, the OCI registry, the cluster and Prefect are: one frozen settings object.

Sources, highest precedence first (see ``PipelineSettings.settings_customise_sources``):
arguments passed in code, ``MODELRELEASE_*`` environment variables (nested with ``__``,
e.g. ``MODELRELEASE_REGISTRY__USERNAME``), a ``.env`` file, then secret files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from modelrelease.domain.pod_access import AccessMode


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Retrying(_Frozen):
    """Bounded exponential back-off for a server that may be down for a while (a restart)."""

    retries: int = Field(
        default=5, ge=0, le=20,
        description="Tries again after 429, 5xx or no answer (for MLflow, on top of its "
        "client's own MLFLOW_HTTP_REQUEST_MAX_RETRIES).")
    backoff_s: float = Field(default=1.0, ge=0, le=30,
                             description="First retry delay; doubles up to backoff_max_s.")
    backoff_max_s: float = Field(default=8.0, ge=0, le=120)


class MlflowConfig(_Retrying):
    """How to reach the MLflow tracking server and model registry."""

    tracking_uri: str | None = Field(
        default=None, description="MLflow tracking URI; None uses MLFLOW_TRACKING_URI."
    )
    username: str | None = None
    password: SecretStr | None = None
    password_block: str | None = Field(
        default=None, description="A Prefect Secret block holding the password, read at start "
        "when `password` is unset.")


class RegistryConfig(_Frozen):
    """How to talk to OCI registries."""

    username: str | None = Field(default=None, description="Basic/bearer auth user.")
    password: SecretStr | None = None
    password_block: str | None = Field(
        default=None, description="A Prefect Secret block holding the password, read at start "
        "when `password` is unset.")
    docker_config: Path | None = Field(
        default=None, description="A docker config.json to read credentials from."
    )
    ca_file: Path | None = Field(default=None, description="PEM bundle trusted for TLS.")
    insecure_registries: tuple[str, ...] = Field(
        default=(),
        description="Non-loopback hosts allowed over plain http (loopback always may).",
    )
    chunk_size: int = Field(
        default=0, ge=0,
        description="Bytes per upload request; 0 streams each blob in one request "
        "(resumed from the registry's offset after a failure). Else at least 64 KiB.",
    )
    retries: int = Field(default=4, ge=0, le=20)
    backoff_s: float = Field(default=0.2, ge=0, le=30)
    timeout_s: float = Field(default=60.0, gt=0)


    @field_validator("chunk_size")
    @classmethod
    def _chunk_size_floor(cls, value: int) -> int:
        if 0 < value < 64 * 1024:
            raise ValueError("chunk_size must be 0 (one streamed request) or at least 65536")
        return value


class KubeConfig(_Retrying):
    """Which cluster and namespace the pipeline works in."""

    kubeconfig: Path | None = None
    context: str | None = None
    namespace: str = "default"
    pod_access: AccessMode = Field(
        default=AccessMode.AUTO,
        description="How checks reach the pods: auto (the Service's ClusterIP when it is "
                    "reachable: in the cluster, or routed off the default route; else the "
                    "API server's proxy), direct (always the ClusterIP), proxy (always the "
                    "API server).")


class BuildConfig(_Frozen):
    """Defaults for image builds."""

    cache_dir: Path = Field(
        default=Path.home() / ".cache" / "modelrelease",
        description="Where dependency layers and downloaded artifacts are cached.",
    )
    base_image: str | None = Field(
        default=None, description="Default serving base for `image build --base`.")
    model_path: str = Field(default="/opt/ml/model", pattern=r"^/[^\x00]*$")
    port: int = Field(default=8080, ge=1, le=65535)
    compress_model: bool = Field(
        default=False, description="gzip the model layer (weights barely compress)."
    )


class ReleaseConfig(_Frozen):
    """How releases run."""

    endpoints_dir: Path = Field(default=Path("deployments/endpoints"),
                                description="Where ModelEndpoint files named by endpoint live.")
    wait_for_lock_s: float = Field(
        default=0.0, ge=0,
        description="How long a release waits for another release of the same endpoint to "
        "finish; 0 refuses at once.")
    lock_ttl_s: int = Field(
        default=30, ge=3, le=600,
        description="Lifetime of the endpoint's lock (a Lease, renewed every third of it): "
        "how long a killed release keeps the next one waiting at most.")
    load_rate: float = Field(default=30.0, gt=0, le=2000,
                             description="Requests per second per arm while judging a step.")
    cpu_hour: float = Field(default=0.0316, ge=0, description="Price of one CPU core-hour.")
    gib_hour: float = Field(default=0.0042, ge=0, description="Price of one GiB-hour.")
    gpu_hour: float = Field(default=2.48, ge=0, description="Price of one GPU-hour.")


class WebhookConfig(_Frozen):
    """The MLflow webhook receiver (``modelrelease webhook serve``)."""

    secret: SecretStr | None = Field(
        default=None, description="Shared HMAC secret; `webhook serve` and `register` need it.")
    secret_block: str | None = Field(
        default=None, description="A Prefect Secret block holding the secret, read at start "
        "when `secret` is unset.")
    tolerance_s: float = Field(
        default=300.0, gt=0, le=3600,
        description="How far a delivery's signed timestamp may be from now, either way.")
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024,
                                description="Larger bodies are refused with 413.")
    replay_capacity: int = Field(
        default=10_000, ge=1,
        description="Delivery ids remembered at most (for twice the tolerance).")
    host: str = Field(default="127.0.0.1", description="Address `webhook serve` binds.")
    port: int = Field(default=8765, ge=1, le=65535)


class PrometheusConfig(_Frozen):
    """A Prometheus server to read live traffic from, instead of scraping the pods.

    It must scrape the serving pods (their ``prometheus.io/*`` annotations, or
    ``deployments/observability/podmonitor.yaml``) and give their series the namespace
    and pod target labels named here.
    """

    url: str | None = Field(
        default=None, pattern=r"^https?://[^\s]+$",
        description="Prometheus base URL (http://prometheus:9090); unset: the judge reads "
        "the pods' /metrics through the API server.")
    token: SecretStr | None = Field(default=None, description="Bearer token, if it needs one.")
    token_block: str | None = Field(
        default=None, description="A Prefect Secret block holding the token, read at start "
        "when `token` is unset.")
    ca_file: Path | None = Field(default=None, description="PEM bundle trusted for TLS.")
    timeout_s: float = Field(default=10.0, gt=0, le=300, description="Per query.")
    wait_s: float = Field(
        default=60.0, ge=0, le=600,
        description="After a step, how long to wait for a scrape of every pod newer than "
        "the step's end (about one scrape interval); then live traffic is unavailable.")
    lookback_s: float = Field(
        default=300.0, gt=0, le=3600,
        description="How far before a step a pod's last sample is looked for.")
    namespace_label: str = Field(default="namespace", pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    pod_label: str = Field(default="pod", pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class PipelineSettings(BaseSettings):
    """Every setting of the pipeline; immutable once loaded."""

    model_config = SettingsConfigDict(
        env_prefix="MODELRELEASE_",
        env_nested_delimiter="__",
        env_file=".env",
        dotenv_filtering="match_prefix",  # other tools' lines in a shared .env are not ours
        extra="forbid",
        frozen=True,
    )

    mlflow: MlflowConfig = MlflowConfig()
    registry: RegistryConfig = RegistryConfig()
    kube: KubeConfig = KubeConfig()
    build: BuildConfig = BuildConfig()
    release: ReleaseConfig = ReleaseConfig()
    webhook: WebhookConfig = WebhookConfig()
    prometheus: PrometheusConfig = PrometheusConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Code arguments, then environment, then ``.env``, then secret files.

        A ``MODELRELEASE_*`` variable naming no setting (a typo such as
        ``MODELRELEASE_REGSITRY__USERNAME``) is refused rather than silently ignored.
        """
        return (init_settings, env_settings, _UnknownEnvironment(settings_cls), dotenv_settings,
                file_secret_settings)


class _UnknownEnvironment(PydanticBaseSettingsSource):
    """Hands ``MODELRELEASE_*`` variables that match no field to validation, which refuses them."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        prefix = "MODELRELEASE_"
        known = set(self.settings_cls.model_fields)
        unknown: dict[str, Any] = {}
        for name, value in os.environ.items():
            if not name.upper().startswith(prefix):
                continue
            top = name[len(prefix):].split("__", 1)[0].lower()
            if top not in known:
                unknown[name[len(prefix):].lower()] = value
        return unknown
