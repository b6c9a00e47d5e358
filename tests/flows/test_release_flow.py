"""The release flow on a real Prefect server (the stack's): task runs, artifact, result."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from modelrelease.spec import ReleaseRequest
from modelrelease_localstack.demo_model import register_iris_model
from modelrelease_localstack.stack import Stack
from tests.e2e.helpers import make_endpoint

pytestmark = pytest.mark.e2e


def test_release_flow_runs_each_step_as_a_task_and_writes_the_report(
        stack: Stack, crd: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    made = make_endpoint(stack, tmp_path)
    try:
        tracking = str(made.settings.mlflow.tracking_uri)
        register_iris_model(tracking, made.model, alias="champion")
        env = stack.env()
        monkeypatch.setenv("MODELRELEASE_KUBE__KUBECONFIG", str(stack.kubeconfig))
        monkeypatch.setenv("MODELRELEASE_MLFLOW__TRACKING_URI", tracking)
        monkeypatch.setenv("MODELRELEASE_BUILD__CACHE_DIR", str(tmp_path / "cache"))
        with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}):
            from flows.release import release_model

            state = release_model(ReleaseRequest(endpoint=str(made.file)), return_state=True)
            assert state.is_completed()
            outcome = state.result()
            assert outcome["outcome"] == "promoted"

            async def inspect() -> tuple[list[str], str]:
                async with get_client() as prefect:
                    runs = await prefect.read_task_runs()
                    names = [r.name for r in runs if r.flow_run_id == state.state_details
                             .flow_run_id]
                    artifact = await prefect.read_latest_artifacts()
                    mine = [a for a in artifact
                            if a.key == f"release-{outcome['release_id']}"]
                    return names, str(mine[0].data if mine else "")

            names, report = asyncio.run(inspect())
        # the pipeline's steps as named task runs (tasks/steps.py)
        for step in ("resolve-model", "build-image", "deploy_canary", "smoke", "set_weight",
                     "analyse_step", "promote"):
            assert any(n.startswith(step) for n in names), (step, names)
        assert "Promoted" in report and "| canary |" in report
    finally:
        made.core.delete_namespace(made.namespace)
