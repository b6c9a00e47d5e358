"""Statistics for the canary judge, in pure Python (stdlib only, no numpy/scipy).

Every function here is cross-checked against scipy in ``tests/unit/test_stats.py``.

* ``percentile``: linear interpolation between order statistics (numpy's default).
* ``mann_whitney``: the Mann-Whitney U test (Wilcoxon rank-sum). Ties get mid-ranks and the
  tie-corrected variance; the p-value is exact (the null distribution of U counted from the
  Gaussian binomial coefficient) when there are no ties and ``n * m`` is small, else the
  normal approximation with continuity correction, as ``scipy.stats.mannwhitneyu`` does.
* ``hodges_lehmann_ratio``: the median of all pairwise ratios ``x_i / y_j`` (the
  Hodges-Lehmann shift on the log scale), selected exactly without forming the ``n * m``
  ratios.
* ``binomial_sf`` / ``binomial_cdf``: exact binomial tails, summed in log space.
* ``fisher_greater``: Fisher's exact test, one-sided (first group has the higher rate).
* ``tail_test``: an upper-tail rank test (a linear rank statistic whose scores are zero
  below a pooled percentile and rise linearly above it), with the exact permutation mean
  and variance and the normal approximation (cross-checked against every split of small
  samples; in simulations of equal arms its rejection rate is at most the nominal level
  for thin tails and about it from a few hundred tail values on); ``least_tail_p``: its
  smallest p-value for given sample sizes, to tell a tail too thin to test.
* ``upper_boundaries`` / ``nominal_levels``: one-sided group-sequential boundaries for a
  Lan-DeMets alpha-spending function (Pocock-type or O'Brien-Fleming-type), computed by
  recursive numerical integration (Armitage, McPherson and Rowe; Jennison and Turnbull,
  ch. 19) so that the chance of ever crossing, over all looks, is ``alpha`` under the null.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from statistics import NormalDist

_STD = NormalDist()
_SQRT2 = math.sqrt(2.0)


def normal_sf(z: float) -> float:
    """Upper tail of the standard normal, ``P(Z > z)``, accurate far into the tail."""
    return 0.5 * math.erfc(z / _SQRT2)


def normal_isf(p: float) -> float:
    """The ``z`` with ``P(Z > z) = p``, for ``0 < p < 1``."""
    return -_STD.inv_cdf(p)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ascending ``sorted_values``, linearly interpolated."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} outside 0..100")
    position = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = position - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


class Alternative(StrEnum):
    """Which way a one- or two-sided test looks."""

    GREATER = "greater"  # x tends to be larger than y
    LESS = "less"
    TWO_SIDED = "two-sided"


class Method(StrEnum):
    """How a Mann-Whitney p-value was obtained."""

    EXACT = "exact"
    NORMAL = "normal"


@dataclass(frozen=True)
class MannWhitney:
    """A Mann-Whitney U test of ``x`` against ``y``.

    ``u`` counts the pairs with ``x_i > y_j`` (ties count one half); ``z`` is
    ``(u - n*m/2) / sd`` with the tie-corrected sd and no continuity correction (0 when
    every value is tied).
    """

    u: float
    z: float
    p_value: float
    method: Method
    n_x: int
    n_y: int


EXACT_MAX_PAIRS = 2500


def mann_whitney(
    x: Sequence[float],
    y: Sequence[float],
    alternative: Alternative = Alternative.GREATER,
    *,
    exact_max_pairs: int = EXACT_MAX_PAIRS,
) -> MannWhitney:
    """Mann-Whitney U test of ``x`` against ``y``; ``GREATER`` asks whether x is larger.

    Exact when no value is tied and ``len(x) * len(y) <= exact_max_pairs``, else the
    normal approximation with tie correction and continuity correction.
    """
    n, m = len(x), len(y)
    if n == 0 or m == 0:
        raise ValueError("Mann-Whitney needs at least one value in each sample")
    ys = sorted(y)
    u = 0.0
    for value in x:
        below = bisect_left(ys, value)
        u += below + (bisect_right(ys, value) - below) / 2.0
    counts = Counter(x)
    counts.update(ys)
    ties = sum(t * t * t - t for t in counts.values() if t > 1)
    total = n + m
    mean = n * m / 2.0
    variance = n * m / 12.0 * ((total + 1) - ties / (total * (total - 1)))
    sd = math.sqrt(variance) if variance > 0 else 0.0
    z = (u - mean) / sd if sd > 0 else 0.0
    if ties == 0 and n * m <= exact_max_pairs:
        return MannWhitney(u, z, _exact_p(int(u), n, m, alternative), Method.EXACT, n, m)
    if sd == 0:
        return MannWhitney(u, z, 1.0, Method.NORMAL, n, m)
    if alternative is Alternative.GREATER:
        p = normal_sf((u - mean - 0.5) / sd)
    elif alternative is Alternative.LESS:
        p = normal_sf((n * m - u - mean - 0.5) / sd)
    else:
        p = min(1.0, 2.0 * normal_sf((max(u, n * m - u) - mean - 0.5) / sd))
    return MannWhitney(u, z, p, Method.NORMAL, n, m)


def _exact_p(u: int, n: int, m: int, alternative: Alternative) -> float:
    counts = _u_distribution(min(n, m), max(n, m))
    whole = sum(counts)
    if alternative is Alternative.GREATER:
        return sum(counts[u:]) / whole
    if alternative is Alternative.LESS:
        return sum(counts[: u + 1]) / whole
    upper = max(u, n * m - u)
    return min(1.0, 2.0 * sum(counts[upper:]) / whole)


@lru_cache(maxsize=64)
def _u_distribution(n: int, m: int) -> tuple[int, ...]:
    """How many of the C(n+m, n) arrangements give each U = 0..n*m (no ties).

    The coefficients of the Gaussian binomial ``prod_{i=1..n} (1 - q^(m+i)) / (1 - q^i)``;
    the distribution is symmetric in (n, m).
    """
    poly = [1]
    for i in range(1, n + 1):
        grown = poly + [0] * (m + i)
        for k in range(len(grown) - 1, m + i - 1, -1):
            grown[k] -= grown[k - (m + i)]
        quotient = [0] * (len(poly) + m)
        for k in range(len(quotient)):
            quotient[k] = grown[k] + (quotient[k - i] if k >= i else 0)
        poly = quotient
    return tuple(poly)


def hodges_lehmann_ratio(x: Sequence[float], y: Sequence[float]) -> float:
    """The median of the ``n * m`` ratios ``x_i / y_j`` (values must be positive).

    On the log scale this is the Hodges-Lehmann estimate of the shift; with an even number
    of pairs it is the geometric mean of the two middle ratios.
    """
    if not x or not y:
        raise ValueError("Hodges-Lehmann needs at least one value in each sample")
    if min(x) <= 0 or min(y) <= 0:
        raise ValueError("Hodges-Lehmann ratio needs positive values")
    xs, ys = sorted(x), sorted(y)
    pairs = len(xs) * len(ys)
    middle = pairs // 2
    if pairs % 2:
        return _kth_ratio(xs, ys, middle)
    return math.sqrt(_kth_ratio(xs, ys, middle - 1) * _kth_ratio(xs, ys, middle))


def _ratios_below(xs: Sequence[float], ys: Sequence[float], r: float, *, strict: bool) -> int:
    """How many ``x_i / y_j`` are below ``r`` (``strict``) or at most ``r``."""
    m = len(ys)
    if strict:  # x/y < r  <=>  y > x/r
        return sum(m - bisect_right(ys, value / r) for value in xs)
    return sum(m - bisect_left(ys, value / r) for value in xs)


def _kth_ratio(xs: Sequence[float], ys: Sequence[float], k: int) -> float:
    """The k-th smallest (0-based) of the ratios ``x_i / y_j`` of two sorted samples."""
    low, high = xs[0] / ys[-1], xs[-1] / ys[0]
    limit = 4 * (len(xs) + len(ys))
    below_low = 0  # ratios < low
    while True:
        between = _ratios_below(xs, ys, high, strict=False) - below_low
        middle = math.sqrt(low * high)
        if between <= limit or not low < middle < high:
            break
        below_middle = _ratios_below(xs, ys, middle, strict=True)
        if below_middle > k:
            high = middle
        else:
            low, below_low = middle, below_middle
    candidates = sorted(
        value / other
        for value in xs
        for other in ys[bisect_left(ys, value / high): bisect_right(ys, value / low)]
        if low <= value / other <= high
    )
    index = min(max(k - below_low, 0), len(candidates) - 1)
    return candidates[index]


def _log_binomial_pmf(i: int, n: int, p: float) -> float:
    return (
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
        + i * math.log(p) + (n - i) * math.log1p(-p)
    )


def _binomial_run(start: int, stop: int, n: int, p: float) -> float:
    """Sum the binomial pmf from ``start`` towards ``stop`` (inclusive), away from the mode.

    Starts from the term nearest the mode, so later terms only shrink and the sum stops
    once they no longer change it.
    """
    step = 1 if stop >= start else -1
    odds = p / (1.0 - p)
    term = math.exp(_log_binomial_pmf(start, n, p))
    total = 0.0
    i = start
    while True:
        total += term
        if i == stop or (term <= total * 1e-17 and (i - n * p) * step > 0):
            return total
        term = term * (n - i) / (i + 1) * odds if step > 0 else term * i / (n - i + 1) / odds
        i += step


def binomial_sf(k: int, n: int, p: float) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, p)``, exact."""
    if k <= 0 or p >= 1.0:
        return 1.0 if k <= n else 0.0
    if k > n or p <= 0.0:
        return 0.0
    if k > n * p:
        return min(1.0, _binomial_run(k, n, n, p))
    return max(0.0, 1.0 - _binomial_run(k - 1, 0, n, p))


def binomial_cdf(k: int, n: int, p: float) -> float:
    """``P(X <= k)`` for ``X ~ Binomial(n, p)``, exact."""
    if k < n * p and k >= 0 and p < 1.0:
        return min(1.0, _binomial_run(k, 0, n, p))
    return 1.0 - binomial_sf(k + 1, n, p)


def least_tail_p(n_x: int, n_y: int, q: float) -> float:
    """The smallest p-value ``tail_test`` can give for ``n_x`` and ``n_y`` untied values."""
    return tail_test(range(n_y + 1, n_y + n_x + 1), range(1, n_y + 1), q).p_value


def fisher_greater(hits_a: int, n_a: int, hits_b: int, n_b: int) -> float:
    """One-sided Fisher exact test: is group a's rate higher than group b's?

    ``P(X >= hits_a)`` for X hypergeometric: ``hits_a + hits_b`` hits among ``n_a + n_b``
    draws, ``n_a`` of them in group a (conditional on the total, as Fisher's test is).
    """
    if not (0 <= hits_a <= n_a and 0 <= hits_b <= n_b):
        raise ValueError("hits must lie between 0 and the group size")
    hits, total = hits_a + hits_b, n_a + n_b
    top = min(hits, n_a)
    log_whole = _log_choose(total, n_a)
    p = 0.0
    for x in range(hits_a, top + 1):
        p += math.exp(_log_choose(hits, x) + _log_choose(total - hits, n_a - x) - log_whole)
    return min(1.0, p)


@dataclass(frozen=True)
class TailTest:
    """An upper-tail rank test of ``x`` against ``y`` around their pooled ``q``-th percentile.

    ``z``: the standardised statistic; ``p_value``: its one-sided p-value (x heavier in the
    tail); ``least_p_value``: the smallest p-value these pooled values could give (the
    ``len(x)`` highest scores all in x): above the level, the tail is too thin to test.
    ``start``: the pooled value where the scores begin; ``above_x`` / ``above_y``: values
    above the pooled ``q``-th percentile ``threshold``, per sample.
    """

    z: float
    p_value: float
    least_p_value: float
    start: float
    threshold: float
    above_x: int
    above_y: int


def tail_test(x: Sequence[float], y: Sequence[float], q: float) -> TailTest:
    """Is ``x`` heavier than ``y`` in the upper tail around the pooled ``q``-th percentile?

    A linear rank statistic (like Mann-Whitney, but only the tail counts): each pooled
    value gets the score ``max(0, u - (1 - w))``, ``u`` its mid-rank quantile and ``w =
    2 (1 - q/100)`` (for the p95: scores rise linearly from the pooled p90 to the top, so
    the p95 is their centre); the statistic is the sum of x's scores, standardised with
    its exact permutation mean and variance (ties share their mid-rank), p-value from the
    normal approximation.
    """
    n, m = len(x), len(y)
    if n == 0 or m == 0:
        raise ValueError("a tail test needs at least one value in each sample")
    if not 50.0 <= q < 100.0:
        raise ValueError(f"percentile {q} outside [50, 100)")
    pooled = sorted((*x, *y))
    total = n + m
    begin = 1.0 - 2.0 * (1.0 - q / 100.0)

    def score(value: float) -> float:
        middle = (bisect_left(pooled, value) + bisect_right(pooled, value)) / 2.0
        return max(0.0, middle / total - begin)

    scores = [score(value) for value in pooled]
    mean = sum(scores) / total
    variance = n * m / (total * (total - 1)) * sum((a - mean) ** 2 for a in scores)
    threshold = percentile(pooled, q)
    above_x = sum(1 for value in x if value > threshold)
    above_y = sum(1 for value in y if value > threshold)
    start = percentile(pooled, 100.0 * begin)
    if variance <= 0.0:
        return TailTest(0.0, 1.0, 1.0, start, threshold, above_x, above_y)
    sd = math.sqrt(variance)
    z = (sum(score(value) for value in x) - n * mean) / sd
    most = (sum(scores[total - n:]) - n * mean) / sd  # scores ascend with the values
    return TailTest(z, normal_sf(z), normal_sf(most), start, threshold, above_x, above_y)


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


class Spending(StrEnum):
    """Lan-DeMets alpha-spending functions.

    ``POCOCK``: ``alpha * ln(1 + (e - 1) t)``: spends early, stops sooner on big effects.
    ``OBRIEN_FLEMING``: ``2 - 2 Phi(z_{alpha/2} / sqrt(t))``: saves alpha for the last look.
    """

    POCOCK = "pocock"
    OBRIEN_FLEMING = "obrien-fleming"


def spent_alpha(spending: Spending, alpha: float, t: float) -> float:
    """Cumulative alpha spent by information fraction ``t`` (0..1)."""
    if t <= 0.0:
        return 0.0
    t = min(t, 1.0)
    if spending is Spending.POCOCK:
        return alpha * math.log1p((math.e - 1.0) * t)
    return 2.0 * normal_sf(normal_isf(alpha / 2.0) / math.sqrt(t))


_LOWER = -8.0  # under the null, P(Z < -8) ~ 6e-16: the grid's lower end
_UPPER = 8.5  # a boundary beyond this is never reached: cap (and grid's upper end)
_GRID_STEP = 0.04


@lru_cache(maxsize=128)
def upper_boundaries(
    alpha: float, fractions: tuple[float, ...], spending: Spending
) -> tuple[float, ...]:
    """Critical z-values ``c_1..c_K`` for looks at increasing information ``fractions``.

    Under the null (Z_k a standardised Brownian motion at the fractions), the chance of a
    first crossing ``Z_k >= c_k`` at look k is ``spent(t_k) - spent(t_{k-1})``, so the
    chance of any crossing is ``spent(t_K)`` (``alpha`` when the last fraction is 1).
    ``inf`` means nothing is spent at that look.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha {alpha} outside (0, 1)")
    if not fractions or any(
        not 0.0 < b <= 1.0 or b <= a for a, b in zip((0.0, *fractions), fractions, strict=False)
    ):
        raise ValueError(f"information fractions must increase within (0, 1]: {fractions}")
    starts = (0.0, *fractions[:-1])
    step = min(_GRID_STEP, *(math.sqrt(1.0 - a / b) / 8.0 for a, b in zip(starts, fractions,
                                                                         strict=True)))
    bounds: list[float] = []
    grid: list[float] = []
    density: list[float] = []
    spent = 0.0
    for previous_t, t in zip(starts, fractions, strict=True):
        target = spent_alpha(spending, alpha, t) - spent
        spent += target
        r = math.sqrt(previous_t / t)
        s = math.sqrt(1.0 - r * r)
        if target < 1e-15:  # nothing left to spend at this look: it cannot reject
            bound = math.inf
        elif not grid:
            bound = normal_isf(target)
        else:
            bound = _solve_bound(grid, density, r, s, target)
        new_grid, weights = _simpson(_LOWER, min(bound, _UPPER), step)
        if not grid:
            density = [w * _phi(z) for z, w in zip(new_grid, weights, strict=True)]
        else:
            density = [
                w / s * sum(d * _phi((z - r * u) / s) for u, d in zip(grid, density, strict=True))
                for z, w in zip(new_grid, weights, strict=True)
            ]
        grid = new_grid
        bounds.append(bound if bound < _UPPER else math.inf)
    return tuple(bounds)


def _phi(z: float) -> float:
    return math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def _simpson(low: float, high: float, step: float) -> tuple[list[float], list[float]]:
    """Points and Simpson weights on ``[low, high]`` (odd count, spacing at most ``step``)."""
    intervals = 2 * math.ceil((high - low) / step / 2)
    h = (high - low) / intervals
    points = [low + i * h for i in range(intervals + 1)]
    weights = [h / 3.0 * (1 if i in (0, intervals) else 4 if i % 2 else 2)
               for i in range(intervals + 1)]
    return points, weights


def _solve_bound(
    grid: list[float], density: list[float], r: float, s: float, target: float
) -> float:
    """The c where the weighted mass continuing from ``grid`` that lands above c is target."""

    def crossing(c: float) -> float:
        return sum(d * normal_sf((c - r * u) / s) for u, d in zip(grid, density, strict=True))

    low, high = -_UPPER, _UPPER
    for _ in range(80):
        middle = (low + high) / 2.0
        if crossing(middle) > target:
            low = middle
        else:
            high = middle
    return (low + high) / 2.0


def nominal_levels(
    alpha: float, looks: int, spending: Spending, first: int = 1
) -> tuple[float, ...]:
    """Per-look one-sided significance levels for ``looks`` equally spaced looks.

    Look k rejects when its p-value is at most ``P(Z > c_k)``; a statistic that is
    (asymptotically) a standardised Brownian motion then rejects with total chance alpha.
    Looks before ``first`` are not taken (level 0): the first one taken spends all that
    the function has spent by its information fraction.
    """
    if looks < 1:
        raise ValueError("at least one look")
    if not 1 <= first <= looks:
        raise ValueError(f"first look {first} outside 1..{looks}")
    fractions = tuple(k / looks for k in range(first, looks + 1))
    return (0.0,) * (first - 1) + tuple(
        normal_sf(c) for c in upper_boundaries(alpha, fractions, spending))
