"""The canary plan a dry run prints: steps, looks, the requests each check needs, an ETA. Pure.

For every step of the policy a release would run: the weight asked and what the replica
ratio gives beside the primary's replicas now, the hold, each look of the sequential
judge (requests per arm, when it falls at the generated load's rate, its level), and for
each check that a flawless canary must *pass* (error rate, p95/p99 SLOs) the fewest
requests per arm at which it can pass at the step's last look: a step whose plan gives
fewer can never pass that check and ends inconclusive, which the plan says up front.
The latency-regression check has no such floor: when it decides depends on the spread of
the latencies, which only the data show.

The ETA is an upper bound for the judged steps: the judge stops a step early once it
decides. Live traffic measured on the endpoint adds evidence (``domain.live``): the plan
shows how many live requests each step can expect on the canary at the measured rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from modelrelease.domain.analysis import AnalysisPolicy, Metric
from modelrelease.domain.approval import Gate
from modelrelease.domain.bake import BakePlan
from modelrelease.domain.durations import format_duration
from modelrelease.domain.plan import FIRST_NOT_BAKED, analysis_policy, rollout_policy
from modelrelease.domain.traffic import canary_size
from modelrelease.spec import ModelEndpoint, Router

__all__ = ["CanaryPlan", "CheckNeed", "LookPlan", "StepPlan", "canary_plan", "requests_to_pass"]


@dataclass(frozen=True)
class LookPlan:
    """One look of the sequential judge within a step."""

    look: int
    requests_per_arm: int
    at_seconds: float
    """Seconds into the step's hold when the look falls, at the generated load's rate."""
    level: float
    """Nominal one-sided level at this look of each check with a whole share of alpha (error
    rate, error regression, SLOs; the latency checks split one share)."""


@dataclass(frozen=True)
class CheckNeed:
    """The fewest requests per arm at which a flawless canary passes one check."""

    metric: Metric
    requests: int | None
    """None: the check can only pass at the last look (a zero limit)."""
    planned: int
    """Requests per arm the step's last look is planned at."""

    @property
    def reachable(self) -> bool:
        """Whether the step's plan gives the check enough requests to pass before its end."""
        return self.requests is not None and self.requests <= self.planned


@dataclass(frozen=True)
class StepPlan:
    """One step: its traffic, hold, looks and what its checks need."""

    step: int
    weight: int
    effective_weight: float
    canary_replicas: int
    hold: timedelta
    looks: tuple[LookPlan, ...]
    needs: tuple[CheckNeed, ...]
    live_canary_requests: float | None
    """Live requests the canary can expect during the hold at the measured rate."""
    approval: Gate | None = None
    """The step's approval gate: once it passes, the release waits for a person."""
    shadow: int = 0
    """A shadow step's share of live requests copied to the canary (weight 0)."""

    @property
    def seconds(self) -> float:
        """At most this long: the last look's time."""
        return self.looks[-1].at_seconds if self.looks else 0.0


@dataclass(frozen=True)
class CanaryPlan:
    """The whole rollout a release would run."""

    first_release: bool
    primary_replicas: int
    load_rate: float
    live_rps: float | None
    steps: tuple[StepPlan, ...]
    bake: BakePlan | None = None
    """The bake after promotion (none for a first release, or without ``canary.bake``)."""
    bake_skipped: bool = False
    """A first release of an endpoint whose spec bakes: it is not baked."""
    router: Router = Router.REPLICA_RATIO
    """What splits the traffic: replica shares, or a Gateway's route (exact weights)."""

    @property
    def seconds(self) -> float:
        """ETA of the judged steps, at most (early decisions end a step sooner)."""
        return sum(step.seconds for step in self.steps)

    @property
    def warnings(self) -> tuple[str, ...]:
        """Checks some step can never pass with its planned requests, with the fix."""
        out = []
        for step in self.steps:
            for need in step.needs:
                if not need.reachable and need.requests is not None:
                    out.append(
                        f"step {step.step}: the {need.metric.value} check needs "
                        f"{need.requests} requests per arm to pass but the step's last look "
                        f"is at {need.planned} (hold {_seconds(step.hold)} x "
                        f"{self.load_rate:g} req/s), so the step ends inconclusive: lengthen "
                        "its hold or raise MODELRELEASE_RELEASE__LOAD_RATE")
        return tuple(out)


_BY = {Router.REPLICA_RATIO: "by replicas", Router.GATEWAY_API: "by HTTPRoute"}
"""How each router reaches the weight, for the plan's table."""


def requests_to_pass(allowed: float, level: float) -> int | None:
    """Fewest requests with no failure that show a rate is below ``allowed`` at ``level``.

    The binomial check passes when ``P(X <= 0 | n, allowed) = (1 - allowed)^n <= level``;
    None when ``allowed`` is 0 (no count of requests shows a rate below zero).
    """
    if allowed <= 0.0:
        return None
    return max(1, math.ceil(math.log(level) / math.log1p(-allowed)))


def _needs(policy: AnalysisPolicy) -> tuple[CheckNeed, ...]:
    planned = policy.look_requests(policy.looks)
    allowed = {Metric.ERROR_RATE: policy.max_error_rate}
    if policy.p95_ms is not None:
        allowed[Metric.LATENCY_P95] = 0.05
    if policy.p99_ms is not None:
        allowed[Metric.LATENCY_P99] = 0.01
    return tuple(CheckNeed(metric, requests_to_pass(share, policy.level(policy.looks, metric)),
                           planned)
                 for metric, share in allowed.items())


def canary_plan(endpoint: ModelEndpoint, *, first_release: bool, primary_replicas: int,
                load_rate: float, live_rps: float | None) -> CanaryPlan:
    """The steps, looks, needs and ETA of a release of ``endpoint`` as things stand.

    Args:
        endpoint: The endpoint with the request's overrides applied.
        first_release: No primary serves yet (one step, judged on its SLOs alone).
        primary_replicas: Replicas the primary runs now (the replica ratio's base).
        load_rate: Generated requests per second per arm while judging.
        live_rps: Live requests per second the endpoint serves now, if measured.
    """
    policy = rollout_policy(endpoint, first_release=first_release)
    steps = []
    for number, step in enumerate(policy.steps, start=1):
        replicas, effective = canary_size(
            endpoint.spec.traffic.router, primary_replicas, step.weight, step.shadow,
            first_release=first_release, min_replicas=endpoint.spec.autoscaling.min_replicas,
            max_canary=endpoint.spec.autoscaling.max_replicas)
        judge = analysis_policy(endpoint, step.hold, load_rate)
        looks = tuple(LookPlan(k, judge.look_requests(k), judge.look_requests(k) / load_rate,
                               judge.level(k, Metric.ERROR_RATE))
                      for k in range(1, judge.looks + 1))
        share = step.shadow or effective  # a shadow step's canary gets copies, not users
        live = (None if live_rps is None
                else live_rps * share / 100.0 * step.hold.total_seconds())
        steps.append(StepPlan(number, step.weight, effective, replicas, step.hold, looks,
                              _needs(judge), live, step.approval, step.shadow))
    return CanaryPlan(first_release, primary_replicas, load_rate, live_rps, tuple(steps),
                      policy.bake,
                      bake_skipped=first_release and endpoint.spec.canary.bake is not None,
                      router=endpoint.spec.traffic.router)


def _approval_wait(plan: CanaryPlan) -> str:
    waits = [step.approval.timeout for step in plan.steps if step.approval is not None]
    bake = "" if plan.bake is None else (f", then a bake of "
                                         f"{format_duration(plan.bake.duration)}")
    if not waits:
        return bake
    return (f", plus up to {format_duration(sum(waits, timedelta(0)))} waiting for "
            f"{len(waits)} approval(s)" + bake)


def _seconds(hold: timedelta) -> str:
    return f"{hold.total_seconds():g}s"


@dataclass(frozen=True)
class DryRun:
    """Everything a dry run found out, to print; nothing was changed to find it."""

    endpoint: str
    model: str
    version: str
    run_id: str | None
    image: str | None
    """The built image pinned by digest, or None when the release would build it."""
    image_note: str
    primary: str | None
    """What serves now ("version 2 (image@sha256:...)"), or None before a first release."""
    preflight: str
    live_note: str
    objects: tuple[str, ...]
    """One line per object the release would apply: kind, name, the key figures."""
    plan: CanaryPlan


def render_dry_run(dry: DryRun, objects_yaml: str) -> str:
    """The dry run as markdown: what would happen, the canary plan, the rendered objects."""
    plan = dry.plan
    lines = [f"# Dry run: {dry.endpoint}", "",
             "Nothing was changed: no image pushed, no object applied, no MLflow tag written.",
             "",
             f"- **Model**: {dry.model} is version {dry.version}"
             + (f" (run {dry.run_id})" if dry.run_id else ""),
             f"- **Image**: {dry.image or 'not built yet'}: {dry.image_note}",
             f"- **Serving now**: {dry.primary or 'nothing (a first release)'}",
             f"- **Permissions**: {dry.preflight}",
             f"- **Live traffic**: {dry.live_note}",
             f"- **ETA**: at most {plan.seconds:.0f} s of judging over {len(plan.steps)} "
             f"step(s) at {plan.load_rate:g} generated requests/s per arm, plus the canary's "
             "start and the promotion" + _approval_wait(plan), ""]
    if plan.first_release:
        lines += ["A first release has no primary to compare with: one step, judged on its "
                  "error rate and latency SLOs alone."
                  + (f" {FIRST_NOT_BAKED[0].upper()}{FIRST_NOT_BAKED[1:]}."
                     if plan.bake_skipped else ""), ""]
    lines += ["## Canary plan", "",
              f"| step | weight asked | weight {_BY[plan.router]} | canary replicas | hold | "
              "looks "
              "(requests per arm @ s) | live requests on canary |",
              "|---|---|---|---|---|---|---|"]
    for step in plan.steps:
        looks = ", ".join(f"{look.requests_per_arm} @ {look.at_seconds:.0f}s"
                          for look in step.looks)
        live = ("not measured" if step.live_canary_requests is None
                else f"~{step.live_canary_requests:.0f}")
        asked = f"shadow {step.shadow}% (copies)" if step.shadow else f"{step.weight}%"
        lines.append(f"| {step.step} | {asked} | {step.effective_weight:.0f}% | "
                     f"{step.canary_replicas} | {_seconds(step.hold)} | {looks} | {live} |")
    lines += ["", "Requests per arm a flawless canary needs to pass each check, at the last "
              "look's level:", ""]
    for step in plan.steps:
        needs = "; ".join(
            f"{need.metric.value} "
            + ("only at the last look (limit 0)" if need.requests is None
               else f"{need.requests} ({'ok' if need.reachable else 'NOT reached'}, "
                    f"planned {need.planned})")
            for need in step.needs)
        lines.append(f"- step {step.step}: {needs}; latency_regression: decided by the data")
    gated = [step for step in plan.steps if step.approval is not None]
    if gated:
        lines += ["", "**Approval gates** (only a release run by Prefect can ask: start it "
                  "from the `release` deployment; `modelrelease release` refuses it)", ""]
        lines += [f"- step {step.step}: once it passes, waits up to "
                  f"{format_duration(step.approval.timeout)} for a person's approval in the "
                  f"Prefect UI; no answer: {step.approval.on_timeout}"
                  for step in gated if step.approval is not None]
    if plan.bake is not None:
        lines += ["", f"**Bake** after promotion: {plan.bake.describe()}; the new primary's "
                  "live traffic against the SLOs, the previous version warm at no traffic "
                  "(a breach rolls back to it); then the previous version is kept at 0 "
                  "replicas"]
    if plan.warnings:
        lines += ["", "**Warnings**", "", *(f"- {warning}" for warning in plan.warnings)]
    lines += ["", "## Objects it would apply", "", *(f"- {line}" for line in dry.objects), "",
              "```yaml", objects_yaml.rstrip("\n"), "```", ""]
    return "\n".join(lines)
