"""domain.plan: spec -> model URI, rollout and analysis policies."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from modelrelease.domain.agreement import AgreementPolicy, Kind, OnFailure
from modelrelease.domain.approval import Gate, OnTimeout
from modelrelease.domain.bake import plan_bake
from modelrelease.domain.model import ModelUri
from modelrelease.domain.plan import (
    agreement_policy,
    analysis_policy,
    bake_policy,
    model_uri,
    rollout_policy,
)
from modelrelease.domain.rollout import Step
from modelrelease.spec import ModelEndpoint, parse_endpoint


def _endpoint(model: dict[str, Any], **canary: Any) -> ModelEndpoint:
    return parse_endpoint({
        "apiVersion": "modelrelease.io/v1alpha1", "kind": "ModelEndpoint",
        "metadata": {"name": "iris", "namespace": "ml"},
        "spec": {"model": model,
                 "image": {"repository": "127.0.0.1:5000/ml/iris",
                           "base": "127.0.0.1:5000/ml/base:dev"},
                 "resources": {"cpu": "500m", "memory": "512Mi"},
                 "canary": {"steps": [{"weight": 25, "hold": "20s"},
                                      {"weight": 50, "hold": "40s"}],
                            "checks": {"latency": {"p95Ms": 50, "maxRegression": 0.2},
                                       "maxErrorRate": 0.02, "minRequests": 300},
                            **canary}}}, source="test")


@pytest.mark.parametrize(("model", "uri"), [
    pytest.param({"name": "iris-clf", "alias": "champion"}, ModelUri("iris-clf", alias="champion"),
                 id="alias"),
    pytest.param({"name": "iris-clf", "version": 3}, ModelUri("iris-clf", version="3"),
                 id="version"),
    pytest.param({"name": "iris-clf", "stage": "Production"},
                 ModelUri("iris-clf", stage="Production"), id="stage"),
])
def test_model_uri(model: dict[str, Any], uri: ModelUri) -> None:
    assert model_uri(_endpoint(model)) == uri


def test_rollout_policy_follows_the_spec_or_one_slo_step_first() -> None:
    endpoint = _endpoint({"name": "m", "alias": "a"})
    assert rollout_policy(endpoint, first_release=False).steps == (
        Step(25, timedelta(seconds=20)), Step(50, timedelta(seconds=40)))
    assert rollout_policy(endpoint, first_release=True).steps == (
        Step(100, timedelta(seconds=40)),)


def test_analysis_policy_from_checks() -> None:
    endpoint = _endpoint({"name": "m", "alias": "a"})
    policy = analysis_policy(endpoint, timedelta(seconds=20), rate=20)
    assert policy.max_requests == 400 and policy.min_requests == 300
    assert policy.p95_ms == 50 and policy.max_error_rate == 0.02
    assert policy.max_latency_regression == pytest.approx(0.2)
    short = analysis_policy(endpoint, timedelta(seconds=5), rate=20)
    assert short.min_requests == short.max_requests == 100


def test_agreement_policy_defaults_and_from_checks() -> None:
    assert agreement_policy(_endpoint({"name": "m", "alias": "a"})) == AgreementPolicy()
    endpoint = _endpoint({"name": "m", "alias": "a"}, checks={"agreement": {
        "kind": "regression", "minAgreement": 0.8, "maxPsi": 0.2, "maxKs": 0.3,
        "minSamples": 50, "onFailure": "hold"}})
    assert agreement_policy(endpoint) == AgreementPolicy(
        kind=Kind.REGRESSION, min_agreement=0.8, max_psi=0.2, max_ks=0.3, min_samples=50,
        on_failure=OnFailure.HOLD)


def test_analysis_policy_judges_slices_only_when_the_spec_asks() -> None:
    plain = analysis_policy(_endpoint({"name": "m", "alias": "a"}), timedelta(seconds=20), 20)
    assert plain.max_slices == 0
    sliced = _endpoint({"name": "m", "alias": "a"}, checks={
        "slices": {"header": "X-Tenant", "mix": {"a": 1, "b": 1}, "maxSlices": 4,
                   "minRequests": 30}})
    policy = analysis_policy(sliced, timedelta(seconds=20), 20)
    assert (policy.max_slices, policy.min_slice_requests) == (4, 30)


def test_rollout_policy_carries_each_steps_approval_gate() -> None:
    endpoint = _endpoint({"name": "m", "alias": "a"}, steps=[
        {"weight": 25, "hold": "20s", "approval": {"timeout": "2h", "onTimeout": "continue"}},
        {"weight": 50, "hold": "40s"},
        {"weight": 75, "hold": "10s", "approval": {}}])
    assert rollout_policy(endpoint, first_release=False).steps == (
        Step(25, timedelta(seconds=20), Gate(timedelta(hours=2), OnTimeout.CONTINUE)),
        Step(50, timedelta(seconds=40)),
        Step(75, timedelta(seconds=10), Gate(timedelta(hours=1), OnTimeout.ROLLBACK)))
    # a first release goes straight to all of the traffic: the last gate still asks
    assert rollout_policy(endpoint, first_release=True).steps == (
        Step(100, timedelta(seconds=40), Gate(timedelta(hours=1), OnTimeout.ROLLBACK)),)


def test_a_bake_is_planned_for_every_release_but_the_first() -> None:
    endpoint = _endpoint({"name": "m", "alias": "a"}, bake={"duration": "5m"})
    assert rollout_policy(endpoint, first_release=False).bake == plan_bake(
        timedelta(minutes=5))
    assert rollout_policy(endpoint, first_release=True).bake is None  # nothing to go back to
    assert rollout_policy(_endpoint({"name": "m", "alias": "a"}),
                          first_release=False).bake is None


def test_a_bake_judges_by_the_checks_slos_and_minimum() -> None:
    endpoint = _endpoint({"name": "m", "alias": "a"}, checks={
        "maxErrorRate": 0.02, "minRequests": 300, "latency": {"p95Ms": 50, "p99Ms": 120}})
    policy = bake_policy(endpoint)
    assert (policy.max_error_rate, policy.min_requests, policy.p95_ms, policy.p99_ms) == (
        0.02, 300, 50, 120)


def test_shadow_steps_carry_their_share_and_no_weight() -> None:
    endpoint = _endpoint({"name": "m", "alias": "a"}, steps=[
        {"shadow": 100, "hold": "2m"}, {"weight": 50, "hold": "40s"}])
    assert rollout_policy(endpoint, first_release=False).steps == (
        Step(0, timedelta(minutes=2), shadow=100), Step(50, timedelta(seconds=40)))
    # a first release has no primary to copy from: its one step takes it all, as always
    assert rollout_policy(endpoint, first_release=True).steps == (
        Step(100, timedelta(minutes=2)),)
