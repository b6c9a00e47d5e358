"""A step's verdict: the generated load's judge, live traffic and output agreement together.

The table pins, for every combination, the step's outcome and the order of its reasons as
the release has always formed them: the e2e tier asserts on these lines, and the status
record, the report and the MLflow tags carry them.
"""

from __future__ import annotations

import pytest

from modelrelease.domain import agreement, live
from modelrelease.domain.analysis import (
    ArmStats,
    Check,
    CheckStatus,
    Metric,
    Outcome,
    Verdict,
)
from modelrelease.domain.rollout import StepJudged
from modelrelease.domain.verdict import step_verdict

CANARY = ArmStats(400, 1, 0.0025, 4.0, 9.5, 12.0)
PRIMARY = ArmStats(400, 0, 0.0, 3.9, 9.0, 11.5)
WHERE = " [look 5/5, 400 requests per arm]"


def _check(metric: Metric, status: CheckStatus, reason: str) -> Check:
    return Check(metric, status, None, None, None, None, 0.002, reason)


LATENCY_OK = _check(Metric.LATENCY_REGRESSION, CheckStatus.PASS, "latency within tolerance")
ERRORS_OK = _check(Metric.ERROR_RATE, CheckStatus.PASS, "error rate within max 1.00%")
LATENCY_BAD = _check(Metric.LATENCY_REGRESSION, CheckStatus.FAIL, "latency regression")
ERRORS_HELD = _check(Metric.ERROR_RATE, CheckStatus.HOLD, "error rate: not yet shown")
GENERATED = {
    "pass": Verdict(Outcome.PASS, (f"latency within tolerance{WHERE}",
                                   f"error rate within max 1.00%{WHERE}"),
                    CANARY, PRIMARY, (LATENCY_OK, ERRORS_OK), 5, 5, 400),
    "fail": Verdict(Outcome.FAIL, (f"latency regression{WHERE}",), CANARY, PRIMARY,
                    (LATENCY_BAD, ERRORS_OK), 5, 5, 400),
    "inconclusive": Verdict(Outcome.INCONCLUSIVE, (
        "too few requests: canary 12, primary 12, need 50 per arm",), CANARY, PRIMARY,
        looks=5, requests_per_arm=12),
    "hold": Verdict(Outcome.INCONCLUSIVE, (f"error rate: not yet shown{WHERE}",), CANARY,
                    PRIMARY, (LATENCY_OK, ERRORS_HELD), 5, 5, 400),
}
"""The generated load's verdict: passed, failed, waiting for data, and a check still held."""
LIVE = {
    "pass": live.LiveEvidence(live.LiveOutcome.PASS, "live traffic (pod metrics, canary 80 / "
                              "primary 200 requests): no breach"),
    "fail": live.LiveEvidence(live.LiveOutcome.FAIL, "live traffic (pod metrics, canary 80 / "
                              "primary 200 requests): live error rate 5.00% above 1.00%"),
    "thin": live.LiveEvidence(live.LiveOutcome.THIN, "live traffic too thin (3 < 50 requests "
                              "per arm: canary 3, primary 3), generated load only"),
    "unavailable": live.LiveEvidence(live.LiveOutcome.UNAVAILABLE, "live traffic unknown: "
                                     "canary pod metrics unreadable (no pods), generated load "
                                     "only"),
}
AGREED = {
    "pass": agreement.AgreementVerdict(agreement.Outcome.PASS, "outputs agree"),
    "fail-rollback": agreement.AgreementVerdict(agreement.Outcome.FAIL, "outputs disagree"),
    "fail-pause": agreement.AgreementVerdict(agreement.Outcome.FAIL, "outputs disagree",
                                             on_failure=agreement.OnFailure.HOLD),
    "inconclusive": agreement.AgreementVerdict(agreement.Outcome.INCONCLUSIVE, "only 3 rows"),
    "none": agreement.AgreementVerdict(agreement.Outcome.SKIPPED, "first release: no primary "
                                       "to compare with"),
}
LINE = {
    "pass": "output agreement pass: outputs agree",
    "fail-rollback": "output agreement fail: outputs disagree",
    "fail-pause": "output agreement fail: outputs disagree",
    "inconclusive": "output agreement inconclusive: only 3 rows",
    "none": "output agreement skipped: first release: no primary to compare with",
}
"""The agreement's line in the step's reasons, as written today."""

# generated, live, agreement -> the step's outcome and its reasons: G the generated load's
# (in their order), L live traffic's line, A the agreement's
TABLE = [
    ("pass", "pass", "pass", "pass", "G L A"),
    ("pass", "pass", "fail-rollback", "fail", "A G L"),
    ("pass", "pass", "fail-pause", "inconclusive", "A G L"),
    ("pass", "pass", "inconclusive", "pass", "G L A"),
    ("pass", "pass", "none", "pass", "G L A"),
    ("pass", "fail", "pass", "fail", "L G A"),
    ("pass", "fail", "fail-rollback", "fail", "L G A"),
    ("pass", "fail", "fail-pause", "fail", "L G A"),
    ("pass", "fail", "inconclusive", "fail", "L G A"),
    ("pass", "fail", "none", "fail", "L G A"),
    ("pass", "thin", "pass", "pass", "G L A"),
    ("pass", "thin", "fail-rollback", "fail", "A G L"),
    ("pass", "thin", "fail-pause", "inconclusive", "A G L"),
    ("pass", "thin", "inconclusive", "pass", "G L A"),
    ("pass", "thin", "none", "pass", "G L A"),
    ("pass", "unavailable", "pass", "pass", "G L A"),
    ("pass", "unavailable", "fail-rollback", "fail", "A G L"),
    ("pass", "unavailable", "fail-pause", "inconclusive", "A G L"),
    ("pass", "unavailable", "inconclusive", "pass", "G L A"),
    ("pass", "unavailable", "none", "pass", "G L A"),
    ("fail", "pass", "pass", "fail", "G L A"),
    ("fail", "pass", "fail-rollback", "fail", "G L A"),
    ("fail", "pass", "fail-pause", "fail", "G L A"),
    ("fail", "pass", "inconclusive", "fail", "G L A"),
    ("fail", "pass", "none", "fail", "G L A"),
    ("fail", "fail", "pass", "fail", "G L A"),
    ("fail", "fail", "fail-rollback", "fail", "G L A"),
    ("fail", "fail", "fail-pause", "fail", "G L A"),
    ("fail", "fail", "inconclusive", "fail", "G L A"),
    ("fail", "fail", "none", "fail", "G L A"),
    ("fail", "thin", "pass", "fail", "G L A"),
    ("fail", "thin", "fail-rollback", "fail", "G L A"),
    ("fail", "thin", "fail-pause", "fail", "G L A"),
    ("fail", "thin", "inconclusive", "fail", "G L A"),
    ("fail", "thin", "none", "fail", "G L A"),
    ("fail", "unavailable", "pass", "fail", "G L A"),
    ("fail", "unavailable", "fail-rollback", "fail", "G L A"),
    ("fail", "unavailable", "fail-pause", "fail", "G L A"),
    ("fail", "unavailable", "inconclusive", "fail", "G L A"),
    ("fail", "unavailable", "none", "fail", "G L A"),
    ("inconclusive", "pass", "pass", "inconclusive", "G L A"),
    ("inconclusive", "pass", "fail-rollback", "fail", "A G L"),
    ("inconclusive", "pass", "fail-pause", "inconclusive", "A G L"),
    ("inconclusive", "pass", "inconclusive", "inconclusive", "G L A"),
    ("inconclusive", "pass", "none", "inconclusive", "G L A"),
    ("inconclusive", "fail", "pass", "fail", "L G A"),
    ("inconclusive", "fail", "fail-rollback", "fail", "L G A"),
    ("inconclusive", "fail", "fail-pause", "fail", "L G A"),
    ("inconclusive", "fail", "inconclusive", "fail", "L G A"),
    ("inconclusive", "fail", "none", "fail", "L G A"),
    ("inconclusive", "thin", "pass", "inconclusive", "G L A"),
    ("inconclusive", "thin", "fail-rollback", "fail", "A G L"),
    ("inconclusive", "thin", "fail-pause", "inconclusive", "A G L"),
    ("inconclusive", "thin", "inconclusive", "inconclusive", "G L A"),
    ("inconclusive", "thin", "none", "inconclusive", "G L A"),
    ("inconclusive", "unavailable", "pass", "inconclusive", "G L A"),
    ("inconclusive", "unavailable", "fail-rollback", "fail", "A G L"),
    ("inconclusive", "unavailable", "fail-pause", "inconclusive", "A G L"),
    ("inconclusive", "unavailable", "inconclusive", "inconclusive", "G L A"),
    ("inconclusive", "unavailable", "none", "inconclusive", "G L A"),
    ("hold", "pass", "pass", "inconclusive", "G L A"),
    ("hold", "pass", "fail-rollback", "fail", "A G L"),
    ("hold", "pass", "fail-pause", "inconclusive", "A G L"),
    ("hold", "pass", "inconclusive", "inconclusive", "G L A"),
    ("hold", "pass", "none", "inconclusive", "G L A"),
    ("hold", "fail", "pass", "fail", "L G A"),
    ("hold", "fail", "fail-rollback", "fail", "L G A"),
    ("hold", "fail", "fail-pause", "fail", "L G A"),
    ("hold", "fail", "inconclusive", "fail", "L G A"),
    ("hold", "fail", "none", "fail", "L G A"),
    ("hold", "thin", "pass", "inconclusive", "G L A"),
    ("hold", "thin", "fail-rollback", "fail", "A G L"),
    ("hold", "thin", "fail-pause", "inconclusive", "A G L"),
    ("hold", "thin", "inconclusive", "inconclusive", "G L A"),
    ("hold", "thin", "none", "inconclusive", "G L A"),
    ("hold", "unavailable", "pass", "inconclusive", "G L A"),
    ("hold", "unavailable", "fail-rollback", "fail", "A G L"),
    ("hold", "unavailable", "fail-pause", "inconclusive", "A G L"),
    ("hold", "unavailable", "inconclusive", "inconclusive", "G L A"),
    ("hold", "unavailable", "none", "inconclusive", "G L A"),
]


def _step(generated: Verdict, found: live.LiveEvidence,
          agreed: agreement.AgreementVerdict) -> Verdict:
    """The step's verdict, as the release forms it."""
    return step_verdict(generated, (found.check, agreed.check))


@pytest.mark.parametrize(("generated", "found", "agreed", "outcome", "order"), [
    pytest.param(*row, id="-".join(row[:3])) for row in TABLE])
def test_the_steps_outcome_and_reasons(generated: str, found: str, agreed: str, outcome: str,
                                       order: str) -> None:
    judged = GENERATED[generated]
    lines = {"G": judged.reasons, "L": (LIVE[found].reason,), "A": (LINE[agreed],)}
    verdict = _step(judged, LIVE[found], AGREED[agreed])
    reasons = tuple(line for key in order.split() for line in lines[key])
    assert verdict.outcome is Outcome(outcome)
    assert verdict.reasons == reasons
    assert StepJudged.of(verdict) == StepJudged(Outcome(outcome), "; ".join(reasons))
    assert (verdict.canary, verdict.primary) == (CANARY, PRIMARY)
    assert (verdict.look, verdict.looks, verdict.requests_per_arm) == (
        judged.look, judged.looks, judged.requests_per_arm)


def test_the_table_has_every_combination() -> None:
    assert {row[:3] for row in TABLE} == {(g, f, a) for g in GENERATED for f in LIVE
                                          for a in AGREED}


def test_the_steps_verdict_carries_every_check_the_generated_loads_first() -> None:
    verdict = _step(GENERATED["pass"], LIVE["fail"], AGREED["fail-pause"])
    assert [(c.metric, c.status) for c in verdict.checks] == [
        (Metric.LATENCY_REGRESSION, CheckStatus.PASS), (Metric.ERROR_RATE, CheckStatus.PASS),
        (Metric.LIVE, CheckStatus.FAIL), (Metric.AGREEMENT, CheckStatus.HOLD)]


def test_without_other_evidence_the_step_is_the_generated_loads_verdict() -> None:
    assert step_verdict(GENERATED["hold"], ()) == GENERATED["hold"]
