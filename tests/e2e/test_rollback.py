"""`modelrelease rollback` on the real stack (issue 14 item 3).

Version 1 and then version 2 are released and promoted; the CLI rolls back, as an
operator would, with a client calling the live Service throughout: the primary serves
version 1's verified digest again, no request is lost, the record and MLflow say who
did it, and a second rollback or a version that is no target is refused with the valid
targets, changing nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from modelrelease.domain.notifications import EVENTS, Notice
from modelrelease_localstack.stack import Stack
from tests.e2e.helpers import (
    background_client,
    cli_env,
    make_endpoint,
    versions_1_and_2_promoted,
)
from tests.kube import eventually
from tests.support import told_about

pytestmark = pytest.mark.e2e


def test_rollback_goes_back_to_the_last_verified_release(stack: Stack, crd: None,
                                                         tmp_path: Path) -> None:
    made = make_endpoint(stack, tmp_path, steps=[{"weight": 50, "hold": "5s"}])
    prefect = stack.env()["PREFECT_API_URL"]  # the CLI tells Prefect too, when it has one
    env = {**cli_env(made), "PREFECT_API_URL": prefect}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "modelrelease.cli", *args], env=env,
                              capture_output=True, text=True, timeout=300)

    try:
        one = versions_1_and_2_promoted(made)

        with background_client(made, interval=0.05, new_connections=True) as background:
            done = cli("rollback", str(made.file), "--by", "tester@e2e")
            eventually(lambda: made.image("canary") is None, 60, "version 2's pods gone")
        assert done.returncode == 0, done.stderr
        said = json.loads(done.stdout.strip().splitlines()[-1])
        assert (said["outcome"], said["rolled_back"], said["version"]) == (
            "rolled_back", "2", "1")
        assert said["image"] == one["image"] and said["warm"] is False
        assert background.failed == [], background.failed[:5]  # no request lost
        assert background.ok > 20

        status = made.status()
        assert status["phase"] == "RolledBack" and status["primary"] == one
        assert "version 2 rolled back to version 1 by tester@e2e" in status["reason"]
        assert not status.get("canary")
        assert [(h["version"], h["phase"]) for h in status["history"]][-3:] == [
            ("1", "Promoted"), ("2", "Promoted"), ("2", "RolledBack")]
        assert made.image("primary") == one["image"]
        tags = made.mlflow_tags("2")
        assert tags["modelrelease.status"] == "rolled_back"
        assert "by tester@e2e" in tags["modelrelease.reason"]
        rolled_back = EVENTS[Notice.ROLLED_BACK]
        eventually(lambda: told_about(prefect, made.namespace, made.name) == [rolled_back],
                   30, "the CLI's rolled-back event")

        again = cli("rollback", str(made.file))
        assert again.returncode == 2
        assert "no verified release to go back to (version 1 is primary" in again.stderr
        forward = cli("rollback", str(made.file), "--to", "2")
        assert forward.returncode == 2
        assert ("version 2 is not a verified release of this endpoint (promoted here, not "
                "rolled back since); valid targets: none") in " ".join(forward.stderr.split())
        assert made.status() == status  # the refusals changed nothing
    finally:
        made.core.delete_namespace(made.namespace)
