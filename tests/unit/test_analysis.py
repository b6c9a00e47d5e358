"""The canary judge: outcomes, reasons and numbers, one look and sequentially."""

from __future__ import annotations

import math
import random
from dataclasses import FrozenInstanceError

import pytest
from pydantic import ValidationError

from modelrelease.domain import analysis
from modelrelease.domain.analysis import (
    AnalysisPolicy,
    ArmSamples,
    CheckStatus,
    Metric,
    Outcome,
    Samples,
    SequentialJudge,
    Spending,
)


def arm(n: int, *, median: float = 40.0, sigma: float = 0.3, errors: int = 0,
        seed: int = 1) -> ArmSamples:
    """``n`` lognormal latencies; the first ``errors`` requests failed (spread evenly)."""
    rng = random.Random(seed)
    latency = tuple(median * rng.lognormvariate(0.0, sigma) for _ in range(n))
    failed = {round(i * n / errors) for i in range(errors)} if errors else set()
    return ArmSamples(latency, tuple(i not in failed for i in range(n)))


def window(n: int, *, scale: float = 1.0, canary_errors: int = 0, primary_errors: int = 0,
           sigma: float = 0.3, canary_n: int | None = None) -> Samples:
    return Samples(
        arm(n if canary_n is None else canary_n, median=40.0 * scale, sigma=sigma,
            errors=canary_errors, seed=11),
        arm(n, sigma=sigma, errors=primary_errors, seed=22),
    )


POLICY = AnalysisPolicy(max_latency_regression=0.1, max_error_rate=0.01)


# ------------------------------------------------------------------------------ policy

def test_policy_reads_the_spec_camel_case_and_is_frozen() -> None:
    policy = AnalysisPolicy.model_validate({
        "maxLatencyRegression": 0.2, "p95Ms": 250, "p99Ms": 400, "maxErrorRate": 0.005,
        "minRequests": 100, "maxRequests": 1000, "looks": 4, "alpha": 0.02,
        "spending": "obrien-fleming",
    })
    assert (policy.p95_ms, policy.p99_ms, policy.spending) == (250, 400,
                                                               Spending.OBRIEN_FLEMING)
    assert policy.checks == (Metric.LATENCY_REGRESSION, Metric.ERROR_RATE,
                             Metric.ERROR_REGRESSION, Metric.LATENCY_P95, Metric.LATENCY_P99,
                             Metric.TAIL_P95, Metric.TAIL_P99)
    with pytest.raises(ValidationError):
        policy.looks = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"minRequests": 500, "maxRequests": 400}, id="min-above-max"),
        pytest.param({"maxErrorRate": 1.0}, id="error-rate-one"),
        pytest.param({"maxLatencyRegression": 0}, id="no-tolerance"),
        pytest.param({"looks": 0}, id="no-looks"),
        pytest.param({"alpha": 0.5}, id="alpha-too-large"),
        pytest.param({"p95Ms": -1}, id="negative-slo"),
        pytest.param({"surprise": 1}, id="unknown-field"),
    ],
)
def test_policy_rejects(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        AnalysisPolicy.model_validate(fields)


@pytest.mark.parametrize(
    ("policy", "requests", "reached", "next_due"),
    [
        pytest.param(POLICY, 0, 0, 80, id="none"),
        pytest.param(POLICY, 79, 0, 80, id="just-before-first"),
        pytest.param(POLICY, 80, 1, 160, id="first"),
        pytest.param(POLICY, 399, 4, 400, id="fourth"),
        pytest.param(POLICY, 5000, 5, 400, id="capped-at-last"),
        pytest.param(AnalysisPolicy(min_requests=150), 120, 0, 150, id="below-minimum"),
        pytest.param(AnalysisPolicy(min_requests=150), 150, 1, 160, id="minimum-makes-look"),
    ],
)
def test_look_schedule(policy: AnalysisPolicy, requests: int, reached: int, next_due: int) -> None:
    assert policy.look_reached(requests) == reached
    assert policy.look_requests(min(reached + 1, policy.looks)) == next_due


def test_alpha_is_shared_by_the_active_checks() -> None:
    plain, with_slos = AnalysisPolicy(), AnalysisPolicy(p95_ms=100, p99_ms=200)
    assert with_slos.level(5) < plain.level(5) < plain.alpha / 3


# ------------------------------------------------------------------------------ samples

@pytest.mark.parametrize(
    ("latency", "ok", "message"),
    [
        pytest.param((1.0, 2.0), (True,), "2 latencies but 1 outcomes", id="length"),
        pytest.param((0.0,), (True,), "positive", id="zero"),
        pytest.param((-3.0,), (False,), "positive", id="negative"),
        pytest.param((math.nan,), (True,), "positive", id="nan"),
        pytest.param((math.inf,), (True,), "positive", id="inf"),
    ],
)
def test_arm_samples_reject(latency: tuple[float, ...], ok: tuple[bool, ...],
                            message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ArmSamples(latency, ok)


def test_arm_samples_add_and_count() -> None:
    first = ArmSamples.of([(12.0, True), (30.5, False)])
    both = first + ArmSamples.of([(8.0, True)])
    assert (both.requests, both.errors) == (3, 1)
    assert both.ok_latencies() == [8.0, 12.0]
    assert (Samples(first, first) + Samples(first, ArmSamples())).primary == first
    with pytest.raises(FrozenInstanceError):
        first.ok = ()  # type: ignore[misc]


# ------------------------------------------------------------------------------ evaluate

CASES = [
    pytest.param(Samples(), POLICY, Outcome.INCONCLUSIVE, None,
                 ["no traffic: canary 0 requests, primary 0 requests"], id="no-traffic"),
    pytest.param(Samples(ArmSamples(), arm(400)), POLICY, Outcome.INCONCLUSIVE, None,
                 ["no traffic: canary 0 requests, primary 400"], id="no-canary-traffic"),
    pytest.param(window(30), POLICY, Outcome.INCONCLUSIVE, None,
                 ["too few requests: canary 30, primary 30, need 50 per arm"], id="too-few"),
    pytest.param(window(60), POLICY, Outcome.INCONCLUSIVE, None,
                 ["waiting for look 1/5 at 80 requests per arm (have 60)"],
                 id="before-first-look"),
    pytest.param(window(400, canary_n=70), POLICY, Outcome.INCONCLUSIVE, None,
                 ["waiting for look 1/5 at 80"], id="uneven-arms-count-the-smaller"),
    pytest.param(window(160, scale=1.6), POLICY, Outcome.FAIL,
                 (Metric.LATENCY_REGRESSION, Metric.TAIL_P95),
                 ["latency regression: canary p95", "vs primary", "> tolerance 10%",
                  "Mann-Whitney p=", "look 2/5, 160 requests per arm"],
                 id="latency-regression"),
    pytest.param(window(400, canary_errors=16, primary_errors=8), POLICY, Outcome.FAIL,
                 Metric.ERROR_RATE,
                 ["error rate: canary 4.00% (16/400) vs primary 2.00% (8/400) > max 1.00%",
                  "binomial p="], id="error-rate-above-max"),
    pytest.param(window(400, canary_errors=12), POLICY, Outcome.FAIL,
                 (Metric.ERROR_RATE, Metric.ERROR_REGRESSION),
                 ["error rate: canary 3.00% (12/400)", "error regression: canary 3.00%"],
                 id="errors-above-max-and-primary"),
    pytest.param(window(400, canary_errors=40, primary_errors=4),
                 AnalysisPolicy(max_error_rate=0.2), Outcome.FAIL, Metric.ERROR_REGRESSION,
                 ["error regression: canary 10.00% (40/400) vs primary 1.00% (4/400)",
                  "Fisher exact p="], id="errors-worse-than-primary"),
    pytest.param(window(400, scale=1.3), AnalysisPolicy(max_latency_regression=1.0,
                                                         p95_ms=60.0),
                 Outcome.FAIL, Metric.LATENCY_P95,
                 ["latency p95 SLO breached: canary p95", "SLO 60 ms:", "5% allowed"],
                 id="p95-slo"),
    pytest.param(window(400), AnalysisPolicy(p99_ms=55.0), Outcome.FAIL, Metric.LATENCY_P99,
                 ["latency p99 SLO breached", "1% allowed"], id="p99-slo"),
    pytest.param(window(400), POLICY, Outcome.PASS, None,
                 ["latency within tolerance", "error rate: canary 0.00% (0/400)",
                  "look 5/5, 400 requests per arm"], id="good-canary-final-look"),
    pytest.param(window(160), AnalysisPolicy(max_latency_regression=0.5, max_error_rate=0.2,
                                             p95_ms=500, max_requests=800),
                 Outcome.INCONCLUSIVE, None,
                 ["p99 tail: first tested at look 3/5 (480 requests per arm)",
                  "look 1/5, 160 requests per arm"],
                 id="no-clear-pass-before-the-p99-tail-is-tested"),
    pytest.param(window(480), AnalysisPolicy(max_latency_regression=0.5, max_error_rate=0.2,
                                             p95_ms=500, max_requests=800),
                 Outcome.PASS, None,
                 ["latency within tolerance", "error rate within max 20.00%",
                  "latency p95 within SLO", "p95 tail within tolerance",
                  "p99 tail within tolerance", "look 3/5, 480 requests per arm"],
                 id="clear-pass-once-every-tail-is-tested"),
    pytest.param(window(160), AnalysisPolicy(max_latency_regression=0.5, max_error_rate=0.2,
                                             p95_ms=500, p99_ms=900, max_requests=800),
                 Outcome.INCONCLUSIVE, None,
                 ["latency p99 SLO: canary p99", "0 of 160 canary requests slower"],
                 id="p99-slo-needs-more-requests-to-clear"),
    pytest.param(window(80), POLICY, Outcome.INCONCLUSIVE, None,
                 ["not yet shown above or below", "next look at 160"], id="hold-first-look"),
    pytest.param(window(400, scale=1.05, sigma=0.1), POLICY, Outcome.PASS, None,
                 ["latency within tolerance"], id="slower-but-within-tolerance"),
    pytest.param(window(400, canary_errors=400, primary_errors=400),
                 AnalysisPolicy(max_error_rate=0.99, p95_ms=100), Outcome.INCONCLUSIVE, None,
                 ["latency: too few successful requests to compare (canary 0, primary 0)",
                  "latency p95 SLO 100 ms: no successful canary request"],
                 id="no-successful-requests-is-never-a-pass"),
    pytest.param(Samples(arm(400, seed=3), arm(400, errors=400, seed=4)),
                 AnalysisPolicy(max_error_rate=0.99, p95_ms=500), Outcome.INCONCLUSIVE, None,
                 ["latency: too few successful requests to compare (canary 400, primary 0)",
                  "vs primary no successful request"], id="primary-all-failed"),
    pytest.param(Samples(arm(400, errors=398, seed=3), arm(400, seed=4)),
                 AnalysisPolicy(max_error_rate=0.99, p95_ms=500), Outcome.FAIL,
                 Metric.ERROR_REGRESSION, ["error regression"], id="slo-with-little-data"),
]


@pytest.mark.parametrize(("samples", "policy", "outcome", "failed", "phrases"), CASES)
def test_evaluate(samples: Samples, policy: AnalysisPolicy, outcome: Outcome,
                  failed: Metric | tuple[Metric, ...] | None, phrases: list[str]) -> None:
    verdict = analysis.evaluate(samples, policy)
    assert verdict.outcome is outcome, verdict.reasons
    assert verdict.passed is (outcome is Outcome.PASS)
    text = "\n".join(verdict.reasons + tuple(c.reason for c in verdict.checks))
    for phrase in phrases:
        assert phrase in text
    if failed is not None:
        expected = list(failed) if isinstance(failed, tuple) else [failed]
        assert [c.metric for c in verdict.checks if c.status is CheckStatus.FAIL] == expected


def test_fail_names_both_arms_numbers_and_the_threshold() -> None:
    samples = window(240, scale=1.4)
    verdict = analysis.evaluate(samples, POLICY)
    check = next(c for c in verdict.checks if c.metric is Metric.LATENCY_REGRESSION)
    assert check.status is CheckStatus.FAIL
    assert check.canary == verdict.canary.p95_ms
    assert check.primary == verdict.primary.p95_ms
    assert check.threshold == 0.1
    assert check.p_value is not None and check.level is not None
    assert check.p_value <= check.level
    assert f"canary p95 {verdict.canary.p95_ms:.1f} ms" in verdict.reasons[0]
    assert f"primary {verdict.primary.p95_ms:.1f} ms" in verdict.reasons[0]
    assert (verdict.look, verdict.looks, verdict.requests_per_arm) == (3, 5, 240)


def test_verdict_carries_every_arm_number() -> None:
    verdict = analysis.evaluate(window(400, canary_errors=2, primary_errors=1), POLICY)
    assert (verdict.canary.requests, verdict.canary.errors) == (400, 2)
    assert verdict.canary.error_rate == pytest.approx(0.005)
    assert verdict.primary.error_rate == pytest.approx(0.0025)
    for stats in (verdict.canary, verdict.primary):
        assert stats.p50_ms is not None and stats.p95_ms is not None
        assert stats.p99_ms is not None
        assert stats.p50_ms < stats.p95_ms < stats.p99_ms
    assert {c.metric for c in verdict.checks} == {Metric.LATENCY_REGRESSION, Metric.ERROR_RATE,
                                                  Metric.ERROR_REGRESSION, Metric.TAIL_P95}


def test_no_traffic_has_empty_numbers() -> None:
    verdict = analysis.evaluate(Samples(), POLICY)
    assert verdict.canary == analysis.ArmStats(0, 0, None, None, None, None)
    assert not verdict.decided


# ------------------------------------------------------------------------------ sequential

def _batches(samples: Samples, cuts: list[int]) -> list[Samples]:
    out, start = [], 0
    for cut in cuts:
        out.append(Samples(
            ArmSamples(samples.canary.latency_ms[start:cut], samples.canary.ok[start:cut]),
            ArmSamples(samples.primary.latency_ms[start:cut], samples.primary.ok[start:cut]),
        ))
        start = cut
    return out


def test_sequential_judge_tests_each_look_once_and_stops_on_a_clear_regression() -> None:
    full = window(400, scale=1.25)
    state = SequentialJudge()
    seen = []
    for batch in _batches(full, [40, 80, 100, 160, 240, 320, 400]):
        state, verdict = analysis.look(state, batch, POLICY)
        seen.append((verdict.outcome, verdict.look))
    assert seen[0] == (Outcome.INCONCLUSIVE, 0)
    assert seen[2] == (Outcome.INCONCLUSIVE, 1)  # 100 requests: look 1 already done
    assert (Outcome.FAIL, 2) in seen
    stop = seen.index((Outcome.FAIL, 2))
    assert all(s == (Outcome.FAIL, 2) for s in seen[stop:])  # decided: later looks return it
    assert state.verdict is not None and state.verdict.outcome is Outcome.FAIL
    assert state.samples.canary.requests == 160  # samples after the decision are ignored


def test_sequential_judge_waits_between_looks() -> None:
    state, first = analysis.look(SequentialJudge(), window(80), POLICY)
    assert first.look == 1 and state.looks_done == 1
    state, between = analysis.look(state, window(20), POLICY)
    assert between.outcome is Outcome.INCONCLUSIVE
    assert between.reasons == ("waiting for look 2/5 at 160 requests per arm (have 100)",)


def test_sequential_judge_gives_up_after_the_last_look_without_passing() -> None:
    broken = Samples(arm(400, errors=400, seed=5), arm(400, errors=400, seed=6))
    policy = AnalysisPolicy(max_error_rate=0.99)
    state, last = analysis.look(SequentialJudge(), broken, policy)
    assert (last.outcome, last.look) == (Outcome.INCONCLUSIVE, 5)
    state, after = analysis.look(state, broken, policy)
    assert after.outcome is Outcome.INCONCLUSIVE
    assert after.reasons == ("all 5 looks done without a decision (800 requests per arm)",)


@pytest.mark.parametrize(
    ("canary_errors", "outcome"),
    [
        # 7/400 = 1.75% against a 1% limit: not significant, but over the limit -> extend
        pytest.param(7, Outcome.INCONCLUSIVE, id="over-limit-undecided"),
        # 3/400 = 0.75%: under the limit, undecided -> the last look passes it
        pytest.param(3, Outcome.PASS, id="under-limit-undecided"),
    ],
)
def test_last_look_does_not_pass_a_canary_measured_over_an_absolute_limit(
        canary_errors: int, outcome: Outcome) -> None:
    policy = AnalysisPolicy(max_latency_regression=0.5, max_error_rate=0.01, min_requests=50,
                            max_requests=400, looks=1)
    verdict = analysis.evaluate(window(400, canary_errors=canary_errors), policy)
    assert verdict.outcome is outcome
    if outcome is Outcome.INCONCLUSIVE:
        assert verdict.reasons and "error rate" in verdict.reasons[0]
        assert "1.75%" in verdict.reasons[0]
