"""domain.triggers: the watcher's decision table and the release-requested event."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from modelrelease.domain.triggers import (
    RELEASE_REQUESTED,
    ReleaseTrigger,
    watch_decision,
)
from modelrelease.spec import HistoryEntry, ModelEndpointStatus, ReleasePhase, TrackStatus

SPEC = "a" * 16


def _status(phase: ReleasePhase | None, primary: str | None = None, *, spec: str | None = SPEC,
            canary: str | None = None, history: list[tuple[str, ReleasePhase, str | None]] = ()
            ) -> ModelEndpointStatus:
    return ModelEndpointStatus(
        phase=phase, spec_hash=spec,
        primary=TrackStatus(version=primary) if primary else None,
        canary=TrackStatus(version=canary) if canary else None,
        history=[HistoryEntry(release_id=f"r{i}", version=v, phase=p, spec_hash=h,
                              reason="p99 regressed")
                 for i, (v, p, h) in enumerate(history)])


@pytest.mark.parametrize(("target", "status", "release", "says"), [
    pytest.param("1", None, True, "nothing released yet", id="no-status"),
    pytest.param("1", _status(None), True, "nothing released yet", id="empty-status"),
    pytest.param("2", _status(ReleasePhase.PROMOTED, "2"), False, "is primary",
                 id="up-to-date"),
    pytest.param("2", _status(ReleasePhase.PROMOTED, "2", spec="b" * 16), True,
                 "spec changed", id="spec-changed"),
    pytest.param("3", _status(ReleasePhase.PROMOTED, "2"), True, "primary is 2",
                 id="new-version"),
    pytest.param("3", _status(ReleasePhase.ANALYSING, "2", canary="3"), False,
                 "version 3) is in progress", id="in-progress"),
    pytest.param("3", _status(ReleasePhase.DEPLOYING, "2"), False,
                 "version ?) is in progress", id="in-progress-no-canary"),
    pytest.param("3", _status(ReleasePhase.PENDING, "2"), False,
                 "version ?) is in progress", id="pending"),
    pytest.param("3", _status(ReleasePhase.ROLLED_BACK, "2",
                              history=[("3", ReleasePhase.ROLLED_BACK, SPEC)]), False,
                 "already ended RolledBack: p99 regressed", id="rolled-back-not-retried"),
    pytest.param("3", _status(ReleasePhase.ROLLED_BACK, "2",
                              history=[("3", ReleasePhase.ROLLED_BACK, "c" * 16)]), True,
                 "primary is 2", id="rolled-back-other-spec-retried"),
    pytest.param("3", _status(ReleasePhase.PROMOTED, "2",
                              history=[("3", ReleasePhase.PROMOTED, SPEC),
                                       ("2", ReleasePhase.PROMOTED, SPEC)]), True,
                 "primary is 2", id="promoted-before-then-rolled-forward"),
    pytest.param("3", _status(ReleasePhase.ROLLED_BACK, None,
                              history=[("2", ReleasePhase.ROLLED_BACK, SPEC)]), True,
                 "no primary yet", id="rolled-back-other-version-no-primary"),
])
def test_watch_decision(target: str, status: ModelEndpointStatus | None, release: bool,
                        says: str) -> None:
    decision = watch_decision(target, SPEC, status)
    assert decision.release is release
    assert says in decision.reason


def _trigger(**changes: Any) -> ReleaseTrigger:
    fields: dict[str, Any] = {"endpoint": "iris", "namespace": "ml", "version": "3",
                              "spec_hash": SPEC, "source": "webhook", "reason": "alias set"}
    return ReleaseTrigger(**{**fields, **changes})


def test_one_change_is_one_event_id_whoever_sees_it() -> None:
    webhook, watcher = _trigger(), _trigger(source="watcher", reason="tick")
    assert webhook.key == watcher.key == f"ml/iris@3#{SPEC}"
    assert webhook.event_id == watcher.event_id
    for other in (_trigger(version="4"), _trigger(spec_hash="b" * 16), _trigger(namespace="x"),
                  _trigger(endpoint="iris2")):
        assert other.event_id != webhook.event_id


@pytest.mark.parametrize(("version", "payload"), [("3", 3), ("latest", "latest")])
def test_event_shape(version: str, payload: object) -> None:
    when = datetime(2026, 11, 26, 12, tzinfo=UTC)
    event = _trigger(version=version).event(when)
    assert event["event"] == RELEASE_REQUESTED
    assert event["occurred"] == "2026-11-26T12:00:00+00:00"
    assert event["resource"]["prefect.resource.id"] == "modelrelease.endpoint.ml.iris"
    assert event["payload"]["endpoint"] == "iris" and event["payload"]["version"] == payload
    assert event["id"] == str(_trigger(version=version).event_id)
