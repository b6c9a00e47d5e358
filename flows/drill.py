"""The ``rollback_drill`` flow: a scheduled proof, on a live endpoint, that rollback works.

It releases the primary's own version as a canary with an injected fault and checks that
the pipeline catches it and rolls back, that the primary served throughout, and that the
previous version is still restorable. The report becomes a markdown artifact
(``drill-<endpoint>``); the times go to the ModelEndpoint's status. When any part does not
hold, the run fails (``DrillFailed``), so Prefect shows it and can alert on it; either way
the result is a Prefect event (``modelrelease.drill.passed`` or ``.failed``) linked to the
run, for the automations in ``deployments/notifications.yaml``.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from modelrelease.errors import DrillFailed
from modelrelease.release.drill import run_drill
from modelrelease.spec import Fault
from tasks.notices import telling
from tasks.steps import as_step_task, as_task


@flow(name="rollback_drill", log_prints=False)
def rollback_drill(endpoint: str, fault: Fault | None = None) -> dict[str, Any]:
    """Drill ``endpoint`` with ``fault`` (default: the spec's ``drill.fault``)."""
    logger = get_run_logger()
    result = run_drill(endpoint, fault, say=logger.info, call=as_task,
                       execute=as_step_task)
    create_markdown_artifact(result.report, key=f"drill-{result.name}",
                             description=f"{result.endpoint}: rollback drill "
                                         f"{'passed' if result.passed else 'failed'}")
    logger.info(result.line())
    with telling(logger.warning) as notify:
        notify(result.notification)
    if not result.passed:
        raise DrillFailed(f"drill endpoint {result.endpoint}: {result.verdict.reason}")
    return result.summary()
