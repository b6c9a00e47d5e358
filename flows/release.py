"""The ``release_model`` flow: one release of one endpoint, every step a task run.

Its parameter is one typed model (``ReleaseRequest``), so the Prefect UI shows a form.
The report becomes a markdown artifact; the outcome is the flow's return value, and a
rollback is a result, not a failure. A step with an approval gate pauses the flow run
until someone answers its form in the Prefect UI (approve or reject). Cancelling the flow
run in Prefect aborts the release in flight: it rolls back within Prefect's grace period,
and the status says who. A Job's pod stopped so that the run runs again (evicted,
deleted) leaves the release as it stands, and the run's next attempt resumes it. Each
milestone (started, step passed, promoted, rolled back, aborted) is a Prefect event linked
to this run, for the automations in ``deployments/notifications.yaml``.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect._internal.control_listener import get_intent
from prefect.artifacts import create_markdown_artifact
from prefect.exceptions import TerminationSignal
from prefect.runtime import flow_run

from modelrelease.adapters.prefect_approval import PrefectApprovals
from modelrelease.domain.rollout import ReleaseOutcome
from modelrelease.release.driver import ctrl_c, run_release
from modelrelease.release.dry_run import plan_release
from modelrelease.spec import ReleaseRequest
from tasks.notices import telling
from tasks.steps import as_step_task, as_task

AGAIN = frozenset({"reschedule", "relinquish"})
"""Prefect's SIGTERM intents that run the flow run again (``prefect flow-run execute``)."""


@flow(name="release_model", log_prints=False)
def release_model(request: ReleaseRequest) -> dict[str, Any]:
    """Release ``request.endpoint``: canary, judge, then promote or roll back.

    With ``request.dry_run`` it only plans (``plan_release``): the plan becomes a markdown
    artifact, the outcome is ``planned``, and nothing changes.
    """
    logger = get_run_logger()
    if request.dry_run:  # plan only: nothing in the cluster, registry or MLflow changes
        planned = plan_release(request, say=logger.info)
        create_markdown_artifact(planned.report, key=f"dry-run-{_slug(planned.dry_run.endpoint)}",
                                 description=f"{planned.dry_run.endpoint}: dry run")
        logger.info(planned.summary())
        return {"endpoint": planned.dry_run.endpoint, "outcome": ReleaseOutcome.PLANNED.value,
                "version": planned.dry_run.version, "image": planned.dry_run.image or "",
                "release_id": "", "reason": planned.dry_run.image_note}
    with telling(logger.warning) as notify:
        result = run_release(request, say=logger.info, call=as_task, execute=as_step_task,
                             interrupted=cancelled_in_prefect, notify=notify,
                             approvals=PrefectApprovals())
    if result.report:
        create_markdown_artifact(result.report, key=f"release-{result.release_id}",
                                 description=f"{result.endpoint}: {result.outcome}")
    logger.info(result.summary())
    return {"endpoint": result.endpoint, "outcome": result.outcome.value,
            "version": result.version,
            "image": result.image, "release_id": result.release_id, "reason": result.reason}


def cancelled_in_prefect(stop: BaseException) -> str | None:
    """Who stopped the release, for ``run_release``'s ``interrupted``.

    A cancel of this flow run reaches it as Prefect's SIGTERM (``TerminationSignal``);
    Ctrl-C counts as the CLI's would. A SIGTERM whose intent is to run the flow run again
    (its Job's pod evicted or deleted: ``reschedule``; Kubernetes retrying the Job:
    ``relinquish``) is nobody's abort: the release is left as it stands, the lock let go,
    and the next attempt of the run resumes it from the status.
    """
    if isinstance(stop, TerminationSignal):
        if get_intent() in AGAIN:
            return None
        return f"a Prefect cancel of flow run {flow_run.name} ({flow_run.id})"
    return ctrl_c(stop)


def _slug(text: str) -> str:
    """``text`` as a Prefect artifact key: lowercase letters, digits and dashes."""
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
