"""The bake after promotion, pure: when to look, and what each look says.

``canary.bake.duration`` after a promotion, the new primary serves every live request
while the previous version's pods stay warm at none (``Service E`` selects the primary's
slot alone once promoted, see ``domain.manifests.render_services``). The bake looks at the
new primary's pods ``looks`` times, ``interval`` apart (a twentieth of the duration, kept
between 5 and 30 seconds), and judges what real users sent them since the bake began
against the SLOs alone, the same checks a step applies to live traffic
(``domain.live.slo_checks``: error rate above ``maxErrorRate``, requests certainly slower
than ``latency.p95Ms`` / ``p99Ms``). Nothing compares against the previous version: it
gets no traffic.

**Error control.** ``alpha`` is split evenly (Bonferroni) over every look's three checks,
a number fixed before the first look, so the chance that a healthy primary is rolled back
stays below ``alpha`` however many looks the bake takes.

A breach at any look rolls back to the warm pods (``domain.rollout``). Fewer than
``minRequests`` live requests, or pods whose metrics cannot be read, breach nothing: the
bake ends promoted and its reason says that it judged nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from modelrelease.domain.analysis import AnalysisPolicy, CheckStatus
from modelrelease.domain.durations import format_duration
from modelrelease.domain.live import (
    LiveEvidence,
    LiveOutcome,
    TrackScrape,
    Traffic,
    arm_stats,
    slo_checks,
)

BAKE_CHECKS = 3
"""Checks per look: error rate, p95 SLO, p99 SLO."""
INTERVALS = (timedelta(seconds=5), timedelta(seconds=30))
"""The shortest and the longest wait between two looks."""


@dataclass(frozen=True)
class BakePlan:
    """How long a bake watches, in how many looks, how far apart."""

    duration: timedelta
    looks: int
    interval: timedelta

    def describe(self) -> str:
        """``10m: 20 looks, 30s apart``."""
        return (f"{format_duration(self.duration)}: {self.looks} look"
                f"{'s' if self.looks > 1 else ''}, {format_duration(self.interval)} apart")


def plan_bake(duration: timedelta) -> BakePlan:
    """The looks of a bake of ``duration``: a twentieth of it apart, within ``INTERVALS``."""
    shortest, longest = INTERVALS
    interval = min(max(duration / 20, shortest), longest)
    return BakePlan(duration, max(1, math.ceil(duration / interval)), interval)


def judge_bake(before: TrackScrape, after: TrackScrape, policy: AnalysisPolicy, looks: int,
               *, via: str = "pod metrics") -> LiveEvidence:
    """The new primary's live traffic from ``before`` (the bake's start) to ``after``.

    ``looks``: how many looks the bake takes in all (``alpha`` is split over them).
    ``via`` names where the counters were read. The evidence's ``canary`` figures are the
    new primary's (the one arm judged).
    """
    head = f"the new primary's live traffic ({via}"
    if not after.pods:
        why = "; ".join(after.failures) or "no pods"
        return LiveEvidence(LiveOutcome.UNAVAILABLE, f"{head}) unknown: {why}", via=via)
    deltas = [pod.since(before.pods.get(name)) for name, pod in after.pods.items()]
    # what real users sent: generated load (none while baking, but a pod may have counted
    # some) comes off where the pod counts it apart
    traffic = sum((d.total.minus(d.generated or Traffic()) for d in deltas), Traffic())
    figures = arm_stats(traffic)
    head += f", {traffic.requests} requests)"
    if traffic.requests < policy.min_requests:
        return LiveEvidence(LiveOutcome.THIN, f"{head}: too thin to judge (fewer than "
                            f"{policy.min_requests})", figures, via=via)
    checks = slo_checks(traffic, policy, policy.alpha / (looks * BAKE_CHECKS))
    breaches = [check.reason for check in checks if check.status is CheckStatus.FAIL]
    if breaches:
        return LiveEvidence(LiveOutcome.FAIL, f"{head}: {'; '.join(breaches)}", figures,
                            via=via)
    p99 = "–" if figures.p99_ms is None else f"{figures.p99_ms:.1f} ms"
    rate = "–" if figures.error_rate is None else f"{figures.error_rate:.2%}"
    return LiveEvidence(LiveOutcome.PASS, f"{head}: no breach (errors {rate}, limit "
                        f"{policy.max_error_rate:.2%}; p99 {p99})", figures, via=via)
