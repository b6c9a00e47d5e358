"""domain.report: the markdown report carries the numbers of both arms."""

from __future__ import annotations

from modelrelease.domain.agreement import AgreementVerdict, Kind, Outcome
from modelrelease.domain.analysis import ArmStats
from modelrelease.domain.report import StepRecord, render_report


def test_report_has_timeline_steps_and_cost() -> None:
    canary = ArmStats(200, 2, 0.01, 4.0, 9.5, 12.25)
    primary = ArmStats(200, 0, 0.0, 3.9, 9.0, None)
    text = render_report(
        endpoint="ml/iris", version="3", image="r/ml/iris@sha256:abc", outcome="Promoted",
        reason="all steps passed", timeline=[(0.0, "build"), (12.5, "promoted")],
        steps=[StepRecord(1, 50, "Passed", canary, primary, ("p95 within 20%",))],
        canary_cost_per_hour=0.0225, reached="the Service's ClusterIP and pod IPs (why)")
    assert "# Release of `ml/iris`: Promoted" in text
    assert "- checks reached the pods through the Service's ClusterIP and pod IPs (why)" in text
    assert "| 12.5 | promoted |" in text
    assert "| 1 | 50% | canary | 200 | 1.00% | 4.0 | 9.5 | 12.2 | Passed |" in text
    assert "| 1 | 50% | primary | 200 | 0.00% | 3.9 | 9.0 | – |  |" in text
    assert "- step 1: p95 within 20%" in text
    assert "0.0225 per hour (16.43 per month" in text


def test_report_without_steps_or_cost() -> None:
    empty = ArmStats(0, 0, None, None, None, None)
    text = render_report(endpoint="ml/iris", version="4", image="i", outcome="RolledBack",
                         reason="canary failed", timeline=[], steps=[], canary_cost_per_hour=None)
    assert "## Steps" not in text and "cost" not in text and "reached" not in text
    assert empty.error_rate is None


def test_report_carries_the_output_agreement_numbers() -> None:
    stats = ArmStats(100, 0, 0.0, 4.0, 9.0, 12.0)
    failed = AgreementVerdict(Outcome.FAIL, "0.0% of 153 rows agree | shifted",
                              Kind.CLASSIFICATION, 153, 0.0, 0.0)
    skipped = AgreementVerdict(Outcome.SKIPPED, "first release: no primary to compare with")
    text = render_report(
        endpoint="ml/iris", version="2", image="i", outcome="RolledBack", reason="disagree",
        timeline=[], steps=[StepRecord(1, 50, "fail", stats, stats, ("r",), failed),
                            StepRecord(2, 100, "pass", stats, stats, ("r",), skipped),
                            StepRecord(3, 100, "pass", stats, stats, ("r",))],
        canary_cost_per_hour=None)
    assert "## Output agreement" in text
    assert ("| 1 | fail | classification | 153 | 0.0% | 0.000 | – | "
            r"0.0% of 153 rows agree \| shifted |") in text
    assert "| 2 | skipped | – | 0 | – | – | – | first release: no primary to compare with |" in text
    assert "| 3 |" not in text.split("## Output agreement")[1].split("## Verdicts")[0]


def test_report_says_where_each_steps_numbers_came_from() -> None:
    from modelrelease.domain.live import LiveEvidence, LiveOutcome

    generated = ArmStats(600, 0, 0.0, 4.0, 9.5, 12.0)
    live_canary, live_primary = ArmStats(70, 0, 0.0, 3.0, 4.5, 4.9), ArmStats(80, 1, 0.0125,
                                                                             2.8, 4.4, 4.9)
    used = LiveEvidence(LiveOutcome.PASS, "live traffic (pod metrics, ...): no breach",
                        live_canary, live_primary)
    thin = LiveEvidence(LiveOutcome.THIN, "live traffic too thin (3 < 50 requests per arm: "
                        "canary 3, primary 4), generated load only")
    text = render_report(
        endpoint="ml/iris", version="3", image="i", outcome="Promoted", reason="passed",
        timeline=[], steps=[StepRecord(1, 50, "pass", generated, generated, ("ok",), live=used),
                            StepRecord(2, 100, "pass", generated, generated, ("ok",), live=thin)],
        canary_cost_per_hour=None)
    assert "| 1 | 50% | canary | 600 | 0.00% | 4.0 | 9.5 | 12.0 | pass | generated load |" in text
    assert "| 1 | 50% | canary | 70 | 0.00% | 3.0 | 4.5 | 4.9 |  | live traffic (pod metrics) |" \
        in text
    assert "| 1 | 50% | primary | 80 | 1.25% | 2.8 | 4.4 | 4.9 |  | live traffic (pod metrics) |" \
        in text
    assert ("- step 1: router: replica ratio; evidence: generated load + live traffic (pod "
            "metrics, 150 requests)") in text
    assert "- step 2: router: replica ratio; evidence: generated load" in text
    assert text.count("live traffic (pod metrics) |") == 2  # thin: no live rows for step 2


def test_report_shows_the_slice_table_with_what_the_judge_made_of_each() -> None:
    from modelrelease.domain.analysis import SliceRow
    from modelrelease.domain.live import LiveEvidence, LiveOutcome

    fast = ArmStats(90, 0, 0.0, 4.0, 6.0, 7.0)
    slow = ArmStats(10, 1, 0.1, 104.0, 106.0, 107.0)
    rows = (SliceRow("5.1", fast, fast, "within limits"), SliceRow("7|7", slow, fast, "failed"))
    live = LiveEvidence(LiveOutcome.FAIL, "live says no", fast, fast, via="pod metrics",
                        slices=(SliceRow("6.3", slow, fast, "failed"),))
    text = render_report(
        endpoint="ml/iris", version="3", image="i", outcome="RolledBack", reason="r",
        timeline=[], canary_cost_per_hour=None,
        steps=[StepRecord(2, 100, "pass", fast, fast, ("r",), live=live,
                          slice_key="column sepal_length"),
               StepRecord(1, 50, "fail", fast, fast, ("r",), slices=rows,
                          slice_key="column sepal_length"),
               StepRecord(3, 100, "pass", fast, fast, ("r",))])
    table = text.split("## Slices", 1)[1].split("\n## ", 1)[0]
    assert "(column sepal_length) of the generated load and of live traffic" in table
    lines = [line for line in table.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert lines == [
        "| 1 | 5.1 | generated load | 90 | 90 | 0.00% | 0.00% | 6.0 | 6.0 | within limits |",
        "| 1 | 7\\|7 | generated load | 10 | 90 | 10.00% | 0.00% | 106.0 | 6.0 | failed |",
        "| 2 | 6.3 | live traffic (pod metrics) | 10 | 90 | 10.00% | 0.00% | 106.0 | 6.0 | "
        "failed |"]
    unsliced = render_report(endpoint="e", version="1", image="i", outcome="o", reason="r",
                             timeline=[], canary_cost_per_hour=None,
                             steps=[StepRecord(1, 50, "pass", fast, fast, ("r",))])
    assert "## Slices" not in unsliced
