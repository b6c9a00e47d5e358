"""The ``watch_registry`` flow: on a short interval, request a release for each endpoint behind.

The ``watch-registry`` deployment runs it every 30 s. It posts events and returns; the
``release`` deployment's trigger starts the runs, one per change however often it is seen.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from modelrelease.release.watch import watch_registry as look
from tasks.steps import as_task


@flow(name="watch_registry", log_prints=False)
def watch_registry() -> list[dict[str, Any]]:
    """Compare every endpoint's MLflow target with its primary; request the releases due."""
    logger = get_run_logger()
    found = as_task("look-at-registry", lambda: look(say=logger.info))
    return [{"endpoint": w.endpoint, "target": w.target, "release": w.release,
             "reason": w.reason} for w in found]
