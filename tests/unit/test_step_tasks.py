"""tasks/steps.py: every executor of the release loop runs as a Prefect task of its name."""

from __future__ import annotations

from modelrelease.release import steps
from tasks.steps import TASKS


def test_every_executor_has_a_task_named_after_it() -> None:
    executors = {*steps.EXECUTORS.values(), steps.check_health}
    assert set(TASKS) == executors
    assert {executor.__name__: task.name for executor, task in TASKS.items()} == {
        executor.__name__: executor.__name__ for executor in executors}
    assert {"start_bake", "bake_look"} <= {task.name for task in TASKS.values()}
