"""The judge's tail checks: the upper-tail rank test, the plan's tails and their verdicts."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from modelrelease.domain import analysis, stats
from modelrelease.domain.analysis import (
    AnalysisPolicy,
    ArmSamples,
    CheckStatus,
    Metric,
    Outcome,
    Samples,
)
from modelrelease.domain.stats import Spending


def _latencies(n: int, seed: int, *, slow_every: int = 0, slow_factor: float = 1.0,
               tail_factor: float = 1.0, sigma: float = 0.3) -> tuple[float, ...]:
    """``n`` lognormal latencies (median 40 ms); every ``slow_every``-th one
    ``slow_factor`` times slower; those above 60 ms ``tail_factor`` times slower."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        value = 40.0 * rng.lognormvariate(0.0, sigma)
        if value > 60.0:
            value *= tail_factor
        if slow_every and i % slow_every == 0:
            value *= slow_factor
        out.append(value)
    return tuple(out)


def _window(n: int, **canary: float) -> Samples:
    c = _latencies(n, 11, **canary)  # type: ignore[arg-type]
    p = _latencies(n, 22)
    return Samples(ArmSamples(c, (True,) * n), ArmSamples(p, (True,) * n))


# ------------------------------------------------------------------------------ tail_test

@pytest.mark.parametrize(
    ("x", "y", "q"),
    [
        pytest.param([1.0, 5.0, 7.0, 9.0, 12.0], [2.0, 3.0, 4.0, 6.0, 8.0], 80, id="untied"),
        pytest.param([1.0, 5.0, 5.0, 9.0, 9.0], [2.0, 5.0, 9.0, 9.0, 3.0, 9.0], 75, id="ties"),
        pytest.param([3.0, 1.0, 4.0], [1.0, 5.0, 9.0, 2.0, 6.0], 50, id="uneven-arms"),
    ],
)
def test_tail_test_is_standardised_over_every_split(x: list[float], y: list[float],
                                                    q: float) -> None:
    """Over all equally likely splits of the pooled values, z has mean 0 and variance 1."""
    pooled = x + y
    zs = []
    for chosen in itertools.combinations(range(len(pooled)), len(x)):
        xs = [pooled[i] for i in chosen]
        ys = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        zs.append(stats.tail_test(xs, ys, q).z)
    assert float(np.mean(zs)) == pytest.approx(0.0, abs=1e-9)
    assert float(np.var(zs)) == pytest.approx(1.0, rel=1e-9)
    observed = stats.tail_test(x, y, q)
    assert observed.p_value == pytest.approx(stats.normal_sf(observed.z))
    assert observed.least_p_value <= observed.p_value
    assert observed.least_p_value == pytest.approx(min(
        stats.tail_test([pooled[i] for i in c],
                        [pooled[i] for i in range(len(pooled)) if i not in c], q).p_value
        for c in itertools.combinations(range(len(pooled)), len(x))))


def test_tail_test_counts_above_the_pooled_percentile() -> None:
    x, y = list(_latencies(300, 1, slow_every=10, slow_factor=3.0)), list(_latencies(300, 2))
    result = stats.tail_test(x, y, 95)
    assert result.threshold == pytest.approx(float(np.percentile(x + y, 95)))
    assert result.start == pytest.approx(float(np.percentile(x + y, 90)))
    assert result.above_x == sum(v > result.threshold for v in x)
    assert result.above_y == sum(v > result.threshold for v in y)
    assert result.above_x > 2 * result.above_y
    assert result.p_value < 1e-4
    assert stats.tail_test(y, x, 95).p_value > 0.5


def test_tail_test_of_identical_values_is_uninformative() -> None:
    result = stats.tail_test([5.0] * 10, [5.0] * 10, 95)
    assert (result.z, result.p_value, result.least_p_value) == (0.0, 1.0, 1.0)


@pytest.mark.parametrize(
    ("x", "y", "q", "message"),
    [
        pytest.param([], [1.0], 95, "at least one value", id="empty-x"),
        pytest.param([1.0], [], 95, "at least one value", id="empty-y"),
        pytest.param([1.0], [2.0], 40, "outside", id="below-median"),
        pytest.param([1.0], [2.0], 100, "outside", id="at-maximum"),
    ],
)
def test_tail_test_rejects(x: list[float], y: list[float], q: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        stats.tail_test(x, y, q)


@pytest.mark.parametrize("q", [pytest.param(q, id=f"p{q}") for q in (95, 99)])
def test_least_tail_p_falls_as_the_tail_fills(q: int) -> None:
    values = [stats.least_tail_p(n, n, q) for n in (50, 100, 200, 400, 800)]
    assert values == sorted(values, reverse=True)
    assert values[-1] < 1e-6 < values[0]


def test_nominal_levels_skip_the_looks_before_the_first() -> None:
    levels = stats.nominal_levels(0.002, 5, Spending.POCOCK, first=3)
    assert levels[:2] == (0.0, 0.0)
    assert levels[2] == pytest.approx(stats.spent_alpha(Spending.POCOCK, 0.002, 0.6))
    assert all(0.0 < level < 0.002 for level in levels[2:])


@pytest.mark.parametrize("first", [pytest.param(0, id="zero"), pytest.param(6, id="past-last")])
def test_nominal_levels_reject_a_first_look_outside_the_plan(first: int) -> None:
    with pytest.raises(ValueError, match="first look"):
        stats.nominal_levels(0.002, 5, Spending.POCOCK, first=first)


# ------------------------------------------------------------------------------ the plan

@pytest.mark.parametrize(
    ("policy", "first_looks"),
    [
        pytest.param(AnalysisPolicy(min_requests=50, max_requests=50, looks=1), {},
                     id="too-short-for-any-tail"),
        pytest.param(AnalysisPolicy(min_requests=50, max_requests=100, looks=1),
                     {Metric.TAIL_P95: 1}, id="p95-only"),
        pytest.param(AnalysisPolicy(), {Metric.TAIL_P95: 2}, id="defaults"),
        pytest.param(AnalysisPolicy(max_requests=1500, looks=15),
                     {Metric.TAIL_P95: 2, Metric.TAIL_P99: 5}, id="long-step"),
    ],
)
def test_the_plan_decides_which_tails_are_checked_and_from_which_look(
        policy: AnalysisPolicy, first_looks: dict[Metric, int]) -> None:
    assert policy.checks == (Metric.LATENCY_REGRESSION, Metric.ERROR_RATE,
                             Metric.ERROR_REGRESSION, *first_looks)
    for metric, first in first_looks.items():
        assert policy.first_look(metric) == first
        assert [policy.level(k, metric) for k in range(1, first)] == [0.0] * (first - 1)
        assert policy.level(first, metric) > 0.0
    assert policy.first_look(Metric.ERROR_RATE) == 1


@pytest.mark.parametrize(
    ("policy", "shares"),
    [
        pytest.param(AnalysisPolicy(min_requests=50, max_requests=50, looks=1),
                     {Metric.LATENCY_REGRESSION: 1 / 3, Metric.ERROR_RATE: 1 / 3},
                     id="no-tails"),
        pytest.param(AnalysisPolicy(),
                     {Metric.LATENCY_REGRESSION: 1 / 6, Metric.ERROR_REGRESSION: 1 / 3,
                      Metric.TAIL_P95: 1 / 6}, id="one-tail"),
        pytest.param(AnalysisPolicy(max_requests=1500, looks=15, p95_ms=100),
                     {Metric.LATENCY_REGRESSION: 1 / 8, Metric.LATENCY_P95: 1 / 4,
                      Metric.TAIL_P95: 1 / 16, Metric.TAIL_P99: 1 / 16}, id="two-tails-slo"),
    ],
)
def test_alpha_is_split_over_latency_errors_and_slos_with_tails_in_latency(
        policy: AnalysisPolicy, shares: dict[Metric, float]) -> None:
    for metric, share in shares.items():
        assert policy.share(metric) == pytest.approx(share * policy.alpha)
    assert sum(policy.share(m) for m in policy.checks) == pytest.approx(policy.alpha)


# ------------------------------------------------------------------------------ verdicts

LONG = AnalysisPolicy(max_requests=1500, looks=1)

TAIL_CASES = [
    pytest.param(_window(1500, slow_every=20, slow_factor=3.0), LONG, Outcome.FAIL,
                 {Metric.TAIL_P95: CheckStatus.FAIL, Metric.TAIL_P99: CheckStatus.FAIL},
                 ["p95 tail regression: p95 tail: ", "of canary requests above the primary's "
                  "p95", "(expected 5%)", "p99 tail regression: p99 tail: ", "(expected 1%)",
                  "> tolerance 10%", "tail rank test from the pooled p90"],
                 id="five-percent-three-times-slower"),
    pytest.param(_window(1500, tail_factor=1.3), LONG.model_copy(
                     update={"max_latency_regression": 0.5}), Outcome.PASS,
                 {Metric.TAIL_P95: CheckStatus.PASS, Metric.TAIL_P99: CheckStatus.PASS},
                 ["p95 tail within tolerance", "canary below primary +50% in the tail"],
                 id="heavier-tail-within-tolerance"),
    pytest.param(_window(1500), LONG.model_copy(update={"max_latency_regression": 0.01}),
                 Outcome.PASS,
                 {Metric.TAIL_P95: CheckStatus.HOLD, Metric.TAIL_P99: CheckStatus.HOLD},
                 ["no tail regression beyond tolerance 1% shown"],
                 id="undecided-tail-passes-at-the-last-look"),
    pytest.param(_window(750), AnalysisPolicy(max_requests=1500, looks=2,
                                              max_latency_regression=0.01),
                 Outcome.INCONCLUSIVE,
                 {Metric.TAIL_P95: CheckStatus.HOLD, Metric.TAIL_P99: CheckStatus.HOLD},
                 ["p99 tail: ", "of canary requests above the primary's p99",
                  "next look at 1500"], id="undecided-tail-holds-before-the-last-look"),
    pytest.param(Samples(ArmSamples((10.0,) * 400, (True,) * 400),
                         ArmSamples((10.0,) * 400, (True,) * 400)),
                 AnalysisPolicy(), Outcome.INCONCLUSIVE,
                 {Metric.TAIL_P95: CheckStatus.NO_DATA},
                 ["p95 tail: 0.0% of canary requests above the primary's p95 10.0 ms",
                  "too few requests in the tail to test it", "even the slowest all in the "
                  "canary would give p=1.0000"], id="no-tail-is-never-a-pass"),
    pytest.param(Samples(ArmSamples((10.0,) * 400, (False,) * 400),
                         ArmSamples(_latencies(400, 3), (True,) * 400)),
                 AnalysisPolicy(max_error_rate=0.99), Outcome.FAIL,
                 {Metric.TAIL_P95: CheckStatus.NO_DATA},
                 ["p95 tail: no successful request to compare (canary 0, primary 400)"],
                 id="no-successful-canary-request"),
]


@pytest.mark.parametrize(("samples", "policy", "outcome", "statuses", "phrases"), TAIL_CASES)
def test_tail_checks(samples: Samples, policy: AnalysisPolicy, outcome: Outcome,
                     statuses: dict[Metric, CheckStatus], phrases: list[str]) -> None:
    verdict = analysis.evaluate(samples, policy)
    assert verdict.outcome is outcome, verdict.reasons
    checks = {c.metric: c for c in verdict.checks}
    assert {m: checks[m].status for m in statuses} == statuses
    text = "\n".join(verdict.reasons + tuple(c.reason for c in verdict.checks))
    for phrase in phrases:
        assert phrase in text


def test_a_tail_fail_names_the_quantile_and_both_arms() -> None:
    verdict = analysis.evaluate(_window(1500, slow_every=20, slow_factor=3.0), LONG)
    check = next(c for c in verdict.checks if c.metric is Metric.TAIL_P99)
    assert check.canary == verdict.canary.p99_ms
    assert check.primary == verdict.primary.p99_ms
    assert check.threshold == LONG.max_latency_regression
    assert check.p_value is not None and check.level is not None
    assert check.p_value <= check.level
    assert check.canary is not None and check.primary is not None
    assert check.canary > check.primary * 1.1
    assert any(r.startswith("p99 tail regression: p99 tail: ") for r in verdict.reasons)
    assert not any(c.metric is Metric.LATENCY_REGRESSION and c.status is CheckStatus.FAIL
                   for c in verdict.checks)  # the rank test on everything misses it


def test_a_tail_regression_is_caught_only_once_the_tail_is_tested() -> None:
    policy = AnalysisPolicy(max_requests=1500, looks=15)
    samples = _window(1500, slow_every=10, slow_factor=3.0)
    state, verdict = analysis.SequentialJudge(), None
    for start in range(0, 1500, 100):
        batch = Samples(
            ArmSamples(samples.canary.latency_ms[start:start + 100], (True,) * 100),
            ArmSamples(samples.primary.latency_ms[start:start + 100], (True,) * 100))
        state, verdict = analysis.look(state, batch, policy)
        if verdict.decided:
            break
    assert verdict is not None and verdict.outcome is Outcome.FAIL
    assert verdict.look >= policy.first_look(Metric.TAIL_P95)
    assert any("tail regression" in r for r in verdict.reasons)
