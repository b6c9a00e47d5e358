"""prefect.yaml's deployments for the Kubernetes work pool (domain/work_pools.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from modelrelease.domain.work_pools import FLOWS_DIR, for_kubernetes

SHIPPED = Path(__file__).resolve().parents[2] / "deployments" / "prefect.yaml"
IMAGE = "10.245.0.1:5000/modelrelease/pipeline@sha256:" + "ab" * 32


def _shipped() -> dict[str, Any]:
    return dict(yaml.safe_load(SHIPPED.read_text()))


def test_every_deployment_runs_from_the_image_in_the_kubernetes_pool() -> None:
    source = _shipped()
    derived = for_kubernetes(source, image=IMAGE)
    assert [d["name"] for d in derived["deployments"]] == \
        [d["name"] for d in source["deployments"]]
    for before, after in zip(source["deployments"], derived["deployments"], strict=True):
        assert after["work_pool"] == {"name": "modelrelease-k8s",
                                      "job_variables": {"image": IMAGE}}
        assert after["pull"] == [{"prefect.deployments.steps.set_working_directory":
                                  {"directory": FLOWS_DIR}}]
        # the rest as it was: entrypoint, triggers, schedules, concurrency, schema
        rest = {k: v for k, v in after.items() if k not in ("work_pool", "pull")}
        assert rest == {k: v for k, v in before.items() if k != "work_pool"}
    assert source == _shipped()  # the input is not changed
    assert FLOWS_DIR == "/opt/modelrelease"


def test_a_suffix_subset_and_narrowed_triggers_for_a_shared_server() -> None:
    derived = for_kubernetes(_shipped(), image=IMAGE, suffix="-k8s", pool="jobs",
                             only=["release", "rollback-drill"],
                             trigger_resources=["modelrelease.endpoint.ml.fraud"])
    release, drill = derived["deployments"]
    assert (release["name"], drill["name"]) == ("release-k8s", "rollback-drill-k8s")
    assert release["work_pool"]["name"] == drill["work_pool"]["name"] == "jobs"
    (trigger,) = release["triggers"]
    assert trigger["match"] == {"prefect.resource.id": ["modelrelease.endpoint.ml.fraud"]}
    assert trigger["expect"] == ["modelrelease.release.requested"]


@pytest.mark.parametrize(("kwargs", "said"), [
    pytest.param({"image": ""}, "no pipeline image", id="no-image"),
    pytest.param({"image": IMAGE, "only": ["release", "deploy-all"]},
                 "deploy-all not in prefect.yaml (it has release, rollback, watch-registry, "
                 "rollback-drill)", id="unknown-deployment"),
])
def test_bad_input_is_refused_naming_it(kwargs: dict[str, Any], said: str) -> None:
    with pytest.raises(ValueError) as caught:
        for_kubernetes(_shipped(), **kwargs)
    assert said in str(caught.value)


def test_the_cli_prints_the_file_to_deploy(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from modelrelease.cli import app

    result = CliRunner().invoke(app, ["deployments", "kubernetes", "--image", IMAGE,
                                      "--pool", "jobs", "--source", str(SHIPPED)])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.output) == for_kubernetes(_shipped(), image=IMAGE, pool="jobs")
    missing = CliRunner().invoke(app, ["deployments", "kubernetes", "--image", IMAGE,
                                       "--source", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2
    assert f"kubernetes deployments from {tmp_path / 'nope.yaml'}" in missing.output
