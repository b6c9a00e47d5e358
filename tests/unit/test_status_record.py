"""domain.status_record: the status the driver writes after each transition of a release."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from modelrelease.domain import analysis
from modelrelease.domain.status_record import (
    Released,
    in_flight_tracks,
    status_after,
    verdict_record,
    with_condition,
)
from modelrelease.spec import (
    Condition,
    HistoryEntry,
    ModelEndpointStatus,
    Outcome,
    ReleasePhase,
    TrackStatus,
    Verdict,
)

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
OLD = TrackStatus(version="1", digest="sha256:" + "1" * 64, image="r/ml/iris@sha256:" + "1" * 64)
NEW = Released("rel-2", "2", "sha256:" + "2" * 64, "r/ml/iris@sha256:" + "2" * 64, "h" * 16)
BEFORE = ModelEndpointStatus(phase=ReleasePhase.PROMOTED, primary=OLD, spec_hash="o" * 16,
                             conditions=[Condition(type="MlflowTagged", status="False"),
                                         Condition(type="Other", status="True")],
                             history=[HistoryEntry(release_id="rel-1", version="1",
                                                   phase=ReleasePhase.PROMOTED)])
VERDICT = Verdict(outcome=Outcome.PASSED, reasons=["fine"], numbers={})


def _after(phase: ReleasePhase, **overrides: object) -> ModelEndpointStatus:
    args: dict[str, object] = {"reason": "why", "step": 1, "weight": 50, "previous": OLD,
                               "last_verdict": VERDICT, "cost_per_hour": 0.5, "tagged": None,
                               "now": NOW}
    args.update(overrides)
    return status_after(BEFORE, phase, NEW, **args)  # type: ignore[arg-type]


NEW_TRACK = TrackStatus(version="2", digest=NEW.digest, image=NEW.image)


@pytest.mark.parametrize(
    ("phase", "primary", "canary", "spec_hash", "history"),
    [
        pytest.param(ReleasePhase.DEPLOYING, OLD, NEW_TRACK, "o" * 16, 1, id="deploying"),
        pytest.param(ReleasePhase.ANALYSING, OLD, NEW_TRACK, "o" * 16, 1, id="analysing"),
        # baking: the new version serves, the previous one waits warm in the canary's slot
        pytest.param(ReleasePhase.BAKING, NEW_TRACK, OLD, "o" * 16, 1, id="baking"),
        pytest.param(ReleasePhase.PROMOTED, NEW_TRACK, None, "h" * 16, 2, id="promoted"),
        pytest.param(ReleasePhase.ROLLED_BACK, OLD, None, "o" * 16, 2, id="rolled-back"),
    ],
)
def test_status_after_each_phase(phase: ReleasePhase, primary: TrackStatus,
                                 canary: TrackStatus | None, spec_hash: str,
                                 history: int) -> None:
    after = _after(phase)
    assert (after.phase, after.release_id, after.reason, after.step, after.weight) == (
        phase, "rel-2", "why", 1, 50)
    assert after.primary == primary and after.canary == canary
    assert after.spec_hash == spec_hash and after.last_verdict == VERDICT
    assert after.cost_per_hour == 0.5 and len(after.history) == history
    if history == 2:
        assert after.history[-1] == HistoryEntry(
            release_id="rel-2", version="2", phase=phase, digest=NEW.digest, reason="why",
            finished_at=NOW, spec_hash="h" * 16)


def test_reasons_are_cut_to_what_the_status_keeps() -> None:
    after = _after(ReleasePhase.ROLLED_BACK, reason="x" * 3000)
    assert len(after.reason or "") == 1000 and len(after.history[-1].reason or "") == 500


def test_a_tagging_condition_replaces_the_one_of_its_type() -> None:
    tagged = Condition(type="MlflowTagged", status="True", reason="Tagged")
    after = _after(ReleasePhase.PROMOTED, tagged=tagged)
    assert after.conditions == [Condition(type="Other", status="True"), tagged]
    assert _after(ReleasePhase.PROMOTED).conditions == BEFORE.conditions
    assert with_condition([], tagged) == [tagged]


CANARY = analysis.ArmStats(400, 2, 0.005, 4.0, 9.5, None)
PRIMARY = analysis.ArmStats(400, 0, 0.0, 3.9, 9.0, 11.5)


@pytest.mark.parametrize(("judged", "recorded"), [
    pytest.param(analysis.Outcome.PASS, Outcome.PASSED, id="passed"),
    pytest.param(analysis.Outcome.FAIL, Outcome.FAILED, id="failed"),
    pytest.param(analysis.Outcome.INCONCLUSIVE, Outcome.INCONCLUSIVE, id="inconclusive"),
])
def test_the_last_verdict_keeps_the_steps_outcome_reasons_and_numbers_in_order(
        judged: analysis.Outcome, recorded: Outcome) -> None:
    step = analysis.Verdict(judged, ("latency ok", "live traffic: no breach"), CANARY, PRIMARY)
    kept = verdict_record(step, {"agreement_rows": 30.0, "agreement_rate": 1.0},
                          {"live_used": 1.0, "live_requests_canary": 80.0})
    assert kept.outcome is recorded
    assert kept.reasons == ["latency ok", "live traffic: no breach"]
    assert list(kept.numbers.items()) == [
        ("p50_ms_canary", 4.0), ("p95_ms_canary", 9.5), ("error_rate_canary", 0.005),
        ("requests_canary", 400.0), ("p50_ms_primary", 3.9), ("p95_ms_primary", 9.0),
        ("p99_ms_primary", 11.5), ("error_rate_primary", 0.0), ("requests_primary", 400.0),
        ("agreement_rows", 30.0), ("agreement_rate", 1.0), ("live_used", 1.0),
        ("live_requests_canary", 80.0)]


@pytest.mark.parametrize(("phase", "releasing", "replaced"), [
    pytest.param(ReleasePhase.ANALYSING, NEW_TRACK, OLD, id="analysing"),
    pytest.param(ReleasePhase.PROMOTING, NEW_TRACK, OLD, id="promoting"),
    pytest.param(ReleasePhase.BAKING, NEW_TRACK, OLD, id="baking"),
])
def test_in_flight_tracks_reads_the_release_from_the_record(
        phase: ReleasePhase, releasing: TrackStatus, replaced: TrackStatus) -> None:
    assert in_flight_tracks(_after(phase)) == (releasing, replaced)


def test_a_settled_record_is_releasing_nothing() -> None:
    assert in_flight_tracks(_after(ReleasePhase.PROMOTED)) == (None, NEW_TRACK)
