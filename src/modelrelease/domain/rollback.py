"""Going back to an earlier verified release, pure: which one, and the record after it.

``modelrelease rollback ENDPOINT [--to VERSION]`` (and the ``rollback`` Prefect deployment)
switch the primary back to a version this endpoint promoted before, skipping analysis: it
was judged here already. A version is a target while its newest history entry says
Promoted (one rolled back since, by the judge or by an operator, is not) and it is not the
primary; by default the newest such version. The rolled-back primary gets a RolledBack
history entry, so the registry watcher does not release it again while MLflow still
selects it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from modelrelease.spec import HistoryEntry, ModelEndpointStatus, ReleasePhase, TrackStatus

__all__ = ["RollbackTarget", "rollback_refusal", "rollback_target", "status_after_rollback",
           "targets"]


@dataclass(frozen=True)
class RollbackTarget:
    """A version the endpoint can go back to: the image its promotion verified."""

    version: str
    digest: str
    promoted_by: str
    """The release id that promoted it."""
    finished_at: datetime | None

    def describe(self) -> str:
        """``version 3 (sha256:0123456789ab, promoted by release r-3 at 2026-…)``."""
        when = f" at {self.finished_at.isoformat(timespec='seconds')}" if self.finished_at else ""
        return (f"version {self.version} ({self.digest[:19]}, promoted by release "
                f"{self.promoted_by}{when})")


def targets(status: ModelEndpointStatus) -> list[RollbackTarget]:
    """The versions the endpoint can go back to, newest first (see the module doc)."""
    primary = status.primary.version if status.primary is not None else None
    newest: dict[str, HistoryEntry] = {}
    for entry in reversed(status.history):
        newest.setdefault(entry.version, entry)
    return [RollbackTarget(entry.version, entry.digest, entry.release_id, entry.finished_at)
            for entry in newest.values()
            if entry.phase is ReleasePhase.PROMOTED and entry.digest
            and entry.version != primary]


def rollback_refusal(status: ModelEndpointStatus | None, where: str) -> str | None:
    """Why nothing can be rolled back now (no primary, a release in flight), or None."""
    if status is None or status.primary is None:
        return f"roll back {where}: it has no primary yet; release a version first"
    if status.phase is ReleasePhase.BAKING and status.canary is not None:
        baking = status.primary.version
        return (f"roll back {where}: version {baking} is baking, its release still in flight; "
                f"`modelrelease abort` rolls it back to version {status.canary.version}, whose "
                "pods are still warm, in seconds")
    if status.phase is not None and status.phase.in_flight:
        busy = status.canary.version if status.canary is not None else "?"
        return (f"roll back {where}: a release of version {busy} is in flight "
                f"({status.phase.value}); stop it with `modelrelease abort` first, or wait "
                "for it to end")
    return None


def rollback_target(status: ModelEndpointStatus, to: str | None, where: str
                    ) -> RollbackTarget | str:
    """The version to go back to (``to``, or the newest target), or why there is none.

    The refusal names the valid targets, so the fix is in the message.
    """
    found = targets(status)
    primary = status.primary.version if status.primary is not None else "?"
    valid = "; ".join(target.describe() for target in found) or "none"
    if to is None:
        if found:
            return found[0]
        return (f"roll back {where}: no verified release to go back to (version {primary} "
                "is primary; every other version was rolled back or never promoted here)")
    if to == primary:
        return f"roll back {where}: version {to} is already primary; valid targets: {valid}"
    chosen = next((target for target in found if target.version == to), None)
    if chosen is None:
        return (f"roll back {where}: version {to} is not a verified release of this endpoint "
                f"(promoted here, not rolled back since); valid targets: {valid}")
    return chosen


def status_after_rollback(status: ModelEndpointStatus, target: RollbackTarget, *, image: str,
                          release_id: str, by: str, spec_hash: str, cost_per_hour: float,
                          now: datetime) -> ModelEndpointStatus:
    """``status`` once the primary serves ``target`` again.

    The primary it replaced ends RolledBack in the history (with the spec now in force,
    so the watcher does not retry it); the record's own phase is RolledBack too, with
    who did it as the reason.
    """
    previous = status.primary
    assert previous is not None, "rollback_refusal refuses an endpoint without a primary"
    reason = (f"version {previous.version} rolled back to version {target.version} by {by} "
              "(modelrelease rollback; no analysis: it was verified here before)")
    entry = HistoryEntry(release_id=release_id, version=previous.version,
                         phase=ReleasePhase.ROLLED_BACK, digest=previous.digest, reason=reason,
                         finished_at=now, spec_hash=spec_hash)
    return status.with_history(entry).model_copy(update={
        "phase": ReleasePhase.ROLLED_BACK, "release_id": release_id, "reason": reason,
        "step": 0, "weight": 0, "canary": None, "spec_hash": spec_hash,
        "primary": TrackStatus(version=target.version, digest=target.digest, image=image),
        "cost_per_hour": cost_per_hour, "aborted_by": None})
