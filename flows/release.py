"""The ``release_model`` flow: one release of one endpoint, every step a task run.

Its parameter is one typed model (``ReleaseRequest``), so the Prefect UI shows a form.
The report becomes a markdown artifact; the outcome is the flow's return value, and a
rollback is a result, not a failure.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from modelrelease.release.driver import run_release
from modelrelease.spec import ReleaseRequest
from tasks.steps import as_task


@flow(name="release_model", log_prints=False)
def release_model(request: ReleaseRequest) -> dict[str, Any]:
    """Release ``request.endpoint``: canary, judge, then promote or roll back."""
    logger = get_run_logger()
    result = run_release(request, say=logger.info, call=as_task)
    if result.report:
        create_markdown_artifact(result.report, key=f"release-{result.release_id}",
                                 description=f"{result.endpoint}: {result.outcome}")
    logger.info(result.summary())
    return {"endpoint": result.endpoint, "outcome": result.outcome, "version": result.version,
            "image": result.image, "release_id": result.release_id, "reason": result.reason}
