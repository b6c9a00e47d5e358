"""domain.bake: a bake's looks, and each look's verdict on the new primary's live traffic."""

from __future__ import annotations

from datetime import timedelta

import pytest

from modelrelease.domain.analysis import AnalysisPolicy
from modelrelease.domain.bake import BakePlan, judge_bake, plan_bake
from modelrelease.domain.live import LiveOutcome, PodTraffic, TrackScrape, Traffic
from tests.unit.test_live import traffic

POLICY = AnalysisPolicy(min_requests=100, max_requests=100, p99_ms=200, max_error_rate=0.01,
                        alpha=0.01)


@pytest.mark.parametrize(("duration", "looks", "interval", "said"), [
    pytest.param(10, 2, 5, "10s: 2 looks, 5s apart", id="shortest-interval"),
    pytest.param(3, 1, 5, "3s: 1 look, 5s apart", id="shorter-than-one-interval"),
    pytest.param(60, 12, 5, "1m: 12 looks, 5s apart", id="a-minute"),
    pytest.param(300, 20, 15, "5m: 20 looks, 15s apart", id="a-twentieth"),
    pytest.param(600, 20, 30, "10m: 20 looks, 30s apart", id="ten-minutes"),
    pytest.param(3600, 120, 30, "1h: 120 looks, 30s apart", id="longest-interval"),
    pytest.param(605, 21, 30, "10m5s: 21 looks, 30s apart", id="rounded-up"),
])
def test_plan_bake(duration: int, looks: int, interval: int, said: str) -> None:
    plan = plan_bake(timedelta(seconds=duration))
    assert plan == BakePlan(timedelta(seconds=duration), looks, timedelta(seconds=interval))
    assert plan.describe() == said


def scrape(*pods: tuple[str, Traffic]) -> TrackScrape:
    return TrackScrape({name: PodTraffic(t, Traffic()) for name, t in pods})


BEFORE = scrape(("a", traffic((400, 3.0))))


@pytest.mark.parametrize(("after", "outcome", "said"), [
    pytest.param(TrackScrape({}, ("pod a: /metrics answered 503",)), LiveOutcome.UNAVAILABLE,
                 "the new primary's live traffic (pod metrics) unknown: pod a: /metrics "
                 "answered 503", id="unreadable"),
    pytest.param(TrackScrape(), LiveOutcome.UNAVAILABLE, "unknown: no pods", id="no-pods"),
    pytest.param(scrape(("a", traffic((450, 3.0)))), LiveOutcome.THIN,
                 "(pod metrics, 50 requests): too thin to judge (fewer than 100)",
                 id="thin"),
    pytest.param(scrape(("a", traffic((700, 3.0)))), LiveOutcome.PASS,
                 "(pod metrics, 300 requests): no breach (errors 0.00%, limit 1.00%; p99 ",
                 id="healthy"),
    pytest.param(scrape(("a", traffic((400, 3.0), (250, 3.0), (50, 400.0)))),
                 LiveOutcome.FAIL, "(pod metrics, 300 requests): live p99 above 200 ms: 50 "
                 "of 300 requests slower", id="slow-since-the-start"),
    pytest.param(scrape(("a", traffic((700, 3.0), errors=30))), LiveOutcome.FAIL,
                 "live error rate 10.00% above 1.00% (30 of 300", id="errors"),
    # a pod whose counters went down restarted: all it counted since is new
    pytest.param(scrape(("a", traffic((150, 3.0))), ("b", traffic((150, 3.0)))),
                 LiveOutcome.PASS, "(pod metrics, 300 requests): no breach",
                 id="restarted-and-new-pods-count-from-zero"),
])
def test_judge_bake(after: TrackScrape, outcome: LiveOutcome, said: str) -> None:
    found = judge_bake(BEFORE, after, POLICY, looks=10)
    assert found.outcome is outcome
    assert said in found.reason
    assert found.primary is None  # one arm: the new primary's figures are in ``canary``
    if outcome is not LiveOutcome.UNAVAILABLE:
        assert found.canary is not None
        assert found.canary.requests == sum(p.total.requests for p in after.pods.values()) - (
            400 if "b" not in after.pods else 0)


def test_more_looks_need_a_clearer_breach() -> None:
    # 10 of 300 slower than the p99 limit (p=0.001 against 1%): a breach for one look
    # (alpha 0.01 over 3 checks), not over 10,000
    after = scrape(("a", traffic((400, 3.0), (290, 3.0), (10, 400.0))))
    assert judge_bake(BEFORE, after, POLICY, looks=1).outcome is LiveOutcome.FAIL
    assert judge_bake(BEFORE, after, POLICY, looks=10_000).outcome is LiveOutcome.PASS


def test_the_source_is_named() -> None:
    found = judge_bake(BEFORE, scrape(("a", traffic((700, 3.0)))), POLICY, looks=1,
                       via="prometheus at 127.0.0.1:9090")
    assert found.via == "prometheus at 127.0.0.1:9090"
    assert "live traffic (prometheus at 127.0.0.1:9090, 300 requests)" in found.reason


def test_generated_load_a_pod_counted_apart_is_not_users() -> None:
    before = TrackScrape({"a": PodTraffic(traffic((400, 3.0)), traffic((100, 3.0)))})
    after = TrackScrape({"a": PodTraffic(traffic((800, 3.0)), traffic((250, 3.0)))})
    found = judge_bake(before, after, POLICY, looks=1)
    assert found.canary is not None and found.canary.requests == 250  # 400 new, 150 generated
