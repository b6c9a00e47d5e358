"""Shadow steps on the local stack: real users' requests copied to the canary, unseen.

One endpoint; version 1 is released plainly (a first release has nothing to copy from).
Then each test releases a version whose first step is ``{shadow: 100, hold: 20s}`` while a
client calls the endpoint's Service on its ClusterIP (kube-proxy to the pods, as users
do) with a row the judge's generated load never sends (the input example's rows are
others). The primary's pods copy those requests to ``Service E-canary``; the canary gets
no users.

- A healthy version is promoted; the report's step 1 is ``shadow 100%``, with the copies
  as its evidence beside generated load, and its live traffic shows 0 users on the canary.
- A version 7x slower only on the users' row, one that disagrees with the primary on a
  tenth of calls, and one whose serving process exits mid-step are each rolled back
  during the shadow step, for that reason. The users see no error, and the primary's
  pods are the same pods with no restart: turning the copies on and off restarts nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from modelrelease_localstack.demo_model import register_faulty_model, register_iris_model
from modelrelease_localstack.stack import Stack
from tests.e2e.helpers import Endpoint, background_client, make_endpoint

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]
USERS = {"dataframe_split": {
    "columns": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
    "data": [[6.7, 3.0, 5.2, 2.3]]}}
"""What the users send: petal_length 5.2 is in no row of the input example."""
CHECKS = {"latency": {"p99Ms": 5000, "maxRegression": 1.0}, "maxErrorRate": 0.01,
          "minRequests": 40}
STEPS = [{"shadow": 100, "hold": "20s"}, {"weight": 50, "hold": "10s"}]


@pytest.fixture(scope="module")
def shadowed(stack: Stack, crd: None, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Endpoint]:
    made = make_endpoint(stack, tmp_path_factory.mktemp("shadow"), steps=STEPS, checks=CHECKS)
    try:
        register_iris_model(stack.env()["MLFLOW_TRACKING_URI"], made.model, alias="champion")
        first = made.release()
        assert first.outcome == "promoted", first.reason
        assert "shadow" not in first.report.split("## Steps")[1]  # nothing to copy from
        yield made
    finally:
        made.core.delete_namespace(made.namespace)


def _primary_pods(made: Endpoint) -> dict[str, int]:
    """The primary's pods: uid -> restarts."""
    pods = made.core.list_namespaced_pod(made.namespace,
                                         label_selector=made.pod_selector("primary")).items
    return {pod.metadata.uid: sum(c.restart_count for c in pod.status.container_statuses or [])
            for pod in pods}


def _release_with_users(made: Endpoint) -> tuple[Any, Any]:
    with background_client(made, body=USERS, interval=0.05) as users:
        result = made.release()
    print(f"users: {users.ok} answered, {len(users.failed)} failed; {result.outcome}: "
          f"{result.reason}")
    return result, users


def test_a_healthy_version_is_judged_on_copies_of_users_requests_and_promoted(
        shadowed: Endpoint, stack: Stack) -> None:
    made = shadowed
    register_iris_model(stack.env()["MLFLOW_TRACKING_URI"], made.model, alias="champion",
                        c=0.5)
    result, users = _release_with_users(made)
    assert result.outcome == "promoted", result.reason
    assert users.failed == [] and users.ok > 100
    report = result.report
    print("\n".join(line for line in report.splitlines() if "step 1" in line or "| 1 |" in line))
    copies = int(re.search(r"step 1: router: replica ratio; evidence: generated load[^\n]*"
                           r"\+ shadow \((\d+) copies of live requests\)", report)[1])
    assert copies >= 200, copies  # 20 users' requests a second for the 20 s hold
    assert "| 1 | shadow 100% | canary |" in report
    assert "| shadow (copies of live requests) |" in report
    assert "out of live traffic; the primary's pods copy 100% of live requests" in report
    step1 = [line for line in report.splitlines() if line.startswith("- step 1: ")]
    # the users' requests all went to the primary: the canary had none of its own
    assert any(re.search(r"canary 0, primary [1-9]\d*\)", line) for line in step1), step1
    assert any("shadow on " in line and "within the checks" in line for line in step1), step1


@pytest.mark.parametrize(("fault", "options", "says"), [
    pytest.param("slow", {"delay_s": 0.03, "slow_column": "petal_length", "slow_value": 5.2},
                 "latency regression", id="slow-only-on-real-inputs"),
    pytest.param("disagree", {"slow_share": 0.1}, "the canary disagrees with the primary",
                 id="disagrees-on-a-tenth"),
    pytest.param("exit", {"slow_after_s": 15.0}, "shadow on ", id="crashes-mid-shadow"),
])
def test_a_bad_version_is_rolled_back_in_the_shadow_step_unseen(
        shadowed: Endpoint, stack: Stack, fault: str, options: dict[str, Any],
        says: str) -> None:
    made = shadowed
    primary = made.status()["primary"]["version"]
    before = _primary_pods(made)
    register_faulty_model(stack.env()["MLFLOW_TRACKING_URI"], made.model, fault,
                          alias="champion", **options)
    result, users = _release_with_users(made)
    assert result.outcome == "rolled_back", result.reason
    assert "step 1 failed at shadow 100%" in result.reason, result.reason
    assert says in result.reason, result.reason
    assert users.failed == [], users.failed[:5]  # nobody saw the canary
    assert users.ok > 100
    assert _primary_pods(made) == before  # the same pods, not restarted
    assert made.status()["primary"]["version"] == primary


def test_the_cluster_refuses_a_step_with_both_or_neither(shadowed: Endpoint) -> None:
    """The CRD's CEL rules, as the real API server runs them."""
    from kubernetes.client import ApiException

    made = shadowed
    for steps, message in (
            ([{"weight": 10, "shadow": 100, "hold": "5s"}], "either weight"),
            ([{"hold": "5s"}], "either weight"),
            ([{"weight": 10, "hold": "5s"}, {"shadow": 100, "hold": "5s"}],
             "shadow steps come before the weighted ones")):
        body = yaml.safe_load(made.file.read_text())  # valid, but for its steps
        body["metadata"]["name"] = "cel-check"
        body["spec"]["canary"]["steps"] = steps
        with pytest.raises(ApiException) as refused:
            made.custom.create_namespaced_custom_object(
                "modelrelease.io", "v1alpha1", made.namespace, "modelendpoints", body,
                dry_run="All")
        assert refused.value.status == 422 and message in str(refused.value.body), (
            steps, refused.value.body)
