"""What a release tells people: one notice per milestone, as a Prefect event. Pure.

A release says when it starts, when each canary step passes, when a step waits for a
person's approval (with the link to the paused flow run's form), and how it ends (promoted,
rolled back, or aborted by someone); a rollback drill says whether it passed. Each
notice becomes one Prefect event (``modelrelease.release.promoted``, ...) on the
endpoint's resource, with the endpoint, version, reason and a link to the flow run in
its payload; the automations in ``deployments/notifications.yaml`` turn each into a
message (a Slack-compatible webhook, e-mail).

A drill's own release rolls back by design: it tells nothing itself (``notice_of`` with
``drill=True``), the drill's result does.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from modelrelease.domain.rollout import Phase, State
from modelrelease.domain.triggers import RESOURCE_PREFIX


class Notice(StrEnum):
    """A milestone people are told about; its Prefect event is ``EVENTS[notice]``."""

    STARTED = "started"
    STEP_PASSED = "step-passed"
    APPROVAL_NEEDED = "approval-needed"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled-back"
    ABORTED = "aborted"
    DRILL_PASSED = "drill-passed"
    DRILL_FAILED = "drill-failed"


EVENTS: dict[Notice, str] = {
    Notice.STARTED: "modelrelease.release.started",
    Notice.STEP_PASSED: "modelrelease.release.step-passed",
    Notice.APPROVAL_NEEDED: "modelrelease.release.approval-needed",
    Notice.PROMOTED: "modelrelease.release.promoted",
    Notice.ROLLED_BACK: "modelrelease.release.rolled-back",
    Notice.ABORTED: "modelrelease.release.aborted",
    Notice.DRILL_PASSED: "modelrelease.drill.passed",
    Notice.DRILL_FAILED: "modelrelease.drill.failed",
}
"""The Prefect event of each notice (the automations expect exactly these)."""
STEP_NOTICES = frozenset({Notice.STEP_PASSED, Notice.APPROVAL_NEEDED})
"""The notices about one step, which say its number."""


@dataclass(frozen=True)
class Notification:
    """One notice about one endpoint's release (or drill), with what a reader needs."""

    notice: Notice
    endpoint: str  # namespace/name
    version: str
    reason: str
    release_id: str = ""
    step: int | None = None  # the step (1-based), for STEP_PASSED and APPROVAL_NEEDED

    @property
    def title(self) -> str:
        """One line: ``prod/iris version 2: promoted``."""
        what = {Notice.STEP_PASSED: f"step {self.step} passed",
                Notice.APPROVAL_NEEDED: f"step {self.step} waits for your approval",
                Notice.DRILL_PASSED: "rollback drill passed",
                Notice.DRILL_FAILED: "rollback drill FAILED"}.get(self.notice,
                                                                  str(self.notice))
        return f"{self.endpoint} version {self.version}: {what}"

    def event(self, occurred: datetime, run_id: str | None = None,
              run_url: str | None = None) -> dict[str, Any]:
        """The Prefect event (JSON-ready); ``run_id``/``run_url``: the flow run that tells.

        The event id is derived from the release, the notice and the step, so telling the
        same thing twice (a retried post, a resumed release) is one event, not two.
        """
        namespace, _, name = self.endpoint.partition("/")
        key = f"{self.endpoint}/{self.release_id}/{self.notice}/{self.step}"
        return {
            "id": str(uuid.uuid5(_NAMESPACE, key)),
            "occurred": occurred.isoformat(),
            "event": EVENTS[self.notice],
            "resource": {"prefect.resource.id": f"{RESOURCE_PREFIX}{namespace}.{name}",
                         "prefect.resource.name": self.endpoint},
            "payload": {"notice": str(self.notice), "title": self.title,
                        "endpoint": self.endpoint, "version": self.version,
                        "reason": self.reason, "release_id": self.release_id,
                        "step": self.step, "run_url": run_url or ""},
            "related": [] if run_id is None else [
                {"prefect.resource.id": f"prefect.flow-run.{run_id}",
                 "prefect.resource.role": "flow-run"}],
        }


_NAMESPACE = uuid.UUID("0d3f2c1e-6a7b-4c8d-9e0f-1a2b3c4d5e6f")


def notice_of(before: State, after: State, *, drill: bool = False) -> Notice | None:
    """The notice a release's move from ``before`` to ``after`` gives, if any.

    Started: the canary begins deploying. Step passed: the release moved on from an
    analysed step (to the next step or to promotion), or from its approval. Approval
    needed: a passed step waits for a person. Promoted, rolled back, aborted:
    the release's end (aborted when someone stopped it, ``State.aborted_by``).
    """
    if drill or (before.phase == after.phase and before.step == after.step):
        return None
    match before.phase, after.phase:
        case Phase.PENDING, Phase.DEPLOYING:
            return Notice.STARTED
        case Phase.ANALYSING | Phase.AWAITING_APPROVAL, Phase.ANALYSING | Phase.PROMOTING:
            return Notice.STEP_PASSED
        case Phase.ANALYSING, Phase.AWAITING_APPROVAL:
            return Notice.APPROVAL_NEEDED
        case _, Phase.PROMOTED:
            return Notice.PROMOTED
        case _, Phase.ROLLED_BACK:
            return Notice.ABORTED if after.aborted_by else Notice.ROLLED_BACK
    return None


def drill_notice(passed: bool) -> Notice:
    """The notice a drill's result gives."""
    return Notice.DRILL_PASSED if passed else Notice.DRILL_FAILED
