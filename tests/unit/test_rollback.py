"""``domain.rollback``: which verified release a rollback goes back to, and the record after."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from modelrelease.domain.rollback import (
    RollbackTarget,
    rollback_refusal,
    rollback_target,
    status_after_rollback,
    targets,
)
from modelrelease.spec import HistoryEntry, ModelEndpointStatus, ReleasePhase, TrackStatus

P, RB = ReleasePhase.PROMOTED, ReleasePhase.ROLLED_BACK
T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
WHERE = "ml/iris"


def digest(version: str) -> str:
    return "sha256:" + version * 64


def status(primary: str | None, *history: tuple[str, ReleasePhase],
           phase: ReleasePhase = P) -> ModelEndpointStatus:
    entries = [HistoryEntry(release_id=f"r-{i}", version=v, phase=ph, digest=digest(v),
                            finished_at=T0, spec_hash="h")
               for i, (v, ph) in enumerate(history, 1)]
    return ModelEndpointStatus(
        phase=phase, release_id=entries[-1].release_id if entries else None,
        primary=TrackStatus(version=primary, digest=digest(primary),
                            image=f"reg/iris@{digest(primary)}") if primary else None,
        history=entries)


@pytest.mark.parametrize(("history", "primary", "expected"), [
    pytest.param([("1", P), ("2", P)], "2", ["1"], id="the-previous-promotion"),
    pytest.param([("1", P), ("2", P), ("3", P)], "3", ["2", "1"], id="newest-first"),
    pytest.param([("1", P), ("2", P), ("3", RB)], "2", ["1"], id="a-judged-rollback-is-no-target"),
    pytest.param([("1", P), ("2", P), ("2", RB)], "1", [], id="rolled-back-by-an-operator"),
    pytest.param([("1", P), ("2", P), ("1", P)], "1", ["2"], id="re-released-counts-once"),
    pytest.param([("1", P)], "1", [], id="only-the-primary"),
])
def test_the_targets_are_versions_whose_newest_entry_is_promoted(
        history: list[tuple[str, ReleasePhase]], primary: str, expected: list[str]) -> None:
    assert [t.version for t in targets(status(primary, *history))] == expected


def test_a_target_carries_the_digest_its_promotion_verified() -> None:
    (target,) = targets(status("2", ("1", P), ("2", P)))
    assert target == RollbackTarget("1", digest("1"), "r-1", T0)
    assert target.describe() == (f"version 1 ({digest('1')[:19]}, promoted by release r-1 at "
                                 "2026-12-06T09:00:00+00:00)")


@pytest.mark.parametrize(("record", "refusal"), [
    pytest.param(None, "roll back ml/iris: it has no primary yet; release a version first",
                 id="never-released"),
    pytest.param(status(None), "it has no primary yet", id="no-primary"),
    pytest.param(status("1", ("1", P), phase=ReleasePhase.ANALYSING).model_copy(
        update={"canary": TrackStatus(version="2")}),
        "a release of version 2 is in flight (Analysing); stop it with `modelrelease abort`",
        id="in-flight"),
    pytest.param(status("2", ("1", P), phase=ReleasePhase.BAKING).model_copy(
        update={"canary": TrackStatus(version="1")}),
        "version 2 is baking, its release still in flight; `modelrelease abort` rolls it back "
        "to version 1, whose pods are still warm, in seconds", id="baking"),
    pytest.param(status("1", ("1", P)), None, id="settled"),
    pytest.param(status("1", ("1", P), ("2", RB), phase=RB), None, id="after-a-rollback"),
])
def test_what_refuses_a_rollback_outright(record: ModelEndpointStatus | None,
                                          refusal: str | None) -> None:
    said = rollback_refusal(record, WHERE)
    assert (said is None) if refusal is None else (said is not None and refusal in said)


@pytest.mark.parametrize(("to", "expected"), [
    pytest.param(None, "2", id="default-newest"),
    pytest.param("1", "1", id="named"),
    pytest.param("3", "version 3 is already primary; valid targets: version 2 (", id="primary"),
    pytest.param("4", "version 4 is not a verified release of this endpoint (promoted here, "
                 "not rolled back since); valid targets: version 2 (", id="rolled-back"),
    pytest.param("9", "version 9 is not a verified release", id="unknown"),
])
def test_the_target_named_or_the_newest(to: str | None, expected: str) -> None:
    record = status("3", ("1", P), ("2", P), ("4", RB), ("3", P))
    chosen = rollback_target(record, to, WHERE)
    if isinstance(chosen, RollbackTarget):
        assert chosen.version == expected
    else:
        assert chosen.startswith(f"roll back {WHERE}: ") and expected in chosen
        assert "version 1 (" in chosen  # every valid target is listed


def test_no_target_says_why() -> None:
    said = rollback_target(status("1", ("1", P), ("2", P), ("2", RB)), None, WHERE)
    assert said == ("roll back ml/iris: no verified release to go back to (version 1 is primary;"
                    " every other version was rolled back or never promoted here)")


def test_the_record_after_a_rollback() -> None:
    before = status("2", ("1", P), ("2", P)).model_copy(update={"spec_hash": "old"})
    target = targets(before)[0]
    after = status_after_rollback(before, target, image="reg/iris@" + digest("1"),
                                  release_id="rb-1", by="ana@laptop", spec_hash="now",
                                  cost_per_hour=1.5, now=T0)
    reason = ("version 2 rolled back to version 1 by ana@laptop (modelrelease rollback; no "
              "analysis: it was verified here before)")
    assert after.phase is RB and after.reason == reason and after.release_id == "rb-1"
    assert after.primary == TrackStatus(version="1", digest=digest("1"),
                                        image="reg/iris@" + digest("1"))
    assert (after.canary, after.weight, after.step) == (None, 0, 0)
    assert (after.spec_hash, after.cost_per_hour) == ("now", 1.5)
    assert after.history[-1] == HistoryEntry(release_id="rb-1", version="2", phase=RB,
                                             digest=digest("2"), reason=reason, finished_at=T0,
                                             spec_hash="now")
    assert targets(after) == []  # version 2 is no target now; version 1 is the primary
