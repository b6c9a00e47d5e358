"""`modelrelease jobs watch`: its flags reach the watch; a bad duration is refused.

The watch itself (a real pod that cannot pull, its run failed, its Job deleted) runs on the
stack in tests/e2e/test_install.py; here the loop is replaced, only to see what it gets.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from modelrelease.adapters import job_watch
from modelrelease.cli import app

pytestmark = pytest.mark.usefixtures("env")  # tests/unit/conftest.py


@pytest.fixture
def seen(env: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("""apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
""")
    env.setenv("MODELRELEASE_KUBE__KUBECONFIG", str(kubeconfig))
    env.setenv("PREFECT_API_URL", "http://127.0.0.1:1/api")
    got: dict[str, Any] = {}

    def record(cluster: Any, runs: Any, namespace: str, grace: timedelta,
               interval: float) -> None:
        got.update(namespace=namespace, grace=grace, interval=interval, api=runs.api_url)

    env.setattr(job_watch, "watch", record)
    return got


@pytest.mark.parametrize(("flags", "grace", "interval"), [
    pytest.param([], timedelta(minutes=2), 5.0, id="defaults"),
    pytest.param(["--grace", "15s", "--interval", "1s"], timedelta(seconds=15), 1.0,
                 id="given"),
    pytest.param(["--grace", "1m30s", "--interval", "250ms"], timedelta(seconds=90), 0.25,
                 id="compound"),
])
def test_the_flags_reach_the_watch(seen: dict[str, Any], flags: list[str],
                                   grace: timedelta, interval: float) -> None:
    done = CliRunner().invoke(app, ["jobs", "watch", "--namespace", "modelrelease", *flags])
    assert done.exit_code == 0, done.output
    assert seen == {"namespace": "modelrelease", "grace": grace, "interval": interval,
                    "api": "http://127.0.0.1:1/api"}


@pytest.mark.parametrize("flag", ["--grace", "--interval"])
def test_a_bad_duration_is_refused_with_the_forms_it_takes(seen: dict[str, Any],
                                                           flag: str) -> None:
    done = CliRunner().invoke(app, ["jobs", "watch", "--namespace", "modelrelease",
                                    flag, "soon"])
    assert done.exit_code == 2
    assert f"Invalid value for '{flag}'" in done.output
    said = " ".join(done.output.replace("│", " ").split())
    assert '"soon" is not a duration: use e.g. 30s, 2m' in said, done.output
    assert seen == {}


def test_the_namespace_is_required(seen: dict[str, Any]) -> None:
    done = CliRunner().invoke(app, ["jobs", "watch"])
    assert done.exit_code == 2 and "--namespace" in done.output
    assert seen == {}
