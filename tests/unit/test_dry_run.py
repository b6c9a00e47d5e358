"""domain.dry_run: the canary plan a dry run prints (steps, looks, needs, ETA) and its text."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest

from modelrelease.domain import stats
from modelrelease.domain.analysis import Metric
from modelrelease.domain.dry_run import (
    CanaryPlan,
    DryRun,
    canary_plan,
    render_dry_run,
    requests_to_pass,
)
from modelrelease.spec import ModelEndpoint, parse_endpoint


def _endpoint(steps: list[dict[str, Any]], checks: dict[str, Any],
              replicas: tuple[int, int] = (1, 3), traffic: dict[str, Any] | None = None,
              **canary: Any) -> ModelEndpoint:
    return parse_endpoint({
        "apiVersion": "modelrelease.io/v1alpha1", "kind": "ModelEndpoint",
        "metadata": {"name": "iris", "namespace": "ml"},
        "spec": {"model": {"name": "iris-clf", "alias": "champion"},
                 "image": {"repository": "127.0.0.1:5000/ml/iris",
                           "base": "127.0.0.1:5000/ml/base:dev"},
                 "resources": {"cpu": "500m", "memory": "512Mi"},
                 "autoscaling": {"minReplicas": replicas[0], "maxReplicas": replicas[1]},
                 "canary": {"steps": steps, "checks": checks, **canary},
                 **({"traffic": traffic} if traffic else {})}}, source="test")


STEPS = [{"weight": 25, "hold": "20s"}, {"weight": 50, "hold": "40s"}]
CHECKS = {"latency": {"p95Ms": 50, "p99Ms": 200}, "maxErrorRate": 0.01, "minRequests": 100}


@pytest.mark.parametrize(("allowed", "level", "expected"), [
    pytest.param(0.01, 0.01, 459, id="1pct-at-0.01"),
    pytest.param(0.05, 0.002, 122, id="p95-at-0.002"),
    pytest.param(0.5, 0.9, 1, id="at-least-one"),
    pytest.param(0.0, 0.01, None, id="zero-limit-never"),
])
def test_requests_to_pass_is_the_fewest_clean_requests_the_binomial_check_passes(
        allowed: float, level: float, expected: int | None) -> None:
    needed = requests_to_pass(allowed, level)
    assert needed == expected
    if needed is not None and needed > 1:  # the judge's own test agrees at n, not at n - 1
        assert stats.binomial_cdf(0, needed, allowed) <= level
        assert stats.binomial_cdf(0, needed - 1, allowed) > level


@pytest.mark.parametrize(
    ("first", "primary", "rate", "live", "weights", "replicas", "seconds", "live_requests"), [
        pytest.param(False, 1, 30.0, 2.0, (50.0, 50.0), (1, 1), 60.0, (20.0, 40.0),
                     id="one-primary-replica-gives-50pct"),
        pytest.param(False, 3, 30.0, None, (25.0, 50.0), (1, 3), 60.0, (None, None),
                     id="three-replicas-no-live-rate"),
        pytest.param(True, 0, 30.0, None, (100.0,), (1,), 40.0, (None,),
                     id="first-release-one-step-at-the-longest-hold"),
        pytest.param(False, 1, 10.0, 0.0, (50.0, 50.0), (1, 1), 60.0, (0.0, 0.0),
                     id="slower-load-same-hold"),
    ])
def test_canary_plan_steps_weights_and_eta(
        first: bool, primary: int, rate: float, live: float | None,
        weights: tuple[float, ...], replicas: tuple[int, ...], seconds: float,
        live_requests: tuple[float | None, ...]) -> None:
    plan = canary_plan(_endpoint(STEPS, CHECKS), first_release=first, primary_replicas=primary,
                       load_rate=rate, live_rps=live)
    assert tuple(s.effective_weight for s in plan.steps) == pytest.approx(weights)
    assert tuple(s.canary_replicas for s in plan.steps) == replicas
    assert plan.seconds == pytest.approx(seconds)
    assert tuple(s.live_canary_requests for s in plan.steps) == pytest.approx(live_requests)
    for step in plan.steps:  # looks in order, the last one at hold x rate requests
        counts = [look.requests_per_arm for look in step.looks]
        assert counts == sorted(counts) and len(counts) == 5
        assert counts[-1] == max(100 if rate * step.hold.total_seconds() < 100 else 0,
                                 int(rate * step.hold.total_seconds()))
        assert all(a.level <= 0.01 for a in step.looks)


def test_needs_say_which_checks_a_step_cannot_pass_and_how_to_fix_it() -> None:
    plan = canary_plan(_endpoint(STEPS, CHECKS), first_release=False, primary_replicas=1,
                       load_rate=30.0, live_rps=None)
    first, second = plan.steps
    needs = {n.metric: n for n in first.needs}
    assert set(needs) == {Metric.ERROR_RATE, Metric.LATENCY_P95, Metric.LATENCY_P99}
    level = first.looks[-1].level
    assert needs[Metric.ERROR_RATE].requests == math.ceil(math.log(level) / math.log(0.99))
    assert needs[Metric.LATENCY_P95].reachable  # a few dozen clean requests show p95
    assert not needs[Metric.ERROR_RATE].reachable  # 600 requests cannot show < 1% errors
    assert needs[Metric.ERROR_RATE].planned == 600
    assert {n.metric: n.planned for n in second.needs}[Metric.ERROR_RATE] == 1200
    warnings = plan.warnings
    assert any(w.startswith("step 1: the error_rate check needs") and "hold 20s x 30 req/s"
               in w and "MODELRELEASE_RELEASE__LOAD_RATE" in w for w in warnings), warnings


def test_a_zero_error_limit_can_pass_only_at_the_last_look_and_warns_nothing() -> None:
    plan = canary_plan(_endpoint(STEPS, {"maxErrorRate": 0.0, "minRequests": 50}),
                       first_release=False, primary_replicas=2, load_rate=30.0, live_rps=None)
    (need,) = plan.steps[0].needs
    assert need.requests is None and not need.reachable
    assert plan.warnings == ()


def _dry(plan: CanaryPlan, image: str | None, primary: str | None) -> DryRun:
    return DryRun(endpoint="ml/iris", model="models:/iris-clf@champion", version="3",
                  run_id="abc" if image else None, image=image,
                  image_note="already built" if image else "would be built",
                  primary=primary, preflight="passed", live_note="2.00 requests/s",
                  objects=("Deployment ml/iris-blue (canary, 1 replica(s))",), plan=plan)


@pytest.mark.parametrize(("first", "image", "primary", "present", "absent"), [
    pytest.param(False, "r/iris@sha256:" + "a" * 64, "version 2 (r/iris@sha256:b)",
                 ["version 3 (run abc)", "r/iris@sha256:aaa", "**Serving now**: version 2",
                  "| 1 | 25% | 50% | 1 | 20s |", "NOT reached", "**Warnings**",
                  "Deployment ml/iris-blue (canary, 1 replica(s))", "```yaml\nkind: X\n```"],
                 ["A first release"], id="canary-beside-primary"),
    pytest.param(True, None, None, None, None, id="first-release"),
])
def test_render_dry_run(first: bool, image: str | None, primary: str | None,
                        present: list[str] | None, absent: list[str] | None) -> None:
    checks = CHECKS if not first else {"maxErrorRate": 0.0, "minRequests": 50}
    plan = canary_plan(_endpoint(STEPS, checks), first_release=first,
                       primary_replicas=0 if first else 1, load_rate=30.0,
                       live_rps=None if first else 1.0)
    text = render_dry_run(_dry(plan, image, primary), "kind: X\n")
    assert text.startswith("# Dry run: ml/iris\n")
    assert "Nothing was changed" in text
    for words in present or ["version 3\n", "not built yet: would be built",
                             "nothing (a first release)", "A first release has no primary",
                             "| 1 | 100% | 100% | 1 | 40s |", "not measured",
                             "only at the last look (limit 0)"]:
        assert words in text, words
    for words in absent or ["**Warnings**"]:
        assert words not in text, words
    assert f"at most {plan.seconds:.0f} s of judging" in text
    assert timedelta(seconds=plan.seconds) > timedelta(0)


def test_the_plan_says_which_steps_wait_for_approval_and_how_long() -> None:
    steps = [{"weight": 25, "hold": "20s", "approval": {"timeout": "1h"}},
             {"weight": 50, "hold": "40s", "approval": {"timeout": "30m",
                                                        "onTimeout": "continue"}}]
    plan = canary_plan(_endpoint(steps, CHECKS), first_release=False, primary_replicas=1,
                       load_rate=30.0, live_rps=None)
    text = render_dry_run(_dry(plan, None, "version 2 (r/iris@sha256:b)"), "kind: X\n")
    assert "plus the canary's start and the promotion, plus up to 1h30m waiting for 2 " \
           "approval(s)" in text
    assert "`modelrelease release` refuses it" in text
    assert ("- step 1: once it passes, waits up to 1h for a person's approval in the Prefect "
            "UI; no answer: rollback") in text
    assert "- step 2: once it passes, waits up to 30m" in text and "no answer: continue" in text
    ungated = canary_plan(_endpoint(STEPS, CHECKS), first_release=False, primary_replicas=1,
                          load_rate=30.0, live_rps=None)
    assert "approval" not in render_dry_run(_dry(ungated, None, None), "kind: X\n")


@pytest.mark.parametrize(("steps", "said"), [
    pytest.param(STEPS, "the promotion, then a bake of 10m", id="bake"),
    pytest.param([{"weight": 25, "hold": "20s", "approval": {"timeout": "1h"}}],
                 "waiting for 1 approval(s), then a bake of 10m", id="gate-then-bake"),
])
def test_the_plan_says_how_long_the_bake_watches(steps: list[dict[str, Any]],
                                                 said: str) -> None:
    baked = _endpoint(steps, CHECKS, bake={"duration": "10m"})
    plan = canary_plan(baked, first_release=False, primary_replicas=1, load_rate=30.0,
                       live_rps=None)
    text = render_dry_run(_dry(plan, None, "version 2 (r/iris@sha256:b)"), "kind: X\n")
    assert said in text
    assert "**Bake** after promotion: 10m: 20 looks, 30s apart" in text
    first = canary_plan(baked, first_release=True, primary_replicas=0, load_rate=30.0,
                        live_rps=None)
    text = render_dry_run(_dry(first, None, None), "kind: X\n")
    assert "**Bake**" not in text and "then a bake" not in text
    assert ("A first release is not baked (spec.canary.bake): there is no previous version "
            "to go back to.") in text


def test_a_shadow_step_plans_replicas_for_the_copies_and_no_users() -> None:
    endpoint = _endpoint([{"shadow": 100, "hold": "20s"}, {"weight": 50, "hold": "40s"}],
                         CHECKS)
    plan = canary_plan(endpoint, first_release=False, primary_replicas=3, load_rate=10.0,
                       live_rps=6.0)
    shadow, weighted = plan.steps
    assert (shadow.shadow, shadow.effective_weight, shadow.canary_replicas) == (100, 0.0, 3)
    # the canary is sent copies of every live request: 6/s for 20 s
    assert shadow.live_canary_requests == pytest.approx(120.0)
    assert (weighted.shadow, weighted.effective_weight) == (0, 50.0)
    text = render_dry_run(_dry(plan, None, "version 2"), "kind: X\n")
    assert "| 1 | shadow 100% (copies) | 0% | 3 | 20s |" in text
    assert "| 2 | 50% | 50% |" in text


def test_a_gateway_router_plans_exact_weights_and_the_replicas_for_them() -> None:
    steps = [{"weight": 1, "hold": "20s"}, {"weight": 25, "hold": "20s"}]
    replicas = canary_plan(_endpoint(steps, CHECKS, (1, 10)), first_release=False,
                           primary_replicas=8, load_rate=10.0, live_rps=None)
    routed = _endpoint(steps, CHECKS, (1, 10),
                       traffic={"router": "gateway-api", "gateway": {"name": "gw"}})
    plan = canary_plan(routed, first_release=False, primary_replicas=8, load_rate=10.0,
                       live_rps=None)
    assert [(s.effective_weight, s.canary_replicas) for s in plan.steps] == [(1.0, 1),
                                                                            (25.0, 2)]
    # the replica ratio with 8 primary replicas: 1 canary is 11%, 3 are 27%
    assert [(round(s.effective_weight), s.canary_replicas) for s in replicas.steps] == [
        (11, 1), (27, 3)]
    text = render_dry_run(_dry(plan, None, "version 2"), "kind: X\n")
    assert "| step | weight asked | weight by HTTPRoute | canary replicas |" in text
    assert "| 1 | 1% | 1% | 1 | 20s |" in text
    assert "weight by replicas" in render_dry_run(_dry(replicas, None, "v2"), "kind: X\n")
