"""Benchmark: releases run as Kubernetes Jobs, one alone and many at once, and what each costs.

Run ``.venv/bin/python benchmarks/jobs.py [--at-once N]`` (N: 10). It starts the local
stack in a temporary directory, with Prefect's access log on, installs the pipeline as
``modelrelease dev install`` does (the pipeline image, the local overlay: the Prefect
worker and the bridge in the cluster) and deploys ``release`` to the ``modelrelease-k8s``
pool. Every endpoint is the demo's (a small iris model, one 10 s step, 50m CPU) with a
model of its own; each release is a first release, which builds an image, deploys it,
smokes and judges it, and promotes it. Then:

1. the baseline, ``where: host``: one release run in this process (``run_release``, as
   ``modelrelease release`` does);
2. ``where: job``: the same release of a twin endpoint, started with the UI's REST call
   and run as a Job. Over it the stack's API server, Prefect and registry are measured:
   ``api_requests`` (the API server's ``apiserver_request_total``, every client),
   ``prefect_calls`` (Prefect's access log) and the registry's bytes in and out (its
   log), each less the same window's idle share (an idle window measured first: the
   worker's polls, the controllers' leases) and this script's own polls;
3. ``bench: jobs_at_once``: N endpoints released at the same time as N Jobs.

Lines (``total_s`` from the trigger to the verdict; ``hold_s`` the step's load and
judging, Analysing to its end; ``overhead_s = total_s - hold_s``):

``{"bench":"jobs","where":"host"|"job","total_s":…,"hold_s":…,"overhead_s":…}``, the
job's with ``submit_to_pod_s`` (to the run's start), ``prefect_events`` (that name the
run: states of the run and its task runs, which Prefect 3 sends as events over a
websocket, and the release's own), ``api_requests``, ``prefect_calls``,
``registry_bytes_in``, ``registry_bytes_out`` and ``idle_*`` (what the idle window's
rate gave for the same length, already taken off);

``{"bench":"jobs_at_once","releases":N,"promoted":…,"wall_s":…,"slowest_overhead_s":…,
"median_overhead_s":…,"single_job_total_s":…}``.

docs/scale.md multiplies these out for 1,000 endpoints and 100 releases an hour.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from _common import REPO, bench_endpoint, log, sigterm_as_exit

from modelrelease.adapters.job_watch import FINISHED
from modelrelease.release.driver import run_release
from modelrelease.settings import PipelineSettings
from modelrelease.spec import ReleaseRequest
from modelrelease_localstack.controlplane import kube_assets_dir
from modelrelease_localstack.demo import demo_endpoint
from modelrelease_localstack.demo_model import register_iris_model
from modelrelease_localstack.install import build_pipeline_image, install
from modelrelease_localstack.prefect_worker import deploy_to_kubernetes
from modelrelease_localstack.stack import Stack

NAMESPACE = "ml"  # the namespace deployments/kubernetes/rbac.yaml binds the pipeline in
BASE_ONLY = ["mlflow", "scikit-learn", "skops"]  # pods have no PyPI: the base's packages
JOB_VARIABLES = {"cpu_request": "50m"}  # the pool's 500m would fit 3 Jobs on 2 cores
IDLE_S = 30.0


@dataclass
class Meters:
    """What the API server, Prefect and the registry have served so far."""

    kubectl: list[str]
    prefect_log: Path
    registry_log: Path
    own_prefect_calls: int = 0
    own_kube_calls: int = 0
    marks: dict[str, float] = field(default_factory=dict)

    def read(self) -> dict[str, float]:
        self.own_kube_calls += 1  # this very read is an API request
        metrics = subprocess.run([*self.kubectl, "get", "--raw", "/metrics"], check=True,
                                 capture_output=True, text=True, timeout=60).stdout
        api = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                  if line.startswith("apiserver_request_total{"))
        prefect = sum(1 for line in self.prefect_log.read_text(errors="replace").splitlines()
                      if "uvicorn.access" in line and '/api/' in line)
        bytes_in = bytes_out = 0
        for line in self.registry_log.read_text(errors="replace").splitlines():
            if 'msg="response completed"' not in line:
                continue
            if "http.request.method=GET" in line:
                written = re.search(r"http\.response\.written=(\d+)", line)
                bytes_out += int(written.group(1)) if written else 0
            elif "http.request.method=PUT" in line:
                bytes_in += _upload_offset(line)
        return {"api_requests": api - self.own_kube_calls,
                "prefect_calls": prefect - self.own_prefect_calls,
                "registry_bytes_in": bytes_in, "registry_bytes_out": bytes_out}


def _upload_offset(line: str) -> int:
    """The bytes a finished blob upload carried: the ``Offset`` in its ``_state`` token
    (distribution's: a 32-byte HMAC, then JSON)."""
    state = re.search(r"_state=([^&\" ]+)", line)
    if not state:
        return 0
    token = state.group(1).replace("%3D", "=")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        return int(json.loads(raw[32:]).get("Offset", 0))
    except (binascii.Error, ValueError):
        return 0


def _hold(timeline: list[tuple[float, str]]) -> float:
    """Seconds from entering Analysing to leaving it."""
    start = next(t for t, text in timeline if "→Analysing" in text)
    end = next(t for t, text in timeline if "Analysing→" in text)
    return end - start


class Prefect:
    """The Prefect REST calls the UI makes, counted so they can be taken off."""

    def __init__(self, api_url: str, meters: Meters) -> None:
        self.api_url, self.meters = api_url, meters
        self.http = httpx.Client(timeout=30)

    def call(self, method: str, path: str, body: object = None) -> Any:
        self.meters.own_prefect_calls += 1
        answer = self.http.request(method, f"{self.api_url}{path}", json=body)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def submit(self, deployment: str, endpoint: str) -> tuple[str, float]:
        submitted = time.time()
        run = self.call("POST", f"/deployments/{deployment}/create_flow_run", {
            "parameters": {"request": {"endpoint": endpoint, "version": 1}},
            "state": {"type": "SCHEDULED"}, "job_variables": JOB_VARIABLES})
        return str(run["id"]), submitted

    def final(self, run_ids: list[str], timeout: float = 900) -> dict[str, dict[str, Any]]:
        deadline, done = time.monotonic() + timeout, {}
        while len(done) < len(run_ids):
            if time.monotonic() > deadline:
                raise SystemExit(f"runs still going after {timeout:.0f} s")
            time.sleep(2.0)
            for run in self.call("POST", "/flow_runs/filter", {
                    "flow_runs": {"id": {"any_": run_ids}}}):
                if run["state_type"] in FINISHED:
                    done[run["id"]] = run
        return done

    def events(self, run_id: str) -> int:
        """How many events name the run (its states, its task runs', the release's own):
        Prefect 3 sends task-run states as events over a websocket, not as API calls."""
        found = self.call("POST", "/events/filter", {"filter": {"any_resource": {
            "id": [f"prefect.flow-run.{run_id}"]}}, "limit": 1})
        return int(found["total"])

    def timeline(self, run_id: str) -> list[tuple[float, str]]:
        """The run's log lines as seconds (epoch) and text."""
        lines = self.call("POST", "/logs/filter", {
            "logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC"})
        return [(datetime.fromisoformat(line["timestamp"]).timestamp(), line["message"])
                for line in lines]


def _endpoint(env: dict[str, str], name: str) -> dict[str, Any]:
    document = demo_endpoint(env, name=name, namespace=NAMESPACE, model=name)
    # 2 cores: N Jobs and N serving pods must fit by their requests
    document["spec"]["resources"] = {"cpu": "50m", "memory": "384Mi"}
    return document


def _job_line(prefect: Prefect, run_id: str, run: dict[str, Any], submitted: float
              ) -> dict[str, Any]:
    timeline = prefect.timeline(run_id)
    promoted = run["state_type"] == "COMPLETED" and any(
        '"outcome": "promoted"' in text for _, text in timeline)
    if not promoted:  # what went wrong, for the log: the state, the run's last words
        log(f"run {run_id} {run['state_type']}: {run['state'].get('message')}; "
            + " | ".join(text[:300] for _, text in timeline[-4:]))
        return {"promoted": False}
    ended = datetime.fromisoformat(run["end_time"]).timestamp()
    started = datetime.fromisoformat(run["start_time"]).timestamp()
    total, hold = ended - submitted, _hold(timeline)
    return {"total_s": round(total, 2), "hold_s": round(hold, 2),
            "overhead_s": round(total - hold, 2), "submit_to_pod_s": round(started - submitted, 2),
            "promoted": True, "prefect_events": prefect.events(run_id)}


def _measured(meters: Meters, work: Callable[[], None], idle_rate: dict[str, float]
              ) -> tuple[dict[str, float], dict[str, float], float]:
    before, began = meters.read(), time.monotonic()
    work()
    seconds = time.monotonic() - began
    after = meters.read()
    idle = {key: idle_rate.get(key, 0.0) * seconds for key in after}
    return {key: after[key] - before[key] - idle[key] for key in after}, idle, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--at-once", type=int, default=10, help="releases started together")
    at_once = parser.parse_args().at_once
    with tempfile.TemporaryDirectory(prefix="jobs-bench-") as tmp, \
            Stack(Path(tmp) / "stack", progress=log) as stack:
        assert stack.state is not None and stack.prefect is not None
        stack.prefect.access_log = True  # count the Prefect calls (restart: new settings)
        stack.restart("prefect")
        env = stack.env()
        inside = stack.state.in_cluster["registry"]
        job_env = {**env, "LOCAL_REGISTRY": inside, "MODELRELEASE_BUILD__BASE_IMAGE":
                   env["MODELRELEASE_BUILD__BASE_IMAGE"].replace(env["LOCAL_REGISTRY"], inside)}
        endpoints = Path(tmp) / "endpoints"
        endpoints.mkdir()
        names = ["solo"] + [f"many{i}" for i in range(at_once)]
        for name in names:
            (endpoints / f"{name}.yaml").write_text(yaml.safe_dump(_endpoint(job_env, name)))
            register_iris_model(env["MLFLOW_TRACKING_URI"], name, alias="champion",
                                pip_requirements=BASE_ONLY)
        host_file = Path(tmp) / "host.yaml"
        cluster = bench_endpoint(stack.kubeconfig, _endpoint(env, "host"), host_file)
        register_iris_model(env["MLFLOW_TRACKING_URI"], "host", alias="champion",
                            pip_requirements=BASE_ONLY)
        image = build_pipeline_image(stack.state, progress=log)
        install(stack.state, image, kube_assets_dir() / "kubectl", endpoints_dir=endpoints,
                timeout=300, progress=log)
        deploy_to_kubernetes(env["PREFECT_API_URL"], image, Path(tmp) / "deploy",
                             only=["release"], trigger_resources=["modelrelease.endpoint.none"],
                             repo=REPO)
        kubectl = [str(kube_assets_dir() / "kubectl"), "--kubeconfig", str(stack.kubeconfig)]
        meters = Meters(kubectl, stack.prefect.workdir / "prefect.log",
                        Path(tmp) / "stack" / "registry" / "registry.log")
        prefect = Prefect(env["PREFECT_API_URL"], meters)
        deployment = next(d["id"] for d in prefect.call("POST", "/deployments/filter", {})
                          if d["name"] == "release")

        settings = PipelineSettings(mlflow={"tracking_uri": env["MLFLOW_TRACKING_URI"]},
                                    kube={"kubeconfig": stack.kubeconfig},
                                    build={"cache_dir": Path(tmp) / "cache"})
        began = time.monotonic()
        host = run_release(ReleaseRequest(endpoint=str(host_file)), settings, say=log)
        total = time.monotonic() - began
        hold = _hold(host.timeline)
        print(json.dumps({"bench": "jobs", "where": "host", "outcome": host.outcome,
                          "total_s": round(total, 2), "hold_s": round(hold, 2),
                          "overhead_s": round(total - hold, 2)}), flush=True)

        log(f"idle window: {IDLE_S:.0f} s")
        idle, _, idle_s = _measured(meters, lambda: time.sleep(IDLE_S), {})
        idle_rate = {key: value / idle_s for key, value in idle.items()}
        solo: dict[str, Any] = {}

        def one_job() -> None:
            run_id, submitted = prefect.submit(deployment, "solo")
            run = prefect.final([run_id])[run_id]
            solo.update(_job_line(prefect, run_id, run, submitted))

        used, taken_off, _ = _measured(meters, one_job, idle_rate)
        print(json.dumps({"bench": "jobs", "where": "job", **solo,
                          **{key: round(value) for key, value in used.items()},
                          **{f"idle_{key}": round(value) for key, value in taken_off.items()}}),
              flush=True)

        log(f"{at_once} releases at once")
        began = time.monotonic()
        started = [prefect.submit(deployment, f"many{i}") for i in range(at_once)]
        runs = prefect.final([run_id for run_id, _ in started], timeout=1800)
        wall = time.monotonic() - began
        lines = [_job_line(prefect, run_id, runs[run_id], submitted)
                 for run_id, submitted in started]
        done = [line for line in lines if line["promoted"]]
        overheads = [line["overhead_s"] for line in done] or [float("nan")]
        print(json.dumps({"bench": "jobs_at_once", "releases": at_once,
                          "promoted": len(done), "wall_s": round(wall, 2),
                          "slowest_overhead_s": max(overheads),
                          "median_overhead_s": round(statistics.median(overheads), 2),
                          "slowest_total_s": max((line["total_s"] for line in done),
                                                 default=None),
                          "single_job_total_s": solo.get("total_s")}), flush=True)
        cluster.close()


if __name__ == "__main__":
    with sigterm_as_exit():
        main()
