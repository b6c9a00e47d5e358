"""domain.agreement: exact agreement, PSI and KS, kind detection, verdicts and their effect."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelrelease.domain import analysis
from modelrelease.domain.agreement import (
    AgreementPolicy,
    AgreementVerdict,
    Answer,
    Kind,
    OnFailure,
    Outcome,
    agreement_rate,
    category_psi,
    compare,
    detect_kind,
    judge,
    ks_statistic,
    predictions,
    psi,
)

CLASSES = [0, 1, 2] * 10  # 30 rows
SCORES = [i / 10 for i in range(40)]  # 40 rows, 0.0 .. 3.9
POLICY = AgreementPolicy()
STRICT = AgreementPolicy(max_psi=0.2, max_ks=0.2)


def _shift(values: list[int], every: int) -> list[int]:
    """``values`` with every ``every``-th class moved to the next one."""
    return [(v + 1) % 3 if i % every == 0 else v for i, v in enumerate(values)]


# -- figures --------------------------------------------------------------------------------


@pytest.mark.parametrize(("canary", "primary", "rate"), [
    pytest.param([1, 2, 3], [1, 2, 3], 1.0, id="same"),
    pytest.param([1, 2, 0], [1, 2, 3], 2 / 3, id="one-of-three"),
    pytest.param([1.0, "a"], [1, "b"], 0.5, id="int-equals-float"),
    pytest.param([[1, 2], {"a": 1}], [[1, 2], {"a": 2}], 0.5, id="rows-and-columns"),
])
def test_agreement_rate(canary: list[Any], primary: list[Any], rate: float) -> None:
    assert agreement_rate(canary, primary) == pytest.approx(rate)


@pytest.mark.parametrize(("canary", "primary"), [
    pytest.param([1], [1, 2], id="lengths"),
    pytest.param([], [], id="empty"),
])
def test_agreement_rate_refuses(canary: list[Any], primary: list[Any]) -> None:
    with pytest.raises(ValueError, match="cannot pair"):
        agreement_rate(canary, primary)


@pytest.mark.parametrize(("expected", "actual", "bins", "low", "high"), [
    pytest.param(SCORES, SCORES, 8, 0.0, 0.0, id="identical"),
    pytest.param(SCORES, [s + 0.001 for s in SCORES], 8, 0.0, 0.1, id="tiny-shift"),
    pytest.param(SCORES, [s + 2.0 for s in SCORES], 8, 1.0, 10.0, id="large-shift"),
    pytest.param([1.0] * 20, [2.0] * 20, 4, 3.0, 10.0, id="constant-apart"),
    pytest.param([1.0], [2.0], 2, 0.5, 2.0, id="one-each"),
])
def test_psi(expected: list[float], actual: list[float], bins: int, low: float,
             high: float) -> None:
    assert low <= psi(expected, actual, bins) <= high


@pytest.mark.parametrize(("expected", "actual", "bins"), [
    pytest.param([], [1.0], 10, id="empty-expected"),
    pytest.param([1.0], [], 10, id="empty-actual"),
    pytest.param([1.0], [1.0], 1, id="one-bin"),
])
def test_psi_refuses(expected: list[float], actual: list[float], bins: int) -> None:
    with pytest.raises(ValueError, match="psi needs"):
        psi(expected, actual, bins)


def test_category_psi() -> None:
    assert category_psi(CLASSES, CLASSES) == 0.0
    # a shifted classifier on balanced classes keeps the class shares: only agreement sees it
    assert category_psi(CLASSES, _shift(CLASSES, 1)) == 0.0
    assert category_psi(CLASSES, [0] * 30) > 1.0
    assert category_psi([[0.1, 0.9]], [[0.1, 0.9]]) == 0.0  # unhashable rows are keyed
    with pytest.raises(ValueError, match="psi needs"):
        category_psi([], [1])


@pytest.mark.parametrize(("x", "y", "d"), [
    pytest.param([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], 0.0, id="identical"),
    pytest.param([1.0, 2.0], [3.0, 4.0], 1.0, id="apart"),
    pytest.param([1.0, 2.0, 3.0, 4.0], [3.0, 4.0, 5.0, 6.0], 0.5, id="half-overlap"),
])
def test_ks_statistic(x: list[float], y: list[float], d: float) -> None:
    assert ks_statistic(x, y) == pytest.approx(d)


def test_ks_refuses_empty() -> None:
    with pytest.raises(ValueError, match="ks needs"):
        ks_statistic([], [1.0])


@pytest.mark.parametrize(("outputs", "kind"), [
    pytest.param([0, 1, 2], Kind.CLASSIFICATION, id="ints"),
    pytest.param(["setosa", "virginica"], Kind.CLASSIFICATION, id="labels"),
    pytest.param([True, False], Kind.CLASSIFICATION, id="bools"),
    pytest.param([0.5, 1.5], Kind.REGRESSION, id="floats"),
    pytest.param([[0.1, 0.9]], Kind.REGRESSION, id="probabilities"),
    pytest.param([{"label": 1, "score": 0.8}], Kind.REGRESSION, id="columns-with-a-score"),
    pytest.param([], Kind.CLASSIFICATION, id="nothing"),
])
def test_detect_kind(outputs: list[Any], kind: Kind) -> None:
    assert detect_kind(outputs) == kind


@pytest.mark.parametrize(("body", "rows"), [
    pytest.param({"predictions": [0, 1]}, [0, 1], id="list"),
    pytest.param([0, 1], [0, 1], id="bare-list"),
    pytest.param({"predictions": {"a": [1, 2], "b": [3, 4]}},
                 [{"a": 1, "b": 3}, {"a": 2, "b": 4}], id="columns"),
    pytest.param({"predictions": {}}, [], id="no-columns"),
])
def test_predictions(body: Any, rows: list[Any]) -> None:
    assert predictions(body) == rows


@pytest.mark.parametrize(("body", "words"), [
    pytest.param({"outputs": [1]}, "no 'predictions'", id="no-key"),
    pytest.param(None, "no 'predictions'", id="not-json"),
    pytest.param({"predictions": {"a": [1], "b": [1, 2]}}, "unequal lengths", id="ragged"),
    pytest.param({"predictions": 3}, "'predictions' is a int", id="scalar"),
    pytest.param({"predictions": {"a": 1}}, "'predictions' is a dict", id="scalar-columns"),
])
def test_predictions_refuses(body: Any, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        predictions(body)


# -- verdicts -------------------------------------------------------------------------------


@pytest.mark.parametrize(("canary", "primary", "policy", "outcome", "words"), [
    pytest.param(CLASSES, CLASSES, POLICY, Outcome.PASS,
                 "100.0% of 30 rows agree exactly, class PSI 0.000 (classification)",
                 id="classifier-agrees"),
    pytest.param(_shift(CLASSES, 30), CLASSES, POLICY, Outcome.PASS, "96.7% of 30 rows",
                 id="retrain-within-min-agreement"),
    pytest.param(_shift(CLASSES, 1), CLASSES, POLICY, Outcome.FAIL,
                 "0.0% of 30 rows agree (minAgreement 95.0%) (classification)",
                 id="classifier-shifted"),
    pytest.param(_shift(CLASSES, 1), CLASSES, AgreementPolicy(min_agreement=0.0),
                 Outcome.PASS, "0.0% of 30 rows agree exactly", id="agreement-not-required"),
    pytest.param([0] * 30, CLASSES, AgreementPolicy(min_agreement=0.0, max_psi=0.2),
                 Outcome.FAIL, "PSI 2.610 > maxPsi 0.2", id="class-shares-moved"),
    pytest.param(CLASSES[:3], CLASSES[:3], POLICY, Outcome.INCONCLUSIVE,
                 "not judged: only 3 rows compared (minSamples 20)", id="input-example-only"),
    pytest.param(CLASSES[:3], CLASSES[:2], POLICY, Outcome.FAIL,
                 "canary answered 3 predictions where the primary answered 2",
                 id="row-count-differs"),
    pytest.param([], [], POLICY, Outcome.INCONCLUSIVE, "no rows to compare", id="no-rows"),
    pytest.param(SCORES, SCORES, STRICT, Outcome.PASS,
                 "PSI 0.000, KS 0.000 (regression)", id="scores-agree"),
    pytest.param([s + 0.001 for s in SCORES], SCORES, STRICT, Outcome.PASS, "KS 0.025",
                 id="scores-barely-move"),
    pytest.param([s + 2.0 for s in SCORES], SCORES, STRICT, Outcome.FAIL,
                 "maxPsi 0.2; KS 0.500 > maxKs 0.2", id="scores-shifted"),
    pytest.param([s + 2.0 for s in SCORES], SCORES, POLICY, Outcome.PASS, "KS 0.500",
                 id="scores-reported-not-judged"),
    pytest.param([s + 2.0 for s in SCORES], SCORES, AgreementPolicy(max_ks=0.6),
                 Outcome.PASS, "KS 0.500", id="ks-within"),
    pytest.param(SCORES, SCORES, AgreementPolicy(kind=Kind.CLASSIFICATION), Outcome.PASS,
                 "(classification)", id="kind-forced-classification"),
    pytest.param(CLASSES, CLASSES, AgreementPolicy(kind=Kind.REGRESSION), Outcome.PASS,
                 "(regression)", id="kind-forced-regression"),
    pytest.param(["a"] * 30, ["b"] * 30, AgreementPolicy(kind=Kind.REGRESSION),
                 Outcome.INCONCLUSIVE, "the primary answers 'b': set kind: classification",
                 id="regression-of-labels"),
    pytest.param([[]] * 30, [[]] * 30, AgreementPolicy(kind=Kind.REGRESSION),
                 Outcome.INCONCLUSIVE, "the primary answers None", id="regression-of-nothing"),
    pytest.param(["x"] * 40, SCORES, POLICY, Outcome.FAIL,
                 "canary answers 'x' where the primary answers numbers", id="canary-labels"),
    pytest.param([[]] * 40, SCORES, POLICY, Outcome.FAIL, "canary answers None",
                 id="canary-nothing"),
    pytest.param([math.nan] * 40, SCORES, POLICY, Outcome.FAIL, "canary answers nan",
                 id="canary-nan"),
    pytest.param([True] * 40, SCORES, POLICY, Outcome.FAIL, "canary answers True",
                 id="canary-bools"),
])
def test_compare(canary: list[Any], primary: list[Any], policy: AgreementPolicy,
                 outcome: Outcome, words: str) -> None:
    verdict = compare(canary, primary, policy)
    assert verdict.outcome is outcome, verdict.reason
    assert words in verdict.reason
    assert verdict.on_failure is policy.on_failure


def test_compare_numbers() -> None:
    verdict = compare([s + 2.0 for s in SCORES], SCORES, STRICT)
    assert verdict.kind is Kind.REGRESSION and verdict.rows == 40
    assert verdict.numbers == {"agreement_rows": 40.0, "agreement_rate": 0.0,
                               "agreement_psi": verdict.psi, "agreement_ks": 0.5}
    assert AgreementVerdict(Outcome.SKIPPED, "first release").numbers == {}


OK = Answer(200, {"predictions": CLASSES})


@pytest.mark.parametrize(("canary", "primary", "outcome", "words"), [
    pytest.param(OK, OK, Outcome.PASS, "100.0% of 30 rows", id="both-answer"),
    pytest.param(Answer(200, {"predictions": _shift(CLASSES, 1)}), OK, Outcome.FAIL,
                 "0.0% of 30 rows agree", id="canary-disagrees"),
    pytest.param(OK, Answer(503, None, "upstream down"), Outcome.INCONCLUSIVE,
                 "primary answered the batch with 503: upstream down", id="primary-503"),
    pytest.param(OK, Answer(None, None, "ReadTimeout"), Outcome.INCONCLUSIVE,
                 "primary answered the batch with no answer: ReadTimeout", id="primary-silent"),
    pytest.param(OK, Answer(200, {"oops": 1}), Outcome.INCONCLUSIVE,
                 "primary's answer: no 'predictions'", id="primary-garbled"),
    pytest.param(Answer(None, None, "ConnectError"), OK, Outcome.INCONCLUSIVE,
                 "canary answered the batch with no answer: ConnectError", id="canary-silent"),
    pytest.param(Answer(400, None, "schema mismatch"), OK, Outcome.FAIL,
                 "canary answered the batch with 400: schema mismatch",
                 id="canary-400"),
    pytest.param(Answer(200, "not json"), OK, Outcome.FAIL, "canary's answer: no 'predictions'",
                 id="canary-garbled"),
])
def test_judge(canary: Answer, primary: Answer, outcome: Outcome, words: str) -> None:
    verdict = judge(canary, primary, AgreementPolicy(on_failure=OnFailure.HOLD))
    assert verdict.outcome is outcome, verdict.reason
    assert words in verdict.reason
    assert verdict.on_failure is OnFailure.HOLD


# -- one check of the step's verdict -----------------------------------------------------------

HELD = AgreementVerdict(Outcome.FAIL, "outputs disagree", on_failure=OnFailure.HOLD)
S = analysis.CheckStatus


@pytest.mark.parametrize(("agreed", "status", "line"), [
    pytest.param(AgreementVerdict(Outcome.PASS, "agree"), S.PASS, "output agreement pass: agree",
                 id="pass"),
    pytest.param(AgreementVerdict(Outcome.FAIL, "outputs disagree"), S.FAIL,
                 "output agreement fail: outputs disagree", id="rollback"),
    pytest.param(HELD, S.HOLD, "output agreement fail: outputs disagree", id="hold"),
    pytest.param(AgreementVerdict(Outcome.INCONCLUSIVE, "3 rows"), S.NO_DATA,
                 "output agreement inconclusive: 3 rows", id="not-judged"),
    pytest.param(AgreementVerdict(Outcome.SKIPPED, "first release"), S.NO_DATA,
                 "output agreement skipped: first release", id="skipped"),
])
def test_the_agreement_is_one_check_of_the_step(agreed: AgreementVerdict,
                                                status: analysis.CheckStatus,
                                                line: str) -> None:
    check = agreed.check
    assert (check.metric, check.status, check.reason) == (analysis.Metric.AGREEMENT, status,
                                                          line)


# -- properties --------------------------------------------------------------------------------

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
values = st.lists(finite, min_size=1, max_size=60)


@given(values, values, st.integers(min_value=2, max_value=12))
def test_psi_is_non_negative_symmetric_and_zero_on_itself(
        x: list[float], y: list[float], bins: int) -> None:
    assert psi(x, y, bins) >= 0.0
    assert psi(x, y, bins) == pytest.approx(psi(y, x, bins), abs=1e-12)
    assert psi(x, list(x), bins) == 0.0


@given(values, values)
def test_ks_is_a_symmetric_distance_in_0_1(x: list[float], y: list[float]) -> None:
    assert 0.0 <= ks_statistic(x, y) <= 1.0
    assert ks_statistic(x, y) == ks_statistic(y, x)
    assert ks_statistic(x, list(reversed(x))) == 0.0


labels = st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=60)


@given(labels, st.data())
def test_agreement_rate_counts_equal_rows(primary: list[int], data: st.DataObject) -> None:
    canary = data.draw(st.lists(st.integers(min_value=0, max_value=4),
                                min_size=len(primary), max_size=len(primary)))
    rate = agreement_rate(canary, primary)
    assert rate == sum(c == p for c, p in zip(canary, primary, strict=True)) / len(primary)
    assert agreement_rate(primary, primary) == 1.0
    assert compare(primary, primary, AgreementPolicy(min_samples=1)).outcome is Outcome.PASS
