"""domain.drill: when a drill may start, what it restores, whether it held, its report."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from modelrelease.domain.drill import (
    Check,
    DrillEvidence,
    DrillVerdict,
    drill_blocker,
    judge_drill,
    previous_release,
    render_drill_report,
)
from modelrelease.domain.rollout import UNDETECTED, Milestones
from modelrelease.spec import HistoryEntry, ModelEndpointStatus, ReleasePhase, TrackStatus

REPO = "127.0.0.1:5000/ml/iris"
D1, D2, D3 = ("sha256:" + c * 64 for c in "123")
AT = datetime(2026, 1, 1, tzinfo=UTC)


def track(version: str, digest: str | None) -> TrackStatus:
    image = f"{REPO}@{digest}" if digest else None
    return TrackStatus(version=version, digest=digest, image=image)


def entry(version: str, digest: str | None, phase: ReleasePhase = ReleasePhase.PROMOTED
          ) -> HistoryEntry:
    return HistoryEntry(release_id=f"r{version}", version=version, phase=phase, digest=digest,
                        finished_at=AT)


def status(primary: TrackStatus | None, *history: HistoryEntry,
           phase: ReleasePhase | None = ReleasePhase.PROMOTED) -> ModelEndpointStatus:
    return ModelEndpointStatus(phase=phase, primary=primary, history=list(history))


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        pytest.param(None, "no primary", id="no-status"),
        pytest.param(status(None, phase=None), "no primary", id="never-released"),
        pytest.param(status(track("1", D1), phase=ReleasePhase.ANALYSING),
                     "a release is in flight (phase Analysing)", id="in-flight"),
        pytest.param(status(track("1", D1), phase=ReleasePhase.PENDING),
                     "in flight (phase Pending)", id="pending-release"),
        pytest.param(status(track("1", None)), "no image digest", id="no-digest"),
        pytest.param(status(track("1", D1)), None, id="promoted"),
        pytest.param(status(track("1", D1), phase=ReleasePhase.ROLLED_BACK), None,
                     id="after-a-rollback"),
    ],
)
def test_drill_blocker(found: ModelEndpointStatus | None, expected: str | None) -> None:
    blocker = drill_blocker(found)
    if expected is None:
        assert blocker is None
    else:
        assert blocker is not None and expected in blocker


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        pytest.param(status(None), None, id="no-primary"),
        pytest.param(status(track("1", D1), entry("1", D1)), track("1", D1),
                     id="only-one-release-falls-back-to-primary"),
        pytest.param(status(track("2", D2), entry("1", D1), entry("2", D2)), track("1", D1),
                     id="two-releases"),
        pytest.param(status(track("2", D2), entry("1", D1), entry("3", D3,
                                                                  ReleasePhase.ROLLED_BACK),
                            entry("2", D2), entry("2", D2, ReleasePhase.ROLLED_BACK)),
                     track("1", D1), id="rollbacks-and-drills-skipped"),
        pytest.param(status(track("1", D1), entry("1", D1), entry("2", D2), entry("1", D1)),
                     track("2", D2), id="back-to-an-older-version"),
        pytest.param(status(track("2", D2), entry("1", D1), entry("2", D2), entry("3", D3)),
                     track("1", D1), id="entries-after-the-primary-ignored"),
        pytest.param(status(track("3", D3), entry("1", D1), entry("2", D2)), track("2", D2),
                     id="primary-beyond-the-history"),
        pytest.param(status(track("2", D2), entry("1", None), entry("2", D2)), track("2", D2),
                     id="entry-without-digest-skipped"),
        pytest.param(status(track("2", D2), entry("2", D2), entry("2", D2)), track("2", D2),
                     id="same-image-released-twice"),
    ],
)
def test_previous_release(found: ModelEndpointStatus, expected: TrackStatus | None) -> None:
    assert previous_release(found, REPO) == expected


PULLS = Check("image still pulls", True, f"{REPO}@{D1} is in the registry")
GONE = Check("image still pulls", False, f"{REPO}@{D1}: manifest unknown (404)")
RESOLVES = Check("MLflow version still resolves", True, "models:/iris/1")
TIMES = Milestones(canary_deployed=1.0, rollback_decided=9.5, rolled_back=12.0)


def evidence(**changes: object) -> DrillEvidence:
    values: dict[str, object] = {
        "rolled_back": True, "reason": "step 1 failed at weight 50: p95 512ms > 60ms",
        "times": TIMES, "primary_ok": 120, "primary_failures": (),
        "restorable": (PULLS, RESOLVES)}
    return DrillEvidence(**{**values, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seen", "passed", "failed", "text"),
    [
        pytest.param(evidence(), True, [], "held: fault detected in 8.5s, primary alone again "
                                            "2.5s later", id="holds"),
        pytest.param(evidence(reason=f"step 1 passed: ok; {UNDETECTED}"), False,
                     ["fault detected"], "passed every check", id="fault-not-detected"),
        pytest.param(evidence(rolled_back=False, reason="already primary"), False,
                     ["fault detected", "rolled back and timed"],
                     "not rolled back: already primary", id="not-rolled-back"),
        pytest.param(evidence(times=Milestones(canary_deployed=1.0)), False,
                     ["rolled back and timed"], "no canary start, rollback decision",
                     id="untimed"),
        pytest.param(evidence(times=Milestones(rollback_decided=2.0, rolled_back=3.0)), False,
                     ["rolled back and timed"], "to time", id="no-canary-start"),
        pytest.param(evidence(primary_failures=("503 no endpoints", "503")), False,
                     ["primary served throughout"], "2 of 122 requests failed, first: 503 no "
                                                    "endpoints", id="primary-failed"),
        pytest.param(evidence(primary_ok=0), False, ["primary served throughout"],
                     "no request reached the primary", id="primary-unproven"),
        pytest.param(evidence(restorable=(GONE, RESOLVES)), False, ["image still pulls"],
                     "manifest unknown (404)", id="previous-image-deleted"),
    ],
)
def test_judge_drill(seen: DrillEvidence, passed: bool, failed: list[str], text: str) -> None:
    verdict = judge_drill(seen)
    assert verdict.passed is passed
    assert [p.what for p in verdict.parts if not p.ok] == failed
    assert text in verdict.reason
    assert [p.what for p in verdict.parts][:3] == [
        "fault detected", "rolled back and timed", "primary served throughout"]


def test_times_are_measured_from_the_milestones() -> None:
    verdict = judge_drill(evidence())
    assert (verdict.time_to_detect_s, verdict.time_to_restore_s) == (8.5, 2.5)
    assert judge_drill(evidence(times=Milestones())).time_to_detect_s is None


def test_report_of_a_drill_that_held() -> None:
    verdict = judge_drill(evidence())
    text = render_drill_report(endpoint="ml/iris", fault="latency:0.5", version="2",
                               previous=track("1", D1), verdict=verdict,
                               release_report="# Release of `ml/iris`: RolledBack\n\n"
                                              "## Timeline\n| 1.0 | a |\n")
    assert text.startswith("# Rollback drill of `ml/iris`: passed\n")
    assert "- time to detect: **8.5 s**" in text and "- time to restore: **2.5 s**" in text
    assert f"version 1 (`{REPO}@{D1}`)" in text
    assert "| fault detected | yes | step 1 failed at weight 50: p95 512ms > 60ms |" in text
    assert "\n## Release of `ml/iris`: RolledBack\n" in text and "\n### Timeline\n" in text


def test_report_of_a_drill_that_failed() -> None:
    verdict = DrillVerdict(False, (Check("image still pulls", False, "a | b"),), None, None)
    text = render_drill_report(endpoint="ml/iris", fault="crash", version="2", previous=None,
                               verdict=verdict, release_report="")
    assert text.startswith("# Rollback drill of `ml/iris`: FAILED\n")
    assert "- time to detect: **– s**" in text and "- previous version: –" in text
    assert "| image still pulls | **no** | a / b |" in text
    assert "- verdict: image still pulls: a | b" in text
    assert "Release of" not in text
