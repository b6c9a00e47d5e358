"""ModelEndpoint validation: every invalid field kind names its field path and the fix."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from modelrelease.domain.approval import OnTimeout
from modelrelease.errors import InvalidInput
from modelrelease.spec import (
    HISTORY_LIMIT,
    ApprovalGate,
    CanaryPolicy,
    CanaryStep,
    Fault,
    HistoryEntry,
    ModelEndpointStatus,
    ModelRef,
    ReleasePhase,
    ReleaseRequest,
    RollbackRequest,
    Stage,
    endpoint_document,
    endpoint_yaml,
    format_duration,
    load_endpoint,
    parse_duration,
    parse_endpoint,
    parse_resource,
    quantity_value,
    spec_hash,
)

ROOT = Path(__file__).resolve().parents[2]
IRIS = ROOT / "deployments" / "endpoints" / "iris.yaml"

VALID: dict[str, Any] = {
    "apiVersion": "modelrelease.io/v1alpha1",
    "kind": "ModelEndpoint",
    "metadata": {"name": "iris", "namespace": "ml"},
    "spec": {
        "model": {"name": "iris-clf", "alias": "champion"},
        "image": {"repository": "127.0.0.1:5000/ml/iris",
                  "base": "127.0.0.1:5000/ml/serving-base:dev"},
        "resources": {"cpu": "1", "memory": "2Gi", "accelerators": {"nvidia.com/gpu": 1}},
        "autoscaling": {"minReplicas": 2, "maxReplicas": 10, "targetUtilization": 70},
        "canary": {
            "steps": [{"weight": 10, "hold": "30s"}, {"weight": 50, "hold": "60s"}],
            "checks": {"latency": {"p95Ms": 50, "p99Ms": 120, "maxRegression": 0.2},
                       "maxErrorRate": 0.01, "minRequests": 200},
        },
    },
}

DELETE = object()


def doc(**changes: Any) -> dict[str, Any]:
    """VALID with dotted paths set (or deleted with DELETE): doc(**{"spec.model.name": "x"})."""
    result = copy.deepcopy(VALID)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node: Any = result
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if value is DELETE:
            node.pop(last, None)
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return result


def errors_of(data: Any, source: str = "f.yaml") -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        parse_endpoint(data, source=source)
    return caught.value.message.splitlines()


def test_the_issue_example_is_valid() -> None:
    endpoint = parse_endpoint(VALID)
    assert endpoint.name == "iris"
    assert endpoint.namespace == "ml"
    assert endpoint.spec.model == ModelRef(name="iris-clf", alias="champion")
    assert endpoint.spec.canary.steps[1] == CanaryStep(weight=50, hold=timedelta(seconds=60))
    assert endpoint.spec.resources.accelerators == {"nvidia.com/gpu": 1}
    assert endpoint.spec.autoscaling.min_replicas == 2
    assert endpoint.spec.canary.checks.latency.p99_ms == 120
    assert endpoint.spec.image.base_ref.tag == "dev"
    assert endpoint.spec.image.repository_ref.repository == "ml/iris"
    assert endpoint.status is None


def test_the_demo_endpoint_file_is_valid() -> None:
    endpoint = load_endpoint(IRIS)
    assert (endpoint.namespace, endpoint.name) == ("ml", "iris")
    assert endpoint.spec.model.alias == "champion"
    assert endpoint.spec.resources.accelerators == {}
    assert [s.weight for s in endpoint.spec.canary.steps] == [50]


def test_defaults_fill_a_minimal_spec() -> None:
    minimal = doc(**{"spec.autoscaling": DELETE, "spec.canary": DELETE})
    minimal["spec"]["resources"] = {"cpu": 2, "memory": "1Gi"}
    endpoint = parse_endpoint(minimal)
    spec = endpoint.spec
    assert spec.resources.cpu == "2"
    assert (spec.autoscaling.min_replicas, spec.autoscaling.max_replicas) == (1, 3)
    assert [s.weight for s in spec.canary.steps] == [10, 50]
    assert spec.canary.checks.min_requests == 200
    agreement = spec.canary.checks.agreement
    assert agreement.enabled and agreement.kind == "auto" and agreement.min_agreement == 0.95
    assert agreement.max_psi is None and agreement.max_ks is None and agreement.samples is None
    assert (agreement.min_samples, agreement.max_samples) == (20, 500)
    assert agreement.on_failure == "rollback"
    assert spec.promotion.alias == "production" and spec.promotion.tags is True
    assert spec.smoke.require_input_example is True
    assert spec.drill is None


def test_snake_case_names_populate_too() -> None:
    endpoint = parse_endpoint(doc(**{"spec.autoscaling": {"min_replicas": 1, "max_replicas": 2}}))
    assert endpoint.spec.autoscaling.max_replicas == 2


@pytest.mark.parametrize(("changes", "expected"), [
    pytest.param({"spec.model": {"name": "m", "version": 3}}, {"version": 3}, id="version"),
    pytest.param({"spec.model": {"name": "m", "version": "3"}}, {"version": 3},
                 id="version-string"),
    pytest.param({"spec.model": {"name": "m", "stage": "production"}},
                 {"stage": Stage.PRODUCTION}, id="stage-any-case"),
    pytest.param({"spec.model": {"name": "m", "stage": " Staging "}}, {"stage": Stage.STAGING},
                 id="stage-padded"),
    pytest.param({"spec.resources.cpu": 0.5}, {"cpu": "0.5"}, id="cpu-float"),
    pytest.param({"spec.resources.cpu": 1e-3}, {"cpu": "0.001"}, id="cpu-float-small"),
    pytest.param({"spec.resources.memory": 2e9}, {"memory": "2000000000.0"}, id="memory-float"),
    pytest.param({"spec.resources.cpu": "250m"}, {"cpu": "250m"}, id="cpu-milli"),
    pytest.param({"spec.resources.memory": " 1Gi "}, {"memory": "1Gi"}, id="memory-padded"),
    pytest.param({"spec.resources.memory": "1e9"}, {"memory": "1e9"}, id="memory-exponent"),
    pytest.param({"spec.image.base": "r.io/ml/base@sha256:" + "a" * 64}, {}, id="base-digest"),
    pytest.param({"spec.drill": {"schedule": "@daily"}}, {"fault": Fault.LATENCY},
                 id="drill-macro"),
    pytest.param({"spec.drill": {"schedule": "*/15  2-4 1,15 * MON", "fault": "crash"}},
                 {"schedule": "*/15 2-4 1,15 * MON"}, id="drill-cron"),
    pytest.param({"spec.canary.steps": [{"weight": 100, "hold": "PT1M"}]},
                 {"hold": timedelta(minutes=1)}, id="hold-iso"),
])
def test_valid_variants(changes: dict[str, Any], expected: dict[str, Any]) -> None:
    endpoint = parse_endpoint(doc(**changes))
    found = {
        "version": endpoint.spec.model.version, "stage": endpoint.spec.model.stage,
        "cpu": endpoint.spec.resources.cpu, "memory": endpoint.spec.resources.memory,
        "fault": endpoint.spec.drill.fault if endpoint.spec.drill else None,
        "schedule": endpoint.spec.drill.schedule if endpoint.spec.drill else None,
        "hold": endpoint.spec.canary.steps[0].hold,
    }
    assert {k: found[k] for k in expected} == expected


# (changes, the path the line names, words of the problem and of the fix)
INVALID = [
    pytest.param({"apiVersion": "v1"}, "apiVersion", ["must be 'modelrelease.io/v1alpha1'"],
                 id="api-version"),
    pytest.param({"kind": "Deployment"}, "kind", ["must be 'ModelEndpoint'", '"Deployment"'],
                 id="kind"),
    pytest.param({"metadata": DELETE}, "metadata",
                 ["required", "e.g. metadata: {name: iris, namespace: ml}"], id="metadata-missing"),
    pytest.param({"metadata": "iris"}, "metadata", ["must be a mapping", '"iris"'],
                 id="metadata-not-mapping"),
    pytest.param({"metadata.name": "Iris_Model"}, "metadata.name",
                 ["not a valid Kubernetes name", 'e.g. "iris-model"'], id="name-chars"),
    pytest.param({"metadata.name": "1iris"}, "metadata.name", ["starting with a letter",
                                                               'e.g. "iris"'], id="name-digit"),
    pytest.param({"metadata.name": "a" * 60}, "metadata.name",
                 ["60 characters", "at most 55", "NAME-primary", "shorten it"], id="name-long"),
    pytest.param({"metadata.name": 7}, "metadata.name", ["must be a string", "e.g. name: iris"],
                 id="name-type"),
    pytest.param({"metadata.namespace": "ML_team"}, "metadata.namespace",
                 ["not a valid namespace", 'e.g. "ml-team"'], id="namespace"),
    pytest.param({"metadata.namespace": "___"}, "metadata.namespace", ['e.g. "default"'],
                 id="namespace-hopeless"),
    pytest.param({"metadata.labels": {"a": "b"}}, "metadata.labels",
                 ["unknown field", "allowed: name, namespace"], id="metadata-extra"),
    pytest.param({"spec": "hello"}, "spec", ["must be a mapping", '"hello"'], id="spec-type"),
    pytest.param({"spec.modle": {}}, "spec.modle", ["unknown field; did you mean model?"],
                 id="spec-typo"),
    pytest.param({"spec.model.my alias\n": "x"}, 'spec.model["my alias\\n"]',
                 ["did you mean alias? (allowed: name, alias, version, stage)"], id="odd-key"),
    pytest.param({"spec.model": DELETE}, "spec.model",
                 ["required", "e.g. model: {name: iris-clf, alias: champion}"],
                 id="model-missing"),
    pytest.param({"spec.model.name": DELETE}, "spec.model.name",
                 ["required", "e.g. name: iris-clf"], id="model-name-missing"),
    pytest.param({"spec.model.name": "iris clf"}, "spec.model.name", ["no spaces", "e.g. iris-clf"],
                 id="model-name"),
    pytest.param({"spec.model.version": 3}, "spec.model",
                 ["sets alias and version", "keep exactly one of alias, version or stage"],
                 id="model-two-selectors"),
    pytest.param({"spec.model.alias": DELETE}, "spec.model",
                 ["names no version", "alias: champion", "version: 3", "stage: Production"],
                 id="model-no-selector"),
    pytest.param({"spec.model.alias": "latest"}, "spec.model.alias", ["reserved", "champion"],
                 id="alias-reserved"),
    pytest.param({"spec.model.alias": "v3"}, "spec.model.alias", ["reserved"],
                 id="alias-version-like"),
    pytest.param({"spec.model.alias": "champ!on"}, "spec.model.alias",
                 ["not an MLflow alias", "e.g. champion"], id="alias-chars"),
    pytest.param({"spec.model": {"name": "m", "version": 0}}, "spec.model.version",
                 ["must be at least 1", "got 0"], id="version-zero"),
    pytest.param({"spec.model": {"name": "m", "version": "three"}}, "spec.model.version",
                 ["must be a whole number", '"three"', "e.g. version: 3"], id="version-text"),
    pytest.param({"spec.model": {"name": "m", "version": "9" * 5000}}, "spec.model.version",
                 ["exceeded maximum size"], id="version-huge"),
    pytest.param({"spec.model": {"name": "m", "stage": "prod"}}, "spec.model.stage",
                 ["must be 'Staging' or 'Production'", '"prod"'], id="stage"),
    pytest.param({"spec.model": {"name": "m", "stage": 2}}, "spec.model.stage",
                 ["must be 'Staging' or 'Production'", "got 2"], id="stage-number"),
    pytest.param({"spec.image.repository": "127.0.0.1:5000/ml/iris:v1"}, "spec.image.repository",
                 ["carries a tag or digest", 'e.g. "127.0.0.1:5000/ml/iris"'], id="repo-tagged"),
    pytest.param({"spec.image.repository": "r.io/ML/Iris"}, "spec.image.repository",
                 ["not an image reference", "invalid repository", "lowercase"], id="repo-bad"),
    pytest.param({"spec.image.base": "r.io/ml/base"}, "spec.image.base",
                 ["names no tag or digest", '"r.io/ml/base@sha256:<digest>"'], id="base-unpinned"),
    pytest.param({"spec.image.base": "r.io/ml/base@sha256:abc"}, "spec.image.base",
                 ["not an image reference", "sha256:<64 hex>"], id="base-digest"),
    pytest.param({"spec.image.base": ""}, "spec.image.base",
                 ["not an image reference", "empty"], id="base-empty"),
    pytest.param({"spec.resources.cpu": "lots"}, "spec.resources.cpu",
                 ["not a Kubernetes quantity", "500m"], id="cpu-text"),
    pytest.param({"spec.resources.cpu": "0"}, "spec.resources.cpu",
                 ["must be greater than zero"], id="cpu-zero"),
    pytest.param({"spec.resources.cpu": "2Gi"}, "spec.resources.cpu",
                 ["2147483648 cores", "millicores (500m)"], id="cpu-binary-unit"),
    pytest.param({"spec.resources.cpu": True}, "spec.resources.cpu",
                 ["must be a string", "e.g. cpu: 500m"], id="cpu-bool"),
    pytest.param({"spec.resources.memory": "512"}, "spec.resources.memory",
                 ["only 512 bytes", 'e.g. "512Mi"'], id="memory-no-unit"),
    pytest.param({"spec.resources.memory": "512m"}, "spec.resources.memory",
                 ["only 0.512 bytes", 'e.g. "512Mi"'], id="memory-milli"),
    pytest.param({"spec.resources.memory": DELETE}, "spec.resources.memory",
                 ["required", "e.g. memory: 512Mi"], id="memory-missing"),
    pytest.param({"spec.resources.accelerators": {"gpu": 1}}, 'spec.resources.accelerators["gpu"]',
                 ["not an extended resource name", "DOMAIN/NAME", "nvidia.com/gpu"],
                 id="accelerator-unqualified"),
    pytest.param({"spec.resources.accelerators": {"cpu": 1}}, 'spec.resources.accelerators["cpu"]',
                 ["not an accelerator", "resources.cpu"], id="accelerator-cpu"),
    pytest.param({"spec.resources.accelerators": {"kubernetes.io/x": 1}},
                 'spec.resources.accelerators["kubernetes.io/x"]',
                 ["reserved kubernetes.io domain"], id="accelerator-reserved"),
    pytest.param({"spec.resources.accelerators": {"nvidia.com/gpu": 0}},
                 'spec.resources.accelerators["nvidia.com/gpu"]', ["must be at least 1", "got 0"],
                 id="accelerator-zero"),
    pytest.param({"spec.resources.accelerators": {"nvidia.com/gpu": 1.5}},
                 'spec.resources.accelerators["nvidia.com/gpu"]', ["must be a whole number", "1.5"],
                 id="accelerator-fraction"),
    pytest.param({"spec.resources.accelerators": ["nvidia.com/gpu"]},
                 "spec.resources.accelerators",
                 ["must be a mapping", "e.g. accelerators: {nvidia.com/gpu: 1}"],
                 id="accelerators-list"),
    pytest.param({"spec.autoscaling.minReplicas": 20}, "spec.autoscaling.minReplicas",
                 ["must be at most maxReplicas (10)", "raise maxReplicas or lower minReplicas"],
                 id="replicas-order"),
    pytest.param({"spec.autoscaling.maxReplicas": 101}, "spec.autoscaling.maxReplicas",
                 ["must be at most 100", "got 101"], id="replicas-max"),
    pytest.param({"spec.autoscaling.maxReplica": 3}, "spec.autoscaling.maxReplica",
                 ["did you mean maxReplicas?",
                  "allowed: minReplicas, maxReplicas, targetUtilization"], id="replicas-typo"),
    pytest.param({"spec.canary.steps": []}, "spec.canary.steps",
                 ["needs at least 1 item", "e.g. steps: [{weight: 10, hold: 30s}]"],
                 id="steps-empty"),
    pytest.param({"spec.canary.steps": [{"weight": 1, "hold": 1}] * 21}, "spec.canary.steps",
                 ["has 21 items; at most 20"], id="steps-many"),
    pytest.param({"spec.canary.steps": "10,50"}, "spec.canary.steps", ["must be a list"],
                 id="steps-not-list"),
    pytest.param({"spec.canary.steps.1.weight": 10}, "spec.canary.steps[1].weight",
                 ["must be greater than step 0's weight (10)"], id="steps-order"),
    pytest.param({"spec.canary.steps.0.weight": 0}, "spec.canary.steps[0].weight",
                 ["weight 0 sends the canary no traffic", "start at 1"], id="step-zero"),
    pytest.param({"spec.canary.steps.0.shadow": 100}, "spec.canary.steps[0]",
                 ["give either weight", "or shadow", "not both, not neither"],
                 id="step-weight-and-shadow"),
    pytest.param({"spec.canary.steps.0.weight": DELETE}, "spec.canary.steps[0]",
                 ["give either weight (percent of live traffic, e.g. 10)"],
                 id="step-neither"),
    pytest.param({"spec.canary.steps.1": {"shadow": 100, "hold": "1m"}},
                 "spec.canary.steps[1].shadow",
                 ["a shadow step must come before the weighted steps (step 0 has weight 10)"],
                 id="shadow-after-weight"),
    pytest.param({"spec.canary.steps.0": {"shadow": 0, "hold": "1m"}},
                 "spec.canary.steps[0].shadow", ["copying 0% copies nothing", "use 1 to 100"],
                 id="shadow-zero"),
    pytest.param({"spec.canary.steps.0": {"shadow": 101, "hold": "1m"}},
                 "spec.canary.steps[0].shadow", ["must be at most 100"], id="shadow-over"),
    pytest.param({"spec.traffic": {"router": "gateway-api"}}, "spec.traffic.gateway",
                 ["router gateway-api needs the Gateway", "kubectl get gateways -A"],
                 id="gateway-router-without-gateway"),
    pytest.param({"spec.traffic": {"gateway": {"name": "gw"}}}, "spec.traffic.gateway",
                 ["gateway only apply to router gateway-api", "set router: gateway-api"],
                 id="gateway-without-router"),
    pytest.param({"spec.traffic": {"hostname": "a.example.com"}}, "spec.traffic.hostname",
                 ["hostname only apply to router gateway-api"], id="hostname-without-router"),
    pytest.param({"spec.traffic": {"router": "istio"}}, "spec.traffic.router",
                 ["'replica-ratio' or 'gateway-api'"], id="unknown-router"),
    pytest.param({"spec.traffic": {"router": "gateway-api", "gateway": {"name": "Public_GW"}}},
                 "spec.traffic.gateway.name", ["not a valid Gateway name"], id="gateway-name"),
    pytest.param({"spec.traffic": {"router": "gateway-api", "gateway": {"name": "gw"},
                                   "hostname": "10.0.0.1:80"}}, "spec.traffic.hostname",
                 ["not a hostname an HTTPRoute takes", "no port and no IP"], id="hostname"),
    pytest.param({"spec.traffic": {"router": "gateway-api", "gateway": {"name": "gw"},
                                   "hostname": "10.0.0.1"}}, "spec.traffic.hostname",
                 ["not a hostname an HTTPRoute takes"], id="hostname-ip"),
    pytest.param({"spec.canary.steps.1.weight": 150}, "spec.canary.steps[1].weight",
                 ["must be at most 100"], id="step-over"),
    pytest.param({"spec.canary.steps.0.hold": "1x"}, "spec.canary.steps[0].hold",
                 ["not a duration", "30s, 2m, 1h30m, PT30S"], id="hold-text"),
    pytest.param({"spec.canary.steps.0.hold": "0s"}, "spec.canary.steps[0].hold",
                 ["collects no requests", "e.g. 30s"], id="hold-zero"),
    pytest.param({"spec.canary.steps.0.hold": "25h"}, "spec.canary.steps[0].hold",
                 ["longer than 24h", "30m"], id="hold-long"),
    pytest.param({"spec.canary.steps.0.hold": -5}, "spec.canary.steps[0].hold",
                 ["negative"], id="hold-negative"),
    pytest.param({"spec.canary.steps.0.hold": DELETE}, "spec.canary.steps[0].hold",
                 ["required", "e.g. hold: 30s"], id="hold-missing"),
    pytest.param({"spec.canary.checks.latency.p95Ms": 500}, "spec.canary.checks.latency.p95Ms",
                 ["must be at most p99Ms (120)"], id="p95-over-p99"),
    pytest.param({"spec.canary.checks.latency.p95Ms": 0}, "spec.canary.checks.latency.p95Ms",
                 ["must be greater than 0"], id="p95-zero"),
    pytest.param({"spec.canary.checks.maxErrorRate": 2}, "spec.canary.checks.maxErrorRate",
                 ["must be at most 1"], id="error-rate"),
    pytest.param({"spec.canary.checks.maxErrorRate": float("nan")},
                 "spec.canary.checks.maxErrorRate", ["must be a finite number"],
                 id="error-rate-nan"),
    pytest.param({"spec.canary.checks.maxErrorRate": "1%"}, "spec.canary.checks.maxErrorRate",
                 ["must be a number", '"1%"'], id="error-rate-percent"),
    pytest.param({"spec.canary.checks.minRequests": "abc"}, "spec.canary.checks.minRequests",
                 ["must be a whole number"], id="min-requests"),
    pytest.param({"spec.canary.checks.agreement.samples": "../x.json"},
                 "spec.canary.checks.agreement.samples",
                 ["not a path inside the run's artifacts", "without '..'"],
                 id="agreement-samples-outside"),
    pytest.param({"spec.canary.checks.agreement.samples": "/data/s.csv"},
                 "spec.canary.checks.agreement.samples", ["relative path"],
                 id="agreement-samples-absolute"),
    pytest.param({"spec.canary.checks.agreement.samples": "samples.parquet"},
                 "spec.canary.checks.agreement.samples",
                 ["must be a .json or .csv file", "agreement/samples.csv"],
                 id="agreement-samples-format"),
    pytest.param({"spec.canary.checks.agreement.minSamples": 600},
                 "spec.canary.checks.agreement.minSamples",
                 ["must be at most maxSamples (500)", "raise maxSamples"],
                 id="agreement-samples-order"),
    pytest.param({"spec.canary.checks.agreement.minAgreement": 95},
                 "spec.canary.checks.agreement.minAgreement", ["must be at most 1"],
                 id="agreement-percent"),
    pytest.param({"spec.canary.checks.agreement.kind": "scores"},
                 "spec.canary.checks.agreement.kind",
                 ["must be 'auto', 'classification' or 'regression'"], id="agreement-kind"),
    pytest.param({"spec.canary.checks.agreement.onFailure": "pause"},
                 "spec.canary.checks.agreement.onFailure", ["must be 'rollback' or 'hold'"],
                 id="agreement-on-failure"),
    pytest.param({"spec.canary.checks.agreement.maxPsi": 0},
                 "spec.canary.checks.agreement.maxPsi", ["must be greater than 0"],
                 id="agreement-psi-zero"),
    pytest.param({"spec.promotion": {"alias": "v3"}}, "spec.promotion.alias", ["reserved"],
                 id="promotion-alias"),
    pytest.param({"spec.promotion": {"tags": "perhaps"}}, "spec.promotion.tags",
                 ["must be true or false"], id="promotion-tags"),
    pytest.param({"spec.smoke": {"requireInputExample": [1]}}, "spec.smoke.requireInputExample",
                 ["must be true or false", "a list"], id="smoke"),
    pytest.param({"spec.drill": {"schedule": "0 3 * *"}}, "spec.drill.schedule",
                 ["has 4 fields", "5 (minute hour", "@daily"], id="cron-fields"),
    pytest.param({"spec.drill": {"schedule": ""}}, "spec.drill.schedule", ["has 0 fields"],
                 id="cron-empty"),
    pytest.param({"spec.drill": {"schedule": "0 25 * * *"}}, "spec.drill.schedule",
                 ["hour 25 is outside 0-23"], id="cron-range"),
    pytest.param({"spec.drill": {"schedule": "0 3 * * MON#1"}}, "spec.drill.schedule",
                 ["day of week field", "not cron syntax"], id="cron-syntax"),
    pytest.param({"spec.drill": {"schedule": "@daily", "fault": "boom"}}, "spec.drill.fault",
                 ["must be 'latency', 'errors' or 'crash'"], id="drill-fault"),
    pytest.param({"spec.drill": {"fault": "crash"}}, "spec.drill.schedule",
                 ["required", "e.g. schedule: 0 3 * * 1"], id="drill-schedule-missing"),
]


@pytest.mark.parametrize(("changes", "path", "words"), INVALID)
def test_invalid_field_names_path_and_fix(changes: dict[str, Any], path: str,
                                          words: list[str]) -> None:
    lines = errors_of(doc(**changes))
    prefix = f"f.yaml: {path}: "
    matching = [line for line in lines if line.startswith(prefix)]
    assert matching, lines
    for word in words:
        assert any(word in line for line in matching), (word, matching)


def test_the_issue_s_message_line_exactly(tmp_path: Path) -> None:
    target = tmp_path / "deployments" / "endpoints" / "iris.yaml"
    target.parent.mkdir(parents=True)
    target.write_text(yaml.safe_dump(doc(**{"spec.canary.steps.1.weight": 10})))
    with pytest.raises(InvalidInput) as caught:
        load_endpoint(target)
    assert caught.value.message == (
        f"{target}: spec.canary.steps[1].weight: must be greater than step 0's weight (10)"
    )


def test_every_error_gets_its_own_line() -> None:
    lines = errors_of(doc(**{"metadata.name": "X", "spec.resources.cpu": "lots",
                             "spec.canary.steps.1.weight": 5}))
    assert [line.split(": ")[1] for line in lines] == [
        "metadata.name", "spec.resources.cpu", "spec.canary.steps[1].weight",
    ]


@pytest.mark.parametrize(("text", "words"), [
    pytest.param("", ["empty", "apiVersion, kind, metadata, spec"], id="empty"),
    pytest.param("a: [", ["line 1, column 5", "not valid YAML"], id="unclosed"),
    pytest.param("a: 1\n---\nb: 2\n", ["not valid YAML", "single document"], id="two-documents"),
    pytest.param("- 1\n", ["is a list", "expected a ModelEndpoint mapping"], id="list"),
    pytest.param("just text\n", ['is "just text"'], id="scalar"),
    pytest.param("[" * 5000, ["not valid YAML"], id="deep"),
    pytest.param("a: \x07\n", ["not valid YAML", "unacceptable character"], id="control-char"),
])
def test_unreadable_documents(tmp_path: Path, text: str, words: list[str]) -> None:
    path = tmp_path / "e.yaml"
    path.write_text(text)
    with pytest.raises(InvalidInput) as caught:
        load_endpoint(path)
    assert caught.value.message.startswith(f"{path}: ")
    for word in words:
        assert word in caught.value.message


def test_missing_file_and_binary_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"nope.yaml: cannot read: No such file"):
        load_endpoint(tmp_path / "nope.yaml")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InvalidInput, match=r"bin.yaml: not UTF-8 text \(byte 0\)"):
        load_endpoint(binary)
    with pytest.raises(InvalidInput, match="cannot read"):
        load_endpoint(tmp_path)


def test_unknown_field_without_a_close_match_lists_the_allowed_ones() -> None:
    (line,) = errors_of(doc(**{"spec.resources.zzz": 1}))
    assert line == ("f.yaml: spec.resources.zzz: unknown field "
                    "(allowed: cpu, memory, accelerators)")


def test_unknown_field_under_a_free_form_map_has_no_allowed_list() -> None:
    lines = errors_of(doc(**{"spec.canary.steps.0.extra": 1, "spec.canary.steps.1.weight": 70}))
    assert lines == ["f.yaml: spec.canary.steps[0].extra: unknown field "
                     "(allowed: weight, shadow, hold, approval)"]
    # a non-string key cannot match a field: the path renders it anyway
    lines = errors_of({**VALID, 5: "x"})
    assert lines[0].startswith("f.yaml: ")


def test_shadow_steps_come_first_then_weights_increase() -> None:
    endpoint = parse_endpoint(doc(**{"spec.canary.steps": [
        {"shadow": 10, "hold": "1m"}, {"shadow": 100, "hold": "5m"},
        {"weight": 10, "hold": "30s"}, {"weight": 50, "hold": "1m"}]}))
    steps = endpoint.spec.canary.steps
    assert [(s.shadow, s.weight) for s in steps] == [(10, None), (100, None), (None, 10),
                                                      (None, 50)]
    only = parse_endpoint(doc(**{"spec.canary.steps": [{"shadow": 100, "hold": "5m"}]}))
    assert only.spec.canary.steps[0].shadow == 100  # shadow alone, then promotion


def test_deep_nesting_in_a_document_is_invalid_input() -> None:
    nested: Any = "x"
    for _ in range(3000):
        nested = {"a": nested}
    lines = errors_of(doc(**{"spec.resources.accelerators": nested}))
    assert lines


# --- durations and quantities -----------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    pytest.param("30s", timedelta(seconds=30), id="seconds"),
    pytest.param("2m", timedelta(minutes=2), id="minutes"),
    pytest.param("1h", timedelta(hours=1), id="hours"),
    pytest.param("1h30m", timedelta(minutes=90), id="combined"),
    pytest.param("250ms", timedelta(milliseconds=250), id="millis"),
    pytest.param("1.5s", timedelta(seconds=1.5), id="fraction"),
    pytest.param(" 10s ", timedelta(seconds=10), id="padded"),
    pytest.param("PT30S", timedelta(seconds=30), id="iso-seconds"),
    pytest.param("P1DT2H", timedelta(days=1, hours=2), id="iso-days-hours"),
    pytest.param("PT1.5M", timedelta(seconds=90), id="iso-fraction"),
    pytest.param("P2D", timedelta(days=2), id="iso-days"),
    pytest.param(45, timedelta(seconds=45), id="int"),
    pytest.param(2.5, timedelta(seconds=2.5), id="float"),
    pytest.param("45", timedelta(seconds=45), id="numeric-string"),
    pytest.param("0.5", timedelta(milliseconds=500), id="numeric-fraction"),
    pytest.param(timedelta(seconds=3), timedelta(seconds=3), id="timedelta"),
])
def test_parse_duration(value: object, expected: timedelta) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize("value", [
    pytest.param("", id="empty"), pytest.param("P", id="bare-P"), pytest.param("PT", id="bare-PT"),
    pytest.param("P1DT", id="dangling-T"), pytest.param("abc", id="text"),
    pytest.param("1d", id="days-unit"), pytest.param("inf", id="inf-text"),
    pytest.param("nan", id="nan-text"), pytest.param(".5", id="leading-dot"),
    pytest.param(True, id="bool"), pytest.param(None, id="none"), pytest.param([1], id="list"),
    pytest.param(float("inf"), id="inf"), pytest.param(float("nan"), id="nan"),
])
def test_parse_duration_refuses(value: object) -> None:
    with pytest.raises(ValueError, match=r"is not a duration: use e\.g\. 30s"):
        parse_duration(value)


@pytest.mark.parametrize("value", [pytest.param("-5", id="text"), pytest.param(-1, id="int"),
                                   pytest.param(timedelta(seconds=-1), id="timedelta")])
def test_parse_duration_refuses_negative(value: object) -> None:
    with pytest.raises(ValueError, match="negative"):
        parse_duration(value)


@pytest.mark.parametrize(("value", "text"), [
    pytest.param(timedelta(0), "0s", id="zero"),
    pytest.param(timedelta(seconds=30), "30s", id="seconds"),
    pytest.param(timedelta(seconds=90), "1m30s", id="minutes-seconds"),
    pytest.param(timedelta(hours=1), "1h", id="hour"),
    pytest.param(timedelta(hours=26, seconds=1), "26h1s", id="hours-seconds"),
    pytest.param(timedelta(seconds=1.5), "1.5s", id="fraction"),
    pytest.param(timedelta(milliseconds=250), "0.25s", id="millis"),
    pytest.param(timedelta(minutes=2, microseconds=1), "2m0.000001s", id="micro"),
    pytest.param(timedelta(seconds=-30), "-30s", id="negative"),
])
def test_format_duration_round_trips(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    if value >= timedelta(0):
        assert parse_duration(text) == value


@pytest.mark.parametrize(("quantity", "value"), [
    pytest.param("500m", Decimal("0.5"), id="milli"),
    pytest.param("2", Decimal(2), id="plain"),
    pytest.param("1Ki", Decimal(1024), id="kibi"),
    pytest.param("1.5Gi", Decimal("1.5") * 2**30, id="gibi-fraction"),
    pytest.param("1e3", Decimal(1000), id="exponent"),
    pytest.param("2E-3", Decimal("0.002"), id="negative-exponent"),
    pytest.param(".5", Decimal("0.5"), id="leading-dot"),
    pytest.param("1k", Decimal(1000), id="kilo"),
    pytest.param("100u", Decimal("0.0001"), id="micro"),
])
def test_quantity_value(quantity: str, value: Decimal) -> None:
    assert quantity_value(quantity) == value


@pytest.mark.parametrize("quantity", ["", "abc", "-1", "1Kb", "1.2.3", "1 Gi"])
def test_quantity_value_refuses(quantity: str) -> None:
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        quantity_value(quantity)


# --- round trip, hashing, status --------------------------------------------------------------


def test_yaml_round_trip_is_stable() -> None:
    endpoint = parse_endpoint(doc(**{"spec.drill": {"schedule": "0 3 * * 1", "fault": "errors"},
                                     "spec.canary.steps.0.hold": "PT1M30S"}))
    text = endpoint_yaml(endpoint)
    again = parse_endpoint(yaml.safe_load(text))
    assert again == endpoint
    assert endpoint_yaml(again) == text
    assert "hold: 1m30s" in text and "status" not in text and "null" not in text


def test_spec_hash_ignores_formatting_and_spelled_out_defaults() -> None:
    base = parse_endpoint(doc(**{"spec.promotion": DELETE}))
    spelled = parse_endpoint(doc(**{"spec.promotion": {"alias": "production", "tags": True},
                                    "spec.canary.steps.0.hold": "PT30S",
                                    "spec.resources.cpu": 1}))
    assert spec_hash(base) == spec_hash(spelled)
    assert spec_hash(base).startswith("sha256:") and len(spec_hash(base)) == 71
    renamed = parse_endpoint(doc(**{"metadata.name": "other"}))
    assert spec_hash(renamed) == spec_hash(base)


@pytest.mark.parametrize("changes", [
    pytest.param({"spec.resources.memory": "4Gi"}, id="memory"),
    pytest.param({"spec.model.alias": "challenger"}, id="alias"),
    pytest.param({"spec.canary.steps.0.hold": "31s"}, id="hold"),
    pytest.param({"spec.image.base": "127.0.0.1:5000/ml/serving-base:2"}, id="base"),
])
def test_spec_hash_changes_with_the_spec(changes: dict[str, Any]) -> None:
    assert spec_hash(parse_endpoint(doc(**changes))) != spec_hash(parse_endpoint(VALID))


def _entry(n: int) -> HistoryEntry:
    return HistoryEntry(release_id=f"r{n}", version=str(n), phase=ReleasePhase.PROMOTED,
                        finished_at=datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=n))


def test_status_phases_cover_every_state_machine_phase() -> None:
    from modelrelease.domain.rollout import Phase

    assert {p.value for p in Phase} <= {p.value for p in ReleasePhase}


def test_status_history_is_bounded_and_newest_last() -> None:
    status = ModelEndpointStatus()
    for n in range(HISTORY_LIMIT + 5):
        status = status.with_history(_entry(n))
    assert len(status.history) == HISTORY_LIMIT
    assert status.history[0].release_id == "r5"
    assert status.history[-1].release_id == f"r{HISTORY_LIMIT + 4}"
    with pytest.raises(ValidationError):
        ModelEndpointStatus(history=[_entry(n) for n in range(HISTORY_LIMIT + 1)])


def test_a_custom_resource_with_status_reads_back() -> None:
    data = doc(status={
        "phase": "Analysing", "releaseId": "r1", "step": 0, "weight": 33,
        "primary": {"version": "2", "digest": "sha256:" + "1" * 64},
        "canary": {"version": "3"},
        "lastVerdict": {"outcome": "Inconclusive", "reasons": ["12 of 200 requests"],
                        "numbers": {"requests_canary": 12}},
        "history": [{"releaseId": "r0", "version": "2", "phase": "Promoted"}],
        "conditions": [{"type": "Ready", "status": "True",
                        "lastTransitionTime": "2025-01-01T00:00:00Z"}],
        "observedGeneration": 4, "costPerHour": 0.12,
    })
    endpoint = parse_endpoint(data)
    assert endpoint.status is not None and endpoint.status.phase is ReleasePhase.ANALYSING
    assert endpoint_document(endpoint, status=True)["status"]["lastVerdict"]["numbers"] == {
        "requests_canary": 12.0}
    assert "status" not in endpoint_document(endpoint)
    lines = errors_of(doc(status={"phase": "Dancing", "weight": 101}))
    assert any(line.startswith("f.yaml: status.phase: must be 'Pending'") for line in lines)
    assert any(line.startswith("f.yaml: status.weight: must be at most 100") for line in lines)
    lines = errors_of(doc(status={"conditions": [{"type": "Ready", "status": "True",
                                                  "lastTransitionTime": "yesterday"}]}))
    assert lines[0].startswith("f.yaml: status.conditions[0].lastTransitionTime: must be a date")


def test_a_resource_read_from_the_cluster_keeps_only_name_and_namespace() -> None:
    served = doc(status={"phase": "Promoted", "weight": 0, "primary": {"version": "3"}})
    served["metadata"].update({"uid": "u-1", "resourceVersion": "42", "generation": 2,
                               "managedFields": [{"manager": "modelrelease"}]})
    endpoint = parse_resource(served)
    assert endpoint.metadata.name == "iris" and endpoint.status is not None
    assert endpoint.status.primary is not None and endpoint.status.primary.version == "3"
    served["spec"]["resources"]["cpu"] = "lots"
    with pytest.raises(InvalidInput, match=r"^modelendpoint ml/iris: spec.resources.cpu: "):
        parse_resource(served)
    with pytest.raises(InvalidInput, match=r"^modelendpoint: metadata: must be a mapping"):
        parse_resource({**VALID, "metadata": "x"})
    with pytest.raises(InvalidInput, match=r"^mine: metadata: must be a mapping"):
        parse_resource({**VALID, "metadata": "x"}, source="mine")


# --- ReleaseRequest ---------------------------------------------------------------------------


@pytest.mark.parametrize(("endpoint", "expected"), [
    pytest.param("iris", "/endpoints/iris.yaml", id="name"),
    pytest.param("elsewhere/iris.yaml", "elsewhere/iris.yaml", id="relative-path"),
    pytest.param("iris.yml", "iris.yml", id="file-name"),
])
def test_release_request_endpoint_file(endpoint: str, expected: str) -> None:
    request = ReleaseRequest(endpoint=endpoint)
    assert str(request.endpoint_file(Path("/endpoints"))) == expected
    assert request.dry_run is False


def test_release_request_refuses_bad_input() -> None:
    with pytest.raises(ValidationError, match="not a valid Kubernetes name"):
        ReleaseRequest(endpoint="Iris")
    with pytest.raises(ValidationError, match="sets version and alias: keep one of them"):
        ReleaseRequest.model_validate({"endpoint": "iris", "version": 3, "alias": "x"})
    with pytest.raises(ValidationError, match="at least 1"):
        ReleaseRequest.model_validate({"endpoint": ""})
    request = ReleaseRequest.model_validate({"endpoint": "iris", "dryRun": True})
    assert request.dry_run is True


def test_release_request_overrides() -> None:
    endpoint = parse_endpoint(VALID)
    assert ReleaseRequest(endpoint="iris").applied_to(endpoint) == endpoint
    pinned = ReleaseRequest(endpoint="iris", version=7).applied_to(endpoint)
    assert pinned.spec.model == ModelRef(name="iris-clf", version=7)
    aliased = ReleaseRequest(endpoint="iris", alias="challenger").applied_to(endpoint)
    assert aliased.spec.model == ModelRef(name="iris-clf", alias="challenger")
    policy = CanaryPolicy(steps=[CanaryStep(weight=20, hold=timedelta(seconds=5))])
    canaried = ReleaseRequest(endpoint="iris", canary=policy).applied_to(endpoint)
    assert canaried.spec.canary == policy and canaried.spec.model == endpoint.spec.model


def test_release_request_schema_is_a_form() -> None:
    schema = ReleaseRequest.model_json_schema(by_alias=True)
    assert set(schema["properties"]) == {"endpoint", "version", "alias", "canary", "dryRun"}
    assert schema["required"] == ["endpoint"]


def test_rollback_request_is_a_form_with_the_same_endpoint_rules() -> None:
    schema = RollbackRequest.model_json_schema(by_alias=True)
    assert set(schema["properties"]) == {"endpoint", "toVersion", "by"}
    assert schema["required"] == ["endpoint"]
    request = RollbackRequest.model_validate({"endpoint": "iris", "toVersion": 2, "by": "ana"})
    assert (request.to_version, request.by) == (2, "ana")
    assert str(request.endpoint_file(Path("/endpoints"))) == "/endpoints/iris.yaml"
    with pytest.raises(ValidationError, match="not a valid Kubernetes name"):
        RollbackRequest(endpoint="Iris")
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        RollbackRequest.model_validate({"endpoint": "iris", "toVersion": 0})
    with pytest.raises(ValidationError, match="at least 1 character"):
        RollbackRequest.model_validate({"endpoint": "iris", "by": ""})


def test_models_are_frozen_values() -> None:
    endpoint = parse_endpoint(VALID)
    with pytest.raises(ValidationError):
        endpoint.metadata.name = "other"  # type: ignore[misc]
    assert parse_endpoint(VALID) == endpoint


@pytest.mark.parametrize(("approval", "expected"), [
    pytest.param({}, ApprovalGate(timeout=timedelta(hours=1), on_timeout=OnTimeout.ROLLBACK),
                 id="defaults"),
    pytest.param({"timeout": "30m", "onTimeout": "continue"},
                 ApprovalGate(timeout=timedelta(minutes=30), on_timeout=OnTimeout.CONTINUE),
                 id="set"),
    pytest.param({"timeout": "168h"}, ApprovalGate(timeout=timedelta(days=7)), id="a-week"),
])
def test_a_step_may_wait_for_approval(approval: dict[str, Any],
                                      expected: ApprovalGate) -> None:
    endpoint = parse_endpoint(doc(**{"spec.canary.steps.0.approval": approval}))
    assert endpoint.spec.canary.steps[0].approval == expected
    assert endpoint.spec.canary.steps[1].approval is None


@pytest.mark.parametrize(("approval", "message"), [
    pytest.param({"timeout": "0s"}, 'spec.canary.steps[0].approval.timeout: "0s" is not a wait '
                 "for an answer: use between 1s and 7d (168h), e.g. 1h", id="zero"),
    pytest.param({"timeout": "169h"}, 'spec.canary.steps[0].approval.timeout: "169h" is not a '
                 "wait for an answer: use between 1s and 7d (168h), e.g. 1h", id="too-long"),
    pytest.param({"onTimeout": "promote"}, "spec.canary.steps[0].approval.onTimeout: ",
                 id="unknown-on-timeout"),
])
def test_a_bad_approval_gate_says_what_to_write(approval: dict[str, Any], message: str) -> None:
    (line,) = errors_of(doc(**{"spec.canary.steps.0.approval": approval}))
    assert line.startswith(f"f.yaml: {message}")
    if "onTimeout" in approval:
        assert "rollback" in line and "continue" in line


@pytest.mark.parametrize(("bake", "expected"), [
    pytest.param({}, timedelta(minutes=10), id="default-ten-minutes"),
    pytest.param({"duration": "10s"}, timedelta(seconds=10), id="shortest"),
    pytest.param({"duration": "24h"}, timedelta(hours=24), id="longest"),
])
def test_a_canary_may_bake_after_promotion(bake: dict[str, Any], expected: timedelta) -> None:
    endpoint = parse_endpoint(doc(**{"spec.canary.bake": bake}))
    assert endpoint.spec.canary.bake is not None
    assert endpoint.spec.canary.bake.duration == expected
    assert parse_endpoint(doc()).spec.canary.bake is None  # unset: no bake


@pytest.mark.parametrize(("duration", "shown"), [
    pytest.param("5s", '"5s"', id="too-short"),
    pytest.param("25h", '"25h"', id="too-long"),
])
def test_a_bad_bake_says_what_to_write(duration: str, shown: str) -> None:
    (line,) = errors_of(doc(**{"spec.canary.bake": {"duration": duration}}))
    assert line.startswith(f"f.yaml: spec.canary.bake.duration: {shown} is not a bake: use "
                           "between 10s and 24h, e.g. 10m")
