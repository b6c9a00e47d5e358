"""Approval gates on a real Prefect server (issue 14 item 2): the paused flow run.

The release runs from the ``release`` deployment on the session's worker, as one started
from the UI. Its gated step passes, then the flow run pauses (Prefect state ``Paused``)
with the approval form's schema and the question as the run's inputs, which is what the
Prefect UI shows. Here nobody answers in time (rollback, and the run goes on to finish it
as Completed), an abort (``modelrelease abort``, a Prefect cancel) ends a wait at once,
and ``modelrelease approve`` answers from a terminal. Answering the form in the browser:
tests/ui/test_prefect_ui.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest
import yaml

from modelrelease.domain.notifications import EVENTS, Notice
from modelrelease_localstack.stack import Stack
from tests.e2e.helpers import Endpoint, assert_aborted, cli_env, version_2_pending
from tests.kube import eventually
from tests.support import Deployed

pytestmark = pytest.mark.e2e

TIMEOUT_S = 15
"""The gate's timeout in the first release: long enough to see the pause, short to wait."""


def paused(deployed: Deployed, made: Endpoint, run_id: str) -> dict[str, Any]:
    """Wait until the run is paused at the gate; the question it shows (the description)."""
    eventually(lambda: made.status().get("phase") == "AwaitingApproval", 240,
               "the release waiting for approval")
    eventually(lambda: deployed.call("GET", f"/flow_runs/{run_id}").json()["state_type"]
               == "PAUSED", 30, "the flow run paused")
    key = f"paused-approval-{made.status()['releaseId']}-step-1"
    schema = deployed.call("GET", f"/flow_runs/{run_id}/input/{key}-schema")
    assert schema.status_code == 200, schema.text
    fields = schema.json()["properties"]
    assert {"decision", "approver", "comment"} <= set(fields)
    assert fields["decision"]["enum"] == ["approve", "reject"]  # inline: the UI lists it
    description = deployed.call("GET", f"/flow_runs/{run_id}/input/{key}-description")
    assert description.status_code == 200, description.text
    return {"key": key, "description": description.json()}


def test_a_gate_nobody_answers_rolls_back_and_an_abort_ends_the_wait(
        stack: Stack, deployed: Deployed) -> None:
    made, before = version_2_pending(stack, deployed.endpoints_dir, 5,
                                     approval={"timeout": f"{TIMEOUT_S}s"})
    try:
        # 1. nobody answers: the release rolls back when the gate times out
        run = deployed.create_run("release", {"request": {"endpoint": made.name}}).json()
        shown = paused(deployed, made, run["id"])
        assert "Approve step 1/1 of" in shown["description"]
        assert f"no answer within {TIMEOUT_S}s: the release rolls back" in shown["description"]
        waited = time.monotonic()
        final = deployed.wait_final(run["id"], 180)
        assert final["state_type"] == "COMPLETED", final["state"]
        assert time.monotonic() - waited >= TIMEOUT_S - 5  # it did wait for the timeout
        reason = f"step 1: no answer within {TIMEOUT_S}s"
        assert_aborted(made, before, reason)
        told = [EVENTS[Notice.STARTED], EVENTS[Notice.APPROVAL_NEEDED],
                EVENTS[Notice.ROLLED_BACK]]
        eventually(lambda: deployed.told(run["id"]) == told, 30, f"events {told}")

        # 2. a gate of an hour, ended at once by `modelrelease abort`
        document = yaml.safe_load(made.file.read_text())
        document["spec"]["canary"]["steps"][0]["approval"]["timeout"] = "1h"
        made.file.write_text(yaml.safe_dump(document))
        run = deployed.create_run("release", {"request": {"endpoint": made.name}}).json()
        paused(deployed, made, run["id"])
        asked = time.monotonic()
        aborted = subprocess.run(
            [sys.executable, "-m", "modelrelease.cli", "abort", str(made.file), "--by",
             "tester@flows", "--wait", "60"], env=cli_env(made), capture_output=True,
            text=True, timeout=90)
        assert aborted.returncode == 0, aborted.stderr
        final = deployed.wait_final(run["id"], 60)
        assert final["state_type"] == "COMPLETED", final["state"]
        assert time.monotonic() - asked < 60
        assert_aborted(made, before, "aborted by tester@flows in phase AwaitingApproval")

        # 3. the same wait, ended by cancelling the paused run in Prefect (the UI's Cancel)
        run = deployed.create_run("release", {"request": {"endpoint": made.name}}).json()
        paused(deployed, made, run["id"])
        cancel = deployed.call("POST", f"/flow_runs/{run['id']}/set_state",
                               {"state": {"type": "CANCELLING"}, "force": True})
        assert cancel.status_code in (200, 201), cancel.text
        final = deployed.wait_final(run["id"], 90)
        assert final["state_type"] == "CANCELLED", final["state"]
        who = f"a Prefect cancel of flow run {run['name']} ({run['id']})"
        assert_aborted(made, before, f"aborted by {who} in phase AwaitingApproval")

        # 4. answered from a terminal: `modelrelease approve` resumes the run as the form
        # does; first --reject, then an approval
        env = {**cli_env(made), "PREFECT_API_URL": deployed.api_url}
        run = deployed.create_run("release", {"request": {"endpoint": made.name}}).json()
        paused(deployed, made, run["id"])
        rejected = subprocess.run(
            [sys.executable, "-m", "modelrelease.cli", "approve", str(made.file), "--reject",
             "--by", "dave@flows", "--comment", "not on a Friday"], env=env,
            capture_output=True, text=True, timeout=90)
        assert rejected.returncode == 0, rejected.stderr
        assert json.loads(rejected.stdout.strip().splitlines()[-1])["decision"] == "reject"
        assert deployed.wait_final(run["id"], 180)["state_type"] == "COMPLETED"
        assert_aborted(made, before, "step 1 rejected by dave@flows: not on a Friday")

        run = deployed.create_run("release", {"request": {"endpoint": made.name}}).json()
        paused(deployed, made, run["id"])
        approved = subprocess.run(
            [sys.executable, "-m", "modelrelease.cli", "approve", str(made.file), "--by",
             "carol@flows", "--comment", "numbers look right"], env=env, capture_output=True,
            text=True, timeout=90)
        assert approved.returncode == 0, approved.stderr
        said = json.loads(approved.stdout.strip().splitlines()[-1])
        assert (said["decision"], said["step"], said["flow_run"]) == ("approve", 1, run["id"])
        final = deployed.wait_final(run["id"], 180)
        assert final["state_type"] == "COMPLETED", final["state"]
        status = made.status()
        assert status["phase"] == "Promoted" and status["primary"]["version"] == "2", status
        assert made.mlflow_tags("2")["modelrelease.approvals"] == (
            "step 1 approved by carol@flows: numbers look right")
        # nothing waits any more: a second answer is refused, and changes nothing
        again = subprocess.run(
            [sys.executable, "-m", "modelrelease.cli", "approve", str(made.file), "--reject"],
            env=env, capture_output=True, text=True, timeout=90)
        assert again.returncode == 2
        assert "nothing waits for approval (phase Promoted)" in again.stderr
        assert made.status() == status
    finally:
        made.file.unlink(missing_ok=True)
        made.core.delete_namespace(made.namespace)
