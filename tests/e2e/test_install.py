"""The pipeline installed into the stack's cluster with `kubectl apply -k` (#17 item 2).

``modelrelease dev install``'s steps, on the session's stack: the pipeline image built into
its registry (cached), the local overlay (deployments/kubernetes-local) filled in and applied
with the Kubernetes build's kubectl, then:

- the Prefect worker runs in a pod from the pipeline image, as a non-root user with a
  read-only root, and reaches the stack's Prefect through the node's relay: Prefect lists
  it, by its pod's name, as a live worker of the ``modelrelease-k8s`` pool, which it
  created with deployments/kubernetes/work-pool.json;
- the webhook bridge runs in a pod with no ServiceAccount token, behind its Service: a
  delivery from the host to the Service's ClusterIP (as MLflow sends one) that is not
  signed is refused, and a signed one is checked against the ModelEndpoint files of the
  ``modelrelease-endpoints`` ConfigMap, which it reads in the pod.

Then releases run as Jobs of the ``modelrelease-k8s`` pool (#17 items 3-4): one started
with the UI's REST call, one by an MLflow alias change posted to the bridge, a scheduled
rollback drill; and the Jobs' faults: an image the registry does not have (the run fails
with the kubelet's reason, from ``modelrelease jobs watch``), identities short of a
permission (the API server's reason), several endpoints released at once (a Job each,
all promoted), and the Job's and the worker's pods killed mid-release (the run is
rescheduled and its next Job resumes the release).

Only the install's own workloads are removed afterwards; the CRD, RBAC and namespaces stay,
as ``crd`` and test_rbac.py leave theirs.
"""

from __future__ import annotations

import ast
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from modelrelease_localstack.controlplane import kube_assets_dir
from modelrelease_localstack.demo import demo_endpoint
from modelrelease_localstack.demo_model import register_iris_model
from modelrelease_localstack.install import (
    NAMESPACE,
    Installed,
    build_pipeline_image,
    install,
)
from modelrelease_localstack.prefect_worker import deploy_to_kubernetes
from modelrelease_localstack.stack import Stack
from tests.kube import eventually
from tests.support import Deployed, deliver, prefect_call

pytestmark = pytest.mark.e2e
POOL = "modelrelease-k8s"
BASE_ONLY = ["mlflow", "scikit-learn", "skops"]
"""The Job-run model's requirements: all in the serving base (its pods cannot reach PyPI)."""
WORK_POOL = Path(__file__).resolve().parents[2] / "deployments/kubernetes/work-pool.json"
AT_ONCE = 3
"""Releases started together here (benchmarks/jobs.py runs 10 on a stack of its own; 10
Jobs here would take the node's 2 cores from the other part's latency-judging tests)."""


@dataclass(frozen=True)
class Done:
    installed: Installed
    kubectl: list[str]
    model: str
    api_url: str
    job_model: str
    workdir: Path
    many: tuple[str, ...]
    """Endpoints (and models) released together, each by its own Job."""


def _kubectl(kubectl: list[str], *args: str) -> str:
    done = subprocess.run([*kubectl, *args], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def done(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Done]:
    assert stack.state is not None
    started = time.monotonic()
    image = build_pipeline_image(stack.state)
    print(f"pipeline image {image} in {time.monotonic() - started:.1f}s")
    model = f"install-{uuid.uuid4().hex[:6]}"
    endpoints = tmp_path_factory.mktemp("install-endpoints")
    (endpoints / "probe.yaml").write_text(yaml.safe_dump(
        demo_endpoint(stack.env(), name="probe", namespace="ml", model=model)))
    # released by a Job: its images named by the registry's address as pods reach it
    env = stack.env()
    inside = stack.state.in_cluster["registry"]
    env = {**env, "LOCAL_REGISTRY": inside, "MODELRELEASE_BUILD__BASE_IMAGE":
           env["MODELRELEASE_BUILD__BASE_IMAGE"].replace(env["LOCAL_REGISTRY"], inside, 1)}
    job_model = f"jobrun-{uuid.uuid4().hex[:6]}"
    (endpoints / f"{job_model}.yaml").write_text(yaml.safe_dump(
        demo_endpoint(env, name=job_model, namespace="ml", model=job_model, hold="5s")))
    # pods have no way out (no PyPI): the model needs only what the serving base has, so
    # the Job's build adds no dependency layer
    register_iris_model(stack.env()["MLFLOW_TRACKING_URI"], job_model, alias="champion",
                        pip_requirements=BASE_ONLY)
    many = tuple(f"{job_model}-{i}" for i in range(AT_ONCE))
    for name in many:
        document = demo_endpoint(env, name=name, namespace="ml", model=name, hold="5s")
        document["spec"]["resources"] = {"cpu": "50m", "memory": "384Mi"}  # beside the rest
        (endpoints / f"{name}.yaml").write_text(yaml.safe_dump(document))
        register_iris_model(stack.env()["MLFLOW_TRACKING_URI"], name, alias="champion",
                            pip_requirements=BASE_ONLY)
    kubectl = [str(kube_assets_dir() / "kubectl"), "--kubeconfig", str(stack.kubeconfig)]
    try:
        installed = install(stack.state, image, kube_assets_dir() / "kubectl",
                            endpoints_dir=endpoints, timeout=240)
        print(f"installed in {installed.seconds:.1f}s (apply -> both Deployments rolled out)")
        yield Done(installed, kubectl, model, stack.env()["PREFECT_API_URL"], job_model,
                   tmp_path_factory.mktemp("install-deploy"), many)
    finally:
        subprocess.run([*kubectl, "-n", NAMESPACE, "delete", "--ignore-not-found", "--wait=false",
                        "deployment/prefect-worker", "deployment/modelrelease-webhook",
                        "service/modelrelease-webhook", "serviceaccount/modelrelease-webhook",
                        "secret/modelrelease-settings", "configmap/modelrelease-endpoints"],
                       capture_output=True, timeout=120, check=False)
        maps = subprocess.run([*kubectl, "-n", NAMESPACE, "get", "configmaps", "-o", "name"],
                              capture_output=True, text=True, timeout=60, check=False).stdout
        pools = [m for m in maps.split() if m.startswith("configmap/modelrelease-work-pool-")]
        if pools:
            subprocess.run([*kubectl, "-n", NAMESPACE, "delete", "--wait=false", *pools],
                           capture_output=True, timeout=120, check=False)
        subprocess.run([*kubectl, "-n", NAMESPACE, "delete", "jobs", "-l", "prefect.io/flow-run-id",
                        "--wait=false"], capture_output=True, timeout=120, check=False)
        for name in (job_model, *many):
            subprocess.run([*kubectl, "-n", "ml", "delete", "--wait=false",
                            "modelendpoints,deployments,services,hpa,pdb", "-l",
                            f"app.kubernetes.io/name={name}"],
                           capture_output=True, timeout=120, check=False)
            subprocess.run([*kubectl, "-n", "ml", "delete", "--wait=false", "modelendpoint",
                            name], capture_output=True, timeout=120, check=False)
        prefect_call(stack.env()["PREFECT_API_URL"], "DELETE", f"/work_pools/{POOL}")


def _pod(done: Done, app: str) -> dict:  # type: ignore[type-arg]
    pods = json.loads(_kubectl(done.kubectl, "-n", NAMESPACE, "get", "pods", "-l",
                               f"app.kubernetes.io/name={app}", "-o", "json"))["items"]
    running = [p for p in pods if p["status"].get("phase") == "Running"
               and not p["metadata"].get("deletionTimestamp")]
    assert len(running) == 1, [p["metadata"]["name"] for p in pods]
    return dict(running[0])


def test_the_worker_runs_in_the_cluster_and_polls_the_stacks_prefect(done: Done) -> None:
    pod = _pod(done, "prefect-worker")
    name = pod["metadata"]["name"]
    digest = done.installed.image.split("@", 1)[1]
    statuses = {status["name"]: status for status in pod["status"]["containerStatuses"]}
    assert set(statuses) == {"worker", "job-watch"}  # `modelrelease jobs watch` beside it
    for status in statuses.values():
        assert status["ready"] and status["imageID"].endswith(digest), status
    assert pod["spec"]["securityContext"]["runAsUser"] == 10001
    assert pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True

    def online() -> dict | None:  # type: ignore[type-arg]
        answer = prefect_call(done.api_url, "POST", f"/work_pools/{POOL}/workers/filter", {})
        if answer.status_code != 200:
            return None
        mine = [w for w in answer.json() if w["name"] == name and w.get("status") == "ONLINE"]
        return mine[0] if mine else None

    worker = eventually(online, 90, f"worker {name} ONLINE in pool {POOL}")
    beat = datetime.fromisoformat(worker["last_heartbeat_time"])
    assert (datetime.now(UTC) - beat).total_seconds() < 120
    pool = prefect_call(done.api_url, "GET", f"/work_pools/{POOL}")
    assert pool.status_code == 200, pool.text
    assert pool.json()["type"] == "kubernetes"
    # created by the worker from the ConfigMap of work-pool.json (--base-job-template)
    assert pool.json()["base_job_template"] == json.loads(WORK_POOL.read_text())
    print(f"worker {name}: heartbeat {beat.isoformat()}, pool {POOL} created with "
          "work-pool.json")


def test_the_bridge_answers_mlflow_at_its_service_and_reads_the_endpoints(done: Done) -> None:
    pod = _pod(done, "modelrelease-webhook")
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert not any(v.get("projected") for v in pod["spec"].get("volumes", []))
    service = json.loads(_kubectl(done.kubectl, "-n", NAMESPACE, "get", "service",
                                  "modelrelease-webhook", "-o", "json"))
    hook = f"http://{service['spec']['clusterIP']}/webhook"  # kube-proxy: host -> the pod
    secret = done.installed.settings["MODELRELEASE_WEBHOOK__SECRET"]
    body = json.dumps({"entity": "model_version_alias", "action": "created",
                       "timestamp": datetime.now(UTC).isoformat(),
                       "data": {"name": f"{done.model}-unfollowed", "alias": "champion",
                                "version": "1"}}).encode()
    forged = eventually(lambda: deliver(hook, secret, body, f"forged-{uuid.uuid4().hex[:6]}",
                                        sig="v1,AAAA"), 60, f"an answer from {hook}")
    assert forged.status_code == 401, forged.text
    answer = deliver(hook, secret, body, f"probe-{uuid.uuid4().hex[:6]}")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "no_endpoint"
    assert answer.json()["reason"].startswith("no endpoint in /etc/modelrelease/endpoints ")
    # the files it reads there are the install's: the endpoint that follows done.model
    listed = _kubectl(done.kubectl, "-n", NAMESPACE, "exec", "deploy/modelrelease-webhook",
                      "--", "python", "-c",
                      "from modelrelease.spec import load_endpoints; e = load_endpoints("
                      "'/etc/modelrelease/endpoints'); print({k: v.spec.model.name "
                      "for k, v in e.items()})")
    assert ast.literal_eval(listed.strip()) == {
        name: name for name in (done.job_model, *done.many)} | {"probe": done.model}
    assert done.installed.endpoints == tuple(sorted(
        f"{name}.yaml" for name in ("probe", done.job_model, *done.many)))


def test_a_release_from_the_ui_runs_as_a_job_and_promotes(done: Done) -> None:
    """The REST call the UI's form makes, on the release deployment of the Kubernetes pool:
    the worker starts a Job as modelrelease-pipeline, and the run builds (MLflow, registry),
    deploys and judges from inside the cluster, with the same report and CR status."""
    deploy_to_kubernetes(done.api_url, done.installed.image, done.workdir, suffix="-k8s",
                         only=["release"],
                         trigger_resources=[f"modelrelease.endpoint.ml.{done.job_model}"])
    prefect = Deployed(done.api_url, done.workdir)
    submitted = datetime.now(UTC)
    created = prefect.create_run("release-k8s",
                                 {"request": {"endpoint": done.job_model, "version": 1}})
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    run = prefect.wait_final(run_id, 600)
    selector = f"prefect.io/flow-run-id={run_id}"
    pods = json.loads(_kubectl(done.kubectl, "-n", NAMESPACE, "get", "pods", "-l", selector,
                               "-o", "json"))["items"]
    logs = _kubectl(done.kubectl, "-n", NAMESPACE, "logs", "-l", selector,
                    "--tail=40") if pods else ""
    assert run["state_type"] == "COMPLETED", f"{run['state']}\n{logs}"

    def succeeded() -> list | None:  # type: ignore[type-arg]
        found = json.loads(_kubectl(done.kubectl, "-n", NAMESPACE, "get", "pods", "-l",
                                    selector, "-o", "json"))["items"]
        return found if found and found[0]["status"].get("phase") == "Succeeded" else None

    (pod,) = eventually(succeeded, 60, "the flow run's pod Succeeded")
    (job,) = json.loads(_kubectl(done.kubectl, "-n", NAMESPACE, "get", "jobs", "-l", selector,
                                 "-o", "json"))["items"]
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "modelrelease-pipeline"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["containers"][0]["image"] == done.installed.image
    started = datetime.fromisoformat(pod["status"]["containerStatuses"][0]["state"]
                                     ["terminated"]["startedAt"].replace("Z", "+00:00"))
    ended = datetime.fromisoformat(run["end_time"])
    print(f"UI submit -> Job pod running {(started - submitted).total_seconds():.1f}s, "
          f"-> verdict {(ended - submitted).total_seconds():.1f}s (Job {job['metadata']['name']})")
    reports = [a for a in prefect.artifacts(run_id) if a["key"].startswith("release-")]
    assert len(reports) == 1, [a["key"] for a in prefect.artifacts(run_id)]
    # smoke and load went to the Service by its cluster DNS name, from the Job's pod
    assert "checks reached the pods through the Service's cluster DNS name" in \
        reports[0]["data"], reports[0]["data"]
    endpoint = json.loads(_kubectl(done.kubectl, "-n", "ml", "get", "modelendpoints",
                                   done.job_model, "-o", "json"))
    assert endpoint["status"]["primary"]["version"] == "1", endpoint["status"]


def _final_run(prefect: Deployed, parameters: dict, job_variables: dict  # type: ignore[type-arg]
               ) -> tuple[dict, list[str]]:  # type: ignore[type-arg]
    created = prefect.create_run("release-k8s", parameters, job_variables)
    assert created.status_code == 201, created.text
    run = prefect.wait_final(created.json()["id"], 180)
    return run, prefect.logs(run["id"])


def _primary(done: Done) -> str:
    endpoint = json.loads(_kubectl(done.kubectl, "-n", "ml", "get", "modelendpoints",
                                   done.job_model, "-o", "json"))
    return str(endpoint["status"]["primary"]["version"])


def test_a_job_that_cannot_pull_its_image_fails_its_run_with_the_kubelets_reason(
        done: Done) -> None:
    """A release-k8s run given an image the registry does not have: the kubelet would retry
    the pull for ever and the run stay Pending; `modelrelease jobs watch` (beside the
    worker, --grace 15s in the local overlay) fails it with the kubelet's reason and
    deletes the Job. Runs after the UI-started release above (release-k8s exists)."""
    prefect = Deployed(done.api_url, done.workdir)
    missing = done.installed.image.split("@", 1)[0] + ":no-such-tag"
    started = time.monotonic()
    run, logs = _final_run(prefect, {"request": {"endpoint": done.job_model, "version": 1}},
                           {"image": missing})
    print(f"unpullable image -> run {run['state_type']} in {time.monotonic() - started:.1f}s: "
          f"{run['state']['message']}")
    assert run["state_type"] == "FAILED", run["state"]
    message = run["state"]["message"]
    assert message.startswith("flow-run Job "), message
    assert f'"{missing}"' in message and "not found" in message, message  # containerd's words
    assert "ErrImagePull" in message or "ImagePullBackOff" in message, message
    assert any(line.startswith("modelrelease.jobs: ") and missing in line for line in logs), logs
    # prefect-kubernetes' observer said it too, from the pod's status (its log handler
    # sends in batches, so the line may land after the state)
    eventually(lambda: any(line.startswith("prefect.flow_runs.observer: Image pull failed")
                           for line in prefect.logs(run["id"])), 30, "the observer's line")
    eventually(lambda: not json.loads(_kubectl(
        done.kubectl, "-n", NAMESPACE, "get", "jobs", "-l",
        f"prefect.io/flow-run-id={run['id']}", "-o", "json"))["items"], 60, "the Job deleted")
    assert _primary(done) == "1"


def test_a_job_without_a_permission_fails_its_run_with_the_api_servers_reason(
        done: Done) -> None:
    """Two identities short of a permission, each named by the API server in the run's
    state and log: the flow run's (the namespace's `default` ServiceAccount, bound to
    nothing) and the worker's (asked to start the Job in `ml`, where its Role does not
    reach). Nothing changes on the endpoint."""
    prefect = Deployed(done.api_url, done.workdir)
    request = {"request": {"endpoint": done.job_model, "version": 1}}
    for job_variables, state, said in [
            ({"service_account_name": "default"}, "FAILED",
             '403 namespaces "ml" is forbidden: User "system:serviceaccount:modelrelease:default"'
             ' cannot get resource "namespaces"'),
            ({"namespace": "ml"}, "CRASHED",
             'User "system:serviceaccount:modelrelease:prefect-worker" cannot create resource '
             '"jobs" in API group "batch" in the namespace "ml"')]:
        run, _ = _final_run(prefect, request, job_variables)
        assert run["state_type"] == state, run["state"]
        assert said in run["state"]["message"], run["state"]
        eventually(lambda run=run, said=said: any(said in line
                                                  for line in prefect.logs(run["id"])),
                   30, "the reason in the run's log (its lines may land after the state)")
    assert _primary(done) == "1"


def test_an_alias_change_reaches_the_bridge_in_the_cluster_and_starts_one_job(
        done: Done, stack: Stack) -> None:
    """MLflow (on the host) posts to the bridge's ClusterIP; the release-k8s trigger turns
    the bridge's one event into one run, which canaries version 2 beside version 1 from a
    Job and promotes it. Runs after the UI-started release above (version 1 is primary)."""
    from mlflow.tracking import MlflowClient
    from pydantic import SecretStr

    from modelrelease.adapters.webhook import register_webhook
    from modelrelease.settings import MlflowConfig

    tracking = stack.env()["MLFLOW_TRACKING_URI"]
    prefect = Deployed(done.api_url, done.workdir)
    before = {run["id"] for run in prefect.runs("release-k8s")}
    version = register_iris_model(tracking, done.job_model, c=0.5,  # no alias yet
                                  pip_requirements=BASE_ONLY)
    assert version == "2"
    service = json.loads(_kubectl(done.kubectl, "-n", NAMESPACE, "get", "service",
                                  "modelrelease-webhook", "-o", "json"))
    hook = f"http://{service['spec']['clusterIP']}/webhook"
    hook_id, _ = register_webhook(
        MlflowConfig(tracking_uri=tracking), hook,
        SecretStr(done.installed.settings["MODELRELEASE_WEBHOOK__SECRET"]),
        name=f"in-cluster-{done.job_model}")
    try:
        time.sleep(1.5)  # past MLflow's webhook cache (MLFLOW_WEBHOOK_CACHE_TTL=1)
        set_at = datetime.now(UTC)
        MlflowClient(tracking_uri=tracking).set_registered_model_alias(
            done.job_model, "champion", version)
        run = eventually(lambda: [r for r in prefect.runs("release-k8s")
                                  if r["id"] not in before], 30,
                         "a release-k8s run after the alias change")[0]
        print(f"alias set -> Job-run release created "
              f"{(datetime.fromisoformat(run['created']) - set_at).total_seconds():.2f}s")
        assert run["parameters"] == {"request": {"endpoint": done.job_model, "version": 2}}
        final = prefect.wait_final(run["id"], 600)
        assert final["state_type"] == "COMPLETED", final["state"]
    finally:  # MLflow would keep calling a bridge that is gone
        MlflowClient(tracking_uri=tracking).delete_webhook(hook_id)
    time.sleep(3)  # a second run from the same change would have been created by now
    assert len([r for r in prefect.runs("release-k8s") if r["id"] not in before]) == 1
    endpoint = json.loads(_kubectl(done.kubectl, "-n", "ml", "get", "modelendpoints",
                                   done.job_model, "-o", "json"))
    assert endpoint["status"]["primary"]["version"] == "2", endpoint["status"]


def test_a_scheduled_rollback_drill_runs_as_a_job_and_passes(done: Done) -> None:
    """The rollback-drill deployment of the Kubernetes pool, given a schedule of its own:
    Prefect's scheduler starts the run, the worker its Job, and the drill's bad canary is
    caught and undone from inside the cluster; version 2 stays primary."""
    from datetime import timedelta

    deploy_to_kubernetes(done.api_url, done.installed.image, done.workdir, suffix="-k8s",
                         only=["rollback-drill"],
                         trigger_resources=[f"modelrelease.endpoint.ml.{done.job_model}"])
    prefect = Deployed(done.api_url, done.workdir)
    drill = prefect.deployment("rollback-drill-k8s")["id"]
    for run in prefect.runs("rollback-drill-k8s"):  # the file's own (weekly) schedules' runs
        prefect.call("DELETE", f"/flow_runs/{run['id']}")
    first = datetime.now(UTC) + timedelta(seconds=10)
    added = prefect.call("POST", f"/deployments/{drill}/schedules", [{
        "schedule": {"interval": 86400, "anchor_date": first.isoformat(), "timezone": "UTC"},
        "active": True, "parameters": {"endpoint": done.job_model, "fault": "errors"}}])
    assert added.status_code == 201, added.text
    try:
        run = eventually(lambda: [r for r in prefect.runs("rollback-drill-k8s")
                                  if r["parameters"].get("endpoint") == done.job_model], 90,
                         "the scheduled drill run")[0]
        assert run["auto_scheduled"] is True
        final = prefect.wait_final(run["id"], 600)
        assert final["state_type"] == "COMPLETED", final["state"]
    finally:
        prefect.call("POST", f"/deployments/{drill}/pause_deployment")
    pods = json.loads(_kubectl(done.kubectl, "-n", NAMESPACE, "get", "pods", "-l",
                               f"prefect.io/flow-run-id={run['id']}", "-o", "json"))["items"]
    assert [p["spec"]["serviceAccountName"] for p in pods] == ["modelrelease-pipeline"]
    reports = [a for a in prefect.artifacts(run["id"]) if a["key"].startswith("drill-")]
    assert len(reports) == 1 and "passed" in reports[0]["description"], reports
    endpoint = json.loads(_kubectl(done.kubectl, "-n", "ml", "get", "modelendpoints",
                                   done.job_model, "-o", "json"))
    assert endpoint["status"]["primary"]["version"] == "2", endpoint["status"]


def test_several_endpoints_released_at_once_run_in_as_many_jobs_and_all_promote(
        done: Done) -> None:
    """AT_ONCE endpoints of their own, each a first release requested in the same second:
    each runs in a Job of its own, none waits for another's lock, and all promote. Each
    Job asks for 50m CPU (job variable ``cpu_request``: the pool's 500m each would crowd
    on the stack's 2-core node beside the other part's pods)."""
    prefect = Deployed(done.api_url, done.workdir)
    began = time.monotonic()
    created = [prefect.create_run("release-k8s", {"request": {"endpoint": name, "version": 1}},
                                  {"cpu_request": "50m"}) for name in done.many]
    assert all(answer.status_code == 201 for answer in created), [a.text for a in created]
    run_ids = [answer.json()["id"] for answer in created]
    runs = [prefect.wait_final(run_id, 600) for run_id in run_ids]
    wall = time.monotonic() - began
    assert [run["state_type"] for run in runs] == ["COMPLETED"] * AT_ONCE, \
        [run["state"] for run in runs]
    jobs = set()
    for run_id in run_ids:
        found = json.loads(_kubectl(done.kubectl, "-n", NAMESPACE, "get", "jobs", "-l",
                                    f"prefect.io/flow-run-id={run_id}", "-o", "json"))["items"]
        assert len(found) == 1, [job["metadata"]["name"] for job in found]
        jobs.add(found[0]["metadata"]["name"])
    assert len(jobs) == AT_ONCE
    for name in done.many:
        endpoint = json.loads(_kubectl(done.kubectl, "-n", "ml", "get", "modelendpoints",
                                       name, "-o", "json"))
        assert endpoint["status"]["phase"] == "Promoted", endpoint["status"]
        assert endpoint["status"]["primary"]["version"] == "1", endpoint["status"]
    print(f"{AT_ONCE} releases at once as {AT_ONCE} Jobs: all promoted in {wall:.1f}s")


def test_a_release_whose_pods_are_killed_mid_release_resumes_in_a_new_job(
        done: Done, stack: Stack) -> None:
    """Version 3 is canaried from a Job; at Analysing, the Job's pod and the worker's pod
    are deleted (as a node drain would). Prefect reschedules the run (the pool's
    backoffLimit 0: ``PREFECT_FLOW_RUN_EXECUTE_SIGTERM_BEHAVIOR=reschedule``), the release
    does not roll back (nobody aborted it), the new worker pod starts a second Job for the
    same run, and that one resumes the step from the status and promotes. Runs last."""
    prefect = Deployed(done.api_url, done.workdir)
    version = register_iris_model(stack.env()["MLFLOW_TRACKING_URI"], done.job_model, c=0.7,
                                  pip_requirements=BASE_ONLY)
    assert version == "3"
    worker = _pod(done, "prefect-worker")["metadata"]["name"]
    # 30 s: long enough to kill it inside. This tests Jobs, not the judge: on stop 30's CI
    # (2 cores, the other stack part beside it) the re-judged step of this same version
    # was rolled back by its verdict, so latency may be 3x the primary's here
    canary = {"steps": [{"weight": 50, "hold": "30s"}],
              "checks": {"latency": {"maxRegression": 2.0}}}
    created = prefect.create_run("release-k8s", {"request": {
        "endpoint": done.job_model, "version": 3, "canary": canary}})
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    selector = f"prefect.io/flow-run-id={run_id}"

    def analysing() -> bool:
        status = json.loads(_kubectl(done.kubectl, "-n", "ml", "get", "modelendpoints",
                                     done.job_model, "-o", "json")).get("status") or {}
        return status.get("phase") == "Analysing" and (status.get("canary") or {}).get(
            "version") == "3"

    eventually(analysing, 300, "version 3 canaried and Analysing")
    _kubectl(done.kubectl, "-n", NAMESPACE, "delete", "pod", "--wait=false", "-l", selector)
    _kubectl(done.kubectl, "-n", NAMESPACE, "delete", "pod", "--wait=false", worker)
    killed = time.monotonic()
    run = prefect.wait_final(run_id, 600)
    print(f"pods killed -> run {run['state_type']} in {time.monotonic() - killed:.1f}s")
    assert run["state_type"] == "COMPLETED", run["state"]
    states = prefect.states(run_id)
    assert "AwaitingRetry" in states and states.count("Running") == 2, states
    logs = prefect.logs(run_id)
    said = [line for line in logs if "Analysing" in line or "abort" in line]
    print("\n".join(["states:", *states, "said:", *said]))
    assert any("Analysing: resuming: re-judging step 1" in line for line in said), said
    # the first Job's task was Crashed by the signal ("Execution was aborted by a
    # termination signal"), but the release was not aborted, and the step passed
    aborted = [line for line in said if "aborted by" in line and " in phase " in line]
    assert not aborted, "\n".join(["the killed Job aborted the release:", *aborted, "all:", *said])
    failed = [line for line in said if "→RollingBack" in line]
    assert not failed, "\n".join(["the re-judged step failed its checks:", *failed])
    jobs = json.loads(_kubectl(done.kubectl, "-n", NAMESPACE, "get", "jobs", "-l", selector,
                               "-o", "json"))["items"]
    assert len(jobs) == 2, [job["metadata"]["name"] for job in jobs]
    assert _pod(done, "prefect-worker")["metadata"]["name"] != worker
    assert _primary(done) == "3"
