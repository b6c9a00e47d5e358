"""flows.release.cancelled_in_prefect: whose stop aborts a release, and whose leaves it.

Prefect's own intent flag (``prefect._internal.control_listener``, which ``prefect
flow-run execute`` sets before it signals the engine) is set for real here, as the
supervisor sets it; the flow's runtime names are Prefect's outside a run.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prefect._internal import control_listener
from prefect.exceptions import TerminationSignal

from flows.release import cancelled_in_prefect


@pytest.fixture
def intent() -> Iterator[None]:
    yield
    control_listener.clear_intent()


@pytest.mark.parametrize(("stop", "given", "aborted"), [
    pytest.param(TerminationSignal(15), None, True, id="sigterm-without-intent"),
    pytest.param(TerminationSignal(15), "cancel", True, id="prefect-cancel"),
    pytest.param(TerminationSignal(15), "reschedule", False, id="pod-evicted-run-again"),
    pytest.param(TerminationSignal(15), "relinquish", False, id="job-retried-by-kubernetes"),
    pytest.param(KeyboardInterrupt(), None, True, id="ctrl-c"),
    pytest.param(SystemExit(1), None, False, id="exit"),
])
def test_only_a_stop_that_someone_meant_aborts_the_release(
        intent: None, stop: BaseException, given: str | None, aborted: bool) -> None:
    if given is not None:
        control_listener._set_intent(given)  # type: ignore[arg-type]
    who = cancelled_in_prefect(stop)
    assert (who is not None) is aborted, who
    if isinstance(stop, TerminationSignal) and aborted:
        assert who is not None and who.startswith("a Prefect cancel of flow run ")
