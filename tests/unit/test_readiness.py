"""domain.readiness: ready, progressing, or failed early with the reason and numbers."""

from __future__ import annotations

from typing import Any

import pytest

from modelrelease.domain.readiness import RolloutState, assess


def _deployment(replicas: int = 2, updated: int = 2, available: int = 2, total: int = 2,
                generation: int = 3, observed: int = 3,
                conditions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"metadata": {"generation": generation},
            "spec": {"replicas": replicas},
            "status": {"updatedReplicas": updated, "availableReplicas": available,
                       "replicas": total, "observedGeneration": observed,
                       "conditions": conditions or []}}


def _pod(waiting: str | None = None, unschedulable: str | None = None, restarts: int = 0,
         exit_code: int | None = None, deleting: bool = False,
         message: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": [], "containerStatuses": []}
    if unschedulable:
        status["conditions"].append({"type": "PodScheduled", "status": "False",
                                     "reason": "Unschedulable", "message": unschedulable})
    if waiting:
        cs: dict[str, Any] = {"name": "model", "restartCount": restarts,
                              "state": {"waiting": {"reason": waiting}}}
        if message:
            cs["state"]["waiting"]["message"] = message
        if exit_code is not None:
            cs["lastState"] = {"terminated": {"exitCode": exit_code}}
        status["containerStatuses"].append(cs)
    meta: dict[str, Any] = {"name": "iris-canary-abc"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": status}


@pytest.mark.parametrize(
    ("deployment", "pods", "state", "text"),
    [
        pytest.param(_deployment(), [_pod()], RolloutState.READY,
                     "2 of 2 updated replicas available", id="ready"),
        pytest.param(_deployment(available=1), [_pod()], RolloutState.PROGRESSING,
                     "1 of 2 updated replicas available", id="one-missing"),
        pytest.param(_deployment(observed=2), [], RolloutState.PROGRESSING, "", id="stale-gen"),
        pytest.param(_deployment(total=3), [], RolloutState.PROGRESSING, "3 total",
                     id="old-pods-still-there"),
        pytest.param(_deployment(conditions=[{"type": "Progressing",
                                              "reason": "ProgressDeadlineExceeded"}]),
                     [], RolloutState.FAILED, "progress deadline exceeded", id="deadline"),
        pytest.param(_deployment(conditions=[{"type": "Progressing",
                                              "reason": "NewReplicaSetAvailable"}]),
                     [], RolloutState.READY, "", id="progressing-ok"),
        pytest.param(_deployment(available=0), [_pod("CrashLoopBackOff", restarts=3,
                                                     exit_code=1)],
                     RolloutState.FAILED, "CrashLoopBackOff: 3 restarts, last exit code 1",
                     id="crashloop"),
        pytest.param(_deployment(available=0), [_pod("ImagePullBackOff", message="404")],
                     RolloutState.FAILED, "ImagePullBackOff (404)", id="pull"),
        pytest.param(_deployment(available=0), [_pod("ContainerCreating")],
                     RolloutState.PROGRESSING, "", id="creating-is-fine"),
        pytest.param(_deployment(available=0),
                     [_pod(unschedulable="0/1 nodes are available: 1 Insufficient "
                                         "nvidia.com/gpu.")],
                     RolloutState.FAILED, "Insufficient nvidia.com/gpu", id="unschedulable"),
        pytest.param(_deployment(), [_pod("CrashLoopBackOff", deleting=True)],
                     RolloutState.READY, "", id="terminating-pods-ignored"),
        pytest.param(_deployment(), [{"metadata": {"name": "p"}, "status": {"conditions": [
            {"type": "PodScheduled", "status": "True"}]}}], RolloutState.READY, "",
                     id="scheduled-pod"),
        pytest.param({"metadata": {}, "spec": {}, "status": {}}, [], RolloutState.PROGRESSING,
                     "0 of 1", id="empty-status"),
    ],
)
def test_assess(deployment: dict[str, Any], pods: list[dict[str, Any]], state: RolloutState,
                text: str) -> None:
    result = assess(deployment, pods)
    assert result.state == state
    assert text in result.reason
