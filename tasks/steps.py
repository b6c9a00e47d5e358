"""Each side effect of a release as its own Prefect task run, named after the step.

No Prefect retries: the adapters retry what a server may not repeat, once per call
(``modelrelease.adapters.retry``), and a give-up from them is final; retrying the whole
task again would only repeat their back-off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import Task, task
from prefect.cache_policies import NONE


def as_task(name: str, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` as a Prefect task named ``name``; the release driver's ``call`` hook."""
    step: Task[[], Any] = task(name=name, cache_policy=NONE, retries=0)(fn)
    return step()
