"""domain.live: pod counters -> live share -> evidence, against hand-computed figures."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pytest

from modelrelease.domain.analysis import AnalysisPolicy, ArmStats, CheckStatus, Metric
from modelrelease.domain.live import (
    LiveEvidence,
    LiveOutcome,
    PodTraffic,
    SlicedTraffic,
    TrackScrape,
    Traffic,
    arm_stats,
    evidence,
    histogram_quantile,
    judge,
    live_share,
    sliced,
)

BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, math.inf)
POLICY = AnalysisPolicy(min_requests=50, max_requests=400, p99_ms=100, max_error_rate=0.01,
                        max_latency_regression=0.2, alpha=0.01)


def traffic(*groups: tuple[int, float], errors: int = 0) -> Traffic:
    """``(count, latency_ms)`` groups, all 200 but ``errors`` of them 500."""
    total = sum(n for n, _ in groups)
    statuses = {"200": float(total - errors)} | ({"500": float(errors)} if errors else {})
    buckets = {le: float(sum(n for n, ms in groups if ms / 1000 <= le)) for le in BOUNDS}
    return Traffic(statuses, buckets)


def exposition(prefix: str, t: Traffic) -> str:
    lines = [f'{prefix}requests_total{{path="/invocations",status="{s}"}} {v}'
             for s, v in t.statuses.items()]
    lines += [f'{prefix}request_seconds_bucket{{le="{"+Inf" if math.isinf(le) else le}",'
              f'path="/invocations"}} {v}' for le, v in t.buckets.items()]
    return "\n".join(lines)


def pod_text(total: Traffic, generated: Traffic | None) -> str:
    text = ("# TYPE modelrelease_requests_total counter\n"
            'modelrelease_requests_total{path="/ping",status="200"} 99.0\n'
            + exposition("modelrelease_", total))
    if generated is not None:
        text += "\n" + exposition("modelrelease_generated_", generated)
    return text


# -- parsing and deltas ---------------------------------------------------------------------


def test_pod_traffic_from_recorded_exposition() -> None:
    total, generated = traffic((30, 3.0), errors=2), traffic((20, 3.0))
    pod = PodTraffic.of(pod_text(total, generated))
    assert pod.total == total and pod.generated == generated  # /ping is not counted
    assert PodTraffic.of(pod_text(total, None)).generated is None
    assert PodTraffic.of("up 1") == PodTraffic(Traffic(), None)
    with pytest.raises(ValueError, match="not a sample"):
        PodTraffic.of("<html>forbidden</html>")


def test_traffic_counts_and_arithmetic() -> None:
    a = Traffic({"200": 10.0, "503": 2.0, "404": 1.0}, {1.0: 13.0})
    b = Traffic({"200": 4.0, "201": 1.0}, {1.0: 5.0, 2.0: 5.0})
    assert a.requests == 13 and a.errors == 3
    assert (a + b).statuses == {"200": 14.0, "503": 2.0, "404": 1.0, "201": 1.0}
    assert (a + b).buckets == {1.0: 18.0, 2.0: 5.0}
    assert a.minus(b) == Traffic({"200": 6.0, "503": 2.0, "404": 1.0}, {1.0: 8.0})
    assert b.minus(a).statuses == {"200": 0.0, "201": 1.0}  # never below zero
    assert b.went_down_since(a) and not a.went_down_since(b.minus(b))


@pytest.mark.parametrize(("earlier", "later", "expected"), [
    pytest.param(None, PodTraffic(traffic((10, 2.0)), traffic((4, 2.0))),
                 PodTraffic(traffic((10, 2.0)), traffic((4, 2.0))), id="new-pod-counts-all"),
    pytest.param(PodTraffic(traffic((50, 2.0)), None),
                 PodTraffic(traffic((10, 2.0)), traffic((4, 2.0))),
                 PodTraffic(traffic((10, 2.0)), traffic((4, 2.0))), id="restarted-pod"),
    pytest.param(PodTraffic(traffic((10, 2.0)), None),
                 PodTraffic(traffic((10, 2.0), (5, 30.0)), traffic((3, 30.0))),
                 PodTraffic(traffic((5, 30.0)), traffic((3, 30.0))),
                 id="generated-series-appeared"),
    pytest.param(PodTraffic(traffic((10, 2.0)), traffic((4, 2.0))),
                 PodTraffic(traffic((25, 2.0)), traffic((9, 2.0))),
                 PodTraffic(traffic((15, 2.0)), traffic((5, 2.0))), id="delta"),
    pytest.param(PodTraffic(traffic((10, 2.0)), None), PodTraffic(traffic((25, 2.0)), None),
                 PodTraffic(traffic((15, 2.0)), None), id="no-generated-series"),
])
def test_since(earlier: PodTraffic | None, later: PodTraffic, expected: PodTraffic) -> None:
    assert later.since(earlier) == expected


def test_live_share_exact_when_every_pod_counts_generated_load() -> None:
    before = TrackScrape({"a": PodTraffic(traffic((100, 2.0)), traffic((60, 2.0)))})
    after = TrackScrape({
        "a": PodTraffic(traffic((100, 2.0), (70, 4.0)), traffic((60, 2.0), (50, 4.0))),
        "b": PodTraffic(traffic((40, 20.0)), traffic((30, 20.0)))})  # scaled up meanwhile
    share, exact = live_share(before, after, {"200": 999})
    assert exact and share == traffic((20, 4.0), (10, 20.0))


def test_live_share_by_known_counts_when_a_pod_does_not_count_generated_load() -> None:
    after = TrackScrape({"a": PodTraffic(traffic((100, 2.0), errors=3), traffic((60, 2.0))),
                         "old": PodTraffic(traffic((50, 2.0)), None)})
    share, exact = live_share(TrackScrape(), after, {"200": 120, "500": 1})
    assert not exact and share == Traffic({"200": 27.0, "500": 2.0})  # no histogram


# -- quantiles and figures ------------------------------------------------------------------


@pytest.mark.parametrize(("q", "buckets", "expected"), [
    pytest.param(0.5, {}, None, id="empty"),
    pytest.param(0.5, {0.1: 0.0, math.inf: 0.0}, None, id="no-requests"),
    pytest.param(0.5, {0.1: 10.0, math.inf: 10.0}, 0.05, id="first-bucket-from-zero"),
    pytest.param(0.5, {0.1: 0.0, 0.2: 10.0, math.inf: 10.0}, 0.15, id="interpolated"),
    pytest.param(0.9, {0.1: 5.0, 0.2: 8.0, math.inf: 10.0}, 0.2, id="in-the-inf-bucket"),
    pytest.param(0.75, {0.1: 5.0, 0.3: 10.0, math.inf: 10.0}, 0.2, id="second-bucket"),
])
def test_histogram_quantile(q: float, buckets: Mapping[float, float],
                            expected: float | None) -> None:
    found = histogram_quantile(q, buckets)
    assert found == (None if expected is None else pytest.approx(expected))


def test_arm_stats() -> None:
    assert arm_stats(Traffic()) == ArmStats(0, 0, None, None, None, None)
    # 100 requests in (2.5, 5] ms: p50 = 2.5 + 2.5 * 0.5
    figures = arm_stats(traffic((100, 4.0), errors=5))
    assert figures.requests == 100 and figures.errors == 5 and figures.error_rate == 0.05
    assert figures.p50_ms == pytest.approx(3.75) and figures.p99_ms == pytest.approx(4.975)


# -- judging ----------------------------------------------------------------------------------


GOOD = traffic((200, 4.0))


@pytest.mark.parametrize(("canary", "primary", "policy", "outcome", "words"), [
    pytest.param(traffic((30, 4.0)), GOOD, POLICY, LiveOutcome.THIN,
                 "live traffic too thin (30 < 50 requests per arm: canary 30, primary 200), "
                 "generated load only", id="thin"),
    pytest.param(GOOD, GOOD, POLICY, LiveOutcome.PASS,
                 "live traffic (pod metrics, canary 200 / primary 200 requests): no breach: "
                 "canary errors 0.00% (limit 1.00%) vs primary 0.00%; p50 3.8 vs 3.8 ms",
                 id="same"),
    pytest.param(traffic((200, 4.0), errors=20), GOOD, POLICY, LiveOutcome.FAIL,
                 "live error rate 10.00% above 1.00% (20 of 200", id="error-rate"),
    pytest.param(traffic((200, 4.0), errors=10), GOOD, POLICY.model_copy(
        update={"max_error_rate": 0.2}), LiveOutcome.FAIL,
                 "live errors regressed: canary 10 of 200, primary 0 of 200",
                 id="error-regression"),
    pytest.param(traffic((190, 4.0), (10, 300.0)), GOOD, POLICY, LiveOutcome.FAIL,
                 "live p99 above 100 ms: 10 of 200 requests slower (allowed 1%", id="p99-slo"),
    pytest.param(traffic((190, 4.0), (10, 300.0)), traffic((190, 4.0), (10, 300.0)),
                 POLICY.model_copy(update={"p95_ms": 200.0, "p99_ms": None}),
                 LiveOutcome.PASS, "no breach", id="within-p95-slo"),
    pytest.param(traffic((180, 4.0), (20, 40.0)), traffic((196, 4.0), (4, 40.0)),
                 POLICY.model_copy(update={"p99_ms": None}), LiveOutcome.FAIL,
                 "live p95 tail regression: canary p95 37.5 ms vs primary 4.9 ms (x7.62 > x1.20; "
                 "tail rank test on the histogram's buckets p=0.00038 <= 0.001)", id="tail-p95"),
    pytest.param(traffic((1960, 4.0), (40, 400.0)), traffic((1995, 4.0), (5, 400.0)),
                 POLICY.model_copy(update={"p99_ms": None}), LiveOutcome.FAIL,
                 "live p99 tail regression: canary p99 ", id="tail-p99"),
    pytest.param(traffic((180, 4.0), (20, 40.0)), traffic((180, 4.0), (20, 40.0)),
                 POLICY.model_copy(update={"p99_ms": None}), LiveOutcome.PASS, "no breach",
                 id="same-tail"),
    pytest.param(traffic((180, 4.0), (20, 40.0)), traffic((196, 4.0), (4, 40.0)),
                 POLICY.model_copy(update={"p99_ms": None, "max_latency_regression": 10.0}),
                 LiveOutcome.PASS, "no breach", id="tail-within-tolerance"),
    pytest.param(traffic((200, 20.0)), GOOD, POLICY, LiveOutcome.FAIL,
                 "live latency regression: canary p50 17.5 ms vs primary 3.8 ms (x4.67 > x1.20",
                 id="latency-regression"),
    pytest.param(traffic((100, 4.0), (100, 8.0)), traffic((150, 4.0), (50, 8.0)),
                 POLICY.model_copy(update={"max_latency_regression": 0.5}), LiveOutcome.PASS,
                 "p50 5.0 vs 4.2 ms", id="significant-but-within-tolerance"),
    pytest.param(GOOD, traffic((200, 20.0)), POLICY, LiveOutcome.PASS, "no breach",
                 id="canary-faster"),
])
def test_judge(canary: Traffic, primary: Traffic, policy: AnalysisPolicy,
               outcome: LiveOutcome, words: str) -> None:
    found = judge(canary, primary, policy)
    assert found.outcome is outcome and words in found.reason, found.reason


def test_judge_without_histogram_or_primary() -> None:
    counts = Traffic({"200": 300.0})
    found = judge(counts, counts, POLICY, exact=False, compare=False)
    assert found.outcome is LiveOutcome.PASS
    assert "generated load subtracted by its known counts, no latency" in found.reason
    assert "p50 – vs – ms" in found.reason
    both = judge(counts, counts, POLICY, exact=False)  # two arms, still no latency to compare
    assert both.outcome is LiveOutcome.PASS
    assert both.numbers == {"live_used": 1.0, "live_requests_canary": 300.0,
                            "live_error_rate_canary": 0.0, "live_requests_primary": 300.0,
                            "live_error_rate_primary": 0.0}
    regressed = judge(traffic((200, 20.0), errors=3), GOOD, POLICY, compare=False)
    assert regressed.outcome is LiveOutcome.PASS  # no primary: no relative check


# -- from scrapes to evidence ------------------------------------------------------------------


def _scrape(live: Traffic, generated: Traffic) -> TrackScrape:
    return TrackScrape({"pod-1": PodTraffic(live + generated, generated)})


@pytest.mark.parametrize(("after", "words"), [
    pytest.param({"canary": TrackScrape(failures=("pod c: GET /metrics answered 403: no",)),
                  "primary": _scrape(GOOD, GOOD)},
                 "live traffic unknown: canary pod metrics unreadable (pod c: GET /metrics "
                 "answered 403: no), generated load only", id="forbidden"),
    pytest.param({"canary": _scrape(GOOD, GOOD), "primary": TrackScrape()},
                 "primary pod metrics unreadable (no pods)", id="no-pods"),
])
def test_evidence_unavailable(after: dict[str, TrackScrape], words: str) -> None:
    found = evidence({}, after, {}, POLICY)
    assert found.outcome is LiveOutcome.UNAVAILABLE and words in found.reason
    assert not found.used and found.source == "generated load"
    assert found.numbers == {"live_used": 0.0}


def test_evidence_two_arms_and_first_release() -> None:
    load = traffic((300, 3.0))
    before = {"canary": _scrape(Traffic(), Traffic()), "primary": _scrape(Traffic(), Traffic())}
    after = {"canary": _scrape(traffic((80, 4.0)), load), "primary": _scrape(GOOD, load)}
    found = evidence(before, after, {"canary": {"200": 300}}, POLICY)
    assert found.outcome is LiveOutcome.PASS and found.used
    assert found.source == "generated load + live traffic (pod metrics, 280 requests)"
    assert found.numbers["live_requests_canary"] == 80.0
    assert found.numbers["live_requests_primary"] == 200.0
    assert found.numbers["live_p50_ms_canary"] == pytest.approx(3.75)
    assert found.numbers["live_used"] == 1.0
    first = evidence({}, {"canary": _scrape(traffic((40, 4.0)), load)}, {}, POLICY)
    assert first.outcome is LiveOutcome.THIN and first.source == "generated load"
    assert "(40 < 50 requests per arm: canary 40, primary 40)" in first.reason
    assert first.numbers["live_requests_primary"] == 40.0 and first.numbers["live_used"] == 0.0


@pytest.mark.parametrize(("live", "status"), [
    pytest.param(LiveOutcome.FAIL, CheckStatus.FAIL, id="a-breach-fails"),
    pytest.param(LiveOutcome.PASS, CheckStatus.PASS, id="no-breach"),
    pytest.param(LiveOutcome.THIN, CheckStatus.NO_DATA, id="thin"),
    pytest.param(LiveOutcome.UNAVAILABLE, CheckStatus.NO_DATA, id="unreadable"),
])
def test_live_traffic_is_one_check_of_the_step(live: LiveOutcome, status: CheckStatus) -> None:
    check = LiveEvidence(live, "live says no").check
    assert (check.metric, check.status, check.reason) == (Metric.LIVE, status, "live says no")


def test_thin_names_a_source_other_than_the_pods() -> None:
    found = judge(traffic((3, 2.0)), traffic((3, 2.0)), POLICY, via="Prometheus http://p:9090")
    assert found.outcome is LiveOutcome.THIN and found.via == "Prometheus http://p:9090"
    assert found.reason.endswith("generated load only (Prometheus http://p:9090)")


# -- slices -----------------------------------------------------------------------------------

KEY = "column sepal_length"
SLICED = POLICY.model_copy(update={"max_slices": 2, "min_slice_requests": 20})


def sliced_pod(key: str | None, parts: Mapping[str, tuple[Traffic, Traffic]]) -> PodTraffic:
    """A pod slicing by ``key``: per value ``(live, generated)``; the totals are their sums."""
    live = sum((a for a, _ in parts.values()), Traffic())
    generated = sum((g for _, g in parts.values()), Traffic())
    return PodTraffic(live + generated, generated, key,
                      {v: PodTraffic(a + g, g) for v, (a, g) in parts.items()})


def test_pod_traffic_reads_the_slice_series() -> None:
    live, generated = traffic((30, 3.0), errors=2), traffic((20, 3.0))
    text = (pod_text(live + generated, generated) + '\nmodelrelease_slice_key{key="' + KEY
            + '"} 1.0\n' + exposition("modelrelease_slice_", live + generated).replace(
                'path="/invocations"', 'path="/invocations",slice="7.7"') + "\n"
            + exposition("modelrelease_generated_slice_", generated).replace(
                'path="/invocations"', 'path="/invocations",slice="7.7"'))
    pod = PodTraffic.of(text)
    assert pod.slice_key == KEY and set(pod.slices) == {"7.7"}
    assert pod.slices["7.7"] == PodTraffic(live + generated, generated)
    assert PodTraffic.of(pod_text(live, None)).slice_key is None  # a pod that does not slice
    # a new slice value after the earlier scrape counts whole; old ones by their change
    earlier = sliced_pod(KEY, {"a": (traffic((10, 2.0)), Traffic())})
    later = sliced_pod(KEY, {"a": (traffic((25, 2.0)), Traffic()),
                             "b": (traffic((5, 2.0)), traffic((1, 2.0)))})
    delta = later.since(earlier)
    assert delta.slices["a"].total == traffic((15, 2.0))
    assert delta.slices["b"] == later.slices["b"] and delta.slice_key == KEY


def test_sliced_shares_and_pods_that_do_not_slice() -> None:
    before = {"canary": TrackScrape({"c": sliced_pod(KEY, {})}),
              "primary": TrackScrape({"p": sliced_pod(KEY, {
                  "5.1": (traffic((10, 2.0)), traffic((5, 2.0)))})})}
    after = {"canary": TrackScrape({"c": sliced_pod(KEY, {
                 "5.1": (traffic((40, 2.0)), traffic((30, 2.0))),
                 "6.3": (traffic((30, 90.0)), Traffic())})}),
             "primary": TrackScrape({"p": sliced_pod(KEY, {
                 "5.1": (traffic((50, 2.0)), traffic((35, 2.0))),
                 "6.3": (traffic((25, 2.0)), Traffic())})})}
    found = sliced(before, after, KEY)
    assert not found.missing
    assert found.arms == {"5.1": (traffic((40, 2.0)), traffic((40, 2.0))),
                          "6.3": (traffic((30, 90.0)), traffic((25, 2.0)))}
    first = sliced({}, {"canary": after["canary"]}, KEY)  # no primary: the canary is both
    assert first.arms["6.3"] == (traffic((30, 90.0)), traffic((30, 90.0)))
    old = dict(after, primary=TrackScrape({"p": PodTraffic(GOOD, GOOD)}))
    assert "the primary's pods count live requests by None, not by column sepal_length" in \
        sliced(before, old, KEY).missing
    other = dict(after, canary=TrackScrape({"c": sliced_pod("header X-Tenant", {})}))
    assert "canary's pods count live requests by header X-Tenant" in \
        sliced(before, other, KEY).missing


@pytest.mark.parametrize(("arms", "policy", "outcome", "words", "statuses"), [
    pytest.param({"5.1": (GOOD, GOOD), "6.3": (traffic((40, 90.0)), traffic((40, 2.0)))},
                 SLICED, LiveOutcome.FAIL,
                 "slice '6.3' (40 / 40 requests): live latency regression: canary p50 75.0 ms",
                 {"5.1": "no breach", "6.3": "failed"}, id="one-slow-slice"),
    pytest.param({"5.1": (GOOD, GOOD), "6.3": (traffic((40, 2.0), errors=8),
                                               traffic((40, 2.0)))},
                 SLICED, LiveOutcome.FAIL, "slice '6.3' (40 / 40 requests): live error rate 20.00%",
                 {"5.1": "no breach", "6.3": "failed"}, id="one-failing-slice"),
    pytest.param({"5.1": (GOOD, GOOD), "6.3": (traffic((10, 4.0)), traffic((10, 4.0)))},
                 SLICED, LiveOutcome.PASS,
                 "slices by column sepal_length: judged 5.1 (at least 20 live requests per arm)",
                 {"5.1": "no breach", "6.3": "too few requests"}, id="too-few"),
    pytest.param({"5.1": (GOOD, GOOD), "6.3": (traffic((40, 4.0)), traffic((40, 4.0)))},
                 SLICED.model_copy(update={"max_slices": 1}), LiveOutcome.PASS,
                 "judged 5.1 (", {"5.1": "no breach", "6.3": "not judged"},
                 id="beyond-max-slices"),
    pytest.param({"a": (GOOD, GOOD), "b": (GOOD, GOOD)}, SLICED, LiveOutcome.PASS,
                 "judged a, b (", {"a": "no breach", "b": "no breach"}, id="same"),
])
def test_judge_per_slice(arms: Mapping[str, tuple[Traffic, Traffic]], policy: AnalysisPolicy,
                         outcome: LiveOutcome, words: str, statuses: dict[str, str]) -> None:
    canary = sum((c for c, _ in arms.values()), Traffic())
    primary = sum((p for _, p in arms.values()), Traffic())
    found = judge(canary, primary, policy, slices=SlicedTraffic(KEY, arms))
    assert found.outcome is outcome and words in found.reason, found.reason
    assert {row.value: row.status for row in found.slices} == statuses


def test_slices_share_alpha_and_unsliced_pods_are_named() -> None:
    # the whole-traffic checks get alpha / 6 instead of alpha / 5 when slices are judged
    whole = judge(traffic((200, 4.0), errors=12), GOOD, POLICY.model_copy(
        update={"max_error_rate": 0.5}))
    with_slices = judge(traffic((200, 4.0), errors=12), GOOD, POLICY.model_copy(
        update={"max_error_rate": 0.5}), slices=SlicedTraffic(KEY))
    assert "<= 0.002)" in whole.reason and "<= 0.0017)" in with_slices.reason
    missing = judge(GOOD, GOOD, SLICED, slices=SlicedTraffic(KEY, missing="not sliced here"))
    assert missing.outcome is LiveOutcome.PASS and missing.reason.endswith("; not sliced here")
    assert missing.slices == ()
    thin = judge(traffic((30, 4.0)), GOOD, SLICED, slices=SlicedTraffic(
        KEY, {"a": (traffic((30, 4.0)), GOOD)}))
    assert thin.outcome is LiveOutcome.THIN and thin.slices == ()
    # a first release: the canary alone, so only the error rate is judged per slice
    alone = traffic((40, 90.0))
    first = judge(GOOD + alone, GOOD + alone, SLICED, compare=False,
                  slices=SlicedTraffic(KEY, {"a": (GOOD, GOOD), "b": (alone, alone)}))
    assert first.outcome is LiveOutcome.PASS, first.reason


def test_evidence_judges_slices_only_when_asked() -> None:
    after = {"canary": TrackScrape({"c": sliced_pod(KEY, {
                 "5.1": (GOOD, traffic((30, 2.0))), "6.3": (traffic((40, 90.0)), Traffic())})}),
             "primary": TrackScrape({"p": sliced_pod(KEY, {
                 "5.1": (GOOD, traffic((30, 2.0))), "6.3": (traffic((40, 2.0)), Traffic())})})}
    policy = SLICED.model_copy(update={"p99_ms": None, "max_latency_regression": 100.0})
    whole = evidence({}, after, {}, policy)
    assert whole.outcome is LiveOutcome.PASS and whole.slices == ()
    found = evidence({}, after, {}, policy.model_copy(update={"max_latency_regression": 0.2}),
                     slice_key=KEY)
    assert found.outcome is LiveOutcome.FAIL and "slice '6.3'" in found.reason
