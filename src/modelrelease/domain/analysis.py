"""The canary judge: canary and primary samples from one window in, a ``Verdict`` out.

``evaluate(samples, policy)`` judges once; ``look(state, new_samples, policy)`` judges a
growing window sequentially, so a clear regression or a clear pass ends a step early
without inflating false alarms. Pure: no clock, no I/O, no logging; every decision comes
back with its reasons and numbers. This is the generated load's verdict; the step's
(``domain.verdict.step_verdict``) adds live traffic (``Metric.LIVE``) and output agreement
(``Metric.AGREEMENT``) as checks of their own, which can fail or hold a step, never pass it.

**Checks** (each a one-sided test, run at the looks of a group-sequential plan):

* ``LATENCY_REGRESSION``: Mann-Whitney U, canary vs primary latency of successful requests.
  FAIL when the canary is significantly slower *and* the Hodges-Lehmann ratio (the median
  of all canary/primary latency ratios) exceeds ``1 + max_latency_regression``. Clear pass
  when the Mann-Whitney test of ``canary / (1 + tolerance)`` against primary says the canary
  is significantly below the tolerance (non-inferiority).
* ``ERROR_RATE``: exact binomial test of ``H0: canary error rate <= max_error_rate``. Clear
  pass when the canary's rate is significantly *below* it.
* ``ERROR_REGRESSION``: Fisher's exact test, canary errors vs primary errors (only fails).
* ``LATENCY_P95`` / ``LATENCY_P99`` (when the policy sets ``p95_ms`` / ``p99_ms``): exact
  binomial test on the number of canary requests slower than the limit, ``H0: at most 5%
  (1%) of requests exceed it``, i.e. the canary's true p95 (p99) is within the SLO.
* ``TAIL_P95`` / ``TAIL_P99``: the upper tail, canary vs primary, where a rank test on the
  whole distribution is blind (slower cache misses, a slow branch on a few inputs, GC
  pauses). An upper-tail rank test (``stats.tail_test``) on the successful requests of
  both arms: a rank statistic whose scores are zero up to the pooled p90 (p98) and rise
  linearly to the top, so it weighs how many canary requests are in the tail and how far
  up, around the p95 (p99); exact permutation mean and variance, normal approximation.
  FAIL when the canary is significantly heavier there *and* its p95 (p99) exceeds the
  primary's by more than ``max_latency_regression``; the reason names the quantile and the
  share of canary requests above the primary's p95 (p99) against the 5% (1%) expected.
  Clear pass when the canary's latencies divided by ``1 + tolerance`` are significantly
  *lighter* in the tail than the primary's. A tail too thin to test (even the slowest
  requests all in the canary would not be significant at the look's level) is NO_DATA,
  never a pass.
  Which tails are checked, and from which look, follows from the plan: a tail is tested
  from the first look whose requests per arm, less a fifth (for failed requests and
  ties), could reject at the level that look gets; it spends its share from there, so
  the looks it cannot use waste none of it. The defaults (400 per arm, 5 looks) check
  the p95 from look 2; a plan of about 450 per arm or more checks the p99 as well.
* ``SLICES`` (when the policy sets ``max_slices``): the latency and error-rate checks
  above, run again inside each slice of the traffic (one tenant, locale, input shape:
  the value each request carries in ``ArmSamples.slices``), so a regression confined to
  one slice is not averaged away. See ``domain.slices``; the reason names the slice.

**Error control.** ``alpha`` bounds the chance that identical arms are judged FAIL over
the whole step: it is split evenly (Bonferroni) over latency, error rate, error
regression and each SLO, latency's part going half to Mann-Whitney and half to the tail
checks (halved again when both the p95 and the p99 are checked), and each check spends
its share over ``looks`` equally spaced looks (at ``k * max_requests / looks`` requests per arm)
with a Lan-DeMets spending function (``stats.upper_boundaries``). A test at look k
rejects when its p-value is at most that look's nominal level. Looks that were skipped
(e.g. below ``min_requests``) simply spend nothing, which is conservative; a tail check's
looks before its first (fixed by the plan, see above) are not taken, so its first look
spends all the function has spent by then. Each look is tested at most once per
``SequentialJudge``.

**Outcomes.** FAIL as soon as any check fails (the reasons name the metric, both arms'
numbers and the threshold). PASS early when every check is clearly within its limits;
PASS at the last look when no check failed, unless an absolute check (error rate,
p95/p99 SLO) is still undecided with the canary's figure beyond its limit: then
INCONCLUSIVE, so the step extends rather than passes. INCONCLUSIVE otherwise: no traffic, fewer
than ``min_requests`` per arm, no look reached yet, a check with no data (e.g. every
canary request failed but not yet significantly), or simply "continue to the next look".
Never a PASS on too little data. Showing that a limit is *clearly* met takes data: with
not one slow request, a p99 SLO needs about ``ln(1/level) / 0.01`` (~750) requests, and a
1% error limit as many; until then those checks hold and the step runs to its last look.

**Outliers.** None are removed. Failed requests are taken out of the latency checks and
counted as errors instead. The latency tests work on ranks, so one 10 s request moves the
statistic by one rank at most, and removing "outliers" (Kayenta's IQR x3) would discard
exactly the tail a regression shows up in.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from modelrelease.domain import stats
from modelrelease.domain.stats import Alternative, Spending

__all__ = [
    "AnalysisPolicy",
    "ArmSamples",
    "ArmStats",
    "Check",
    "CheckStatus",
    "Counts",
    "Metric",
    "Outcome",
    "Samples",
    "SequentialJudge",
    "SliceRow",
    "Spending",
    "Verdict",
    "error_rate",
    "error_regression",
    "evaluate",
    "latency_regression",
    "limit_test",
    "look",
]


class Outcome(StrEnum):
    """What the judge decided."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


class Metric(StrEnum):
    """What a check looks at."""

    LATENCY_REGRESSION = "latency_regression"
    ERROR_RATE = "error_rate"
    ERROR_REGRESSION = "error_regression"
    LATENCY_P95 = "latency_p95"
    LATENCY_P99 = "latency_p99"
    TAIL_P95 = "tail_p95"
    TAIL_P99 = "tail_p99"
    SLICES = "slices"
    LIVE = "live"  # live traffic's evidence over the step (``domain.live``)
    AGREEMENT = "agreement"  # output agreement (``domain.agreement``)
    SHADOW = "shadow"  # a shadow step's copies of live requests (``domain.shadow``)


TAILS = {Metric.TAIL_P95: 95, Metric.TAIL_P99: 99}
"""The tail checks and their percentiles."""
TAIL_PLANNED = 0.8
"""Share of a look's requests per arm that must suffice to test a tail for the look to test
it (the rest allows for failed requests and ties)."""


class CheckStatus(StrEnum):
    """One check's state at one look."""

    FAIL = "fail"  # significant breach
    PASS = "pass"  # clearly within the limit (or, for a guard, no evidence of a breach)
    HOLD = "hold"  # neither yet
    NO_DATA = "no_data"  # nothing to test (e.g. no successful request in an arm)


Rate = Annotated[float, Field(ge=0.0, lt=1.0)]


class AnalysisPolicy(BaseModel):
    """How the judge decides (camelCase aliases for the ``ModelEndpoint`` spec).

    ``max_latency_regression`` is relative: 0.1 tolerates a canary whose latencies are
    typically (Hodges-Lehmann ratio) up to 10% above the primary's. ``max_error_rate`` is
    the highest error rate a good canary may have: it fails when the data show, with
    confidence ``1 - alpha``, that its rate is higher. ``alpha`` is the chance of failing a
    canary identical to the primary, over every check and look of the step.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )

    max_latency_regression: Annotated[float, Field(gt=0.0, le=10.0)] = 0.1
    p95_ms: Annotated[float, Field(gt=0.0)] | None = None
    p99_ms: Annotated[float, Field(gt=0.0)] | None = None
    max_error_rate: Rate = 0.01
    min_requests: Annotated[int, Field(ge=1)] = 50
    max_requests: Annotated[int, Field(ge=1)] = 400
    looks: Annotated[int, Field(ge=1, le=50)] = 5
    alpha: Annotated[float, Field(gt=0.0, le=0.2)] = 0.01
    spending: Spending = Spending.POCOCK
    max_slices: Annotated[int, Field(ge=0, le=100)] = 0
    """Slices judged on their own (the most frequent ones; 0: none). The slices' share of
    ``alpha`` is split evenly over this many slices, decided before any data."""
    min_slice_requests: Annotated[int, Field(ge=2)] = 50
    """Requests per arm a slice needs before it is tested."""

    @model_validator(mode="after")
    def _requests_in_order(self) -> AnalysisPolicy:
        if self.min_requests > self.max_requests:
            raise ValueError(
                f"minRequests {self.min_requests} exceeds maxRequests {self.max_requests}"
            )
        return self

    def look_requests(self, k: int) -> int:
        """Requests per arm at which look ``k`` (1-based) is due."""
        return max(self.min_requests, math.ceil(k * self.max_requests / self.looks))

    def look_reached(self, requests: int) -> int:
        """The last look due at ``requests`` per arm (0: none yet)."""
        if requests < self.min_requests:
            return 0
        return min(self.looks, requests * self.looks // self.max_requests)

    @property
    def checks(self) -> tuple[Metric, ...]:
        """The active checks, in the order they are reported."""
        slo = ((Metric.LATENCY_P95,) if self.p95_ms is not None else ()) + (
            (Metric.LATENCY_P99,) if self.p99_ms is not None else ()
        )
        base = (Metric.LATENCY_REGRESSION, Metric.ERROR_RATE, Metric.ERROR_REGRESSION, *slo)
        sliced = (Metric.SLICES,) if self.max_slices else ()
        return base + tuple(metric for metric, _ in _tail_first_looks(self)) + sliced

    def first_look(self, metric: Metric) -> int:
        """The first look at which ``metric`` is tested (1 but for a tail check)."""
        return dict(_tail_first_looks(self)).get(metric, 1)

    def share(self, metric: Metric = Metric.LATENCY_REGRESSION) -> float:
        """The part of ``alpha`` that ``metric`` may spend over the step.

        ``alpha`` is split evenly over latency, error rate, error regression, each SLO and
        the slices; latency's part goes half to the Mann-Whitney test and half to the tails
        (split evenly between the p95 and the p99) when any tail is checked.
        """
        tails = [m for m in self.checks if m in TAILS]
        share = self.alpha / (len(self.checks) - len(tails))
        if not tails or metric not in (Metric.LATENCY_REGRESSION, *tails):
            return share
        return share / 2 / (len(tails) if metric in tails else 1)

    def level(self, k: int, metric: Metric = Metric.LATENCY_REGRESSION) -> float:
        """Nominal one-sided level of ``metric`` at look ``k`` (0 before its first look)."""
        return stats.nominal_levels(self.share(metric), self.looks, self.spending,
                                    self.first_look(metric))[k - 1]


@lru_cache(maxsize=64)
def _tail_first_looks(policy: AnalysisPolicy) -> tuple[tuple[Metric, int], ...]:
    """Each tail the plan can test, with the first look at which it can.

    A tail's first look is the first at which ``TAIL_PLANNED`` of the look's requests per
    arm could reject at the level that look would have if it were the first taken (all
    the spending function has spent by then, with both tails in the split: the smallest
    share ``AnalysisPolicy.share`` can give a tail).
    """
    slo = (policy.p95_ms is not None) + (policy.p99_ms is not None)
    share = policy.alpha / (3 + slo + (policy.max_slices > 0)) / 2 / len(TAILS)
    out: list[tuple[Metric, int]] = []
    for metric, q in TAILS.items():
        for k in range(1, policy.looks + 1):
            planned = max(1, math.floor(TAIL_PLANNED * policy.look_requests(k)))
            if stats.least_tail_p(planned, planned, q) <= stats.spent_alpha(
                    policy.spending, share, k / policy.looks):
                out.append((metric, k))
                break
    return tuple(out)


@dataclass(frozen=True)
class ArmSamples:
    """One arm's requests in the window: latency (ms, from scheduled send) and success.

    ``slices``: each request's slice value (``""``: none), or empty when the traffic is not
    sliced.
    """

    latency_ms: tuple[float, ...] = ()
    ok: tuple[bool, ...] = ()
    slices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.latency_ms) != len(self.ok):
            raise ValueError(
                f"{len(self.latency_ms)} latencies but {len(self.ok)} outcomes"
            )
        if self.slices and len(self.slices) != len(self.ok):
            raise ValueError(f"{len(self.slices)} slice values but {len(self.ok)} requests")
        for value in self.latency_ms:
            if not (value > 0.0 and math.isfinite(value)):
                raise ValueError(f"latency {value!r} ms is not a positive finite number")

    @classmethod
    def of(cls, requests: Iterable[tuple[float, bool]]) -> ArmSamples:
        """From ``(latency_ms, ok)`` pairs."""
        pairs = tuple(requests)
        return cls(tuple(float(lat) for lat, _ in pairs), tuple(bool(ok) for _, ok in pairs))

    def __add__(self, other: ArmSamples) -> ArmSamples:
        slices = (self.slice_values() + other.slice_values()
                  if self.slices or other.slices else ())
        return ArmSamples(self.latency_ms + other.latency_ms, self.ok + other.ok, slices)

    def slice_values(self) -> tuple[str, ...]:
        """Each request's slice value (``""`` for every one when not sliced)."""
        return self.slices or ("",) * len(self.ok)

    def only(self, value: str) -> ArmSamples:
        """The requests of slice ``value``."""
        kept = [i for i, v in enumerate(self.slice_values()) if v == value]
        return ArmSamples(tuple(self.latency_ms[i] for i in kept),
                          tuple(self.ok[i] for i in kept), (value,) * len(kept))

    @property
    def requests(self) -> int:
        """Requests sent."""
        return len(self.ok)

    @property
    def errors(self) -> int:
        """Requests that failed."""
        return self.ok.count(False)

    def ok_latencies(self) -> list[float]:
        """Latencies of the successful requests, ascending."""
        return sorted(lat for lat, good in zip(self.latency_ms, self.ok, strict=True) if good)


@dataclass(frozen=True)
class Samples:
    """Both arms, taken in the same window."""

    canary: ArmSamples = field(default_factory=ArmSamples)
    primary: ArmSamples = field(default_factory=ArmSamples)

    def __add__(self, other: Samples) -> Samples:
        return Samples(self.canary + other.canary, self.primary + other.primary)


@dataclass(frozen=True)
class ArmStats:
    """One arm's numbers: counts, error rate and latency percentiles of successful requests."""

    requests: int
    errors: int
    error_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None

    @classmethod
    def of(cls, arm: ArmSamples, ok_sorted: Sequence[float]) -> ArmStats:
        """Summarise ``arm`` (``ok_sorted``: its successful latencies, ascending)."""
        rate = arm.errors / arm.requests if arm.requests else None
        if not ok_sorted:
            return cls(arm.requests, arm.errors, rate, None, None, None)
        p50, p95, p99 = (stats.percentile(ok_sorted, q) for q in (50, 95, 99))
        return cls(arm.requests, arm.errors, rate, p50, p95, p99)


@dataclass(frozen=True)
class SliceRow:
    """One slice of the window: both arms' numbers and what the judge made of it.

    ``status``: ``failed``, ``within limits``, ``not clear yet``, ``filling``, ``too small``,
    or ``not judged`` (beyond ``max_slices``).
    """

    value: str
    canary: ArmStats
    primary: ArmStats
    status: str


@dataclass(frozen=True)
class Check:
    """One check at one look: its status, both arms' figures, the threshold and the test.

    ``slices``: the ``SLICES`` check's table (empty for the other checks).
    """

    metric: Metric
    status: CheckStatus
    canary: float | None
    primary: float | None
    threshold: float | None
    p_value: float | None
    level: float | None
    reason: str
    slices: tuple[SliceRow, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """The judge's decision, with the reasons and every number it rests on."""

    outcome: Outcome
    reasons: tuple[str, ...]
    canary: ArmStats
    primary: ArmStats
    checks: tuple[Check, ...] = ()
    look: int = 0
    looks: int = 0
    requests_per_arm: int = 0

    @property
    def passed(self) -> bool:
        """True only for PASS."""
        return self.outcome is Outcome.PASS

    @property
    def decided(self) -> bool:
        """PASS or FAIL: the step can end."""
        return self.outcome is not Outcome.INCONCLUSIVE


@dataclass(frozen=True)
class SequentialJudge:
    """The judge's state across looks of one step: the window so far and what was tested."""

    samples: Samples = field(default_factory=Samples)
    looks_done: int = 0
    verdict: Verdict | None = None  # set once decided (PASS or FAIL); later looks return it


def evaluate(samples: Samples, policy: AnalysisPolicy) -> Verdict:
    """Judge ``samples`` once, as the look their size reaches (see ``look`` to repeat)."""
    return look(SequentialJudge(), samples, policy)[1]


def look(
    state: SequentialJudge, samples: Samples, policy: AnalysisPolicy
) -> tuple[SequentialJudge, Verdict]:
    """Add ``samples`` (new requests) to the window and judge it if a new look is due.

    A decided state is final: it returns its verdict and ignores further samples.
    """
    if state.verdict is not None:
        return state, state.verdict
    window = state.samples + samples
    canary_ok, primary_ok = window.canary.ok_latencies(), window.primary.ok_latencies()
    arms = (ArmStats.of(window.canary, canary_ok), ArmStats.of(window.primary, primary_ok))
    requests = min(window.canary.requests, window.primary.requests)
    k = policy.look_reached(requests)
    waiting = _waiting(window, requests, k, state.looks_done, policy)
    if waiting is not None:
        verdict = Verdict(Outcome.INCONCLUSIVE, (waiting,), *arms, look=state.looks_done,
                          looks=policy.looks, requests_per_arm=requests)
        return SequentialJudge(window, state.looks_done), verdict
    checks = tuple(_check(metric, window, canary_ok, primary_ok, arms, k, policy)
                   for metric in policy.checks)
    verdict = _decide(checks, arms, k, requests, policy)
    return SequentialJudge(window, k, verdict if verdict.decided else None), verdict


def _waiting(
    window: Samples, requests: int, k: int, done: int, policy: AnalysisPolicy
) -> str | None:
    canary, primary = window.canary.requests, window.primary.requests
    if canary == 0 or primary == 0:
        return f"no traffic: canary {canary} requests, primary {primary} requests"
    if requests < policy.min_requests:
        return (f"too few requests: canary {canary}, primary {primary}, "
                f"need {policy.min_requests} per arm")
    if done >= policy.looks:
        return f"all {policy.looks} looks done without a decision ({requests} requests per arm)"
    if k <= done:
        return (f"waiting for look {done + 1}/{policy.looks} at "
                f"{policy.look_requests(done + 1)} requests per arm (have {requests})")
    return None


def _decide(
    checks: tuple[Check, ...], arms: tuple[ArmStats, ArmStats], k: int, requests: int,
    policy: AnalysisPolicy,
) -> Verdict:
    statuses = {check.status for check in checks}
    final = k >= policy.looks
    if CheckStatus.FAIL in statuses:
        outcome, shown = Outcome.FAIL, [c for c in checks if c.status is CheckStatus.FAIL]
    elif CheckStatus.NO_DATA in statuses:
        outcome, shown = Outcome.INCONCLUSIVE, [c for c in checks if c.status is not
                                                CheckStatus.PASS]
    elif final and (over := _over_limit(checks)):
        outcome, shown = Outcome.INCONCLUSIVE, over
    elif final or statuses == {CheckStatus.PASS}:
        outcome, shown = Outcome.PASS, list(checks)
    else:
        outcome, shown = Outcome.INCONCLUSIVE, [c for c in checks if c.status is
                                                CheckStatus.HOLD]
    where = f"look {k}/{policy.looks}, {requests} requests per arm"
    if outcome is Outcome.INCONCLUSIVE and not final:
        where += f"; next look at {policy.look_requests(k + 1)}"
    reasons = tuple(f"{c.reason} [{where}]" for c in shown)
    return Verdict(outcome, reasons, *arms, checks=checks, look=k, looks=policy.looks,
                   requests_per_arm=requests)


ABSOLUTE_LIMITS = (Metric.ERROR_RATE, Metric.LATENCY_P95, Metric.LATENCY_P99)


def _over_limit(checks: tuple[Check, ...]) -> list[Check]:
    """Undecided absolute checks whose canary figure is beyond its limit.

    At the last look these make the step inconclusive rather than a pass: a canary
    measured at 3% errors against a 1% limit has not shown it is fine, only that the
    window was too small to prove it is not.
    """
    return [c for c in checks if c.status is CheckStatus.HOLD and c.metric in ABSOLUTE_LIMITS
            and c.canary is not None and c.threshold is not None and c.canary > c.threshold]


def _check(
    metric: Metric, window: Samples, canary_ok: list[float], primary_ok: list[float],
    arms: tuple[ArmStats, ArmStats], k: int, policy: AnalysisPolicy,
) -> Check:
    level = policy.level(k, metric)
    if metric is Metric.LATENCY_REGRESSION:
        return latency_regression(canary_ok, primary_ok, arms, level, policy)
    if metric is Metric.ERROR_RATE:
        return error_rate(window.canary, window.primary, level, policy)
    if metric is Metric.ERROR_REGRESSION:
        return error_regression(window.canary, window.primary, level)
    if metric is Metric.LATENCY_P95:
        assert policy.p95_ms is not None
        return _slo(metric, 95, policy.p95_ms, canary_ok, arms, level)
    if metric in TAILS:
        return _tail(metric, TAILS[metric], canary_ok, primary_ok, k, level, policy)
    if metric is Metric.SLICES:
        from modelrelease.domain.slices import slice_check  # it builds on this module's checks

        return slice_check(window, level, policy)
    assert policy.p99_ms is not None
    return _slo(metric, 99, policy.p99_ms, canary_ok, arms, level)


def _p(value: float) -> str:
    return f"{value:.2g}" if value < 0.001 else f"{value:.4f}"


def _pct(value: float) -> str:
    return f"{value:+.1%}"


def latency_regression(
    canary: list[float], primary: list[float], arms: tuple[ArmStats, ArmStats], level: float,
    policy: AnalysisPolicy,
) -> Check:
    """``LATENCY_REGRESSION`` on the successful latencies (ascending) of both arms."""
    tolerance = policy.max_latency_regression
    if len(canary) < 2 or len(primary) < 2:
        return Check(Metric.LATENCY_REGRESSION, CheckStatus.NO_DATA, None, None, tolerance, None,
                     level, f"latency: too few successful requests to compare (canary "
                     f"{len(canary)}, primary {len(primary)})")
    c95, p95 = arms[0].p95_ms, arms[1].p95_ms
    assert c95 is not None and p95 is not None
    figures = f"canary p95 {c95:.1f} ms vs primary {p95:.1f} ms ({_pct(c95 / p95 - 1)})"
    slower = stats.mann_whitney(canary, primary, Alternative.GREATER)
    if slower.p_value <= level:
        ratio = stats.hodges_lehmann_ratio(canary, primary)
        if ratio > 1.0 + tolerance:
            return Check(Metric.LATENCY_REGRESSION, CheckStatus.FAIL, c95, p95, tolerance,
                         slower.p_value, level,
                         f"latency regression: {figures}; typical request {_pct(ratio - 1)} "
                         f"> tolerance {tolerance:.0%} (Mann-Whitney p={_p(slower.p_value)} "
                         f"<= alpha {_p(level)})")
    scaled = [value / (1.0 + tolerance) for value in canary]
    within = stats.mann_whitney(scaled, primary, Alternative.LESS)
    if within.p_value <= level:
        return Check(Metric.LATENCY_REGRESSION, CheckStatus.PASS, c95, p95, tolerance,
                     within.p_value, level,
                     f"latency within tolerance: {figures}; canary below primary "
                     f"+{tolerance:.0%} (Mann-Whitney p={_p(within.p_value)} <= alpha "
                     f"{_p(level)})")
    return Check(Metric.LATENCY_REGRESSION, CheckStatus.HOLD, c95, p95, tolerance,
                 slower.p_value, level,
                 f"latency: {figures}; no regression beyond tolerance {tolerance:.0%} shown "
                 f"(Mann-Whitney p={_p(slower.p_value)}, alpha {_p(level)})")


def _rate(errors: int, requests: int) -> str:
    return f"{errors / requests:.2%} ({errors}/{requests})"


class Counts(Protocol):
    """One arm's requests and how many failed: generated samples, or live traffic."""

    @property
    def requests(self) -> int:
        """Requests, whatever their outcome."""

    @property
    def errors(self) -> int:
        """Requests that failed."""


def limit_test(count: int, n: int, share: float, level: float) -> tuple[CheckStatus, float]:
    """Exact binomial test of ``count`` of ``n`` against a limit of ``share`` of them.

    FAIL when significantly above the limit, PASS when significantly below, HOLD
    otherwise; with the p-value of the side that decided (the upper one but for a PASS).
    The error rate and the p95/p99 SLOs are this test, on generated load and on live
    traffic alike.
    """
    above = stats.binomial_sf(count, n, share)
    if above <= level:
        return CheckStatus.FAIL, above
    below = stats.binomial_cdf(count, n, share)
    if below <= level:
        return CheckStatus.PASS, below
    return CheckStatus.HOLD, above


def error_rate(canary: Counts, primary: Counts, level: float, policy: AnalysisPolicy) -> Check:
    """``ERROR_RATE``: the canary's error rate against ``max_error_rate``."""
    limit = policy.max_error_rate
    figures = (f"canary {_rate(canary.errors, canary.requests)} vs primary "
               f"{_rate(primary.errors, primary.requests)}")
    c_rate, p_rate = canary.errors / canary.requests, primary.errors / primary.requests
    status, p = limit_test(canary.errors, canary.requests, limit, level)
    if status is CheckStatus.FAIL:
        reason = (f"error rate: {figures} > max {limit:.2%} (binomial p={_p(p)} <= "
                  f"alpha {_p(level)})")
    elif status is CheckStatus.PASS:
        reason = (f"error rate within max {limit:.2%}: {figures} (binomial p={_p(p)} "
                  f"<= alpha {_p(level)})")
    else:
        reason = (f"error rate: {figures}, max {limit:.2%}: not yet shown above or "
                  f"below (binomial p={_p(p)}, alpha {_p(level)})")
    return Check(Metric.ERROR_RATE, status, c_rate, p_rate, limit, p, level, reason)


def error_regression(canary: Counts, primary: Counts, level: float) -> Check:
    """``ERROR_REGRESSION``: the canary's errors against the primary's (it only fails)."""
    figures = (f"canary {_rate(canary.errors, canary.requests)} vs primary "
               f"{_rate(primary.errors, primary.requests)}")
    c_rate, p_rate = canary.errors / canary.requests, primary.errors / primary.requests
    worse = stats.fisher_greater(canary.errors, canary.requests, primary.errors,
                                 primary.requests)
    if worse <= level:
        return Check(Metric.ERROR_REGRESSION, CheckStatus.FAIL, c_rate, p_rate, p_rate, worse,
                     level, f"error regression: {figures}, canary above primary (Fisher "
                     f"exact p={_p(worse)} <= alpha {_p(level)})")
    return Check(Metric.ERROR_REGRESSION, CheckStatus.PASS, c_rate, p_rate, p_rate, worse,
                 level, f"errors vs primary: {figures}, not significantly worse (Fisher exact "
                 f"p={_p(worse)}, alpha {_p(level)})")


def _slo(
    metric: Metric, q: int, limit: float, canary: list[float],
    arms: tuple[ArmStats, ArmStats], level: float,
) -> Check:
    name = f"p{q}"
    allowed = (100 - q) / 100.0
    if not canary:
        return Check(metric, CheckStatus.NO_DATA, None, None, limit, None, level,
                     f"latency {name} SLO {limit:g} ms: no successful canary request")
    c_value, p_value = getattr(arms[0], f"{name}_ms"), getattr(arms[1], f"{name}_ms")
    primary = "no successful request" if p_value is None else f"{p_value:.1f} ms"
    slow = len(canary) - bisect_right(canary, limit)
    figures = (f"canary {name} {c_value:.1f} ms vs primary {primary}, SLO {limit:g} ms: "
               f"{slow} of {len(canary)} canary requests slower ({slow / len(canary):.1%}, "
               f"{allowed:.0%} allowed)")
    status, p = limit_test(slow, len(canary), allowed, level)
    if status is CheckStatus.FAIL:
        reason = (f"latency {name} SLO breached: {figures} (binomial p={_p(p)} <= "
                  f"alpha {_p(level)})")
    elif status is CheckStatus.PASS:
        reason = (f"latency {name} within SLO: {figures} (binomial p={_p(p)} <= alpha "
                  f"{_p(level)})")
    else:
        reason = (f"latency {name} SLO: {figures}; not yet shown above or below "
                  f"(binomial p={_p(p)}, alpha {_p(level)})")
    return Check(metric, status, c_value, p_value, limit, p, level, reason)


def _tail(
    metric: Metric, q: int, canary: list[float], primary: list[float], k: int, level: float,
    policy: AnalysisPolicy,
) -> Check:
    name = f"p{q}"
    tolerance = policy.max_latency_regression
    first = policy.first_look(metric)
    if k < first:
        return Check(metric, CheckStatus.NO_DATA, None, None, tolerance, None, level,
                     f"{name} tail: first tested at look {first}/{policy.looks} "
                     f"({policy.look_requests(first)} requests per arm); too few requests "
                     f"in the tail before")
    if not canary or not primary:
        return Check(metric, CheckStatus.NO_DATA, None, None, tolerance, None, level,
                     f"{name} tail: no successful request to compare (canary {len(canary)}, "
                     f"primary {len(primary)})")
    c_value, p_value = stats.percentile(canary, q), stats.percentile(primary, q)
    share = (len(canary) - bisect_right(canary, p_value)) / len(canary)
    figures = (f"{name} tail: {share:.1%} of canary requests above the primary's {name} "
               f"{p_value:.1f} ms (expected {(100 - q) / 100:.0%}); canary {name} "
               f"{c_value:.1f} ms ({_pct(c_value / p_value - 1)})")
    slower = stats.tail_test(canary, primary, q)
    split = (f"canary {slower.above_x} of {len(canary)} vs primary {slower.above_y} of "
             f"{len(primary)} above the pooled {name} {slower.threshold:.1f} ms; tail rank "
             f"test from the pooled p{100 - 2 * (100 - q)} {slower.start:.1f} ms")
    if slower.least_p_value > level:
        return Check(metric, CheckStatus.NO_DATA, c_value, p_value, tolerance, None, level,
                     f"{figures}; too few requests in the tail to test it ({split}: even "
                     f"the slowest all in the canary would give p={_p(slower.least_p_value)} "
                     f"> alpha {_p(level)})")
    if slower.p_value <= level and c_value > p_value * (1.0 + tolerance):
        return Check(metric, CheckStatus.FAIL, c_value, p_value, tolerance, slower.p_value,
                     level, f"{name} tail regression: {figures} > tolerance {tolerance:.0%}; "
                     f"{split} (p={_p(slower.p_value)} <= alpha {_p(level)})")
    within = stats.tail_test(primary, [value / (1.0 + tolerance) for value in canary], q)
    if within.p_value <= level:
        return Check(metric, CheckStatus.PASS, c_value, p_value, tolerance, within.p_value,
                     level, f"{name} tail within tolerance: {figures}; canary below primary "
                     f"+{tolerance:.0%} in the tail (tail rank test p={_p(within.p_value)} "
                     f"<= alpha {_p(level)})")
    return Check(metric, CheckStatus.HOLD, c_value, p_value, tolerance, slower.p_value, level,
                 f"{figures}; no tail regression beyond tolerance {tolerance:.0%} shown "
                 f"({split}, p={_p(slower.p_value)}, alpha {_p(level)})")
