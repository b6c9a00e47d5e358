"""From a ModelEndpoint spec to the policies of one release. Pure."""

from __future__ import annotations

from datetime import timedelta

from modelrelease.domain.agreement import AgreementPolicy
from modelrelease.domain.analysis import AnalysisPolicy
from modelrelease.domain.approval import Gate
from modelrelease.domain.bake import plan_bake
from modelrelease.domain.model import ModelUri
from modelrelease.domain.rollout import RolloutPolicy, Step
from modelrelease.spec import ApprovalGate, ModelEndpoint

FIRST_RELEASE_HOLD = timedelta(seconds=10)
FIRST_NOT_BAKED = ("a first release is not baked (spec.canary.bake): there is no previous "
                   "version to go back to")


def model_uri(endpoint: ModelEndpoint) -> ModelUri:
    """The ``models:/`` URI the endpoint follows (alias, version or stage)."""
    ref = endpoint.spec.model
    if ref.alias is not None:
        return ModelUri(name=ref.name, alias=ref.alias)
    if ref.version is not None:
        return ModelUri(name=ref.name, version=str(ref.version))
    return ModelUri(name=ref.name, stage=str(ref.stage))


def rollout_policy(endpoint: ModelEndpoint, *, first_release: bool) -> RolloutPolicy:
    """The steps: the spec's, or for a first release one step judged on its SLOs alone.

    A first release goes straight to all of the traffic, so where any step of the spec has
    an approval gate, its one step has the last such gate: a person still approves. It is
    not baked: there is no previous version to go back to.
    """
    steps = endpoint.spec.canary.steps
    if first_release:
        hold = max((s.hold for s in steps), default=FIRST_RELEASE_HOLD)
        last = next((s.approval for s in reversed(steps) if s.approval is not None), None)
        return RolloutPolicy(steps=(Step(100, hold, approval_gate(last)),))
    bake = endpoint.spec.canary.bake
    return RolloutPolicy(steps=tuple(Step(s.weight or 0, s.hold, approval_gate(s.approval),
                                          s.shadow or 0) for s in steps),
                         bake=None if bake is None else plan_bake(bake.duration))


def approval_gate(gate: ApprovalGate | None) -> Gate | None:
    """A step's approval gate as the state machine takes it."""
    return None if gate is None else Gate(gate.timeout, gate.on_timeout)


def analysis_policy(endpoint: ModelEndpoint, hold: timedelta, rate: float) -> AnalysisPolicy:
    """How a step of ``hold`` at ``rate`` requests per second per arm is judged."""
    checks = endpoint.spec.canary.checks
    planned = max(1, int(hold.total_seconds() * rate))
    minimum = min(checks.min_requests, planned)
    slices = checks.slices
    return AnalysisPolicy(
        max_latency_regression=max(checks.latency.max_regression, 0.01),
        p95_ms=checks.latency.p95_ms,
        p99_ms=checks.latency.p99_ms,
        max_error_rate=checks.max_error_rate,
        min_requests=minimum,
        max_requests=max(planned, minimum),
        max_slices=slices.max_slices if slices is not None else 0,
        min_slice_requests=slices.min_requests if slices is not None else 50,
    )


def bake_policy(endpoint: ModelEndpoint) -> AnalysisPolicy:
    """What a bake judges the new primary's live traffic by: the checks' SLOs and minimum.

    Only the absolute limits count (``domain.bake``); ``minRequests`` live requests are
    needed before any is judged.
    """
    checks = endpoint.spec.canary.checks
    return AnalysisPolicy(p95_ms=checks.latency.p95_ms, p99_ms=checks.latency.p99_ms,
                          max_error_rate=checks.max_error_rate,
                          min_requests=checks.min_requests,
                          max_requests=checks.min_requests)


def agreement_policy(endpoint: ModelEndpoint) -> AgreementPolicy:
    """The output-agreement thresholds ``spec.canary.checks.agreement`` sets."""
    check = endpoint.spec.canary.checks.agreement
    return AgreementPolicy(kind=check.kind, min_agreement=check.min_agreement,
                           max_psi=check.max_psi, max_ks=check.max_ks,
                           min_samples=check.min_samples, on_failure=check.on_failure)
