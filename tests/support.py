"""Shared test helpers: the session services' handle and test credentials."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from modelrelease.adapters.job_watch import FINISHED
from modelrelease.settings import PipelineSettings, RegistryConfig
from modelrelease_localstack.controlplane import ControlPlane
from modelrelease_localstack.kubenode import KubeNode
from modelrelease_localstack.mlflow_server import LocalMlflow
from modelrelease_localstack.registry import LocalRegistry

REGISTRY_USER, REGISTRY_PASSWORD = "ci-pusher", "pa55-w0rd-for-tests"


@dataclass(frozen=True)
class Services:
    """The session's real services."""

    mlflow: LocalMlflow
    registry: LocalRegistry
    secure_registry: LocalRegistry
    base: str
    secure_base: str
    cache: Path

    def settings(self, cache: Path, **registry: object) -> PipelineSettings:
        """Settings pointing at these services, with a cache of the test's own."""
        return PipelineSettings(
            mlflow={"tracking_uri": self.mlflow.url},
            registry=RegistryConfig(**registry),  # type: ignore[arg-type]
            build={"cache_dir": cache},
        )


@dataclass(frozen=True)
class Cluster:
    """The session's control plane and node."""

    plane: ControlPlane
    node: KubeNode


def prefect_call(api_url: str, method: str, path: str, body: object = None) -> httpx.Response:
    """One request to a Prefect server's API; a 503 is retried twice, as Prefect's client does.

    The server answers 503 for errors it calls retryable (a busy database under load),
    having changed nothing. Every call a test makes to Prefect's REST API goes through here.
    """
    with httpx.Client(timeout=30) as http:
        for wait in (1.0, 2.0):
            answer = http.request(method, f"{api_url}{path}", json=body)
            if answer.status_code != 503:
                return answer
            time.sleep(wait)
        return http.request(method, f"{api_url}{path}", json=body)


@dataclass
class Deployed:
    """The project's deployments on the session's Prefect server, through its REST API.

    These are the calls the Prefect UI makes (``/deployments/filter``,
    ``/deployments/{id}/create_flow_run``, ``/flow_runs/filter``).
    """

    api_url: str
    endpoints_dir: Path

    def call(self, method: str, path: str, body: object = None) -> httpx.Response:
        """One request to the API (``prefect_call``: 503s retried)."""
        return prefect_call(self.api_url, method, path, body)

    def deployment(self, name: str) -> dict[str, Any]:
        """The deployment called ``name`` (release, watch-registry, rollback-drill)."""
        found = self.call("POST", "/deployments/filter",
                          {"deployments": {"name": {"any_": [name]}}})
        found.raise_for_status()
        (one,) = found.json()
        return dict(one)

    def pause(self, name: str) -> None:
        """Pause a deployment's schedules, and drop the runs they had already scheduled.

        Prefect deletes a paused deployment's scheduled runs, but its scheduler service may
        be inserting the next ones as the pause commits: such a run of ``watch-registry``
        would later release the endpoints other tests put in ``endpoints_dir`` (seen once:
        a watcher run took the endpoint of ``test_cancel`` and of ``test_approvals``). Runs
        still scheduled a moment after the pause are deleted too.
        """
        deployment = self.deployment(name)["id"]
        self.call("POST", f"/deployments/{deployment}/pause_deployment").raise_for_status()
        for _ in range(3):
            time.sleep(1.0)
            found = self.call("POST", "/flow_runs/filter", {"flow_runs": {
                "deployment_id": {"any_": [deployment]},
                "state": {"type": {"any_": ["SCHEDULED"]}}}})
            found.raise_for_status()
            for run in found.json():
                self.call("DELETE", f"/flow_runs/{run['id']}")

    def resume(self, name: str) -> None:
        """Resume a deployment's schedules."""
        self.call("POST", f"/deployments/{self.deployment(name)['id']}/resume_deployment"
                  ).raise_for_status()

    def create_run(self, name: str, parameters: dict[str, Any],
                   job_variables: dict[str, Any] | None = None) -> httpx.Response:
        """Start a custom run the way the UI's form does (its job variables too)."""
        body: dict[str, Any] = {"parameters": parameters, "state": {"type": "SCHEDULED"}}
        if job_variables:
            body["job_variables"] = job_variables
        return self.call("POST", f"/deployments/{self.deployment(name)['id']}/create_flow_run",
                         body)

    def logs(self, run_id: str) -> list[str]:
        """A flow run's log lines, oldest first, as ``LOGGER: MESSAGE``."""
        found = self.call("POST", "/logs/filter", {
            "logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC"})
        found.raise_for_status()
        return [f"{line['name']}: {line['message']}" for line in found.json()]

    def states(self, run_id: str) -> list[str]:
        """The names of a flow run's states, oldest first."""
        found = self.call("GET", f"/flow_run_states/?flow_run_id={run_id}")
        found.raise_for_status()
        return [state["name"] for state in sorted(found.json(), key=lambda s: s["timestamp"])]

    def runs(self, name: str) -> list[dict[str, Any]]:
        """Every flow run of a deployment, oldest first."""
        found = self.call("POST", "/flow_runs/filter", {
            "deployments": {"id": {"any_": [self.deployment(name)["id"]]}},
            "sort": "EXPECTED_START_TIME_ASC"})
        found.raise_for_status()
        return list(found.json())

    def run(self, run_id: str) -> dict[str, Any]:
        """One flow run."""
        found = self.call("GET", f"/flow_runs/{run_id}")
        found.raise_for_status()
        return dict(found.json())

    def wait_final(self, run_id: str, timeout: float) -> dict[str, Any]:
        """Poll a run until it is in a final state; return it."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(run_id)
            if run["state_type"] in FINISHED:
                return run
            if time.monotonic() > deadline:
                raise AssertionError(f"flow run {run_id} still {run['state_type']} after "
                                     f"{timeout:.0f} s")
            time.sleep(0.5)

    def told(self, run_id: str) -> list[str]:
        """The modelrelease events (``domain.notifications``) a flow run posted, in order."""
        found = self.call("POST", "/events/filter", {"filter": {
            "event": {"prefix": ["modelrelease.release.", "modelrelease.drill."]},
            "related": {"id": [f"prefect.flow-run.{run_id}"]},
            "order": "ASC"}, "limit": 50})
        found.raise_for_status()
        return [event["event"] for event in found.json()["events"]]

    def told_about(self, namespace: str, name: str) -> list[str]:
        """The modelrelease events about an endpoint, whoever posted them, in order."""
        return told_about(self.api_url, namespace, name)

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        """The artifacts a flow run created."""
        found = self.call("POST", "/artifacts/filter",
                          {"artifacts": {"flow_run_id": {"any_": [run_id]}}})
        found.raise_for_status()
        return list(found.json())


def wait_http_ok(url: str, process: subprocess.Popen[Any], timeout: float,
                 output: Callable[[], str]) -> None:
    """Poll ``url`` until it answers 200; fail with ``output()`` if ``process`` dies first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None, output()
        if time.monotonic() > deadline:
            process.kill()  # so ``output`` may read a pipe to its end
            process.wait(5)
            raise AssertionError(f"{url} did not answer 200 in {timeout:.0f} s: {output()}")
        time.sleep(0.1)


@contextmanager
def webhook_receiver(env: dict[str, str], log: Path) -> Iterator[str]:
    """``modelrelease webhook serve`` on a free port, as users start it; yields its base URL."""
    from modelrelease_localstack.process import free_ports

    cli = str(Path(sys.executable).parent / "modelrelease")
    port = free_ports(1)[0]
    with log.open("wb") as sink:
        process = subprocess.Popen([cli, "webhook", "serve", "--port", str(port)], env=env,
                                   stdout=sink, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http_ok(f"{url}/healthz", process, 30, log.read_text)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def deliver(url: str, secret: str, payload: bytes, delivery: str,
            sig: str | None = None) -> httpx.Response:
    """POST one MLflow-style webhook delivery, signed with ``secret`` unless ``sig`` is given."""
    from modelrelease.domain.webhook import signature

    ts = str(int(time.time()))
    return httpx.post(url, content=payload, timeout=10, headers={
        "Content-Type": "application/json", "X-MLflow-Delivery-Id": delivery,
        "X-MLflow-Timestamp": ts,
        "X-MLflow-Signature": sig or signature(secret, delivery, ts, payload)})


async def read_body(receive: Any) -> bytes:
    """An ASGI request's whole body."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


@contextmanager
def serve_asgi(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn on a free 127.0.0.1 port, in a thread; yields its base URL."""
    import socket
    import threading

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off",
                            timeout_keep_alive=30, backlog=2048)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


def install_crd(kubeconfig: Path) -> None:
    """Apply the ModelEndpoint CRD (server-side, as users would) and wait until Established."""
    import time

    import yaml

    from modelrelease.adapters.kube import KubeCluster
    from modelrelease.settings import KubeConfig

    document = yaml.safe_load((Path(__file__).resolve().parents[1]
                               / "deployments/kubernetes/crd.yaml").read_text())
    cluster = KubeCluster(KubeConfig(kubeconfig=kubeconfig))
    try:
        cluster.apply(document)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = cluster.get("apiextensions.k8s.io/v1", "CustomResourceDefinition",
                                document["metadata"]["name"]) or {}
            conditions = {c["type"]: c["status"]
                          for c in (found.get("status") or {}).get("conditions") or []}
            if conditions.get("Established") == "True":
                return
            time.sleep(0.2)
        raise AssertionError("the ModelEndpoint CRD was not Established within 60 s")
    finally:
        cluster.close()


def told_about(api_url: str, namespace: str, name: str) -> list[str]:
    """The modelrelease events (``domain.notifications``) about an endpoint, in order.

    The CLI's releases and rollbacks post them too, when Prefect is configured
    (``PREFECT_API_URL``), with no flow run to relate them to.
    """
    found = prefect_call(api_url, "POST", "/events/filter", {"filter": {
        "event": {"prefix": ["modelrelease.release.", "modelrelease.drill."]},
        "resource": {"id": [f"modelrelease.endpoint.{namespace}.{name}"]},
        "order": "ASC"}, "limit": 50})
    found.raise_for_status()
    return [event["event"] for event in found.json()["events"]]
