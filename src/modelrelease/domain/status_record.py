"""The status record after each transition of a release, pure: ``status_after``.

The custom resource's status is the durable record of a release: the phase it is in,
the reason, the step and weight, which version and image each track serves, the last
verdict, what the endpoint costs now, and, once the release is over, one more history
entry. The driver writes what this returns after every transition; ``verdict_record`` is
the last verdict as the record keeps it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from modelrelease.domain import analysis
from modelrelease.spec import (
    Condition,
    HistoryEntry,
    ModelEndpointStatus,
    Outcome,
    ReleasePhase,
    TrackStatus,
    Verdict,
)

__all__ = ["Released", "in_flight_tracks", "status_after", "verdict_record", "with_condition"]

REASON_LIMIT = 1000
"""Characters of the reason the status keeps (the report has all of it)."""
HISTORY_REASON_LIMIT = 500


@dataclass(frozen=True)
class Released:
    """What is being released: the version, its image by digest, the release and its spec."""

    release_id: str
    version: str
    digest: str
    image: str
    spec_hash: str


def status_after(status: ModelEndpointStatus, phase: ReleasePhase, released: Released, *,
                 reason: str, step: int, weight: int, previous: TrackStatus | None,
                 last_verdict: Verdict | None, cost_per_hour: float,
                 tagged: Condition | None, now: datetime,
                 aborted_by: str = "") -> ModelEndpointStatus:
    """``status`` once the release of ``released`` entered ``phase``.

    While the release runs the canary is the new version and the primary stays
    ``previous``; baking, the new version is the primary and ``previous`` waits warm in the
    canary's slot at no traffic (weight 0); promoted, the new version is the primary (and
    the spec it was released with is recorded); over either way, the canary is gone and a
    history entry is added.
    ``tagged`` (how tagging the version in MLflow went) replaces the condition of its type;
    ``aborted_by`` says who stopped the release, if anyone.
    """
    track = TrackStatus(version=released.version, digest=released.digest, image=released.image)
    promoted = phase is ReleasePhase.PROMOTED
    baking = phase is ReleasePhase.BAKING
    updated = status.model_copy(update={
        "phase": phase, "release_id": released.release_id, "reason": reason[:REASON_LIMIT],
        "step": step, "weight": weight,
        "primary": track if promoted or baking else previous,
        "canary": previous if baking else None if phase.terminal else track,
        "last_verdict": last_verdict,
        "spec_hash": released.spec_hash if promoted else status.spec_hash,
        "cost_per_hour": cost_per_hour, "aborted_by": aborted_by or None})
    if tagged is not None:
        updated = updated.model_copy(update={
            "conditions": with_condition(updated.conditions, tagged)})
    if phase.terminal:
        updated = updated.with_history(HistoryEntry(
            release_id=released.release_id, version=released.version, phase=phase,
            digest=released.digest, reason=reason[:HISTORY_REASON_LIMIT], finished_at=now,
            spec_hash=released.spec_hash))
    return updated


def in_flight_tracks(status: ModelEndpointStatus) -> tuple[TrackStatus | None,
                                                            TrackStatus | None]:
    """What the record's release is releasing, and the primary it replaces.

    Baking, the new version is the primary already and the replaced one waits in the
    canary's slot; in any other phase the canary is the new version.
    """
    if status.phase is ReleasePhase.BAKING:
        return status.primary, status.canary
    return status.canary, status.primary


def with_condition(conditions: list[Condition], condition: Condition) -> list[Condition]:
    """``conditions`` with ``condition`` in place of any of its type."""
    return [*(c for c in conditions if c.type != condition.type), condition]


RECORDED = {analysis.Outcome.PASS: Outcome.PASSED, analysis.Outcome.FAIL: Outcome.FAILED,
            analysis.Outcome.INCONCLUSIVE: Outcome.INCONCLUSIVE}
"""A step's outcome as the record writes it."""


def verdict_record(verdict: analysis.Verdict, *figures: Mapping[str, float]) -> Verdict:
    """A step's verdict as the status's ``lastVerdict``: outcome, reasons and numbers.

    The numbers are both arms' under generated load (``p50_ms_canary``, ...,
    ``requests_primary``), then each of ``figures`` in turn (the agreement's, live
    traffic's).
    """
    numbers: dict[str, float] = {}
    for arm, stats in (("canary", verdict.canary), ("primary", verdict.primary)):
        for key in ("p50_ms", "p95_ms", "p99_ms", "error_rate"):
            value = getattr(stats, key)
            if value is not None:
                numbers[f"{key}_{arm}"] = float(value)
        numbers[f"requests_{arm}"] = float(stats.requests)
    for more in figures:
        numbers |= more
    return Verdict(outcome=RECORDED[verdict.outcome], reasons=list(verdict.reasons),
                   numbers=numbers)
