"""Cancelling a release's flow run in Prefect aborts it (issue 14 item 4).

The run comes from the ``release`` deployment, picked up by the session's process worker,
as one started from the UI. Mid-hold the run is cancelled through the REST call the UI's
"Cancel" button makes. The worker sends the flow's process SIGTERM (Prefect's
``TerminationSignal`` in the flow), and the release rolls back before Prefect's grace
period ends: the canary goes, the primary keeps serving untouched, the lock is released,
and the status and MLflow tags say it was this flow run's cancel.
"""

from __future__ import annotations

import time

import pytest

from modelrelease.domain.notifications import EVENTS, Notice
from modelrelease_localstack.stack import Stack
from tests.e2e.helpers import assert_aborted, background_client, version_2_pending
from tests.kube import eventually
from tests.support import Deployed

pytestmark = pytest.mark.e2e

HOLD_S = 120
"""Longer than the whole test needs: a cancel that waited for the hold would show."""


def test_a_cancel_in_prefect_aborts_the_release_in_flight(stack: Stack,
                                                         deployed: Deployed) -> None:
    made, before = version_2_pending(stack, deployed.endpoints_dir, HOLD_S)
    try:
        with background_client(made) as background:
            answer = deployed.create_run("release", {"request": {"endpoint": made.name}})
            assert answer.status_code == 201, answer.text
            run = answer.json()
            eventually(lambda: made.status().get("phase") == "Analysing", 180, "Analysing")
            asked = time.monotonic()
            cancel = deployed.call("POST", f"/flow_runs/{run['id']}/set_state",
                                   {"state": {"type": "CANCELLING"}, "force": True})
            assert cancel.status_code in (200, 201), cancel.text
            final = deployed.wait_final(run["id"], 90)
            took = time.monotonic() - asked
        assert final["state_type"] == "CANCELLED", final["state"]
        assert took < HOLD_S - 30, took  # the cancel did not wait for the hold
        assert background.failed == [], background.failed[:5]
        who = f"a Prefect cancel of flow run {run['name']} ({run['id']})"
        assert_aborted(made, before, f"aborted by {who} in phase Analysing")
        # and the run told so (deployments/notifications.yaml turns it into messages)
        told = [EVENTS[Notice.STARTED], EVENTS[Notice.ABORTED]]
        eventually(lambda: deployed.told(run["id"]) == told, 30, f"events {told}")
    finally:
        made.file.unlink(missing_ok=True)
        made.core.delete_namespace(made.namespace)
