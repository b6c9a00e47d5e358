"""The pipeline's steps as named Prefect tasks, so the Prefect UI shows a release as it runs.

Each rollout action's executor (``modelrelease.release.steps``) is one task, named after
it: ``deploy_canary``, ``smoke``, ``set_weight``, ``analyse_step``, ``await_approval``
(which pauses the flow run while it waits: ``adapters.prefect_approval``), ``promote``,
``start_bake``, ``bake_look``, ``roll_back``, ``wait`` and ``check_health``; the calls
around the loop (``resolve-model``, ``build-image``, a drill's ``check-restorable``) run
through ``as_task``. The CLI calls the same functions directly.

No Prefect retries: the adapters retry what a server may not repeat, once per call
(``modelrelease.adapters.retry``), and a give-up from them is final; retrying the whole
task again would only repeat their back-off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import Task, task
from prefect.cache_policies import NONE

from modelrelease.release import steps
from modelrelease.release.steps import Executor, Observed, ReleaseRun


def _named(executor: Executor) -> Task[[ReleaseRun, Any], Observed]:
    return task(name=executor.__name__, cache_policy=NONE, retries=0)(executor)


deploy_canary = _named(steps.deploy_canary)
smoke = _named(steps.smoke)
set_weight = _named(steps.set_weight)
analyse_step = _named(steps.analyse_step)
await_approval = _named(steps.await_approval)
promote = _named(steps.promote)
start_bake = _named(steps.start_bake)
bake_look = _named(steps.bake_look)
roll_back = _named(steps.roll_back)
wait = _named(steps.wait)
check_health = _named(steps.check_health)

TASKS: dict[Executor, Task[[ReleaseRun, Any], Observed]] = {
    steps.deploy_canary: deploy_canary, steps.smoke: smoke, steps.set_weight: set_weight,
    steps.analyse_step: analyse_step, steps.await_approval: await_approval,
    steps.promote: promote, steps.start_bake: start_bake, steps.bake_look: bake_look,
    steps.roll_back: roll_back,
    steps.wait: wait, steps.check_health: check_health,
}
"""The task of each executor."""


def as_step_task(executor: Executor, run: ReleaseRun, action: Any) -> Observed:
    """Run an executor as its named task; the release driver's ``execute`` hook."""
    return TASKS[executor](run, action)


def as_task(name: str, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` as a Prefect task named ``name``; the release driver's ``call`` hook."""
    step: Task[[], Any] = task(name=name, cache_policy=NONE, retries=0)(fn)
    return step()
