"""Answering an approval gate through Prefect's API, as the UI's "Resume" form does.

``modelrelease approve`` finds the flow run paused at the gate (its ``Paused`` state's
pause key names the release and the step: ``domain.approval.approval_key``) and resumes
it with the form's input, which Prefect validates against the schema the run saved.
"""

from __future__ import annotations

from typing import Any

from modelrelease.adapters.prefect_events import PrefectApi
from modelrelease.domain.approval import Decision
from modelrelease.errors import InvalidInput, PrefectError


class PrefectAnswers(PrefectApi):
    """A client of the Prefect API that answers paused releases."""

    def paused_run(self, key: str) -> dict[str, Any] | None:
        """The flow run paused with the pause key ``key``, or None."""
        runs = self.call("POST", "/flow_runs/filter", {
            "flow_runs": {"state": {"type": {"any_": ["PAUSED"]}}},
            "sort": "START_TIME_DESC", "limit": 200},
            f"find the paused flow runs at {self.api_url}").json()
        return next((run for run in runs
                     if ((run.get("state") or {}).get("state_details") or {}).get("pause_key")
                     == key), None)

    def answer(self, key: str, decision: Decision, by: str, comment: str) -> dict[str, Any]:
        """Resume the run paused at ``key`` with the form filled in; the run.

        Raises:
            InvalidInput: no flow run waits at ``key`` (the answer came too late, or the
                release was not started by Prefect).
            PrefectError: Prefect refused the answer or could not be reached.
        """
        run = self.paused_run(key)
        if run is None:
            raise InvalidInput(f"answer {key}: no Prefect flow run is paused there (answered "
                               "already, timed out, or not a release run by Prefect)")
        told = self.call("POST", f"/flow_runs/{run['id']}/resume", {"run_input": {
            "decision": decision.value, "approver": by, "comment": comment}},
            f"answer flow run {run['name']} at {self.api_url}").json()
        if told.get("status") != "ACCEPT":
            details = told.get("details") or {}
            raise PrefectError(f"answer flow run {run['name']} ({run['id']}): Prefect said "
                               f"{told.get('status')}: {details.get('reason', details)}")
        return dict(run)
