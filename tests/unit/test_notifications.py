"""domain.notifications: which move of a release tells what, and the event it becomes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from modelrelease.domain.notifications import (
    EVENTS,
    Notice,
    Notification,
    drill_notice,
    notice_of,
)
from modelrelease.domain.rollout import Phase, State

P = Phase


@pytest.mark.parametrize(("before", "after", "drill", "notice"), [
    pytest.param(State(), State(P.DEPLOYING), False, Notice.STARTED, id="started"),
    pytest.param(State(P.SMOKE), State(P.ANALYSING), False, None, id="smoke-passed-is-no-step"),
    pytest.param(State(P.ANALYSING, step=0), State(P.ANALYSING, step=1), False,
                 Notice.STEP_PASSED, id="step-passed-next-step"),
    pytest.param(State(P.ANALYSING, step=1), State(P.PROMOTING, step=1), False,
                 Notice.STEP_PASSED, id="last-step-passed"),
    pytest.param(State(P.ANALYSING, step=0), State(P.ANALYSING, step=0, extensions=1), False,
                 None, id="extended-step-is-no-pass"),
    pytest.param(State(P.ANALYSING, step=0), State(P.AWAITING_APPROVAL, step=0), False,
                 Notice.APPROVAL_NEEDED, id="step-waits-for-approval"),
    pytest.param(State(P.AWAITING_APPROVAL, step=0), State(P.ANALYSING, step=1), False,
                 Notice.STEP_PASSED, id="approved-step-passed"),
    pytest.param(State(P.AWAITING_APPROVAL, step=1), State(P.PROMOTING, step=1), False,
                 Notice.STEP_PASSED, id="approved-last-step-passed"),
    pytest.param(State(P.AWAITING_APPROVAL, step=0), State(P.ROLLING_BACK, step=0), False,
                 None, id="rejected-is-not-the-end"),
    pytest.param(State(P.PROMOTING), State(P.PROMOTED), False, Notice.PROMOTED,
                 id="promoted"),
    pytest.param(State(P.ROLLING_BACK), State(P.ROLLED_BACK), False, Notice.ROLLED_BACK,
                 id="rolled-back"),
    pytest.param(State(P.ROLLING_BACK, aborted_by="ana"),
                 State(P.ROLLED_BACK, aborted_by="ana"), False, Notice.ABORTED, id="aborted"),
    pytest.param(State(P.ANALYSING), State(P.ROLLING_BACK), False, None,
                 id="rolling-back-is-not-the-end"),
    pytest.param(State(P.PROMOTED), State(P.PROMOTED), False, None, id="no-move"),
    pytest.param(State(), State(P.DEPLOYING), True, None, id="drill-started"),
    pytest.param(State(P.ROLLING_BACK), State(P.ROLLED_BACK), True, None,
                 id="drill-rolled-back"),
])
def test_notice_of(before: State, after: State, drill: bool, notice: Notice | None) -> None:
    assert notice_of(before, after, drill=drill) is notice


@pytest.mark.parametrize(("told", "title"), [
    pytest.param(Notification(Notice.STARTED, "prod/iris", "2", "deploying"),
                 "prod/iris version 2: started", id="started"),
    pytest.param(Notification(Notice.STEP_PASSED, "prod/iris", "2", "p", step=1),
                 "prod/iris version 2: step 1 passed", id="step"),
    pytest.param(Notification(Notice.APPROVAL_NEEDED, "prod/iris", "2", "p", step=2),
                 "prod/iris version 2: step 2 waits for your approval", id="approval"),
    pytest.param(Notification(Notice.ABORTED, "prod/iris", "2", "by ana"),
                 "prod/iris version 2: aborted", id="aborted"),
    pytest.param(Notification(drill_notice(True), "prod/iris", "1", "caught"),
                 "prod/iris version 1: rollback drill passed", id="drill-passed"),
    pytest.param(Notification(drill_notice(False), "prod/iris", "1", "missed"),
                 "prod/iris version 1: rollback drill FAILED", id="drill-failed"),
])
def test_titles(told: Notification, title: str) -> None:
    assert told.title == title


def test_the_event_names_the_endpoint_and_links_the_run() -> None:
    told = Notification(Notice.PROMOTED, "prod/iris", "2", "primary serves it", "r-1")
    at = datetime(2026, 12, 6, 4, 0, tzinfo=UTC)
    event = told.event(at, "6e1c0b9e-0000-4000-8000-000000000001",
                       "http://127.0.0.1:4200/runs/flow-run/6e1c")
    assert event["event"] == "modelrelease.release.promoted"
    assert event["occurred"] == "2026-12-06T04:00:00+00:00"
    assert event["resource"] == {"prefect.resource.id": "modelrelease.endpoint.prod.iris",
                                 "prefect.resource.name": "prod/iris"}
    assert event["payload"] == {
        "notice": "promoted", "title": "prod/iris version 2: promoted",
        "endpoint": "prod/iris", "version": "2", "reason": "primary serves it",
        "release_id": "r-1", "step": None,
        "run_url": "http://127.0.0.1:4200/runs/flow-run/6e1c"}
    assert event["related"] == [{
        "prefect.resource.id": "prefect.flow-run.6e1c0b9e-0000-4000-8000-000000000001",
        "prefect.resource.role": "flow-run"}]
    # the same notice told again is the same event; another is another
    assert told.event(at)["id"] == event["id"]
    assert Notification(Notice.STARTED, "prod/iris", "2", "x", "r-1").event(at)["id"] != (
        event["id"])
    assert told.event(at)["related"] == [] and told.event(at)["payload"]["run_url"] == ""


def test_every_notice_has_its_own_event_and_none_requests_a_release() -> None:
    assert set(EVENTS) == set(Notice)
    assert len(set(EVENTS.values())) == len(Notice)
    assert "modelrelease.release.requested" not in EVENTS.values()
