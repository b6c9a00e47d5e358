"""Approval gates: a person approves a canary step before the release goes on. Pure.

A step that says ``approval: {timeout: 1h, onTimeout: rollback}`` is judged as usual;
once it passes, the release waits (phase ``AwaitingApproval``, the canary keeping its
share of traffic) for someone to approve or reject it. Approved: the next step, or
promotion. Rejected: rollback, with the approver's name and comment as the reason. No
answer within the timeout: rollback (``onTimeout: rollback``, the default) or go on
(``continue``). The flow asks in the Prefect UI (a paused flow run with a typed form,
``adapters.prefect_approval``); the answers land in the report and the MLflow tags.

A rollback drill never waits: it runs unattended and never promotes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from modelrelease.domain.durations import format_duration

APPROVALS_TAG = "modelrelease.approvals"
"""The MLflow tag that records a release's approval answers (one line each)."""
_TAG_LIMIT = 5000  # MLflow keeps tag values up to 8000 characters; leave room


class OnTimeout(StrEnum):
    """What a release does when nobody answers in time."""

    ROLLBACK = "rollback"
    CONTINUE = "continue"


class Decision(StrEnum):
    """An approver's decision."""

    APPROVE = "approve"
    REJECT = "reject"


@dataclass(frozen=True)
class Gate:
    """A step's approval: how long to wait for an answer, and what no answer means."""

    timeout: timedelta = timedelta(hours=1)
    on_timeout: OnTimeout = OnTimeout.ROLLBACK


@dataclass(frozen=True)
class Question:
    """What the approver is asked: which release, which step, and what the judge saw."""

    endpoint: str  # namespace/name
    version: str
    release_id: str
    step: int  # 1-based
    steps: int
    weight: int
    timeout: timedelta
    on_timeout: OnTimeout
    judged: tuple[str, ...] = ()  # the step's verdict: its reasons, one per check
    shadow: int = 0  # a shadow step's share copied (weight is 0 then)

    @property
    def key(self) -> str:
        """Names this question among a flow run's pauses (asking again is the same pause)."""
        return approval_key(self.release_id, self.step)

    @property
    def next(self) -> str:
        """What approving leads to."""
        return "promotion" if self.step >= self.steps else f"step {self.step + 1}"

    def markdown(self) -> str:
        """The question as the Prefect UI shows it above the form."""
        waiting = format_duration(self.timeout)
        then = ("the release rolls back" if self.on_timeout is OnTimeout.ROLLBACK
                else "the release goes on as if approved")
        lines = [f"### Approve step {self.step}/{self.steps} of `{self.endpoint}` "
                 f"version {self.version}?", "",
                 f"- **approve**: go on to {self.next}",
                 "- **reject**: roll back now (your comment is the reason)",
                 f"- no answer within {waiting}: {then}", "",
                 f"Release `{self.release_id}`. Your name and comment are recorded in the "
                 "release report and the model version's MLflow tags.", "",
                 (f"The canary was sent copies of **{self.shadow}%** of live requests (users saw "
                  "none of its answers) and passed the step's checks" if self.shadow else
                  f"The canary serves **{self.weight}%** of live traffic and passed the step's "
                  "checks") + (":" if self.judged else "."), "",
                 *(f"- {reason}" for reason in self.judged)]
        return "\n".join(lines).rstrip("\n")


@dataclass(frozen=True)
class Answer:
    """How a question was answered: a decision by someone, or none (timed out, stopped)."""

    decision: Decision | None
    by: str = ""
    comment: str = ""
    stopped_by: str = ""  # who stopped the release while it waited (an abort), if anyone

    def line(self, step: int, waited: timedelta | None = None) -> str:
        """``step 2 approved by alice: fine by me`` (or why there is no decision)."""
        if self.decision is None:
            if self.stopped_by:
                return f"step {step}: no decision, the release was aborted by {self.stopped_by}"
            return f"step {step}: no answer within {format_duration(waited or timedelta(0))}"
        verb = "approved" if self.decision is Decision.APPROVE else "rejected"
        comment = " ".join(self.comment.split())  # one line, whatever the form's textarea held
        said = f": {comment}" if comment else ""
        return f"step {step} {verb} by {self.by or 'someone'}{said}"


def approval_key(release_id: str, step: int) -> str:
    """The pause key of release ``release_id``'s question about step ``step`` (1-based)."""
    return f"approval-{release_id}-step-{step}"


def approval_tags(answers: Sequence[tuple[int, Answer]]) -> dict[str, str]:
    """The MLflow tag that records ``answers`` (step, answer), or none when there are none."""
    if not answers:
        return {}
    text = "; ".join(answer.line(step) for step, answer in answers)
    if len(text) > _TAG_LIMIT:
        text = text[:_TAG_LIMIT - 1] + "…"
    return {APPROVALS_TAG: text}


def needs_asking(gates: Sequence[Gate | None], *, drill: bool) -> int | None:
    """The first step (1-based) a person must approve, or None (a drill asks no one)."""
    if drill:
        return None
    return next((index + 1 for index, gate in enumerate(gates) if gate is not None), None)


def approval_refusal(where: str, step: int) -> str:
    """Why a release that nobody can approve is refused, and how to go on."""
    return (f"release endpoint {where}: step {step} has an approval gate, and only a release "
            "run by Prefect can ask for approval (the paused flow run's form in the Prefect "
            "UI): start it from the release deployment (prefect deployment run "
            "'release_model/release'), or remove the step's approval")
