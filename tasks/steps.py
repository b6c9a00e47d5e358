"""Each side effect of a release as its own Prefect task run (retries for retriable errors)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import Task, task
from prefect.cache_policies import NONE

from modelrelease.errors import PipelineError


def _retriable(_task: Task[..., Any], _run: Any, state: Any) -> bool:
    """Retry only what another try can fix (429, 5xx, timeouts, dropped connections)."""
    try:
        state.result()
    except PipelineError as exc:
        return exc.retriable
    except Exception:  # noqa: BLE001 - anything else is not ours to retry
        return False
    return False


def as_task(name: str, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` as a Prefect task named ``name``; the release driver's ``call`` hook."""
    step: Task[[], Any] = task(name=name, cache_policy=NONE, retries=2, retry_delay_seconds=2,
                               retry_condition_fn=_retriable)(fn)
    return step()
