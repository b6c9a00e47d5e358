"""The Prefect deployments (``prefect deploy --all``) on a real Prefect server, with a worker.

Everything goes through the REST calls the Prefect UI makes: the stored form schema, a
custom run, a refused value. Runs started by a trigger are found by their parameters.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelrelease.adapters.prefect_events import PrefectEvents
from modelrelease.domain.notifications import EVENTS, Notice
from modelrelease.domain.triggers import RELEASE_REQUESTED, ReleaseTrigger
from modelrelease.spec import load_endpoint, spec_hash
from modelrelease_localstack.demo_model import register_iris_model
from modelrelease_localstack.stack import Stack
from tests.e2e.helpers import Endpoint, make_endpoint, versions_1_and_2_promoted
from tests.kube import eventually
from tests.support import Deployed, deliver, webhook_receiver

pytestmark = pytest.mark.e2e
RELEASE_S = 300


def _runs_for(deployed: Deployed, endpoint: str) -> list[dict[str, Any]]:
    return [r for r in deployed.runs("release")
            if (r["parameters"].get("request") or {}).get("endpoint") == endpoint]


def _finished_promoted(deployed: Deployed, made: Endpoint, run: dict[str, Any]) -> str:
    final = deployed.wait_final(run["id"], RELEASE_S)
    assert final["state_type"] == "COMPLETED", final["state"]
    (report,) = [a for a in deployed.artifacts(run["id"]) if a["key"].startswith("release-")]
    assert "Promoted" in report["data"], report["data"][:500]
    assert made.status()["phase"] == "Promoted"
    return str(report["data"])


def test_the_deployments_carry_a_typed_form_a_trigger_and_schedules(deployed: Deployed) -> None:
    release = deployed.deployment("release")
    assert release["enforce_parameter_schema"] is True
    schema = release["parameter_openapi_schema"]
    assert schema["required"] == ["request"]
    form = schema["definitions"]["ReleaseRequest"]
    fields = form["properties"]
    assert form["required"] == ["endpoint"]
    assert fields["endpoint"]["minLength"] == 1 and fields["endpoint"]["title"] == "Endpoint"
    version = next(a for a in fields["version"]["anyOf"] if a.get("type") == "integer")
    assert version["minimum"] == 1 and fields["version"]["default"] is None
    assert fields["dryRun"]["default"] is False and fields["dryRun"]["title"] == "Dry run"
    assert fields["canary"]["anyOf"][0]["$ref"] == "#/definitions/CanaryPolicy"
    step = schema["definitions"]["CanaryStep"]["properties"]
    for field in ("weight", "shadow"):  # a step has one or the other: both may be left out
        share = next(a for a in step[field]["anyOf"] if a.get("type") == "integer")
        assert (step[field]["minimum"], share["maximum"]) == (1, 100), field

    automations = deployed.call("POST", "/automations/filter", {}).json()
    mine = [a for a in automations
            if any(action.get("deployment_id") == release["id"] for action in a["actions"])]
    assert len(mine) == 1 and mine[0]["trigger"]["expect"] == [RELEASE_REQUESTED]

    watch = deployed.deployment("watch-registry")
    (every,) = watch["schedules"]
    assert every["schedule"]["interval"] == 30.0
    drill = deployed.deployment("rollback-drill")
    iris = load_endpoint(Path(__file__).resolve().parents[2] / "deployments/endpoints/iris.yaml")
    assert iris.spec.drill is not None
    (cron,) = drill["schedules"]
    assert cron["schedule"]["cron"] == iris.spec.drill.schedule
    assert cron["parameters"] == {"endpoint": "iris", "fault": iris.spec.drill.fault.value}


@pytest.mark.parametrize("request_", [
    {"endpoint": "iris", "version": 0},
    {"endpoint": ""},
    {"version": 3},
    {"endpoint": "iris", "dryRun": "maybe"},
    {"endpoint": "iris", "canary": {"steps": [{"weight": 150, "hold": "10s"}]}},
], ids=["version-0", "empty-endpoint", "no-endpoint", "dry-run-not-bool", "weight-150"])
def test_a_bad_value_gets_409_and_no_run(deployed: Deployed, request_: dict[str, Any]) -> None:
    before = {run["id"] for run in deployed.runs("release")}
    answer = deployed.create_run("release", {"request": request_})
    assert answer.status_code == 409, answer.text
    assert "Validation failed" in answer.text or "validation" in answer.text.lower()
    # no run of this request (the other stack part's webhook tests may start runs meanwhile)
    made = [run for run in deployed.runs("release")
            if run["id"] not in before and run["parameters"].get("request") == request_]
    assert made == []


def test_a_custom_run_from_the_ui_call_releases_and_reports(deployed: Deployed,
                                                             endpoint: Endpoint) -> None:
    register_iris_model(str(endpoint.settings.mlflow.tracking_uri), endpoint.model,
                        alias="champion")
    answer = deployed.create_run("release", {"request": {"endpoint": endpoint.name,
                                                         "version": 1}})
    assert answer.status_code == 201, answer.text
    report = _finished_promoted(deployed, endpoint, answer.json())
    assert "| canary |" in report or "| primary |" in report
    assert endpoint.status()["primary"]["version"] == "1"


def test_a_rollback_run_from_the_ui_switches_back(deployed: Deployed,
                                                   endpoint: Endpoint) -> None:
    rollback = deployed.deployment("rollback")
    assert rollback["enforce_parameter_schema"] is True
    form = rollback["parameter_openapi_schema"]["definitions"]["RollbackRequest"]
    assert set(form["properties"]) == {"endpoint", "toVersion", "by"}
    refused = deployed.create_run("rollback", {"request": {"endpoint": endpoint.name,
                                                           "toVersion": 0}})
    assert refused.status_code == 409, refused.text

    one = versions_1_and_2_promoted(endpoint)

    answer = deployed.create_run("rollback", {"request": {"endpoint": endpoint.name}})
    assert answer.status_code == 201, answer.text
    run = answer.json()
    final = deployed.wait_final(run["id"], RELEASE_S)
    assert final["state_type"] == "COMPLETED", final["state"]
    status = endpoint.status()
    assert status["phase"] == "RolledBack" and status["primary"] == one
    assert (f"version 2 rolled back to version 1 by Prefect flow run {run['name']} "
            f"({run['id']})") in status["reason"]
    told = [EVENTS[Notice.ROLLED_BACK]]
    eventually(lambda: deployed.told(run["id"]) == told, 30, f"events {told}")

    again = deployed.create_run("rollback", {"request": {"endpoint": endpoint.name}})
    final = deployed.wait_final(again.json()["id"], RELEASE_S)
    assert final["state_type"] == "FAILED", final["state"]  # nothing left to go back to
    assert endpoint.status() == status


def test_one_change_posted_twice_starts_one_run(deployed: Deployed, endpoint: Endpoint) -> None:
    register_iris_model(str(endpoint.settings.mlflow.tracking_uri), endpoint.model,
                        alias="champion")
    digest = spec_hash(load_endpoint(endpoint.file))
    webhook = ReleaseTrigger(endpoint.name, endpoint.namespace, "1", digest, "webhook",
                             "alias champion set on version 1")
    watcher = ReleaseTrigger(endpoint.name, endpoint.namespace, "1", digest, "watcher",
                             "version 1 selected, nothing released yet")
    with PrefectEvents(deployed.api_url) as events:
        events.request_releases([webhook])
        events.request_releases([watcher])
        run = eventually(lambda: (_runs_for(deployed, endpoint.name) or [None])[0], 10,
                         "a release run started by the event")
        events.request_releases([webhook])  # once more, after the run exists
    time.sleep(3)  # a second run would have been created by now (the first took ~1 s)
    assert len(_runs_for(deployed, endpoint.name)) == 1
    assert run["parameters"] == {"request": {"endpoint": endpoint.name, "version": 1}}
    _finished_promoted(deployed, endpoint, run)


@pytest.mark.filterwarnings("ignore:.*transition_model_version_stage.*:FutureWarning")
def test_a_stage_transition_is_picked_up_by_the_watcher(stack: Stack, deployed: Deployed) -> None:
    from mlflow.tracking import MlflowClient

    made = make_endpoint(stack, deployed.endpoints_dir)
    try:
        document = yaml.safe_load(made.file.read_text())
        document["spec"]["model"] = {"name": made.model, "stage": "Production"}
        made.file.write_text(yaml.safe_dump(document))
        tracking = str(made.settings.mlflow.tracking_uri)
        version = register_iris_model(tracking, made.model, alias=None)
        deployed.resume("watch-registry")
        try:
            changed = datetime.now(UTC)
            client = MlflowClient(tracking_uri=tracking)
            client.transition_model_version_stage(made.model, str(version), "Production")
            run = eventually(lambda: (_runs_for(deployed, made.name) or [None])[0], 45,
                             "a release run started by the watcher")
        finally:
            deployed.pause("watch-registry")
        started = datetime.fromisoformat(run["created"])
        print(f"stage change -> release run created: {(started - changed).total_seconds():.1f}s")
        # the watcher looks every 30 s; its run then starts (the worker's poll, a process)
        # and creates the release run: 36 s once on a loaded 2-core machine
        assert (started - changed).total_seconds() < 30 + 30
        _finished_promoted(deployed, made, run)
    finally:
        made.file.unlink(missing_ok=True)
        made.core.delete_namespace(made.namespace)


def test_an_alias_set_in_mlflow_starts_one_release_within_5s(
        stack: Stack, deployed: Deployed, endpoint: Endpoint, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    tracking = str(endpoint.settings.mlflow.tracking_uri)
    secret = f"whsec-{uuid.uuid4().hex}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELRELEASE_", "MLFLOW_"))}
    env.update({"MODELRELEASE_WEBHOOK__SECRET": secret,
                "MODELRELEASE_RELEASE__ENDPOINTS_DIR": str(deployed.endpoints_dir),
                "MODELRELEASE_MLFLOW__TRACKING_URI": tracking,
                "PREFECT_API_URL": deployed.api_url})
    log = tmp_path / "receiver.log"
    cli = str(Path(sys.executable).parent / "modelrelease")
    with webhook_receiver(env, log) as url:
        hook = f"{url}/webhook"
        registered = subprocess.run(
            [cli, "webhook", "register", "--url", hook, "--name", f"deploy-{endpoint.name}"],
            env=env, capture_output=True, text=True, timeout=120, check=False)
        assert registered.returncode == 0, registered.stderr
        hook_id = json.loads(registered.stdout.splitlines()[-1])["webhook_id"]
        try:
            run, version = _alias_to_run(deployed, endpoint, tracking)
            _same_change_again(deployed, endpoint, hook, secret, version)
        finally:  # MLflow would keep calling a receiver that is gone
            MlflowClient(tracking_uri=tracking).delete_webhook(hook_id)
    text = log.read_text()
    assert "webhook refused from 127.0.0.1" in text and secret not in text
    _finished_promoted(deployed, endpoint, run)


def _alias_to_run(deployed: Deployed, endpoint: Endpoint, tracking: str
                  ) -> tuple[dict[str, Any], str]:
    from mlflow.tracking import MlflowClient

    version = register_iris_model(tracking, endpoint.model)  # no alias yet: no release
    time.sleep(1.5)  # past MLflow's webhook cache (MLFLOW_WEBHOOK_CACHE_TTL=1 on the stack)
    set_at = datetime.now(UTC)
    MlflowClient(tracking_uri=tracking).set_registered_model_alias(
        endpoint.model, "champion", version)
    run = eventually(lambda: (_runs_for(deployed, endpoint.name) or [None])[0], 5,
                     "a release run within 5 s of the alias set")
    latency = (datetime.fromisoformat(run["created"]) - set_at).total_seconds()
    print(f"alias set -> release run created: {latency:.2f}s")
    assert run["parameters"] == {"request": {"endpoint": endpoint.name, "version": 1}}
    return run, version


def _same_change_again(deployed: Deployed, endpoint: Endpoint, hook: str, secret: str,
                       version: str) -> None:
    """The same change again (a new delivery), a replay of it, and a forged one."""
    body = json.dumps({"entity": "model_version_alias", "action": "created",
                       "timestamp": datetime.now(UTC).isoformat(),
                       "data": {"name": endpoint.model, "alias": "champion",
                                "version": version}}).encode()
    assert deliver(hook, secret, body, "again-1").status_code == 202
    replay = deliver(hook, secret, body, "again-1")
    assert replay.status_code == 200 and "duplicate" in replay.text
    forged = deliver(hook, secret, body, "forged-1", sig="v1,AAAA")
    assert forged.status_code == 401
    time.sleep(3)  # a second run would exist by now (the first took about a second)
    assert len(_runs_for(deployed, endpoint.name)) == 1


def test_a_scheduled_drill_passes_and_records_its_times(deployed: Deployed,
                                                        endpoint: Endpoint) -> None:
    tracking = str(endpoint.settings.mlflow.tracking_uri)
    for c in (1.0, 0.3):  # version 2 primary, version 1 the release before it
        register_iris_model(tracking, endpoint.model, alias="champion", c=c)
        assert endpoint.release().outcome == "promoted"
    drill = deployed.deployment("rollback-drill")
    added = deployed.call("POST", f"/deployments/{drill['id']}/schedules", [{
        "schedule": {"cron": "* * * * *", "timezone": "UTC"}, "active": True,
        "parameters": {"endpoint": endpoint.name, "fault": "errors"}}])
    assert added.status_code == 201, added.text
    (schedule,) = added.json()
    deployed.resume("rollback-drill")
    try:
        def scheduled() -> dict[str, Any] | None:
            found = [r for r in deployed.runs("rollback-drill")
                     if r["parameters"].get("endpoint") == endpoint.name
                     and r["state_type"] != "SCHEDULED"]
            return found[0] if found else None

        run = eventually(scheduled, 150, "the drill the cron schedule started")
    finally:
        deployed.pause("rollback-drill")
        deployed.call("DELETE", f"/deployments/{drill['id']}/schedules/{schedule['id']}")
    assert run["auto_scheduled"] is True
    final = deployed.wait_final(run["id"], RELEASE_S)
    assert final["state_type"] == "COMPLETED", final["state"]
    (report,) = [a for a in deployed.artifacts(run["id"]) if a["key"].startswith("drill-")]
    last = endpoint.status()["lastDrill"]
    assert last["passed"] is True and last["fault"] == "errors"
    assert last["timeToDetectS"] > 0 and last["timeToRestoreS"] >= 0
    print(f"scheduled drill: detect {last['timeToDetectS']:.1f}s, "
          f"restore {last['timeToRestoreS']:.1f}s")
    assert f"{last['timeToDetectS']:.1f}" in report["data"]
    assert endpoint.status()["primary"]["version"] == "2"


def test_the_kubernetes_work_pool_template_is_accepted_and_runs_as_the_pipeline(
        deployed: Deployed) -> None:
    folder = Path(__file__).resolve().parents[2] / "deployments/kubernetes"
    template = json.loads((folder / "work-pool.json").read_text())
    name = f"modelrelease-k8s-{uuid.uuid4().hex[:6]}"
    created = deployed.call("POST", "/work_pools/", {
        "name": name, "type": "kubernetes", "base_job_template": template})
    assert created.status_code == 201, created.text
    stored = created.json()["base_job_template"]
    assert stored == template
    defaults = {k: v.get("default") for k, v in template["variables"]["properties"].items()}
    rbac = [d for d in yaml.safe_load_all((folder / "rbac.yaml").read_text()) if d]
    accounts = {(d["metadata"]["namespace"], d["metadata"]["name"])
                for d in rbac if d["kind"] == "ServiceAccount"}
    assert (defaults["namespace"], defaults["service_account_name"]) in accounts
    pod = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["envFrom"] == [{"secretRef": {"name": "modelrelease-settings"}}]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    deployed.call("DELETE", f"/work_pools/{name}")
