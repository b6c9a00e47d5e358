"""What ``modelrelease status`` and ``history`` print, from the endpoint's status record."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from modelrelease.domain.status_view import (
    HISTORY_COLUMNS,
    STATUS_COLUMNS,
    history_rows,
    status_json,
    status_row,
    text_table,
)
from modelrelease.spec import ModelEndpointStatus

DIGEST_1 = "sha256:" + "1" * 64
DIGEST_2 = "sha256:" + "2" * 64


def _status(**fields: Any) -> ModelEndpointStatus:
    return ModelEndpointStatus.model_validate(fields)


PROMOTED = _status(
    phase="Promoted", releaseId="r2", weight=100, costPerHour=0.01234,
    primary={"version": "2", "digest": DIGEST_2, "image": f"reg/m@{DIGEST_2}"},
    lastVerdict={"outcome": "Passed", "reasons": ["p99 120 ms within 1.2x", "errors 0%"]},
    history=[
        {"releaseId": "r1", "version": "1", "phase": "Promoted", "digest": DIGEST_1,
         "finishedAt": "2026-12-05T10:00:00Z"},
        {"releaseId": "r2", "version": "2", "phase": "Promoted", "digest": DIGEST_2,
         "finishedAt": "2026-12-05T11:00:00Z", "reason": "all steps passed"},
    ])
ANALYSING = _status(
    phase="Analysing", releaseId="r3", weight=50,
    primary={"version": "2", "digest": DIGEST_2},
    canary={"version": "3", "digest": DIGEST_1},
    lastVerdict={"outcome": "Inconclusive"})


@pytest.mark.parametrize(("status", "expected"), [
    pytest.param(None, {"phase": "-", "primary": "-", "canary": "-", "weight": "-",
                        "verdict": "-", "cost_per_hour": "-"}, id="never-released"),
    pytest.param(PROMOTED, {"phase": "Promoted", "primary": "v2 @222222222222",
                            "canary": "-", "weight": "-",
                            "verdict": "Passed: p99 120 ms within 1.2x",
                            "cost_per_hour": "0.0123"}, id="promoted-no-canary-no-weight"),
    pytest.param(ANALYSING, {"phase": "Analysing", "primary": "v2 @222222222222",
                             "canary": "v3 @111111111111", "weight": "50%",
                             "verdict": "Inconclusive", "cost_per_hour": "-"},
                 id="in-flight-canary-at-its-weight"),
    pytest.param(_status(phase="Baking", weight=0, primary={"version": "3", "digest": DIGEST_1},
                         canary={"version": "2", "digest": DIGEST_2}),
                 {"phase": "Baking", "primary": "v3 @111111111111",
                  "canary": "v2 @222222222222 (warm)", "weight": "0%", "verdict": "-",
                  "cost_per_hour": "-"}, id="baking-the-previous-version-warm"),
    pytest.param(_status(primary={"version": "4"}), {"phase": "-", "primary": "v4",
                                                    "canary": "-", "weight": "-",
                                                    "verdict": "-", "cost_per_hour": "-"},
                 id="no-digest-no-phase"),
])
def test_status_row(status: ModelEndpointStatus | None, expected: dict[str, str]) -> None:
    row = status_row("ns", "iris", status)
    assert row == {"endpoint": "ns/iris", **expected}
    assert list(row) == list(STATUS_COLUMNS)


def test_status_json_keeps_digests_and_reasons_whole() -> None:
    assert status_json("ns", "iris", None) == {"namespace": "ns", "name": "iris", "phase": None}
    got = status_json("ns", "iris", ANALYSING)
    assert got["canary"] == {"version": "3", "digest": DIGEST_1, "image": None}
    assert got["primary"]["digest"] == DIGEST_2 and got["weight"] == 50
    assert got["last_verdict"] == {"outcome": "Inconclusive", "reasons": []}
    promoted = status_json("ns", "iris", PROMOTED)
    assert promoted["weight"] is None and promoted["canary"] is None
    assert promoted["last_verdict"]["reasons"] == ["p99 120 ms within 1.2x", "errors 0%"]
    assert promoted["cost_per_hour"] == 0.01234 and promoted["release_id"] == "r2"
    assert status_json("ns", "iris", _status(primary={"version": "1"}))["last_verdict"] is None


def test_history_rows_newest_first() -> None:
    assert history_rows(None) == []
    assert history_rows(_status(phase="Promoted")) == []
    rows = history_rows(PROMOTED)
    assert [row["release_id"] for row in rows] == ["r2", "r1"]
    assert rows[0] == {"release_id": "r2", "version": "2", "phase": "Promoted",
                       "digest": DIGEST_2, "finished_at": datetime(
                           2026, 12, 5, 11, tzinfo=UTC).isoformat(),
                       "reason": "all steps passed"}
    assert rows[1]["reason"] == "-"
    assert list(rows[0]) == list(HISTORY_COLUMNS)
    unfinished = history_rows(_status(history=[{"releaseId": "r9", "version": "9",
                                                "phase": "Analysing"}]))
    assert unfinished[0]["finished_at"] == "-" and unfinished[0]["digest"] == "-"


def test_text_table_aligns_columns_under_headers() -> None:
    table = text_table(("endpoint", "cost_per_hour"), [
        {"endpoint": "ns/a", "cost_per_hour": "0.1"},
        {"endpoint": "namespace/long", "cost_per_hour": "12.5"},
        {"endpoint": "ns/missing"},
    ])
    assert table.splitlines() == [
        "ENDPOINT        COST PER HOUR",
        "ns/a            0.1",
        "namespace/long  12.5",
        "ns/missing      -",
    ]
