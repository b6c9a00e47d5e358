"""The output-agreement check on the local stack (issue #8).

A canary that is fast and healthy but answers differently from the primary on the sample
set is rolled back by the agreement check alone; a retrained version that agrees promotes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelrelease_localstack.demo_model import register_faulty_model, register_iris_model
from modelrelease_localstack.stack import Stack
from tests.e2e.helpers import Endpoint, make_endpoint

pytestmark = pytest.mark.e2e

CHECKS = {"latency": {"p99Ms": 1000, "maxRegression": 0.5}, "maxErrorRate": 0.01,
          "minRequests": 100, "agreement": {"samples": "agreement/samples.csv"}}
ROWS = 3 + 150  # the input example's rows, then the sample set's (all of iris)


@pytest.fixture(scope="module")
def live(stack: Stack, crd: None, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Endpoint]:
    """An endpoint whose primary serves iris version 1; its first release skipped the check."""
    made = make_endpoint(stack, tmp_path_factory.mktemp("agreement"), checks=CHECKS)
    register_iris_model(str(made.settings.mlflow.tracking_uri), made.model, alias="champion",
                        samples="agreement/samples.csv")
    first = made.release()
    assert first.outcome == "promoted", first.reason
    assert "## Output agreement" in first.report
    assert "| skipped | – | 0 | – | – | – | first release: no primary to compare with |" in (
        first.report)
    yield made
    made.core.delete_namespace(made.namespace)


def test_a_fast_healthy_canary_that_answers_differently_is_rolled_back(live: Endpoint) -> None:
    tracking = str(live.settings.mlflow.tracking_uri)
    version = register_faulty_model(tracking, live.model, "disagree",
                                    samples="agreement/samples.csv")
    result = live.release(version=int(version))
    print(result.report)
    assert result.outcome == "rolled_back", result.reason
    assert f"0.0% of {ROWS} rows agree (minAgreement 95.0%)" in result.reason
    verdict = live.status()["lastVerdict"]
    # the agreement line leads only when it changed the outcome: latency and errors did not fail
    assert verdict["reasons"][0].startswith("output agreement fail: outputs disagree")
    others = " ".join(verdict["reasons"][1:])
    for failed in ("latency regression:", "SLO breached", "> max", "error regression:"):
        assert failed not in others, others
    numbers = verdict["numbers"]
    assert numbers["error_rate_canary"] == 0.0 and numbers["requests_canary"] >= 100
    assert numbers["agreement_rows"] == ROWS and numbers["agreement_rate"] == 0.0
    assert f"| 1 | fail | classification | {ROWS} | 0.0% |" in result.report
    assert live.status()["primary"]["version"] == "1"
    tags = live.mlflow_tags(version)
    assert tags["modelrelease.status"] == "rolled_back"
    assert "outputs disagree" in tags["modelrelease.reason"]


def test_a_retrained_version_that_agrees_is_promoted(live: Endpoint) -> None:
    tracking = str(live.settings.mlflow.tracking_uri)
    version = register_iris_model(tracking, live.model, alias="champion", c=0.3,
                                  samples="agreement/samples.csv")
    result = live.release()
    print(result.report)
    assert result.outcome == "promoted", result.reason
    assert result.version == version
    numbers = live.status()["lastVerdict"]["numbers"]
    assert numbers["agreement_rows"] == ROWS
    assert 0.95 <= numbers["agreement_rate"] < 1.0  # C=0.3 moves a row or two, no more
    assert f"| 1 | pass | classification | {ROWS} |" in result.report
