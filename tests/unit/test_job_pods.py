"""domain.job_pods: which flow-run Job cannot start, once its pod has waited ``grace``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelrelease.domain.job_pods import StuckJob, stuck_job

NOW = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)
GRACE = timedelta(seconds=15)
PULL = ("failed to pull and unpack image \"10.245.0.1:5000/nope:1\": "
        "10.245.0.1:5000/nope:1: not found")


def _pod(age_s: float = 60, waiting: str | None = "ErrImagePull", message: str = PULL,
         run: str | None = "8d2f", job: str | None = "lively-fox-x7k2p",
         deleting: bool = False, created: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": "lively-fox-x7k2p-abcde",
        "creationTimestamp": created or (NOW - timedelta(seconds=age_s)).isoformat(),
        "labels": {"prefect.io/flow-run-id": run} if run else {},
        "ownerReferences": [{"kind": "Job", "name": job}] if job else []}
    if deleting:
        meta["deletionTimestamp"] = NOW.isoformat()
    state = {"waiting": {"reason": waiting, "message": message}} if waiting else {
        "running": {}}
    return {"metadata": meta, "status": {"containerStatuses": [
        {"name": "prefect-job", "restartCount": 0, "state": state}]}}


@pytest.mark.parametrize(("pod", "expected"), [
    pytest.param(_pod(), StuckJob("lively-fox-x7k2p", "lively-fox-x7k2p-abcde", "8d2f",
                                  f"pod lively-fox-x7k2p-abcde container prefect-job "
                                  f"ErrImagePull ({PULL})"), id="cannot-pull"),
    pytest.param(_pod(waiting="ImagePullBackOff", message="Back-off pulling image"),
                 StuckJob("lively-fox-x7k2p", "lively-fox-x7k2p-abcde", "8d2f",
                          "pod lively-fox-x7k2p-abcde container prefect-job ImagePullBackOff "
                          "(Back-off pulling image)"), id="back-off"),
    pytest.param(_pod(waiting="CreateContainerConfigError",
                      message='secret "modelrelease-settings" not found'),
                 StuckJob("lively-fox-x7k2p", "lively-fox-x7k2p-abcde", "8d2f",
                          "pod lively-fox-x7k2p-abcde container prefect-job "
                          "CreateContainerConfigError "
                          "(secret \"modelrelease-settings\" not found)"), id="missing-secret"),
    pytest.param(_pod(created="2026-12-06T11:59:00Z"), StuckJob(
        "lively-fox-x7k2p", "lively-fox-x7k2p-abcde", "8d2f",
        f"pod lively-fox-x7k2p-abcde container prefect-job ErrImagePull ({PULL})"),
        id="api-server-timestamp"),
    pytest.param(_pod(age_s=14), None, id="younger-than-grace"),
    pytest.param(_pod(age_s=15), StuckJob(
        "lively-fox-x7k2p", "lively-fox-x7k2p-abcde", "8d2f",
        f"pod lively-fox-x7k2p-abcde container prefect-job ErrImagePull ({PULL})"),
        id="grace-reached"),
    pytest.param(_pod(waiting="ContainerCreating", message=""), None, id="still-pulling"),
    pytest.param(_pod(waiting=None), None, id="running"),
    pytest.param(_pod(run=None), None, id="not-a-flow-run"),
    pytest.param(_pod(job=None), None, id="not-a-job"),
    pytest.param(_pod(deleting=True), None, id="being-deleted"),
])
def test_a_flow_run_pod_that_cannot_start_names_its_job_run_and_the_kubelets_reason(
        pod: dict[str, Any], expected: StuckJob | None) -> None:
    assert stuck_job(pod, NOW, GRACE) == expected


def test_the_runs_message_names_the_job_the_reason_and_the_fix() -> None:
    found = stuck_job(_pod(), NOW, GRACE)
    assert found is not None
    message = found.message()
    assert message.startswith("flow-run Job lively-fox-x7k2p cannot start: pod ")
    assert PULL in message and "the Job was deleted" in message
    assert "job variable `image`" in message
