"""`modelrelease status|history|abort|rollback`: the plain errors before the cluster is read.

Reading real ModelEndpoints is in tests/e2e/test_release.py
(test_good_version_is_promoted_without_dropping_traffic).
"""

from __future__ import annotations

import getpass
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelrelease.cli import _operator, app

pytestmark = pytest.mark.usefixtures("env")  # tests/unit/conftest.py


@pytest.mark.parametrize(("args", "said"), [
    pytest.param(["status", "iris", "-n", "prod"],
                 "status: give FILE or --namespace, not both", id="file-and-namespace"),
    pytest.param(["status", "iris"], "status iris: no endpoint file "
                 "deployments/endpoints/iris.yaml; give a ModelEndpoint file or the name of "
                 "one in MODELRELEASE_RELEASE__ENDPOINTS_DIR", id="status-unknown-name"),
    pytest.param(["history", "gone/iris.yaml"], "history gone/iris.yaml: no endpoint file "
                 "gone/iris.yaml", id="history-missing-file"),
])
def test_bad_arguments_are_plain_errors(args: list[str], said: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert said in " ".join(result.output.split())


def test_names_are_looked_up_in_the_endpoints_dir(env: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    env.setenv("MODELRELEASE_RELEASE__ENDPOINTS_DIR", str(tmp_path / "mine"))
    result = CliRunner().invoke(app, ["history", "iris"])
    assert result.exit_code == 2
    assert f"no endpoint file {tmp_path / 'mine' / 'iris.yaml'}" in " ".join(
        result.output.split())


def test_abort_of_a_missing_endpoint_file_is_a_plain_error() -> None:
    result = CliRunner().invoke(app, ["abort", "gone/iris.yaml", "--by", "ana"])
    assert result.exit_code == 2
    assert "abort gone/iris.yaml: no endpoint file gone/iris.yaml" in " ".join(
        result.output.split())


def test_abort_refuses_a_negative_wait() -> None:
    result = CliRunner().invoke(app, ["abort", "iris", "--wait", "-1"])
    assert result.exit_code == 2 and "--wait" in result.output


@pytest.mark.parametrize(("args", "said"), [
    pytest.param(["rollback", "gone/iris.yaml"],
                 "rollback gone/iris.yaml: no endpoint file gone/iris.yaml", id="missing-file"),
    pytest.param(["rollback", "iris", "--to", "0"], "--to", id="version-zero"),
])
def test_rollback_bad_arguments_are_plain_errors(args: list[str], said: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert said in " ".join(result.output.split())


@pytest.mark.parametrize(("by", "who"), [
    pytest.param("ana@oncall", "ana@oncall", id="by-given"),
    pytest.param(None, f"{getpass.getuser()}@{socket.gethostname()}", id="default-user-at-host"),
])
def test_who_acts_is_by_or_user_at_host(by: str | None, who: str) -> None:
    assert _operator(by) == who
