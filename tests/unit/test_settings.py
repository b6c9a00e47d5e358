"""PipelineSettings from real environment variables and real .env files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from modelrelease.settings import (
    BuildConfig,
    KubeConfig,
    MlflowConfig,
    PipelineSettings,
    RegistryConfig,
)

pytestmark = pytest.mark.usefixtures("env")  # tests/unit/conftest.py


def test_defaults() -> None:
    settings = PipelineSettings()
    assert settings.mlflow == MlflowConfig()
    assert settings.registry == RegistryConfig()
    assert settings.kube == KubeConfig(namespace="default")
    assert settings.build.model_path == "/opt/ml/model"
    assert settings.build.port == 8080
    assert settings.build.compress_model is False
    assert settings.registry.retries == 4
    assert settings.registry.insecure_registries == ()


@pytest.mark.parametrize(
    ("name", "value", "get", "expected"),
    [
        pytest.param("MODELRELEASE_REGISTRY__USERNAME", "alice", lambda s: s.registry.username,
                     "alice", id="registry-username"),
        pytest.param("modelrelease_registry__username", "bob", lambda s: s.registry.username,
                     "bob", id="lowercase-name"),
        pytest.param("MODELRELEASE_REGISTRY__RETRIES", "7", lambda s: s.registry.retries, 7,
                     id="int-coerced"),
        pytest.param("MODELRELEASE_REGISTRY__BACKOFF_S", "0.5", lambda s: s.registry.backoff_s,
                     0.5, id="float-coerced"),
        pytest.param("MODELRELEASE_REGISTRY__INSECURE_REGISTRIES", '["reg.lan:5000","b"]',
                     lambda s: s.registry.insecure_registries, ("reg.lan:5000", "b"),
                     id="json-list-to-tuple"),
        pytest.param("MODELRELEASE_REGISTRY__DOCKER_CONFIG", "/etc/docker/config.json",
                     lambda s: s.registry.docker_config, Path("/etc/docker/config.json"),
                     id="path"),
        pytest.param("MODELRELEASE_MLFLOW__TRACKING_URI", "http://127.0.0.1:5000",
                     lambda s: s.mlflow.tracking_uri, "http://127.0.0.1:5000", id="mlflow-uri"),
        pytest.param("MODELRELEASE_KUBE__NAMESPACE", "ml-prod", lambda s: s.kube.namespace,
                     "ml-prod", id="kube-namespace"),
        pytest.param("MODELRELEASE_KUBE", '{"namespace": "whole", "context": "kind"}',
                     lambda s: (s.kube.namespace, s.kube.context), ("whole", "kind"),
                     id="whole-section-as-json"),
        pytest.param("MODELRELEASE_BUILD__COMPRESS_MODEL", "true",
                     lambda s: s.build.compress_model, True, id="bool"),
        pytest.param("MODELRELEASE_BUILD__PORT", "9000", lambda s: s.build.port, 9000,
                     id="build-port"),
        pytest.param("MODELRELEASE_BUILD__CACHE_DIR", "/var/cache/mr",
                     lambda s: s.build.cache_dir, Path("/var/cache/mr"), id="cache-dir"),
        pytest.param("MODELRELEASE_PROMETHEUS__URL", "http://prometheus.monitoring:9090",
                     lambda s: s.prometheus.url, "http://prometheus.monitoring:9090",
                     id="prometheus-url"),
        pytest.param("MODELRELEASE_PROMETHEUS__POD_LABEL", "kubernetes_pod_name",
                     lambda s: s.prometheus.pod_label, "kubernetes_pod_name",
                     id="prometheus-pod-label"),
    ],
)
def test_environment_variables(
    env: pytest.MonkeyPatch, name: str, value: str, get: Callable[[PipelineSettings], Any],
    expected: Any,
) -> None:
    env.setenv(name, value)
    assert get(PipelineSettings()) == expected


@pytest.mark.parametrize(
    ("name", "value", "loc"),
    [
        pytest.param("MODELRELEASE_REGISTRY__RETRIES", "21", ("registry", "retries"),
                     id="retries-too-many"),
        pytest.param("MODELRELEASE_REGISTRY__RETRIES", "many", ("registry", "retries"),
                     id="retries-not-int"),
        pytest.param("MODELRELEASE_REGISTRY__CHUNK_SIZE", "1024", ("registry", "chunk_size"),
                     id="chunk-too-small"),
        pytest.param("MODELRELEASE_REGISTRY__TIMEOUT_S", "0", ("registry", "timeout_s"),
                     id="timeout-zero"),
        pytest.param("MODELRELEASE_BUILD__PORT", "65536", ("build", "port"), id="port-too-big"),
        pytest.param("MODELRELEASE_BUILD__MODEL_PATH", "opt/model", ("build", "model_path"),
                     id="model-path-relative"),
        pytest.param("MODELRELEASE_REGISTRY__BOGUS", "1", ("registry", "bogus"),
                     id="unknown-nested-key"),
        pytest.param("MODELRELEASE_KUBE__NAMESPACES", "x", ("kube", "namespaces"),
                     id="misspelt-nested-key"),
        pytest.param("MODELRELEASE_PROMETHEUS__URL", "prometheus:9090", ("prometheus", "url"),
                     id="prometheus-url-without-scheme"),
        pytest.param("MODELRELEASE_PROMETHEUS__POD_LABEL", "pod-name",
                     ("prometheus", "pod_label"), id="prometheus-label-not-a-label-name"),
        pytest.param("MODELRELEASE_PROMETHEUS__WAIT_S", "601", ("prometheus", "wait_s"),
                     id="prometheus-wait-too-long"),
    ],
)
def test_invalid_environment(env: pytest.MonkeyPatch, name: str, value: str,
                             loc: tuple[str, ...]) -> None:
    env.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        PipelineSettings()
    assert [e["loc"] for e in info.value.errors()] == [loc]


def test_misspelt_top_level_environment_variable_is_rejected(env: pytest.MonkeyPatch) -> None:
    env.setenv("MODELRELEASE_REGSITRY__USERNAME", "alice")
    with pytest.raises(ValidationError):
        PipelineSettings()


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"bogus": 1}, id="top-level"),
        pytest.param({"registry": {"bogus": 1}}, id="nested-dict"),
        pytest.param({"kube": {"namespace": "x", "extra": "y"}}, id="nested-beside-valid"),
    ],
)
def test_unknown_init_keys_are_forbidden(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as info:
        PipelineSettings(**kwargs)
    assert {e["type"] for e in info.value.errors()} == {"extra_forbidden"}


@pytest.mark.parametrize(
    "model",
    [
        pytest.param(MlflowConfig, id="mlflow"),
        pytest.param(RegistryConfig, id="registry"),
        pytest.param(KubeConfig, id="kube"),
        pytest.param(BuildConfig, id="build"),
    ],
)
def test_sections_forbid_unknown_keys(model: type[Any]) -> None:
    with pytest.raises(ValidationError):
        model(not_a_field=1)


@pytest.mark.parametrize(
    ("variable", "get"),
    [
        pytest.param("MODELRELEASE_REGISTRY__PASSWORD", lambda s: s.registry.password,
                     id="registry"),
        pytest.param("MODELRELEASE_MLFLOW__PASSWORD", lambda s: s.mlflow.password, id="mlflow"),
        pytest.param("MODELRELEASE_PROMETHEUS__TOKEN", lambda s: s.prometheus.token,
                     id="prometheus-token"),
    ],
)
def test_passwords_are_secret(
    env: pytest.MonkeyPatch, variable: str, get: Callable[[PipelineSettings], Any]
) -> None:
    env.setenv(variable, "hunter2-s3cret")
    settings = PipelineSettings()
    password = get(settings)
    assert isinstance(password, SecretStr)
    assert password.get_secret_value() == "hunter2-s3cret"
    for shown in (repr(settings), str(settings), repr(settings.registry), str(settings.mlflow),
                  settings.model_dump_json(), repr(settings.model_dump()), f"{settings}"):
        assert "hunter2-s3cret" not in shown


@pytest.mark.parametrize(
    "assign",
    [
        pytest.param(lambda s: setattr(s, "registry", RegistryConfig()), id="section"),
        pytest.param(lambda s: setattr(s.registry, "username", "x"), id="registry-field"),
        pytest.param(lambda s: setattr(s.kube, "namespace", "x"), id="kube-field"),
        pytest.param(lambda s: setattr(s.build, "port", 1), id="build-field"),
        pytest.param(lambda s: setattr(s.mlflow, "tracking_uri", "x"), id="mlflow-field"),
    ],
)
def test_frozen(assign: Callable[[PipelineSettings], None]) -> None:
    settings = PipelineSettings()
    with pytest.raises(ValidationError):
        assign(settings)
    assert settings == PipelineSettings()


@pytest.mark.parametrize(
    ("registry", "username", "password"),
    [
        pytest.param({"username": "init"}, "init", "from-env", id="dict-merged-with-env"),
        pytest.param(RegistryConfig(username="init"), "init", None, id="model-replaces-section"),
    ],
)
def test_init_arguments_beat_the_environment(
    env: pytest.MonkeyPatch, registry: Any, username: str, password: str | None
) -> None:
    env.setenv("MODELRELEASE_REGISTRY__USERNAME", "from-env")
    env.setenv("MODELRELEASE_REGISTRY__PASSWORD", "from-env")
    settings = PipelineSettings(registry=registry)
    assert settings.registry.username == username
    got = settings.registry.password
    assert (got.get_secret_value() if got else None) == password


DOTENV = (
    "# settings for local runs\n"
    "MODELRELEASE_KUBE__NAMESPACE=from-dotenv\n"
    "MODELRELEASE_REGISTRY__USERNAME=dotenv-user\n"
    "MODELRELEASE_REGISTRY__PASSWORD=dotenv-pass\n"
)


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(DOTENV)
    settings = PipelineSettings()
    assert settings.kube.namespace == "from-dotenv"
    assert settings.registry.username == "dotenv-user"
    assert settings.registry.password is not None
    assert settings.registry.password.get_secret_value() == "dotenv-pass"
    assert "dotenv-pass" not in repr(settings)


def test_environment_beats_dotenv_and_init_beats_both(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(DOTENV)
    env.setenv("MODELRELEASE_KUBE__NAMESPACE", "from-env")
    settings = PipelineSettings()
    assert settings.kube.namespace == "from-env"
    assert settings.registry.username == "dotenv-user"
    assert PipelineSettings(kube={"namespace": "from-init"}).kube.namespace == "from-init"


def test_dotenv_unknown_nested_key_is_forbidden(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MODELRELEASE_REGISTRY__USRNAME=typo\n")
    with pytest.raises(ValidationError) as info:
        PipelineSettings()
    assert [e["loc"] for e in info.value.errors()] == [("registry", "usrname")]


def test_dotenv_in_another_directory_is_not_read(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(DOTENV)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env.chdir(elsewhere)
    assert PipelineSettings().kube.namespace == "default"


def test_dotenv_with_other_tools_variables_is_accepted(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MLFLOW_TRACKING_URI=http://127.0.0.1:5000\n" + DOTENV)
    assert PipelineSettings().kube.namespace == "from-dotenv"
