"""What ``modelrelease status`` and ``history`` print: rows from the endpoint's status.

Pure: the CLI reads the ModelEndpoint resources and prints; this module only chooses the
columns and their wording. Each row is a dict: the ``--json`` output as is, and the table
after ``text_table``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from modelrelease.spec.status import ModelEndpointStatus, ReleasePhase, TrackStatus

NONE = "-"
STATUS_COLUMNS = ("endpoint", "phase", "primary", "canary", "weight", "verdict",
                  "cost_per_hour")
HISTORY_COLUMNS = ("release_id", "version", "phase", "digest", "finished_at", "reason")


def _track(track: TrackStatus | None) -> str:
    if track is None:
        return NONE
    digest = (track.digest or "").removeprefix("sha256:")[:12]
    return f"v{track.version}" + (f" @{digest}" if digest else "")


def status_row(namespace: str, name: str, status: ModelEndpointStatus | None
               ) -> dict[str, Any]:
    """One endpoint's line of ``modelrelease status``.

    An endpoint that was never released (no status yet) shows ``-`` everywhere but its
    name; the verdict is the last one's outcome and its first reason.
    """
    if status is None:
        return {"endpoint": f"{namespace}/{name}", "phase": NONE, "primary": NONE,
                "canary": NONE, "weight": NONE, "verdict": NONE, "cost_per_hour": NONE}
    verdict = status.last_verdict
    said = NONE
    if verdict is not None:
        said = str(verdict.outcome) + (f": {verdict.reasons[0]}" if verdict.reasons else "")
    return {
        "endpoint": f"{namespace}/{name}",
        "phase": str(status.phase) if status.phase else NONE,
        "primary": _track(status.primary),
        # baking, the canary's slot holds the previous version, warm, with no traffic
        "canary": _track(status.canary) + (
            " (warm)" if status.phase is ReleasePhase.BAKING and status.canary else ""),
        "weight": f"{status.weight}%" if status.canary else NONE,
        "verdict": said,
        "cost_per_hour": NONE if status.cost_per_hour is None
        else f"{status.cost_per_hour:.4f}",
    }


def status_json(namespace: str, name: str, status: ModelEndpointStatus | None
                ) -> dict[str, Any]:
    """One endpoint for ``status --json``: the fields in full (digests and reasons whole)."""
    if status is None:
        return {"namespace": namespace, "name": name, "phase": None}

    def track(value: TrackStatus | None) -> dict[str, Any] | None:
        return None if value is None else {"version": value.version, "digest": value.digest,
                                           "image": value.image}

    verdict = status.last_verdict
    return {"namespace": namespace, "name": name,
            "phase": str(status.phase) if status.phase else None,
            "release_id": status.release_id, "reason": status.reason,
            "primary": track(status.primary), "canary": track(status.canary),
            "weight": status.weight if status.canary else None,
            "last_verdict": None if verdict is None else {
                "outcome": str(verdict.outcome), "reasons": list(verdict.reasons)},
            "cost_per_hour": status.cost_per_hour}


def history_rows(status: ModelEndpointStatus | None) -> list[dict[str, Any]]:
    """``modelrelease history``: one row per past release, newest first."""
    if status is None:
        return []
    return [{"release_id": entry.release_id, "version": entry.version,
             "phase": str(entry.phase), "digest": entry.digest or NONE,
             "finished_at": entry.finished_at.isoformat() if entry.finished_at else NONE,
             "reason": entry.reason or NONE}
            for entry in reversed(status.history)]


def text_table(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    """Rows as a fixed-width table under upper-case headers (the last column unpadded)."""
    cells = [[column.upper().replace("_", " ") for column in columns]]
    cells += [[str(row.get(column, NONE)) for column in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
                     .rstrip() for line in cells)
