"""`modelrelease webhook serve|register`: the plain errors before anything starts.

Registration against a real MLflow server, and a served receiver, are in
tests/integration/test_webhook.py.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelrelease.cli import app

SECRET = "cli-test-secret"


pytestmark = pytest.mark.usefixtures("env")  # tests/unit/conftest.py


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("args", [
    pytest.param(["serve"], id="serve"),
    pytest.param(["register", "--url", "http://127.0.0.1:8765/webhook"], id="register"),
])
def test_no_secret_is_a_plain_error(args: list[str]) -> None:
    result = CliRunner().invoke(app, ["webhook", *args])
    assert result.exit_code == 2
    assert "no webhook secret: set MODELRELEASE_WEBHOOK__SECRET" in result.output


@pytest.mark.parametrize(("variable", "said"), [
    pytest.param("MODELRELEASE_WEBHOOK_SERVICE_HOST", "Kubernetes sets it in pods for a "
                 "Service of the namespace; set `enableServiceLinks: false`", id="service-host"),
    pytest.param("MODELRELEASE_WEBHOOK_PORT_80_TCP_ADDR", "Kubernetes sets it in pods for a "
                 "Service of the namespace; set `enableServiceLinks: false`", id="docker-link"),
    pytest.param("MODELRELEASE_WEBHOK__SECRET", "fix its name or unset it", id="typo"),
])
def test_a_variable_that_is_not_a_setting_is_named_with_the_fix(
        env: pytest.MonkeyPatch, variable: str, said: str) -> None:
    env.setenv("MODELRELEASE_WEBHOOK__SECRET", SECRET)
    env.setenv(variable, "10.96.0.5")
    result = CliRunner().invoke(app, ["webhook", "serve"])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert f"error: serve webhook: {variable} is not a setting: {said}" in message, message


@pytest.mark.parametrize(("tracking_uri", "message"), [
    pytest.param(f"http://user:pw@127.0.0.1:{_closed_port()}", "MLflow unreachable at "
                 "http://127.0.0.1:", id="unreachable"),
    pytest.param("file:///tmp/mlruns", "webhooks need an MLflow tracking server, not file",
                 id="file-store"),
])
def test_register_says_why_mlflow_will_not_do(env: pytest.MonkeyPatch, tracking_uri: str,
                                              message: str) -> None:
    env.setenv("MODELRELEASE_WEBHOOK__SECRET", SECRET)
    env.setenv("MODELRELEASE_MLFLOW__TRACKING_URI", tracking_uri)
    result = CliRunner().invoke(app, ["webhook", "register", "--url", "http://x/webhook"])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert SECRET not in result.output and "pw" not in result.output


def test_serve_refuses_a_missing_endpoints_dir(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("MODELRELEASE_WEBHOOK__SECRET", SECRET)
    env.setenv("MODELRELEASE_RELEASE__ENDPOINTS_DIR", str(tmp_path / "nowhere"))
    result = CliRunner().invoke(app, ["webhook", "serve"])
    assert result.exit_code == 2
    assert "no such directory of ModelEndpoint files" in result.output


def test_bad_settings_are_a_plain_error(env: pytest.MonkeyPatch) -> None:
    env.setenv("MODELRELEASE_WEBHOOK__PORT", "0")
    result = CliRunner().invoke(app, ["webhook", "serve"])
    assert result.exit_code == 2
    assert "error: serve webhook: MODELRELEASE_WEBHOOK__PORT: input should be greater than or " \
        "equal to 1" in result.output  # the variable, as the user writes it
