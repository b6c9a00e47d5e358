"""The judge per slice of traffic: a regression confined to one tenant, locale or input shape.

Averaged over every request, a slice of 10% whose latency rises by half moves the whole
canary's median by a few percent, which no whole-traffic test can tell from noise. When
the requests carry a slice value (``ArmSamples.slices``: a header's value or an input
column's), ``slice_check`` runs the judge's latency check (Mann-Whitney and the
Hodges-Lehmann ratio against ``max_latency_regression``) and its error-rate check (exact
binomial against ``max_error_rate``) inside each slice, canary against primary of that
same slice. Pure, like the rest of the judge.

**Which slices.** The ``max_slices`` most frequent slice values (by requests in both arms;
ties by value). A slice is tested once both arms hold ``min_slice_requests`` of it. A slice
too small to ever be tested (its share of the window, times ``max_requests``, is below
``min_slice_requests``) is left out and named. Requests without a value are not sliced.

**Error control.** The slices get one share of ``alpha`` (``AnalysisPolicy.share``), split
evenly over ``max_slices`` slices and their two checks, whether or not that many slices
show up: Bonferroni with a count fixed by the plan, so identical arms split into any
number of slices are still judged FAIL with at most the share, over every look.

**Status.** FAIL when any tested slice fails a check (the reason names the slice, its
requests and the check's numbers). PASS when every slice that will be tested is tested
and clearly within both limits. HOLD otherwise: a slice still filling up, or one not yet
clearly within them (at the last look a HOLD lets the step pass, as for the other checks).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from modelrelease.domain.analysis import (
    AnalysisPolicy,
    ArmStats,
    Check,
    CheckStatus,
    Metric,
    Samples,
    SliceRow,
    error_rate,
    latency_regression,
)

__all__ = ["SliceCounts", "plan_slices", "slice_check"]

CHECKS_PER_SLICE = 2
"""Latency and error rate."""


@dataclass(frozen=True)
class SliceCounts:
    """Which slices the window has, and what becomes of each."""

    tested: tuple[str, ...]  # enough requests in both arms
    filling: tuple[str, ...]  # will be tested once both arms hold enough
    too_small: tuple[str, ...]  # would not reach ``min_slice_requests`` by ``max_requests``
    beyond: tuple[str, ...]  # less frequent than the ``max_slices`` judged ones


def plan_slices(window: Samples, policy: AnalysisPolicy) -> SliceCounts:
    """Sort the window's slice values into tested, filling, too small and beyond the cap."""
    canary = Counter(v for v in window.canary.slice_values() if v)
    primary = Counter(v for v in window.primary.slice_values() if v)
    both = canary + primary
    ranked = sorted(both, key=lambda value: (-both[value], value))
    judged, beyond = ranked[:policy.max_slices], ranked[policy.max_slices:]
    per_arm = max(1, min(window.canary.requests, window.primary.requests))
    tested, filling, too_small = [], [], []
    for value in judged:
        if min(canary[value], primary[value]) >= policy.min_slice_requests:
            tested.append(value)
        elif both[value] / 2 / per_arm * policy.max_requests >= policy.min_slice_requests:
            filling.append(value)
        else:
            too_small.append(value)
    return SliceCounts(tuple(tested), tuple(filling), tuple(too_small), tuple(beyond))


def slice_check(window: Samples, level: float, policy: AnalysisPolicy) -> Check:
    """The ``SLICES`` check at one look (``level``: the slices' share of this look)."""
    counts = plan_slices(window, policy)
    each = level / (policy.max_slices * CHECKS_PER_SLICE)
    failed: list[str] = []
    unclear: list[str] = []
    rows: list[SliceRow] = []
    for value in counts.tested:
        part = _part(window, value)
        canary_ok, primary_ok = part.canary.ok_latencies(), part.primary.ok_latencies()
        arms = ArmStats.of(part.canary, canary_ok), ArmStats.of(part.primary, primary_ok)
        requests = min(part.canary.requests, part.primary.requests)
        found = [latency_regression(canary_ok, primary_ok, arms, each, policy),
                 error_rate(part.canary, part.primary, each, policy)]
        for check in found:
            if check.status is CheckStatus.FAIL:
                failed.append(f"slice {value!r} ({requests} requests per arm): {check.reason}")
            elif check.status is not CheckStatus.PASS:
                unclear.append(f"{value!r} {check.metric.value.replace('_', ' ')}")
        statuses = {check.status for check in found}
        rows.append(SliceRow(value, *arms, "failed" if CheckStatus.FAIL in statuses
                             else "within limits" if statuses == {CheckStatus.PASS}
                             else "not clear yet"))
    for label, values in (("filling", counts.filling), ("too small", counts.too_small),
                          ("not judged", counts.beyond)):
        rows += [SliceRow(value, *_arms(_part(window, value)), label) for value in values]
    told = _counts(counts, policy)
    if failed:
        result, reason = CheckStatus.FAIL, f"{'; '.join(failed)} ({told})"
    elif not counts.tested and not counts.filling:
        result, reason = CheckStatus.HOLD, f"slices: none to test yet ({told})"
    elif unclear or counts.filling:
        result, reason = CheckStatus.HOLD, (f"slices: no slice shown worse; not yet clearly "
                                            f"within limits: {', '.join(unclear) or 'none'} "
                                            f"({told})")
    else:
        result, reason = CheckStatus.PASS, f"slices: every tested slice within limits ({told})"
    return Check(Metric.SLICES, result, None, None, None, None, each, reason, tuple(rows))


def _part(window: Samples, value: str) -> Samples:
    return Samples(window.canary.only(value), window.primary.only(value))


def _arms(part: Samples) -> tuple[ArmStats, ArmStats]:
    return (ArmStats.of(part.canary, part.canary.ok_latencies()),
            ArmStats.of(part.primary, part.primary.ok_latencies()))


def _counts(counts: SliceCounts, policy: AnalysisPolicy) -> str:
    parts = [f"tested: {', '.join(counts.tested) or 'none'}"]
    for label, values in (("filling", counts.filling), ("too small", counts.too_small),
                          (f"beyond the {policy.max_slices} most frequent", counts.beyond)):
        if values:
            parts.append(f"{label}: {', '.join(values)}")
    return "; ".join(parts)
