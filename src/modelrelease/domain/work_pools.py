"""The deployments of ``prefect.yaml`` for a Kubernetes work pool: flow runs as Jobs. Pure.

``deployments/prefect.yaml`` names the local process pool, and its flow runs start in the
checkout (``prefect deploy``'s default pull step). For a cluster the same deployments run
from the pipeline image: :func:`for_kubernetes` points each at the Kubernetes pool with the
image as a job variable and a pull step that starts the run in ``/opt/modelrelease``, where
the image holds ``flows/`` and ``tasks/`` (its working directory). Everything else (the
parameters' schema, triggers, schedules, concurrency limits) stays as it is.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any, Final

FLOWS_DIR: Final = "/opt/modelrelease"
"""Where the pipeline image holds the flows (``build.pipeline_image.FLOWS_DIR``)."""
DEFAULT_POOL: Final = "modelrelease-k8s"
_PULL_STEP: Final = "prefect.deployments.steps.set_working_directory"


def for_kubernetes(prefect_yaml: Mapping[str, Any], *, image: str, pool: str = DEFAULT_POOL,
                   suffix: str = "", only: Iterable[str] | None = None,
                   trigger_resources: Iterable[str] | None = None) -> dict[str, Any]:
    """``prefect_yaml`` (parsed) with its deployments run as Jobs of ``pool`` from ``image``.

    Args:
        prefect_yaml: The parsed ``deployments/prefect.yaml``.
        image: The pipeline image (by digest: every run then gets the same code).
        pool: The Kubernetes work pool.
        suffix: Appended to each deployment's name, so the Job-run deployments can live on
            a Prefect server beside the process-pool ones of the same flows.
        only: Keep only these deployments (by their name in the file); all by default.
        trigger_resources: Narrow each event trigger to these resource ids (``prefect.
            resource.id`` patterns, ``modelrelease.endpoint.NAMESPACE.ENDPOINT``), so that
            two sets of deployments on one server do not both start a run for one event.

    Raises:
        ValueError: ``image`` is empty, or ``only`` names a deployment the file lacks.
    """
    if not image:
        raise ValueError("kubernetes deployments: no pipeline image; give the one "
                         "`modelrelease image pipeline` printed (by digest)")
    document = copy.deepcopy(dict(prefect_yaml))
    deployments = document.get("deployments") or []
    names = [d.get("name") for d in deployments]
    wanted = list(only) if only is not None else names
    missing = sorted(set(wanted) - set(names))
    if missing:
        raise ValueError(f"kubernetes deployments: {', '.join(missing)} not in prefect.yaml "
                         f"(it has {', '.join(map(str, names))})")
    resources = list(trigger_resources) if trigger_resources is not None else None
    kept = []
    for deployment in deployments:
        if deployment.get("name") not in wanted:
            continue
        deployment["name"] = f"{deployment['name']}{suffix}"
        pool_config = dict(deployment.get("work_pool") or {})
        pool_config["name"] = pool
        pool_config["job_variables"] = {**(pool_config.get("job_variables") or {}),
                                        "image": image}
        deployment["work_pool"] = pool_config
        deployment["pull"] = [{_PULL_STEP: {"directory": FLOWS_DIR}}]
        if resources is not None:
            for trigger in deployment.get("triggers") or []:
                trigger["match"] = {**(trigger.get("match") or {}),
                                    "prefect.resource.id": resources}
        kept.append(deployment)
    document["deployments"] = kept
    return document
