"""A dry run (CLI ``--dry-run``, the flow's ``dryRun``) plans a release and changes nothing.

The cluster's objects in the endpoint's namespace (and its namespaces), the registry's
repositories and tags, and every MLflow model's versions, aliases and tags are snapshotted
before and after each dry run and must be equal; a real release in between shows that the
same snapshot does see a release's changes.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from modelrelease.adapters.kube import KubeCluster
from modelrelease.cli import app
from modelrelease.release.dry_run import plan_release
from modelrelease.settings import KubeConfig
from modelrelease.spec import ReleaseRequest
from modelrelease_localstack.demo_model import register_iris_model
from modelrelease_localstack.stack import Stack
from tests.e2e.helpers import cli_env, make_endpoint
from tests.kube import eventually
from tests.security.support import diff, endpoint_world

pytestmark = pytest.mark.e2e


def test_a_dry_run_plans_the_release_and_changes_nothing(
        stack: Stack, crd: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    made = make_endpoint(stack, tmp_path, steps=[{"weight": 25, "hold": "10s"},
                                                 {"weight": 50, "hold": "10s"}])
    env = stack.env()
    tracking = str(made.settings.mlflow.tracking_uri)
    admin = KubeCluster(KubeConfig(kubeconfig=stack.kubeconfig))

    def snapshot() -> dict[str, Any]:  # the other stack part's endpoints change meanwhile
        return endpoint_world(admin, f"http://{env['LOCAL_REGISTRY']}", tracking,
                              namespace=made.namespace, name=made.name, model=made.model)

    try:
        register_iris_model(tracking, made.model, alias="champion", c=1.0)
        first = made.release()
        assert first.outcome == "promoted", first.reason
        register_iris_model(tracking, made.model, alias="champion", c=0.3)
        # the first release's canary Deployment goes once its pods have stopped
        eventually(lambda: made.image("canary") is None, 60, "canary removed")
        before = snapshot()
        assert f"e2e/{made.name}" in before["registry"]

        # the CLI: the plan on stdout, a JSON summary last, exit 0, and no change anywhere
        result = CliRunner().invoke(app, ["release", str(made.file), "--dry-run"],
                                    env=cli_env(made))
        assert result.exit_code == 0, result.output
        summary = json.loads(result.output.strip().splitlines()[-1])
        assert summary["outcome"] == "planned" and summary["version"] == "2", summary
        assert summary["image"] is None and summary["eta_s"] > 0
        text = result.output
        print(text)  # shown when the test fails
        for words in ("# Dry run: ", "version 2", "would be built: ",
                      "no tag 2 and no recorded build of version 2",
                      "**Serving now**: version 1", "**Permissions**: passed",
                      "requests/s on the primary", "| 1 | 25% | 50% | 1 | 10s |",
                      "| 2 | 50% | 50% | 1 | 10s |",
                      # the canary in the slot the primary is not in; promotion makes
                      # that same Deployment the primary
                      f"Deployment {made.namespace}/{made.name}-green (canary, 1 replica(s))",
                      f"Deployment {made.namespace}/{made.name}-green (primary, 1 replica(s))",
                      f"HorizontalPodAutoscaler {made.namespace}/{made.name}",
                      "PLACEHOLDER image digest", "kind: Deployment"):
            assert words in text, (words, text)
        assert diff(before, snapshot()) == []

        # the flow with dryRun: a plan artifact, outcome "planned", and no change anywhere
        monkeypatch.setenv("MODELRELEASE_KUBE__KUBECONFIG", str(stack.kubeconfig))
        monkeypatch.setenv("MODELRELEASE_MLFLOW__TRACKING_URI", tracking)
        monkeypatch.setenv("MODELRELEASE_BUILD__CACHE_DIR", str(made.settings.build.cache_dir))
        with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}):
            from flows.release import release_model

            state = release_model(ReleaseRequest(endpoint=str(made.file), dry_run=True),
                                  return_state=True)
            assert state.is_completed()
            outcome = state.result()
            assert outcome["outcome"] == "planned" and outcome["version"] == "2", outcome

            async def plan_artifact() -> str:
                async with get_client() as prefect:
                    found = await prefect.read_latest_artifacts()
                    key = f"dry-run-{made.namespace}-{made.name}"
                    return str(next((a.data for a in found if a.key == key), ""))

            artifact = asyncio.run(plan_artifact())
        assert "# Dry run: " in artifact and "## Canary plan" in artifact, artifact[:500]
        assert diff(before, snapshot()) == []

        # a real release changes what the snapshot sees; the dry run then finds its image
        second = made.release()
        assert second.outcome == "promoted", second.reason
        eventually(lambda: made.image("canary") is None, 60, "canary removed")
        released = snapshot()
        assert diff(before, released) != []
        planned = plan_release(ReleaseRequest(endpoint=str(made.file)), made.settings,
                               say=print)
        assert planned.dry_run.image == second.image
        assert planned.dry_run.image_note.startswith("already built: this machine's build")
        assert "would change nothing" in (planned.dry_run.primary or "")
        # another machine (no build record) finds it by the version's tag and labels
        elsewhere = made.settings.model_copy(update={"build": made.settings.build.model_copy(
            update={"cache_dir": tmp_path / "other-cache"})})
        other = plan_release(ReleaseRequest(endpoint=str(made.file)), elsewhere, say=print)
        assert other.dry_run.image == second.image
        assert other.dry_run.image_note.startswith("already built: tag 2 holds version 2")
        assert diff(released, snapshot()) == []
    finally:
        admin.close()
        made.core.delete_namespace(made.namespace)


def test_a_dry_run_request_is_never_released(stack: Stack, crd: None, tmp_path: Path) -> None:
    from modelrelease.errors import InvalidInput
    from modelrelease.release.driver import run_release

    made = make_endpoint(stack, tmp_path)
    try:
        with pytest.raises(InvalidInput, match="dry run, which changes nothing"):
            run_release(ReleaseRequest(endpoint=str(made.file), dry_run=True), made.settings)
        assert made.image("canary") is None and made.image("primary") is None
    finally:
        made.core.delete_namespace(made.namespace)
