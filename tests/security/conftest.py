"""One real release run as the Prefect flow, with known credentials from Prefect Secret blocks.

Everything it printed or logged (every logger at DEBUG, stdout, stderr) is kept, with the
flow run's id, so ``test_secrets`` can look for the credentials everywhere and
``test_hardening`` can read back the pod it left serving.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from modelrelease_localstack.demo_model import register_iris_model
from modelrelease_localstack.stack import Stack
from tests.e2e.helpers import Endpoint, make_endpoint
from tests.security.support import LENIENT
from tests.support import REGISTRY_PASSWORD, REGISTRY_USER


@dataclass
class SecretRelease:
    """The release and what it left behind."""

    endpoint: Endpoint
    api_url: str
    flow_run_id: str
    result: dict[str, Any]
    output: str
    """Every log record (all loggers, DEBUG), stdout and stderr of the run."""
    secrets: dict[str, str]
    """The known credentials by name (and base64 of user:password)."""
    env: dict[str, str]
    """The MODELRELEASE_* environment the flow ran with (block names, no values)."""


class _Everything(logging.Handler):
    def __init__(self, sink: io.StringIO) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.sink.write(self.format(record) + "\n")
            if record.exc_info:
                self.sink.write(logging.Formatter().formatException(record.exc_info) + "\n")
        except Exception:  # noqa: BLE001 - a record that cannot format is still looked at
            self.sink.write(repr(record.__dict__) + "\n")


@contextlib.contextmanager
def capture_everything() -> Iterator[io.StringIO]:
    """Every log record at DEBUG (root and Prefect's own loggers), stdout and stderr."""
    sink = io.StringIO()
    handler = _Everything(sink)
    loggers = [logging.getLogger(), logging.getLogger("prefect")]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield sink
    finally:
        for lg, level in saved:
            lg.removeHandler(handler)
            lg.setLevel(level)


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` set, put back exactly afterwards."""
    names = [*values, "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"]
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def known_secrets() -> dict[str, str]:
    """Credentials no test would print by chance."""
    import base64

    mlflow_password = f"mlflow-pw-{uuid.uuid4().hex}"
    webhook = f"whsec-{uuid.uuid4().hex}"
    return {
        "registry password": REGISTRY_PASSWORD,
        "registry basic auth": base64.b64encode(
            f"{REGISTRY_USER}:{REGISTRY_PASSWORD}".encode()).decode(),
        "mlflow password": mlflow_password,
        "mlflow basic auth": base64.b64encode(
            f"mlflow-user:{mlflow_password}".encode()).decode(),
        "webhook secret": webhook,
    }


@pytest.fixture(scope="session")
def secret_release(stack: Stack, crd: None, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[SecretRelease]:
    from prefect.blocks.system import Secret
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.release import release_model
    from modelrelease.spec import ReleaseRequest

    tmp = tmp_path_factory.mktemp("secret-release")
    endpoint = make_endpoint(stack, tmp, checks=LENIENT)
    register_iris_model(str(endpoint.settings.mlflow.tracking_uri), endpoint.model,
                        alias="champion")
    secrets = known_secrets()
    api = stack.env()["PREFECT_API_URL"]
    blocks = {"registry": f"registry-pw-{endpoint.name}", "mlflow": f"mlflow-pw-{endpoint.name}",
              "webhook": f"webhook-{endpoint.name}"}
    env = {
        "MODELRELEASE_KUBE__KUBECONFIG": str(endpoint.settings.kube.kubeconfig),
        "MODELRELEASE_MLFLOW__TRACKING_URI": str(endpoint.settings.mlflow.tracking_uri),
        "MODELRELEASE_MLFLOW__USERNAME": "mlflow-user",
        "MODELRELEASE_MLFLOW__PASSWORD_BLOCK": blocks["mlflow"],
        "MODELRELEASE_REGISTRY__USERNAME": REGISTRY_USER,
        "MODELRELEASE_REGISTRY__PASSWORD_BLOCK": blocks["registry"],
        "MODELRELEASE_WEBHOOK__SECRET_BLOCK": blocks["webhook"],
        "MODELRELEASE_BUILD__CACHE_DIR": str(tmp / "cache"),
        "MODELRELEASE_RELEASE__LOAD_RATE": "30",
        "MODELRELEASE_RELEASE__WAIT_FOR_LOCK_S": "60",
    }
    with temporary_settings(updates={PREFECT_API_URL: api}):
        for key, name in (("registry password", blocks["registry"]),
                          ("mlflow password", blocks["mlflow"]),
                          ("webhook secret", blocks["webhook"])):
            Secret(value=secrets[key]).save(name, overwrite=True)
        with environment(env), capture_everything() as sink:
            for _ in range(2):  # a busy 2-core machine may roll a first release back: again
                state = release_model(ReleaseRequest(endpoint=str(endpoint.file)),
                                      return_state=True)
                result = state.result()
                if result["outcome"] == "promoted":
                    break
    assert result["outcome"] == "promoted", result["reason"]
    try:
        yield SecretRelease(endpoint, api, str(state.state_details.flow_run_id), result,
                            sink.getvalue(), secrets, env)
    finally:
        endpoint.core.delete_namespace(endpoint.namespace)
