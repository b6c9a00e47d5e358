"""Approval gates answered in the Prefect UI: the flow run pauses with a typed form.

``PrefectApprovals.ask`` pauses the current flow run the way ``prefect.pause_flow_run``
does (a ``Paused`` state whose run-input keyset holds ``ApprovalForm``'s schema and the
question as its description), so the Prefect UI shows a "Resume" button with the form:
approve or reject, a name, a comment. It then waits with its own loop rather than Prefect's,
because the wait must also end when someone aborts the release (``modelrelease abort``)
and when the timeout passes; in both cases it sets the flow run running again itself, so
the rollback's task runs may start. Pressing "Resume" with the form answers; the answer is
read back from the flow run's input.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, cast

from prefect.input import RunInput
from pydantic import Field, WithJsonSchema

from modelrelease.domain.approval import Answer, Decision, Question
from modelrelease.errors import PrefectError

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State


class ApprovalForm(RunInput):
    """The form the Prefect UI shows on the paused release."""

    decision: Annotated[Decision, WithJsonSchema(  # inline: the UI's select lists no $ref enum
        {"type": "string", "enum": [d.value for d in Decision], "title": "Decision"})] = Field(
        description="approve: go on with the release; reject: roll it back now")
    approver: str = Field(min_length=1, max_length=100, description="Your name")
    comment: str = Field(default="", max_length=1000,
                         description="Why: it lands in the release report and MLflow tags")


class PrefectApprovals:
    """Asks in the Prefect UI; ``poll_s``: how often to look for an answer or an abort."""

    def __init__(self, poll_s: float = 2.0, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.poll_s = poll_s
        self.clock = clock
        self.sleep = sleep

    def ask(self, question: Question, stopped: Callable[[], str | None]) -> Answer:
        """Pause this flow run with the form; the answer, or none (timed out, stopped).

        Raises:
            PrefectError: not inside a flow run, or Prefect refused to pause it.
        """
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.objects import FlowRun
        from prefect.context import FlowRunContext
        from prefect.input import keyset_from_paused_state
        from prefect.states import Paused, Running
        from prefect.utilities.engine import propose_state_sync

        context = FlowRunContext.get()
        if context is None or context.flow_run is None:
            raise PrefectError(f"ask for approval of step {question.step} of "
                               f"{question.endpoint}: not inside a Prefect flow run")
        run_id = context.flow_run.id
        form = ApprovalForm.with_initial_data(description=question.markdown())
        timeout = max(1, math.ceil(question.timeout.total_seconds()))
        proposed: State[Any] = Paused(timeout_seconds=timeout, reschedule=False,
                                      pause_key=question.key)
        keyset = keyset_from_paused_state(proposed)
        proposed.state_details.run_input_keyset = cast(dict[str, str], keyset)

        def answered() -> Answer:
            given = cast(ApprovalForm, form.load(keyset, flow_run_id=run_id))
            return Answer(Decision(given.decision), given.approver.strip(),
                          given.comment.strip())

        with get_client(sync_client=True) as client:
            state = propose_state_sync(client=client, state=proposed, flow_run_id=run_id)
            if state.is_running():  # this pause was answered before (the same key)
                return answered()
            if not state.is_paused():
                raise PrefectError(f"ask for approval of step {question.step} of "
                                   f"{question.endpoint}: Prefect did not pause flow run "
                                   f"{run_id} (it is {state.type.value})")
            form.save(keyset, flow_run_id=run_id)
            deadline = self.clock() + timeout
            while True:
                run: FlowRun = client.read_flow_run(run_id)
                if run.state is not None and run.state.is_running():
                    return answered()
                who = stopped()
                if who is not None or self.clock() >= deadline:
                    client.set_flow_run_state(run_id, Running(), force=True)
                    return Answer(None, stopped_by=who or "")
                self.sleep(max(0.0, min(self.poll_s, deadline - self.clock())))
