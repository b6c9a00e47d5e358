"""Shared e2e helpers: an endpoint on the local stack, and a client calling it meanwhile."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from modelrelease.adapters.kube import KubeCluster
from modelrelease.adapters.pod_access import PodAccess
from modelrelease.adapters.probe import ServiceProxy, SteadyClient
from modelrelease.domain.manifests import LABEL_SLOT, Track, slots_of
from modelrelease.domain.pod_access import AccessMode
from modelrelease.release.driver import ReleaseResult, run_release
from modelrelease.settings import PipelineSettings
from modelrelease.spec import ReleaseRequest
from modelrelease_localstack.stack import Stack

IRIS_BODY = {"dataframe_split": {
    "columns": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
    "data": [[5.1, 3.5, 1.4, 0.2]]}}


@dataclass
class Endpoint:
    """One endpoint under test: its file, namespace, model name and clients."""

    name: str
    namespace: str
    model: str
    file: Path
    settings: PipelineSettings
    core: client.CoreV1Api
    apps: client.AppsV1Api
    custom: client.CustomObjectsApi
    proxy: ServiceProxy

    def release(self, **overrides: Any) -> ReleaseResult:
        return run_release(ReleaseRequest(endpoint=str(self.file), **overrides), self.settings,
                           say=lambda line: print(line))

    def status(self) -> dict[str, Any]:
        found = self.custom.get_namespaced_custom_object(
            "modelrelease.io", "v1alpha1", self.namespace, "modelendpoints", self.name)
        return dict(found.get("status") or {})

    def slot(self, track: str) -> str:
        """The slot (``blue`` / ``green``) holding ``track``, as Service E-primary selects."""
        try:
            found = self.core.read_namespaced_service(f"{self.name}-primary", self.namespace)
            service = {"spec": {"selector": dict(found.spec.selector or {})}}
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            service = None
        return slots_of(service).of(Track(track)).value

    def pod_selector(self, track: str) -> str:
        """The label selector of ``track``'s pods now."""
        return f"app.kubernetes.io/name={self.name},{LABEL_SLOT}={self.slot(track)}"

    def pod_uids(self, track: str) -> set[str]:
        """The UIDs of ``track``'s pods that are not terminating."""
        pods = self.core.list_namespaced_pod(self.namespace,
                                             label_selector=self.pod_selector(track)).items
        return {str(p.metadata.uid) for p in pods if p.metadata.deletion_timestamp is None}

    def image(self, track: str) -> str | None:
        """The image of ``track``'s Deployment, or None when its slot has none."""
        try:
            dep = self.apps.read_namespaced_deployment(f"{self.name}-{self.slot(track)}",
                                                       self.namespace)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return str(dep.spec.template.spec.containers[0].image)

    def mlflow_tags(self, version: str) -> dict[str, str]:
        from mlflow.tracking import MlflowClient

        found = MlflowClient(tracking_uri=self.settings.mlflow.tracking_uri).get_model_version(
            self.model, version)
        return dict(found.tags)


DEFAULT_CHECKS: dict[str, Any] = {"latency": {"p99Ms": 1000, "maxRegression": 1.0},
                                  "maxErrorRate": 0.01, "minRequests": 100}
"""The checks of ``make_endpoint``'s endpoints unless a test gives its own. Lenient on
regression (twice as slow still fails): two stack parts release side by side on 2 cores,
and a cold canary on a busy machine is slower than a warm primary for a while."""


def make_endpoint(stack: Stack, tmp: Path, *, steps: list[dict[str, Any]] | None = None,
              gpus: int = 0, checks: dict[str, Any] | None = None,
              autoscaling: dict[str, Any] | None = None,
              traffic: dict[str, Any] | None = None) -> Endpoint:
    from kubernetes import config

    env = stack.env()
    suffix = uuid.uuid4().hex[:6]
    name, namespace, model = f"ep{suffix}", f"e2e-{suffix}", f"model-{suffix}"
    api = config.new_client_from_config(config_file=str(stack.kubeconfig))
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": namespace, "labels": {"created-by": "tests"}}})
    # a small CPU request: the two stack parts' endpoints share the node's 2 cores
    resources: dict[str, Any] = {"cpu": "100m", "memory": "512Mi"}
    if gpus:
        resources["accelerators"] = {"nvidia.com/gpu": gpus}
    document = {
        "apiVersion": "modelrelease.io/v1alpha1", "kind": "ModelEndpoint",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"name": model, "alias": "champion"},
            "image": {"repository": f"{env['LOCAL_REGISTRY']}/e2e/{name}",
                      "base": env["MODELRELEASE_BUILD__BASE_IMAGE"]},
            "resources": resources,
            # one replica, held, unless a test says otherwise: the stack runs metrics-server,
            # so the primary's HPA acts, and most tests count replicas, traffic splits and
            # GPUs of a one-replica primary (a release while the HPA scales:
            # tests/e2e/test_autoscaling.py)
            "autoscaling": autoscaling or {"minReplicas": 1, "maxReplicas": 1},
            "canary": {"steps": steps or [{"weight": 50, "hold": "10s"}],
                       "checks": checks or DEFAULT_CHECKS},
            **({"traffic": traffic} if traffic else {}),
        },
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document))
    settings = PipelineSettings(
        mlflow={"tracking_uri": env["MLFLOW_TRACKING_URI"]},
        kube={"kubeconfig": stack.kubeconfig},
        build={"cache_dir": tmp / "cache"},
        release={"load_rate": 30, "wait_for_lock_s": 60},
    )
    return Endpoint(name, namespace, model, path, settings, core, client.AppsV1Api(api),
                    client.CustomObjectsApi(api), ServiceProxy(api.configuration))


@contextmanager
def background_client(endpoint: Endpoint, service: str | None = None, *,
                      body: Any = IRIS_BODY, interval: float = 0.1,
                      new_connections: bool = False) -> Iterator[SteadyClient]:
    """Calls the endpoint's live Service (or ``service``) on its ClusterIP meanwhile.

    That is the path of users' traffic in the cluster (kube-proxy's rules to the pods), not
    the API server's proxy: a restart of the API server, kubelet or containerd must not
    cost it a request. ``direct``: the test fails if the ClusterIP cannot be reached.
    ``body`` is POSTed every ``interval`` seconds; ``new_connections``: one connection per
    request, so kube-proxy spreads them over the Service's pods (see ``SteadyClient``).
    """
    service = service or endpoint.name
    cluster = KubeCluster(endpoint.settings.kube)
    try:
        access = PodAccess(cluster, AccessMode.DIRECT, endpoint.namespace, service)
        url = access.url(endpoint.namespace, service, "invocations")
        assert url.startswith("http://10.96."), url  # the Service CIDR
        with SteadyClient(access, url, body, interval=interval,
                          new_connections=new_connections) as steady:
            yield steady
    finally:
        cluster.close()


def version_2_pending(stack: Stack, tmp: Path, hold_s: int,
                      approval: dict[str, Any] | None = None) -> tuple[Endpoint, dict[str, Any]]:
    """An endpoint whose version 1 is primary and whose version 2 (``champion``) is yet to
    release, with one step of ``hold_s``: a release of it stays in flight that long.
    ``approval``: the step's approval gate (version 1 was released without it).

    Returns the endpoint (the caller deletes its namespace) and the primary's status.
    """
    from modelrelease_localstack.demo_model import register_iris_model

    step: dict[str, Any] = {"weight": 50, "hold": f"{hold_s}s"}
    if approval is not None:
        step["approval"] = approval
    made = make_endpoint(stack, tmp, steps=[step])
    tracking = str(made.settings.mlflow.tracking_uri)
    register_iris_model(tracking, made.model, alias="champion")
    # a first release holds its longest step: give version 1 a short one (the file keeps
    # hold_s for version 2)
    short = {"steps": [{"weight": 50, "hold": "5s"}], "checks": DEFAULT_CHECKS}
    assert made.release(canary=short).outcome == "promoted"
    before = made.status()["primary"]
    register_iris_model(tracking, made.model, alias="champion", c=0.3)
    return made, before


def versions_1_and_2_promoted(made: Endpoint) -> dict[str, Any]:
    """Release version 1 and then version 2 of ``made``'s model, both promoted (alias
    ``champion``); returns version 1's primary record, what a rollback goes back to."""
    from modelrelease_localstack.demo_model import register_iris_model

    tracking = str(made.settings.mlflow.tracking_uri)
    register_iris_model(tracking, made.model, alias="champion")
    assert made.release().outcome == "promoted"
    one: dict[str, Any] = made.status()["primary"]
    register_iris_model(tracking, made.model, alias="champion", c=0.3)
    assert made.release().outcome == "promoted"
    assert made.status()["primary"]["version"] == "2"
    return one


def assert_aborted(endpoint: Endpoint, primary: dict[str, Any], reason: str) -> None:
    """Version 2's release was aborted with ``reason`` (in its status and MLflow tags): the
    canary is gone, ``primary`` untouched and the endpoint's lock released."""
    from tests.kube import eventually

    status = endpoint.status()
    assert status["phase"] == "RolledBack", status
    assert reason in status["reason"], status["reason"]
    assert status["primary"] == primary and not status.get("canary")
    eventually(lambda: endpoint.image("canary") is None, 60, "the canary gone")
    assert endpoint.image("primary") == primary["image"]
    tags = endpoint.mlflow_tags("2")
    assert tags["modelrelease.status"] == "rolled_back"
    assert reason in tags["modelrelease.reason"]
    cluster = KubeCluster(endpoint.settings.kube)
    try:
        eventually(lambda: cluster.get("coordination.k8s.io/v1", "Lease",
                                       f"modelrelease-{endpoint.name}", endpoint.namespace)
                   is None, 10, "the lock released")
    finally:
        cluster.close()


def cli_env(endpoint: Endpoint) -> dict[str, str]:
    """The environment a ``modelrelease`` subprocess needs to release ``endpoint`` as tests do."""
    import os

    settings = endpoint.settings
    return {**os.environ,
            "MODELRELEASE_KUBE__KUBECONFIG": str(settings.kube.kubeconfig),
            "MODELRELEASE_MLFLOW__TRACKING_URI": str(settings.mlflow.tracking_uri),
            "MODELRELEASE_BUILD__CACHE_DIR": str(settings.build.cache_dir),
            "MODELRELEASE_RELEASE__LOAD_RATE": str(settings.release.load_rate),
            "MODELRELEASE_RELEASE__LOCK_TTL_S": str(settings.release.lock_ttl_s)}


@contextmanager
def sampled(read: Callable[[], Iterable[str]], every_s: float = 0.2) -> Iterator[set[str]]:
    """Every value ``read()`` returns meanwhile, sampled from a thread (empty strings dropped)."""
    seen: set[str] = set()
    try:
        with repeated(lambda: seen.update(read()), every_s):
            yield seen
    finally:
        seen.discard("")


@contextmanager
def repeated(act: Callable[[], object], every_s: float) -> Iterator[None]:
    """Calls ``act()`` every ``every_s`` seconds from a thread meanwhile."""
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(every_s):
            act()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def pods_seen(endpoint: Endpoint, track: str) -> AbstractContextManager[set[str]]:
    """The UIDs of every pod seen in ``track`` meanwhile."""
    return sampled(lambda: endpoint.pod_uids(track))
