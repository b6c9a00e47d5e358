"""Live traffic as evidence: the pods' own metrics over a step, judged beside generated load.

Pure. The adapter scrapes every pod of each track (``/metrics``, through the API server's
pod proxy) when a step's analysis starts and when it ends, or, when a Prometheus URL is
configured, reads the same counters at those two moments from Prometheus
(``domain.promql``); this module turns the two scrapes into what real users sent each arm
meanwhile, and judges that. The report names the source.

**What is live.** Per pod, the step's delta of ``modelrelease_requests_total`` (by status)
and of the ``modelrelease_request_seconds`` histogram, for ``/invocations``; a pod that is
new, or whose counters went down (a restart), counts from zero. The judge's own requests
carry the ``X-Modelrelease-Load`` header and the pods count them again in
``modelrelease_generated_*``, so subtracting those leaves exactly the live share, latency
included. Pods that do not export the generated series (an older serving base) get the
load generator's known counts per status subtracted from the track's total instead; their
histogram cannot be split, so such evidence has no latency.

**How it is judged.** Once, at the end of the step, with the policy the generated load is
judged by; ``alpha`` is split evenly (Bonferroni) over five checks, each an
``analysis.Check`` (a breach in live traffic's own words):

* error rate: the judge's own check (``analysis.error_rate``, exact binomial test of
  ``H0: canary error rate <= max_error_rate``) on the live counts;
* error regression: the judge's own check (``analysis.error_regression``, Fisher's exact
  test, canary errors vs primary errors) on the live counts;
* p95 / p99 SLO: the requests *certainly* slower than the limit (those in buckets whose
  lower bound is at or above it: a lower bound, so never a false breach from bucket
  width), the judge's binomial test (``analysis.limit_test``) of ``H0: at most 5% (1%)
  are``;
* latency regression: Mann-Whitney on bucket ranks, and the ratio of the interpolated
  medians above ``1 + max_latency_regression`` (the judge's Hodges-Lehmann ratio needs
  each request's latency, which a histogram does not keep);
* tail regression (p95 and p99, half the share each): the judge's upper-tail rank test
  (``stats.tail_test``) on bucket ranks, and the interpolated p95 (p99) above the primary's
  times ``1 + max_latency_regression``: a canary that slows only its slowest requests
  moves no median.

**Slices.** When the spec judges slices (``spec.canary.checks.slices``), the pods are told
the slice key and count ``/invocations`` requests per slice value as well
(``modelrelease_slice_*``, generated load apart again, see ``modelrelease.serving.metrics``).
Each slice value's live share is then judged like the generated load's slices
(``domain.slices``): the ``max_slices`` most frequent values, once both arms hold
``min_slice_requests``, on error rate and latency regression, with one more share of
``alpha`` split over ``max_slices`` slices and their two checks. Values the generated mix
never sends are judged too: that is what live slices are for. Pods that slice by another
key, or not at all (a primary deployed before the spec's slices), leave live traffic judged
whole, and the reason says so.

The evidence is one check of the step (``LiveEvidence.check``, combined by
``domain.verdict.step_verdict``): a breach FAILS the step; otherwise the evidence is
reported but cannot pass a step on its own. Fewer than ``min_requests`` live requests in
an arm is THIN: reported, and the step is judged on generated load only. Latency here is
the pod's own (from request to response inside the server, failed requests included), not
the client's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TypeVar

from modelrelease.domain import stats
from modelrelease.domain.analysis import (
    TAILS,
    AnalysisPolicy,
    ArmStats,
    Check,
    CheckStatus,
    Metric,
    SliceRow,
    error_rate,
    error_regression,
    limit_test,
)
from modelrelease.domain.exposition import Sample, parse, select
from modelrelease.domain.stats import Alternative

GENERATED_HEADER = "X-Modelrelease-Load"
"""The header the load generator sends; the pods count such requests apart."""
REQUESTS = "modelrelease_requests_total"
LATENCY = "modelrelease_request_seconds_bucket"
GENERATED_REQUESTS = "modelrelease_generated_requests_total"
GENERATED_LATENCY = "modelrelease_generated_request_seconds_bucket"
SLICE_KEY = "modelrelease_slice_key"
"""Gauge (1) a pod exports when it counts requests per slice; its ``key`` label says where
the value is read (``header X-Tenant``, ``column locale``)."""
SLICE_REQUESTS = "modelrelease_slice_requests_total"
SLICE_LATENCY = "modelrelease_slice_request_seconds_bucket"
GENERATED_SLICE_REQUESTS = "modelrelease_generated_slice_requests_total"
GENERATED_SLICE_LATENCY = "modelrelease_generated_slice_request_seconds_bucket"
_SLICE_SERIES = frozenset((SLICE_REQUESTS, SLICE_LATENCY, GENERATED_SLICE_REQUESTS,
                           GENERATED_SLICE_LATENCY))
SLICE_HEADER_ENV = "MODELRELEASE_SLICE_HEADER"
SLICE_COLUMN_ENV = "MODELRELEASE_SLICE_COLUMN"
PATH = "/invocations"
CHECKS = 5  # error rate, error regression, SLO, latency and tail regression share alpha
SLICE_CHECKS = 2  # per slice: error rate and latency regression
K = TypeVar("K", str, float)


@dataclass(frozen=True)
class Traffic:
    """Requests by HTTP status and the cumulative latency histogram (``le`` in seconds)."""

    statuses: Mapping[str, float] = field(default_factory=dict)
    buckets: Mapping[float, float] = field(default_factory=dict)

    def __add__(self, other: Traffic) -> Traffic:
        return Traffic(_sum(self.statuses, other.statuses), _sum(self.buckets, other.buckets))

    def minus(self, other: Traffic) -> Traffic:
        """What is left of this after ``other`` (never below zero)."""
        return Traffic({k: max(0.0, v - other.statuses.get(k, 0.0))
                        for k, v in self.statuses.items()},
                       {k: max(0.0, v - other.buckets.get(k, 0.0))
                        for k, v in self.buckets.items()})

    def went_down_since(self, earlier: Traffic) -> bool:
        """Whether any counter is below its earlier value (the process restarted)."""
        return any(self.statuses.get(k, 0.0) < v for k, v in earlier.statuses.items())

    @property
    def requests(self) -> int:
        """Requests, whatever their status."""
        return round(sum(self.statuses.values()))

    @property
    def errors(self) -> int:
        """Requests answered with anything but a 2xx."""
        return round(sum(v for k, v in self.statuses.items() if not k.startswith("2")))


def _sum(a: Mapping[K, float], b: Mapping[K, float]) -> dict[K, float]:
    out = dict(a)
    for key, value in b.items():
        out[key] = out.get(key, 0.0) + value
    return out


def _traffic(samples: Iterable[Sample], requests: str, latency: str) -> Traffic | None:
    samples = tuple(samples)
    counted = select(samples, requests, path=PATH)
    buckets = select(samples, latency, path=PATH)
    if not counted and not buckets:
        return None
    return Traffic({s.label("status") or "": s.value for s in counted},
                   {float(s.label("le") or "nan"): s.value for s in buckets})


@dataclass(frozen=True)
class PodTraffic:
    """One pod's counters at one scrape: everything, and the load generator's part.

    ``slice_key``: where the pod reads a request's slice value (None: it does not slice),
    and ``slices`` the same counters per slice value it has seen.
    """

    total: Traffic
    generated: Traffic | None  # None: the pod does not count generated load apart
    slice_key: str | None = None
    slices: Mapping[str, PodTraffic] = field(default_factory=dict)

    @classmethod
    def of(cls, text: str) -> PodTraffic:
        """From a ``/metrics`` answer (raises ValueError when it is not the text format)."""
        return cls.from_samples(parse(text))

    @classmethod
    def from_samples(cls, samples: Iterable[Sample]) -> PodTraffic:
        """From one pod's samples (a scrape, or Prometheus' values at one moment)."""
        samples = tuple(samples)
        key = next((s.label("key") for s in select(samples, SLICE_KEY) if s.value), None)
        by_value: dict[str, list[Sample]] = {}  # one pass: a pod may count 100 values
        for sample in samples:
            if sample.name in _SLICE_SERIES and (value := sample.label("slice")):
                by_value.setdefault(value, []).append(sample)
        return cls(_traffic(samples, REQUESTS, LATENCY) or Traffic(),
                   _traffic(samples, GENERATED_REQUESTS, GENERATED_LATENCY), key,
                   {value: cls(_traffic(group, SLICE_REQUESTS, SLICE_LATENCY) or Traffic(),
                               _traffic(group, GENERATED_SLICE_REQUESTS,
                                        GENERATED_SLICE_LATENCY) or Traffic())
                    for value, group in sorted(by_value.items())
                    if any(s.name in (SLICE_REQUESTS, SLICE_LATENCY) for s in group)})

    def since(self, earlier: PodTraffic | None) -> PodTraffic:
        """The change since ``earlier`` (all of it for a new or restarted pod)."""
        if earlier is None or self.total.went_down_since(earlier.total):
            return self
        generated = None if self.generated is None else self.generated.minus(
            earlier.generated or Traffic())
        return PodTraffic(self.total.minus(earlier.total), generated, self.slice_key,
                          {value: part.since(earlier.slices.get(value, _NOTHING))
                           for value, part in self.slices.items()})


_NOTHING = PodTraffic(Traffic(), Traffic())


@dataclass(frozen=True)
class TrackScrape:
    """One track's pods at one moment, by pod name, and the pods that could not be read."""

    pods: Mapping[str, PodTraffic] = field(default_factory=dict)
    failures: tuple[str, ...] = ()

    def slice_values(self) -> set[str]:
        """Every slice value any pod has counted."""
        return {value for pod in self.pods.values() for value in pod.slices}

    def only(self, value: str) -> TrackScrape:
        """The same pods' counters of one slice value (zero where a pod has none)."""
        return TrackScrape({name: pod.slices.get(value, _NOTHING)
                            for name, pod in self.pods.items()}, self.failures)


def live_share(before: TrackScrape, after: TrackScrape,
               sent: Mapping[str, int]) -> tuple[Traffic, bool]:
    """What real users sent a track between two scrapes, and whether it was split exactly.

    ``sent``: the load generator's requests to that track by status. Used only when some
    pod does not count generated load itself; the result then has no histogram.
    """
    deltas = [pod.since(before.pods.get(name)) for name, pod in after.pods.items()]
    total = sum((d.total for d in deltas), Traffic())
    if deltas and all(d.generated is not None for d in deltas):
        generated = sum((d.generated or Traffic() for d in deltas), Traffic())
        return total.minus(generated), True
    known = Traffic({k: float(v) for k, v in sent.items()})
    return Traffic(total.minus(known).statuses), False


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The ``q`` quantile (0..1) in seconds, interpolated within its bucket (as Prometheus).

    None for an empty histogram; a quantile in the ``+Inf`` bucket is the highest bound.
    """
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    (lower, below), (upper, cumulative) = next(
        (low, high) for low, high in zip([(0.0, 0.0), *ordered], ordered, strict=False)
        if high[1] >= rank)
    if math.isinf(upper):
        return lower
    return lower + (upper - lower) * (rank - below) / (cumulative - below)


def _ms(q: float, buckets: Mapping[float, float]) -> float | None:
    seconds = histogram_quantile(q, buckets)
    return None if seconds is None else seconds * 1000.0


def arm_stats(traffic: Traffic) -> ArmStats:
    """The report's figures for one arm (percentiles from the histogram, in ms)."""
    rate = traffic.errors / traffic.requests if traffic.requests else None
    return ArmStats(traffic.requests, traffic.errors, rate, _ms(0.5, traffic.buckets),
                    _ms(0.95, traffic.buckets), _ms(0.99, traffic.buckets))


class LiveOutcome(StrEnum):
    """What live traffic showed."""

    PASS = "pass"  # enough of it, and no breach
    FAIL = "fail"  # a significant breach: the step fails
    THIN = "thin"  # too few live requests in an arm: generated load only
    UNAVAILABLE = "unavailable"  # the pods' metrics could not be read


@dataclass(frozen=True)
class LiveEvidence:
    """Live traffic's verdict for one step, with both arms' figures when it was used."""

    outcome: LiveOutcome
    reason: str
    canary: ArmStats | None = None
    primary: ArmStats | None = None
    via: str = "pod metrics"  # where the counters were read: the pods, or a Prometheus
    slices: tuple[SliceRow, ...] = ()  # live traffic per slice value, when judged so

    @property
    def used(self) -> bool:
        """Whether live traffic was judged (enough of it, read from the pods)."""
        return self.outcome in (LiveOutcome.PASS, LiveOutcome.FAIL)

    @property
    def source(self) -> str:
        """Where this step's evidence came from, for the report."""
        if self.canary is None or self.primary is None or not self.used:
            return "generated load"
        return (f"generated load + live traffic ({self.via}, "
                f"{self.canary.requests + self.primary.requests} requests)")

    @property
    def check(self) -> Check:
        """Live traffic as one check of the step (see ``domain.verdict``).

        FAIL on a breach; PASS when enough of it showed none (which cannot pass a step on
        its own); NO_DATA when it was too thin or could not be read.
        """
        status = {LiveOutcome.FAIL: CheckStatus.FAIL, LiveOutcome.PASS: CheckStatus.PASS}.get(
            self.outcome, CheckStatus.NO_DATA)
        return Check(Metric.LIVE, status, None, None, None, None, None, self.reason)

    @property
    def numbers(self) -> dict[str, float]:
        """The figures for the status's ``lastVerdict.numbers``."""
        out = {"live_used": 1.0 if self.used else 0.0}
        for arm, figures in (("canary", self.canary), ("primary", self.primary)):
            if figures is None:
                continue
            out[f"live_requests_{arm}"] = float(figures.requests)
            for key in ("error_rate", "p50_ms", "p95_ms", "p99_ms"):
                value = getattr(figures, key)
                if value is not None:
                    out[f"live_{key}_{arm}"] = float(value)
        return out


@dataclass(frozen=True)
class SlicedTraffic:
    """Live traffic per slice value: ``(canary, primary)`` by value.

    ``missing``: why the pods' counters could not be sliced (then ``arms`` is empty).
    """

    key: str
    arms: Mapping[str, tuple[Traffic, Traffic]] = field(default_factory=dict)
    missing: str = ""


def sliced(before: Mapping[str, TrackScrape], after: Mapping[str, TrackScrape],
           key: str) -> SlicedTraffic:
    """What real users sent each arm per slice value, when every pod slices by ``key``.

    A track without a ``primary`` (a first release) stands for both arms, as in
    ``evidence``.
    """
    for track, scrape in sorted(after.items()):
        other = sorted({str(pod.slice_key) for pod in scrape.pods.values()} - {key})
        if other:
            return SlicedTraffic(key, missing=(
                f"the {track}'s pods count live requests by {', '.join(other)}, not by {key} "
                "(they were deployed before the spec's slices were; they will be once "
                "promoted), so live traffic is judged whole only"))
    values = set().union(*(scrape.slice_values() for scrape in after.values()))
    arms: dict[str, tuple[Traffic, Traffic]] = {}
    for value in sorted(values):
        share = {track: live_share(before.get(track, TrackScrape()).only(value),
                                   scrape.only(value), {})[0]
                 for track, scrape in after.items()}
        arms[value] = share["canary"], share.get("primary", share["canary"])
    return SlicedTraffic(key, arms)


def evidence(before: Mapping[str, TrackScrape], after: Mapping[str, TrackScrape],
             sent: Mapping[str, Mapping[str, int]], policy: AnalysisPolicy, *,
             via: str = "pod metrics", slice_key: str | None = None) -> LiveEvidence:
    """Judge what real users sent ``canary`` and ``primary`` between the two scrapes.

    A first release has no ``primary`` track: its canary stands for both arms, so only
    the absolute checks (error rate, SLOs) can fail it. ``via`` names where the scrapes
    came from, for the report. ``slice_key`` (the spec's slices, e.g. ``column locale``):
    judge each slice value's live requests too.
    """
    for track, scrape in sorted(after.items()):
        if not scrape.pods:
            why = "; ".join(scrape.failures) or "no pods"
            return LiveEvidence(LiveOutcome.UNAVAILABLE,
                                f"live traffic unknown: {track} {via} unreadable "
                                f"({why}), generated load only", via=via)
    shares = {track: live_share(before.get(track, TrackScrape()), scrape, sent.get(track, {}))
              for track, scrape in after.items()}
    canary, exact = shares["canary"]
    primary, primary_exact = shares.get("primary", (canary, exact))
    return judge(canary, primary, policy, exact=exact and primary_exact,
                 compare="primary" in shares, via=via,
                 slices=None if slice_key is None else sliced(before, after, slice_key))


def judge(canary: Traffic, primary: Traffic, policy: AnalysisPolicy, *, exact: bool = True,
          compare: bool = True, via: str = "pod metrics",
          slices: SlicedTraffic | None = None) -> LiveEvidence:
    """Judge live ``canary`` against live ``primary`` (``compare=False``: canary alone).

    ``slices``: the same traffic per slice value; each slice's error rate and latency are
    judged too, with one more share of ``alpha`` split over ``max_slices`` slices.
    """
    arms = arm_stats(canary), arm_stats(primary)
    fewest = min(canary.requests, primary.requests)
    if fewest < policy.min_requests:
        return LiveEvidence(LiveOutcome.THIN, (
            f"live traffic too thin ({fewest} < {policy.min_requests} requests per arm: "
            f"canary {canary.requests}, primary {primary.requests}), generated load only"
            + ("" if via == "pod metrics" else f" ({via})")),
            *arms, via=via)
    level = policy.alpha / (CHECKS + (slices is not None))
    rows, sliced_breaches, note = (((), [], "") if slices is None
                                   else _judge_slices(slices, policy, level, compare))
    checks = [_error_rate(canary, primary, policy, level),
              *([_error_regression(canary, primary, level)] if compare else []),
              *_slo(canary, policy, level),
              *(_latency_regression(canary, primary, policy, level) if compare else []),
              *(_tail(canary, primary, policy, level / len(TAILS)) if compare else [])]
    breaches = [c.reason for c in checks if c.status is CheckStatus.FAIL] + sliced_breaches
    head = (f"live traffic ({via}, canary {canary.requests} / primary "
            f"{primary.requests} requests"
            + ("" if exact else "; generated load subtracted by its known counts, no latency")
            + ")")
    if breaches:
        return LiveEvidence(LiveOutcome.FAIL, f"{head}: {'; '.join(breaches)}", *arms, via=via,
                            slices=rows)
    c, p = arms
    return LiveEvidence(LiveOutcome.PASS, (
        f"{head}: no breach: canary errors {_pct(c.error_rate)} (limit "
        f"{_pct(policy.max_error_rate)}) vs primary {_pct(p.error_rate)}; p50 {_num(c.p50_ms)} "
        f"vs {_num(p.p50_ms)} ms, p99 {_num(c.p99_ms)} vs {_num(p.p99_ms)} ms"
        + (f"; {note}" if note else "")), *arms, via=via, slices=rows)


def _judge_slices(slices: SlicedTraffic, policy: AnalysisPolicy, level: float,
                  compare: bool) -> tuple[tuple[SliceRow, ...], list[str], str]:
    """Each slice's rows, its breaches, and a line saying which slices were judged.

    The ``max_slices`` most frequent values are judged once both arms hold
    ``min_slice_requests`` of them; ``level`` is split over ``max_slices`` slices and
    their checks (error rate against ``max_error_rate``; latency against the primary's
    same slice), a count fixed by the policy, as in ``domain.slices``.
    """
    if slices.missing:
        return (), [], slices.missing
    each = level / (max(1, policy.max_slices) * SLICE_CHECKS)
    ranked = sorted(slices.arms, key=lambda v: (-sum(t.requests for t in slices.arms[v]), v))
    rows: list[SliceRow] = []
    breaches: list[str] = []
    for rank, value in enumerate(ranked):
        canary, primary = slices.arms[value]
        if rank >= policy.max_slices:
            status = "not judged"
        elif min(canary.requests, primary.requests) < policy.min_slice_requests:
            status = "too few requests"
        else:
            found = [c for c in (_error_rate(canary, primary, policy, each),
                                 *(_latency_regression(canary, primary, policy, each)
                                   if compare else [])) if c.status is CheckStatus.FAIL]
            breaches += [f"slice {value!r} ({canary.requests} / {primary.requests} requests): "
                         f"{c.reason}" for c in found]
            status = "failed" if found else "no breach"
        rows.append(SliceRow(value, arm_stats(canary), arm_stats(primary), status))
    judged = [r.value for r in rows if r.status in ("failed", "no breach")]
    note = (f"slices by {slices.key}: judged {', '.join(judged) or 'none'} "
            f"(at least {policy.min_slice_requests} live requests per arm)")
    return tuple(rows), breaches, note


def slo_checks(traffic: Traffic, policy: AnalysisPolicy, level: float) -> list[Check]:
    """One track's live traffic against the absolute limits alone, each check at ``level``.

    The error rate against ``max_error_rate`` and the p95 / p99 SLOs, in live traffic's own
    words: what a bake judges the new primary by (``domain.bake``).
    """
    return [_error_rate(traffic, traffic, policy, level), *_slo(traffic, policy, level)]


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.2f}%"


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _worded(check: Check, breach: str) -> Check:
    """``check`` on live traffic: a breach in live traffic's own words."""
    return replace(check, reason=breach) if check.status is CheckStatus.FAIL else check


def _error_rate(canary: Traffic, primary: Traffic, policy: AnalysisPolicy,
                level: float) -> Check:
    """The judge's error-rate check (``analysis.error_rate``) on live counts."""
    check = error_rate(canary, primary, level, policy)
    return _worded(check, f"live error rate {_pct(canary.errors / canary.requests)} above "
                          f"{_pct(policy.max_error_rate)} ({canary.errors} of "
                          f"{canary.requests}, p={check.p_value:.2g} <= {level:.2g})")


def _error_regression(canary: Traffic, primary: Traffic, level: float) -> Check:
    """The judge's error-regression check (``analysis.error_regression``) on live counts."""
    check = error_regression(canary, primary, level)
    return _worded(check, f"live errors regressed: canary {canary.errors} of "
                          f"{canary.requests}, primary {primary.errors} of {primary.requests} "
                          f"(Fisher p={check.p_value:.2g} <= {level:.2g})")


def _slo(canary: Traffic, policy: AnalysisPolicy, level: float) -> list[Check]:
    """p95/p99 limits: requests certainly slower than the limit, against 5% (1%).

    The judge's binomial limit test (``analysis.limit_test``) on a lower bound of the slow
    requests: those in buckets whose lower bound is at or above the limit.
    """
    ordered = sorted(canary.buckets.items())
    if not ordered:
        return []
    total = ordered[-1][1]
    out: list[Check] = []
    for metric, name, limit_ms, share in ((Metric.LATENCY_P95, "p95", policy.p95_ms, 0.05),
                                          (Metric.LATENCY_P99, "p99", policy.p99_ms, 0.01)):
        if limit_ms is None:
            continue
        limit = limit_ms / 1000.0
        slow = round(total - next(c for le, c in ordered if le >= limit))
        status, p = limit_test(slow, round(total), share, level)
        figures = (f"{slow} of {round(total)} requests slower (allowed {share:.0%}, "
                   f"p={p:.2g}")
        out.append(Check(metric, status, None, None, limit_ms, p, level,
                         f"live {name} above {limit_ms:g} ms: {figures} <= {level:.2g})"
                         if status is CheckStatus.FAIL else
                         f"live {name} SLO {limit_ms:g} ms: {figures}, alpha {level:.2g})"))
    return out


def _ranks(buckets: Mapping[float, float]) -> list[float]:
    """Each request as its bucket's index: Mann-Whitney needs only the order."""
    ordered = sorted(buckets.items())
    out: list[float] = []
    below = 0.0
    for index, (_, cumulative) in enumerate(ordered):
        out += [float(index)] * max(0, round(cumulative - below))
        below = max(below, cumulative)
    return out


def _latency_regression(canary: Traffic, primary: Traffic, policy: AnalysisPolicy,
                        level: float) -> list[Check]:
    """Mann-Whitney on bucket ranks, and the ratio of the interpolated medians.

    Not the judge's check: its effect size, the Hodges-Lehmann ratio, needs each request's
    latency, which a histogram does not keep. None without histograms.
    """
    x, y = _ranks(canary.buckets), _ranks(primary.buckets)
    c50, p50 = _ms(0.5, canary.buckets), _ms(0.5, primary.buckets)
    if not x or not y or c50 is None or p50 is None:
        return []
    test = stats.mann_whitney(x, y, Alternative.GREATER)
    ratio, limit = c50 / p50, 1.0 + policy.max_latency_regression
    failed = test.p_value <= level and ratio > limit
    figures = f"canary p50 {c50:.1f} ms vs primary {p50:.1f} ms"
    return [Check(Metric.LATENCY_REGRESSION, CheckStatus.FAIL if failed else CheckStatus.PASS,
                  c50, p50, policy.max_latency_regression, test.p_value, level,
                  f"live latency regression: {figures} (x{ratio:.2f} > x{limit:.2f}, "
                  f"Mann-Whitney p={test.p_value:.2g} <= {level:.2g})" if failed else
                  f"live latency: {figures} (x{ratio:.2f}, tolerance x{limit:.2f}, "
                  f"Mann-Whitney p={test.p_value:.2g}, alpha {level:.2g})")]


def _tail(canary: Traffic, primary: Traffic, policy: AnalysisPolicy,
          level: float) -> list[Check]:
    """p95 and p99 tails: heavier in the canary (rank test) and beyond the tolerance.

    The judge's upper-tail rank test (``stats.tail_test``) on bucket ranks; the quantiles
    are interpolated within their buckets. None without histograms.
    """
    x, y = _ranks(canary.buckets), _ranks(primary.buckets)
    if not x or not y:
        return []
    limit = 1.0 + policy.max_latency_regression
    out: list[Check] = []
    for metric, q in TAILS.items():
        c, p = _ms(q / 100, canary.buckets), _ms(q / 100, primary.buckets)
        test = stats.tail_test(x, y, q)
        if c is None or p is None or test.p_value > level or c <= p * limit:
            out.append(Check(metric, CheckStatus.PASS, c, p, policy.max_latency_regression,
                             test.p_value, level,
                             f"live p{q} tail: canary p{q} {_num(c)} ms vs primary {_num(p)} "
                             f"ms, tolerance x{limit:.2f} (tail rank test on the histogram's "
                             f"buckets p={test.p_value:.2g}, alpha {level:.2g})"))
            continue
        out.append(Check(metric, CheckStatus.FAIL, c, p, policy.max_latency_regression,
                         test.p_value, level,
                         f"live p{q} tail regression: canary p{q} {c:.1f} ms vs primary "
                         f"{p:.1f} ms (x{c / p:.2f} > x{limit:.2f}; tail rank test on the "
                         f"histogram's buckets p={test.p_value:.2g} <= {level:.2g})"))
    return out
