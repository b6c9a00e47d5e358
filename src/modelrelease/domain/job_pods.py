"""Flow-run Jobs whose pod cannot start: which ones, and the kubelet's reason. Pure.

A Job's pod that cannot pull its image (or whose container the kubelet cannot create)
never fails by itself: the kubelet retries with back-off, the Job stays active and the
flow run stays Pending for ever. ``modelrelease jobs watch`` fails such a run, with the
kubelet's own reason, once its pod has waited that way for a grace period (a registry
that hiccups for a moment must not fail a run).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from modelrelease.domain.readiness import pod_failure

FLOW_RUN_LABEL = "prefect.io/flow-run-id"
"""The worker labels every flow-run Job and its pods with it; as a selector (the key
alone) it picks them all."""


@dataclass(frozen=True)
class StuckJob:
    """A flow-run Job whose pod cannot start, and why."""

    job: str
    pod: str
    flow_run_id: str
    reason: str

    def message(self) -> str:
        """The flow run's state message: the Job, and the kubelet's reason."""
        return (f"flow-run Job {self.job} cannot start: {self.reason}; the Job was deleted. "
                "Fix the image (job variable `image`, the pool's default) or what the pod "
                "needs, then run again")


def stuck_job(pod: Mapping[str, Any], now: datetime, grace: timedelta) -> StuckJob | None:
    """The flow-run Job of ``pod`` (API JSON) if the pod cannot start and is ``grace`` old.

    Only a flow-run pod (labelled with its run's id, owned by a Job) is ever named; one
    that is being deleted, or younger than ``grace``, is not.
    """
    meta = pod.get("metadata") or {}
    run = (meta.get("labels") or {}).get(FLOW_RUN_LABEL)
    job = next((ref.get("name") for ref in meta.get("ownerReferences") or []
                if ref.get("kind") == "Job"), None)
    created = meta.get("creationTimestamp")
    if not run or not job or not created or meta.get("deletionTimestamp"):
        return None
    if now - datetime.fromisoformat(str(created).replace("Z", "+00:00")) < grace:
        return None
    reason = pod_failure(pod)
    return None if reason is None else StuckJob(str(job), str(meta.get("name")), str(run),
                                                reason)
