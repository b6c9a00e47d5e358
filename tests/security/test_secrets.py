"""Credentials never show: not in logs, artifacts, exceptions, the record, Events or MLflow.

The registry password, the MLflow password and the webhook secret are read from Prefect
Secret blocks on the stack's Prefect server. A whole release runs as the Prefect flow with
them; then a build pushes to the TLS registry with basic auth (so the password really goes
over the wire), and one with a wrong password fails: its exception chain is searched too.
"""

from __future__ import annotations

import json
import traceback
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from modelrelease.adapters.prefect_secrets import with_secret_blocks
from modelrelease.build.builder import BuildRequest, ImageBuilder
from modelrelease.errors import PrefectError, RegistryAuthError
from modelrelease.settings import PipelineSettings
from tests.security.conftest import SecretRelease, capture_everything, environment
from tests.support import REGISTRY_USER, Services

pytestmark = [pytest.mark.e2e, pytest.mark.security]


def _leaks(secrets: dict[str, str], places: dict[str, str]) -> list[str]:
    return [f"{what} found in {where}" for where, text in places.items()
            for what, secret in secrets.items() if secret in text]


def _prefect(api: str, path: str, body: dict[str, Any] | None = None) -> Any:
    with httpx.Client(base_url=api, timeout=30) as http:
        response = http.post(path, json=body) if body is not None else http.get(path)
        response.raise_for_status()
        return response.json()


def _flow_run_logs(api: str, run_id: str) -> list[dict[str, Any]]:
    logs: list[dict[str, Any]] = []
    while True:
        page = _prefect(api, "/logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}},
                                              "limit": 200, "offset": len(logs)})
        logs += page
        if len(page) < 200:
            return logs


def _chain(exc: BaseException) -> str:
    """Everything an exception shows: message, repr, args and its causes, with tracebacks."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts += [str(current), repr(current), repr(current.args),
                  repr(getattr(current, "__dict__", {}))]
        current = current.__cause__ or current.__context__
    parts += traceback.format_exception(exc)
    return "\n".join(parts)


def test_a_release_shows_its_credentials_nowhere(secret_release: SecretRelease) -> None:
    release, endpoint, api = secret_release, secret_release.endpoint, secret_release.api_url
    from mlflow.tracking import MlflowClient

    logs = _flow_run_logs(api, release.flow_run_id)
    artifacts = _prefect(api, "/artifacts/filter",
                         {"artifacts": {"flow_run_id": {"any_": [release.flow_run_id]}}})
    mlflow = MlflowClient(tracking_uri=str(endpoint.settings.mlflow.tracking_uri))
    versions = mlflow.search_model_versions(f"name='{endpoint.model}'")
    record = endpoint.custom.get_namespaced_custom_object(
        "modelrelease.io", "v1alpha1", endpoint.namespace, "modelendpoints", endpoint.name)
    api_client = endpoint.core.api_client
    places = {
        "log records, stdout and stderr": release.output,
        "Prefect flow-run logs": json.dumps(logs),
        "Prefect artifacts": json.dumps(artifacts),
        "Prefect flow run": json.dumps(_prefect(api, f"/flow_runs/{release.flow_run_id}")),
        "release result": json.dumps(release.result),
        "ModelEndpoint (status included)": json.dumps(record),
        "Kubernetes Events": json.dumps(api_client.sanitize_for_serialization(
            endpoint.core.list_namespaced_event(endpoint.namespace).items)),
        "Deployments": json.dumps(api_client.sanitize_for_serialization(
            endpoint.apps.list_namespaced_deployment(endpoint.namespace).items)),
        "MLflow version tags": json.dumps([dict(v.tags) for v in versions]),
        "MLflow model": json.dumps(dict(mlflow.get_registered_model(endpoint.model).tags)),
    }
    # the places are not empty: the capture saw DEBUG records, the run logged, it reported
    assert "DEBUG" in release.output and "Promoted" in release.output
    assert logs and artifacts and record.get("status")
    assert any(v.tags.get("modelrelease.status") == "promoted" for v in versions)
    leaks = _leaks(release.secrets, places)
    print(json.dumps({"secrets_checked": sorted(release.secrets), "places": sorted(places),
                      "log_lines": release.output.count("\n") + len(logs), "leaks": leaks}))
    assert not leaks, leaks


def test_credentials_come_from_prefect_secret_blocks(secret_release: SecretRelease) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    secrets = secret_release.secrets
    with temporary_settings(updates={PREFECT_API_URL: secret_release.api_url}), \
            environment(secret_release.env):
        settings = with_secret_blocks(PipelineSettings())
        shown = [str(settings), repr(settings), settings.model_dump_json()]
        missing = settings.model_copy(update={"webhook": settings.webhook.model_copy(
            update={"secret": None, "secret_block": "no-such-block"})})
        with pytest.raises(PrefectError, match=r"no-such-block.*not found") as refused:
            with_secret_blocks(missing)
    assert settings.registry.password is not None and settings.mlflow.password is not None
    assert settings.registry.password.get_secret_value() == secrets["registry password"]
    assert settings.mlflow.password.get_secret_value() == secrets["mlflow password"]
    assert settings.webhook.secret is not None
    assert settings.webhook.secret.get_secret_value() == secrets["webhook secret"]
    assert not _leaks(secrets, {"settings shown": "\n".join(shown),
                                "missing block error": _chain(refused.value)})


def test_the_registry_password_goes_over_the_wire_and_nowhere_else(
        secret_release: SecretRelease, services: Services, tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    endpoint = secret_release.endpoint
    secrets = dict(secret_release.secrets)
    with temporary_settings(updates={PREFECT_API_URL: secret_release.api_url}), \
            environment(secret_release.env):
        settings = with_secret_blocks(PipelineSettings(build={"cache_dir": tmp_path / "cache"}))
    registry = settings.registry.model_copy(update={"ca_file": services.secure_registry.ca_cert})
    request = BuildRequest(model=f"models:/{endpoint.model}/1", base=services.secure_base,
                           to=f"{services.secure_registry.host}/security/{endpoint.name}")
    with environment({}), capture_everything() as sink:
        builder = ImageBuilder(settings.model_copy(update={"registry": registry}),
                               progress=print)
        try:
            built = builder.build(request)
        finally:
            builder.registry.close()
    assert built.stats.bytes_uploaded > 0  # really pushed, with the password from the block

    wrong = f"wrong-{uuid.uuid4().hex}"
    secrets["wrong password"] = wrong
    import base64

    secrets["wrong basic auth"] = base64.b64encode(f"{REGISTRY_USER}:{wrong}".encode()).decode()
    bad = registry.model_copy(update={"password": SecretStr(wrong)})
    with environment({}), capture_everything() as failed_sink:
        builder = ImageBuilder(settings.model_copy(update={"registry": bad}), progress=print)
        try:
            with pytest.raises(RegistryAuthError) as refused:
                builder.build(request)
        finally:
            builder.registry.close()
    assert "401" in refused.value.message and "credentials" in refused.value.message
    leaks = _leaks(secrets, {"build logs": sink.getvalue(),
                             "failed build logs": failed_sink.getvalue(),
                             "exception chain": _chain(refused.value),
                             "build result": repr(built)})
    assert not leaks, leaks
