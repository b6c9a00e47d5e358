"""Failing flow runs whose Job's pod cannot start (``modelrelease jobs watch``).

Runs beside the Prefect Kubernetes worker (a second container of its pod, as the
``prefect-worker`` ServiceAccount): every ``interval`` it lists the flow-run pods of its
namespace, and for each one that ``domain.job_pods.stuck_job`` names it writes the
kubelet's reason to the run's Prefect log, sets the run Failed with that reason, and
deletes the Job (its pod would otherwise retry the pull for ever).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from modelrelease.adapters.kube import KubeCluster
from modelrelease.adapters.prefect_events import PrefectApi
from modelrelease.domain.job_pods import FLOW_RUN_LABEL, StuckJob, stuck_job
from modelrelease.errors import PipelineError

log = logging.getLogger(__name__)

FINISHED = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
"""Prefect's final state types: a flow run in one of them is over (the one list of them)."""


class PrefectRuns(PrefectApi):
    """A client of the Prefect API that fails flow runs, with a log line saying why."""

    def fail(self, flow_run_id: str, message: str) -> bool:
        """Log ``message`` on the run and set it Failed; False if it had finished already."""
        doing = f"fail flow run {flow_run_id} at {self.api_url}"
        run = self.call("GET", f"/flow_runs/{flow_run_id}", None, doing).json()
        if ((run.get("state") or {}).get("type")) in FINISHED:
            return False
        self.call("POST", "/logs/", [{
            "name": "modelrelease.jobs", "level": logging.ERROR, "message": message,
            "timestamp": datetime.now(UTC).isoformat(), "flow_run_id": flow_run_id}], doing)
        self.call("POST", f"/flow_runs/{flow_run_id}/set_state", {
            "state": {"type": "FAILED", "name": "Failed", "message": message},
            "force": True}, doing)
        return True


def sweep(cluster: KubeCluster, runs: PrefectRuns, namespace: str, grace: timedelta,
          now: datetime | None = None) -> list[StuckJob]:
    """Fail the run of, and delete, every flow-run Job in ``namespace`` that cannot start."""
    when = now or datetime.now(UTC)
    stuck = [found for pod in cluster.pods(namespace, FLOW_RUN_LABEL)
             if (found := stuck_job(pod, when, grace)) is not None]
    for job in stuck:
        message = job.message()
        failed = runs.fail(job.flow_run_id, message)
        cluster.delete("batch/v1", "Job", job.job, namespace, propagation="Background")
        log.warning("%s: %s", "failed flow run" if failed else "flow run had finished; deleted",
                    message)
    return stuck


def watch(cluster: KubeCluster, runs: PrefectRuns, namespace: str, grace: timedelta,
          interval: float, stop: Callable[[], bool] = lambda: False) -> None:
    """``sweep`` every ``interval`` seconds until ``stop()``; errors are logged, not fatal."""
    while not stop():
        try:
            sweep(cluster, runs, namespace, grace)
        except PipelineError as exc:
            log.error("jobs watch: %s (trying again in %.0f s)", exc, interval)
        time.sleep(interval)
