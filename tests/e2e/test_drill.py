"""Rollback drills on the local stack: a faulty canary of the primary is caught and undone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from modelrelease.adapters.oci_registry import RegistryClient
from modelrelease.domain.reference import ImageRef
from modelrelease.release.drill import DrillResult, run_drill
from modelrelease.spec import Fault
from modelrelease_localstack.demo_model import register_iris_model
from modelrelease_localstack.stack import Stack
from tests.e2e.helpers import Endpoint, background_client, make_endpoint
from tests.kube import eventually

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def drilled(stack: Stack, crd: None, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Endpoint]:
    """An endpoint released twice: version 2 is primary, version 1 the previous release."""
    made = make_endpoint(stack, tmp_path_factory.mktemp("drill"))
    tracking = str(made.settings.mlflow.tracking_uri)
    for c in (1.0, 0.3):
        register_iris_model(tracking, made.model, alias="champion", c=c)
        result = made.release()
        assert result.outcome == "promoted", result.reason
    yield made
    made.core.delete_namespace(made.namespace)


def _drill(endpoint: Endpoint, fault: Fault) -> tuple[DrillResult, list[str], int]:
    """Run a drill while a client of the test's own calls the primary Service."""
    primary = endpoint.image("primary")
    with background_client(endpoint, f"{endpoint.name}-primary") as ours:
        result = run_drill(str(endpoint.file), fault, endpoint.settings,
                           say=lambda line: print(line))
    print(result.line())  # the measured times, for the record
    assert endpoint.image("primary") == primary  # the primary was never touched
    eventually(lambda: endpoint.image("canary") is None, 60, "canary removed")
    return result, ours.failed, ours.ok


def _assert_recorded(endpoint: Endpoint, fault: Fault, passed: bool) -> dict[str, Any]:
    status = endpoint.status()
    drill = status["lastDrill"]
    assert drill["fault"] == fault.value and drill["passed"] is passed
    assert drill["version"] == "2" and drill["previousVersion"] == "1"
    assert status["phase"] == "Promoted" and status["primary"]["version"] == "2"
    assert status.get("canary") is None
    return dict(drill)


@pytest.mark.parametrize("fault", [
    pytest.param(Fault.LATENCY, id="latency"),
    pytest.param(Fault.CRASH, id="crash"),
])
def test_drill_catches_the_fault_rolls_back_and_records_its_times(
        drilled: Endpoint, fault: Fault) -> None:
    result, failed, ok = _drill(drilled, fault)
    assert result.passed, result.verdict.reason
    assert failed == [] and ok > 20, (ok, failed[:5])  # the primary served throughout
    assert result.primary_failed == 0 and result.primary_ok > 20
    detect, restore = result.verdict.time_to_detect_s, result.verdict.time_to_restore_s
    assert detect is not None and 0 < detect < 120
    assert restore is not None and 0 < restore < 60
    assert result.previous is not None and result.previous.version == "1"
    drill = _assert_recorded(drilled, fault, passed=True)
    assert (drill["timeToDetectS"], drill["timeToRestoreS"]) == (detect, restore)
    assert f"- time to detect: **{detect:.1f} s**" in result.report
    assert f"- time to restore: **{restore:.1f} s**" in result.report
    assert "| fault detected | yes |" in result.report
    assert "| previous image still pulls | yes |" in result.report
    # the drill's version is the primary's: MLflow still says it was promoted
    assert drilled.mlflow_tags("2")["modelrelease.status"] == "promoted"
    history = drilled.status()["history"]
    assert history[-1]["phase"] == "RolledBack" and history[-1]["version"] == "2"


def _prefect_drill(stack: Stack, endpoint: Endpoint, fault: Fault,
                   monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str]:
    """Run the ``rollback_drill`` flow on the stack's Prefect; its final state and report."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    for key, value in {
        "MODELRELEASE_KUBE__KUBECONFIG": str(stack.kubeconfig),
        "MODELRELEASE_MLFLOW__TRACKING_URI": str(endpoint.settings.mlflow.tracking_uri),
        "MODELRELEASE_BUILD__CACHE_DIR": str(endpoint.settings.build.cache_dir),
        "MODELRELEASE_RELEASE__LOAD_RATE": "30",
    }.items():
        monkeypatch.setenv(key, value)
    with temporary_settings(updates={PREFECT_API_URL: stack.env()["PREFECT_API_URL"]}):
        from flows.drill import rollback_drill

        state = rollback_drill(str(endpoint.file), fault, return_state=True)

        async def report() -> str:
            async with get_client() as prefect:
                found = await prefect.read_latest_artifacts()
                mine = [a for a in found if a.key == f"drill-{endpoint.name}"]
                return str(mine[0].data if mine else "")

        return state, asyncio.run(report())


def test_errors_drill_as_a_prefect_flow_run(stack: Stack, drilled: Endpoint,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    with background_client(drilled, f"{drilled.name}-primary") as ours:
        state, report = _prefect_drill(stack, drilled, Fault.ERRORS, monkeypatch)
    assert state.is_completed(), state.message
    summary = state.result()
    print(json.dumps(summary))
    assert summary["passed"] is True and summary["primary_failed"] == 0
    assert ours.failed == [] and ours.ok > 20
    drill = _assert_recorded(drilled, Fault.ERRORS, passed=True)
    assert drill["timeToDetectS"] == summary["time_to_detect_s"] > 0
    assert drill["timeToRestoreS"] == summary["time_to_restore_s"] > 0
    assert report.startswith(f"# Rollback drill of `{drilled.namespace}/{drilled.name}`: "
                             "passed")
    assert "errors:0.5" in report and "time to detect" in report


def test_drill_fails_when_the_previous_image_is_gone(stack: Stack, drilled: Endpoint,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from modelrelease.errors import DrillFailed

    status = drilled.status()
    (first,) = [h for h in status["history"] if h["version"] == "1"]
    image = ImageRef.parse(f"{stack.env()['LOCAL_REGISTRY']}/e2e/{drilled.name}")
    with RegistryClient(drilled.settings.registry) as registry:
        registry.delete_manifest(image, first["digest"])
        assert not registry.manifest_exists(image, first["digest"])
    state, report = _prefect_drill(stack, drilled, Fault.LATENCY, monkeypatch)
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, DrillFailed), error
    assert "previous image still pulls" in error.message
    assert f"@{first['digest']} is no longer in the registry" in error.message
    assert "| previous image still pulls | **no** |" in report
    drill = _assert_recorded(drilled, Fault.LATENCY, passed=False)
    assert "no longer in the registry" in drill["reason"]
    assert drill["timeToDetectS"] > 0  # the rest of the drill held, and was timed
