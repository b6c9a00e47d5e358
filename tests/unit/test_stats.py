"""The judge's statistics, cross-checked against scipy/numpy and published boundaries."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sp

from modelrelease.domain import stats
from modelrelease.domain.stats import Alternative, Method, Spending


def _lognormal(seed: int, n: int, mu: float = 0.0, sigma: float = 0.5) -> list[float]:
    rng = random.Random(seed)
    return [rng.lognormvariate(mu, sigma) for _ in range(n)]


@pytest.mark.parametrize("z", [pytest.param(z, id=f"z={z}") for z in (-3.0, 0.0, 1.645, 8.0)])
def test_normal_tails_match_scipy(z: float) -> None:
    assert stats.normal_sf(z) == pytest.approx(sp.norm.sf(z), rel=1e-12)
    p = sp.norm.sf(z)
    if 0 < p < 1:
        assert stats.normal_isf(p) == pytest.approx(z, abs=1e-9)


@pytest.mark.parametrize(
    ("values", "q"),
    [
        pytest.param([5.0], 50, id="single"),
        pytest.param([1.0, 2.0], 50, id="two-midpoint"),
        pytest.param(sorted(_lognormal(1, 101)), 95, id="odd-p95"),
        pytest.param(sorted(_lognormal(2, 400)), 99, id="p99"),
        pytest.param(sorted(_lognormal(3, 10)), 0, id="min"),
        pytest.param(sorted(_lognormal(3, 10)), 100, id="max"),
    ],
)
def test_percentile_matches_numpy_linear(values: list[float], q: float) -> None:
    assert stats.percentile(values, q) == pytest.approx(float(np.percentile(values, q)),
                                                        rel=1e-12)


@pytest.mark.parametrize(
    ("values", "q", "message"),
    [
        pytest.param([], 50, "no values", id="empty"),
        pytest.param([1.0], 101, "outside", id="above-100"),
        pytest.param([1.0], -1, "outside", id="below-0"),
    ],
)
def test_percentile_rejects(values: list[float], q: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        stats.percentile(values, q)


MW_CASES = [
    pytest.param(_lognormal(1, 5), _lognormal(2, 7, 0.3), Method.EXACT, id="exact-5x7"),
    pytest.param(_lognormal(3, 20), _lognormal(4, 30, 0.2), Method.EXACT, id="exact-20x30"),
    pytest.param(_lognormal(5, 13), _lognormal(6, 1), Method.EXACT, id="exact-13x1"),
    pytest.param(_lognormal(7, 400), _lognormal(8, 400, 0.1), Method.NORMAL, id="normal-400"),
    pytest.param([round(v) for v in _lognormal(9, 300, 1.0)],
                 [round(v) for v in _lognormal(10, 250, 1.1)], Method.NORMAL,
                 id="normal-ties"),
    pytest.param([1.0, 2.0, 2.0], [2.0, 3.0], Method.NORMAL, id="small-with-ties"),
]


@pytest.mark.parametrize("alternative", [pytest.param(a, id=a.value) for a in Alternative])
@pytest.mark.parametrize(("x", "y", "method"), MW_CASES)
def test_mann_whitney_matches_scipy(
    x: list[float], y: list[float], method: Method, alternative: Alternative
) -> None:
    ours = stats.mann_whitney(x, y, alternative)
    theirs = sp.mannwhitneyu(x, y, alternative=alternative.value,
                             method="exact" if method is Method.EXACT else "asymptotic")
    assert ours.method is method
    assert ours.u == pytest.approx(theirs.statistic)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-15)
    assert (ours.n_x, ours.n_y) == (len(x), len(y))


def test_mann_whitney_z_is_standardised_u() -> None:
    x, y = _lognormal(11, 200, 0.2), _lognormal(12, 200)
    result = stats.mann_whitney(x, y)
    sd = math.sqrt(200 * 200 * 401 / 12)
    assert result.z == pytest.approx((result.u - 200 * 200 / 2) / sd)
    assert result.z > 2


def test_mann_whitney_all_tied_is_uninformative() -> None:
    result = stats.mann_whitney([3.0] * 60, [3.0] * 60)
    assert (result.p_value, result.z, result.method) == (1.0, 0.0, Method.NORMAL)


def test_mann_whitney_needs_both_samples() -> None:
    with pytest.raises(ValueError, match="at least one value"):
        stats.mann_whitney([], [1.0])


@pytest.mark.parametrize(("n", "m"), [pytest.param(n, m, id=f"{n}x{m}")
                                      for n, m in ((1, 1), (2, 3), (4, 4), (5, 2))])
def test_u_distribution_counts_every_arrangement(n: int, m: int) -> None:
    counts = [0] * (n * m + 1)
    for chosen in itertools.combinations(range(n + m), n):  # ranks held by x
        counts[sum(chosen) - n * (n - 1) // 2] += 1
    assert list(stats._u_distribution(n, m)) == counts


@settings(max_examples=60, deadline=None)
@given(
    x=st.lists(st.integers(1, 30), min_size=1, max_size=40),
    y=st.lists(st.integers(1, 30), min_size=1, max_size=40),
)
def test_mann_whitney_property_matches_scipy(x: list[int], y: list[int]) -> None:
    ours = stats.mann_whitney([float(v) for v in x], [float(v) for v in y],
                              Alternative.TWO_SIDED)
    method = "exact" if ours.method is Method.EXACT else "asymptotic"
    theirs = sp.mannwhitneyu(x, y, alternative="two-sided", method=method)
    if math.isnan(theirs.pvalue):  # scipy: every value tied
        assert ours.p_value == 1.0
    else:
        assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-15)


def _hl_reference(x: list[float], y: list[float]) -> float:
    return float(np.exp(np.median(np.log(np.divide.outer(x, y)))))


@pytest.mark.parametrize(
    ("x", "y"),
    [
        pytest.param([2.0], [1.0], id="one-pair"),
        pytest.param(_lognormal(1, 3), _lognormal(2, 5), id="odd-pairs"),
        pytest.param(_lognormal(3, 4), _lognormal(4, 5), id="even-pairs"),
        pytest.param(_lognormal(5, 400, 0.18), _lognormal(6, 400), id="400x400-bisection"),
        pytest.param([float(round(v)) for v in _lognormal(7, 300, 2.0)],
                     [float(round(v)) for v in _lognormal(8, 300, 2.0)], id="ties"),
        pytest.param([2.0] * 100, [1.0] * 100, id="all-tied"),
    ],
)
def test_hodges_lehmann_ratio_matches_pairwise_median(x: list[float], y: list[float]) -> None:
    assert stats.hodges_lehmann_ratio(x, y) == pytest.approx(_hl_reference(x, y), rel=1e-9)


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        pytest.param([], [1.0], "at least one", id="empty"),
        pytest.param([1.0], [0.0], "positive", id="zero"),
        pytest.param([-1.0], [1.0], "positive", id="negative"),
    ],
)
def test_hodges_lehmann_ratio_rejects(x: list[float], y: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        stats.hodges_lehmann_ratio(x, y)


BINOMIAL = [
    (0, 10, 0.1), (1, 1, 0.3), (3, 500, 0.001), (5, 500, 0.001), (12, 500, 0.01),
    (250, 500, 0.5), (60, 100, 0.5), (900, 1000, 0.9), (2, 100000, 1e-5), (11, 10, 0.5),
    (-1, 10, 0.5), (4, 10, 0.0), (0, 10, 0.0), (4, 10, 1.0), (10, 10, 1.0), (400, 400, 0.02),
    (0, 400, 0.02), (399, 400, 0.999), (7, 9, 0.95),
]


@pytest.mark.parametrize(("k", "n", "p"), [pytest.param(*c, id=f"k={c[0]},n={c[1]},p={c[2]}")
                                           for c in BINOMIAL])
def test_binomial_tails_match_scipy(k: int, n: int, p: float) -> None:
    assert stats.binomial_sf(k, n, p) == pytest.approx(sp.binom.sf(k - 1, n, p), rel=1e-8,
                                                       abs=1e-15)
    assert stats.binomial_cdf(k, n, p) == pytest.approx(sp.binom.cdf(k, n, p), rel=1e-8,
                                                        abs=1e-15)


@pytest.mark.parametrize(
    "table",
    [pytest.param(t, id="-".join(map(str, t))) for t in
     ((5, 500, 0, 500), (10, 400, 2, 400), (0, 10, 0, 10), (3, 10, 7, 10), (4, 4, 0, 9),
      (1, 1000, 0, 5))],
)
def test_fisher_greater_matches_scipy(table: tuple[int, int, int, int]) -> None:
    a, n_a, c, n_b = table
    expected = sp.fisher_exact([[a, n_a - a], [c, n_b - c]], alternative="greater").pvalue
    assert stats.fisher_greater(a, n_a, c, n_b) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("table", [pytest.param((3, 2, 0, 5), id="hits-above-size"),
                                   pytest.param((0, 5, -1, 5), id="negative")])
def test_fisher_greater_rejects(table: tuple[int, int, int, int]) -> None:
    with pytest.raises(ValueError, match="between 0"):
        stats.fisher_greater(*table)


@pytest.mark.parametrize("spending", [pytest.param(s, id=s.value) for s in Spending])
@pytest.mark.parametrize(
    ("t", "share"), [pytest.param(0.0, 0.0, id="t=0"), pytest.param(-1.0, 0.0, id="t<0"),
                     pytest.param(1.0, 1.0, id="t=1"), pytest.param(2.0, 1.0, id="t>1")],
)
def test_spending_functions_start_at_zero_and_end_at_alpha(
    spending: Spending, t: float, share: float
) -> None:
    assert stats.spent_alpha(spending, 0.05, t) == pytest.approx(0.05 * share)


def test_spending_shapes_differ_early() -> None:
    pocock = stats.spent_alpha(Spending.POCOCK, 0.05, 0.2)
    obf = stats.spent_alpha(Spending.OBRIEN_FLEMING, 0.05, 0.2)
    assert pocock == pytest.approx(0.05 * math.log(1 + (math.e - 1) * 0.2))
    assert obf < pocock / 100


# Lan-DeMets boundaries for one-sided alpha 0.025 and 5 equally spaced looks, as published
# (gsDesign, sfLDPocock / sfLDOF).
PUBLISHED = {
    Spending.POCOCK: (2.4380, 2.4268, 2.4101, 2.3966, 2.3859),
    Spending.OBRIEN_FLEMING: (4.8769, 3.3569, 2.6803, 2.2898, 2.0310),
}


@pytest.mark.parametrize("spending", [pytest.param(s, id=s.value) for s in Spending])
def test_boundaries_match_published_values(spending: Spending) -> None:
    bounds = stats.upper_boundaries(0.025, (0.2, 0.4, 0.6, 0.8, 1.0), spending)
    assert bounds == pytest.approx(PUBLISHED[spending], abs=2e-3)


def _crossing_probability(bounds: tuple[float, ...], fractions: tuple[float, ...]) -> float:
    t = np.array(fractions)
    cov = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
    upper = np.where(np.isinf(bounds), 30.0, bounds)
    mvn = sp.multivariate_normal(mean=np.zeros(len(t)), cov=cov, abseps=1e-7, releps=1e-4,
                                 maxpts=500_000, seed=1234)  # deterministic QMC
    return float(1.0 - mvn.cdf(upper))


@pytest.mark.parametrize(
    ("alpha", "fractions", "spending"),
    [
        pytest.param(0.0033, (0.2, 0.4, 0.6, 0.8, 1.0), Spending.POCOCK, id="pocock-5"),
        pytest.param(0.0033, (0.2, 0.4, 0.6, 0.8, 1.0), Spending.OBRIEN_FLEMING, id="obf-5"),
        pytest.param(0.01, (0.25, 0.6, 1.0), Spending.POCOCK, id="pocock-uneven"),
        pytest.param(0.05, (1.0,), Spending.OBRIEN_FLEMING, id="single-look"),
        pytest.param(0.001, tuple(k / 8 for k in range(1, 9)), Spending.OBRIEN_FLEMING,
                     id="obf-8-first-look-spends-nothing"),
    ],
)
def test_boundaries_spend_exactly_alpha_over_all_looks(
    alpha: float, fractions: tuple[float, ...], spending: Spending
) -> None:
    bounds = stats.upper_boundaries(alpha, fractions, spending)
    assert _crossing_probability(bounds, fractions) == pytest.approx(alpha, rel=5e-3)
    first = stats.upper_boundaries(alpha, fractions[:1], spending)[0]
    assert bounds[0] == first


def test_boundaries_mark_looks_that_spend_nothing() -> None:
    bounds = stats.upper_boundaries(0.001, tuple(k / 8 for k in range(1, 9)),
                                    Spending.OBRIEN_FLEMING)
    assert bounds[0] == math.inf
    assert all(math.isfinite(b) for b in bounds[1:])
    levels = stats.nominal_levels(0.001, 8, Spending.OBRIEN_FLEMING)
    assert levels[0] == 0.0
    assert levels[-1] < 0.001


@pytest.mark.parametrize(
    ("alpha", "fractions", "message"),
    [
        pytest.param(0.0, (1.0,), "alpha", id="alpha-zero"),
        pytest.param(1.0, (1.0,), "alpha", id="alpha-one"),
        pytest.param(0.05, (), "fractions", id="no-looks"),
        pytest.param(0.05, (0.5, 0.5), "fractions", id="not-increasing"),
        pytest.param(0.05, (0.5, 1.5), "fractions", id="above-one"),
        pytest.param(0.05, (0.0, 1.0), "fractions", id="zero"),
    ],
)
def test_boundaries_reject(alpha: float, fractions: tuple[float, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        stats.upper_boundaries(alpha, fractions, Spending.POCOCK)


def test_nominal_levels_need_a_look() -> None:
    with pytest.raises(ValueError, match="at least one look"):
        stats.nominal_levels(0.05, 0, Spending.POCOCK)


def test_pocock_levels_are_nearly_flat_and_below_alpha() -> None:
    levels = stats.nominal_levels(0.0033, 5, Spending.POCOCK)
    assert len(levels) == 5
    assert max(levels) < 0.0033
    assert max(levels) / min(levels) < 1.3
