"""Is a rollout ready, still progressing, or already failed? Pure, from the API objects.

Fails early, with the reason and the numbers, on what will not fix itself:
CrashLoopBackOff, ImagePullBackOff/ErrImagePull, an unschedulable pod (e.g.
``Insufficient nvidia.com/gpu``) and the Deployment's progress deadline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

FATAL_WAITING = ("CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName",
                 "CreateContainerConfigError", "CreateContainerError")


class RolloutState(StrEnum):
    """Where a Deployment's rollout stands."""

    READY = "Ready"
    PROGRESSING = "Progressing"
    FAILED = "Failed"


@dataclass(frozen=True)
class Readiness:
    """The assessment, with a reason that carries the numbers."""

    state: RolloutState
    reason: str
    ready: int = 0
    wanted: int = 0


def pod_failure(pod: Mapping[str, Any]) -> str | None:
    """Why ``pod`` (API JSON) will not run without a fix, or None."""
    name = pod.get("metadata", {}).get("name", "?")
    status = pod.get("status") or {}
    for cond in status.get("conditions") or []:
        if (cond.get("type") == "PodScheduled" and cond.get("status") == "False"
                and cond.get("reason") == "Unschedulable"):
            return f"pod {name} unschedulable: {cond.get('message', '')}".strip()
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in FATAL_WAITING:
            detail = f" ({waiting['message']})" if waiting.get("message") else ""
            last = ((cs.get("lastState") or {}).get("terminated") or {})
            code = f", last exit code {last['exitCode']}" if "exitCode" in last else ""
            restarts = int(cs.get("restartCount") or 0)
            ran = f": {restarts} restarts{code}" if restarts or code else ""  # never started
            return f"pod {name} container {cs.get('name')} {reason}{ran}{detail}"
    return None


def assess(deployment: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> Readiness:
    """Assess a Deployment and its pods (both as API JSON)."""
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    meta = deployment.get("metadata") or {}
    wanted = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    total = int(status.get("replicas") or 0)
    numbers = f"{available} of {wanted} updated replicas available"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return Readiness(RolloutState.FAILED,
                             f"progress deadline exceeded: {numbers}", available, wanted)
    for pod in pods:
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        failure = pod_failure(pod)
        if failure is not None:
            return Readiness(RolloutState.FAILED, failure, available, wanted)
    current = int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
    if current and updated == wanted and available >= wanted and total == wanted:
        return Readiness(RolloutState.READY, numbers, available, wanted)
    return Readiness(RolloutState.PROGRESSING, f"{numbers} ({updated} updated, {total} total)",
                     available, wanted)
