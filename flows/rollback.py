"""The ``rollback_endpoint`` flow: the primary back to an earlier verified release.

The same as ``modelrelease rollback``: under the endpoint's lock, no analysis, the target's
verified image. Its parameter is one typed model (``RollbackRequest``), so the Prefect UI
shows a form. A refused rollback (no such verified version, a release in flight) fails the
run with the reason, which lists the valid targets; nothing changed then. A rollback
done is a ``modelrelease.release.rolled-back`` event linked to the run, for the
automations in ``deployments/notifications.yaml``.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from modelrelease.release.rollback import run_rollback
from modelrelease.settings import PipelineSettings
from modelrelease.spec import RollbackRequest, load_endpoint
from tasks.notices import telling


@flow(name="rollback_endpoint", log_prints=False)
def rollback_endpoint(request: RollbackRequest) -> dict[str, Any]:
    """Roll ``request.endpoint`` back to ``request.to_version`` (default: the last one)."""
    logger = get_run_logger()
    settings = PipelineSettings()
    endpoint = load_endpoint(request.endpoint_file(settings.release.endpoints_dir))
    by = request.by or f"Prefect flow run {flow_run.name} ({flow_run.id})"
    to = str(request.to_version) if request.to_version is not None else None
    result = run_rollback(endpoint, to, by, settings, say=logger.info)
    logger.info(result.summary())
    with telling(logger.warning) as notify:
        notify(result.notification)
    return result.as_dict()
