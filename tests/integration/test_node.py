"""The node agent on a real control plane: model pods run, serve, restart, fail, clean up."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kubernetes import client

from modelrelease.build.builder import BuildRequest, ImageBuilder
from modelrelease.localstack.demo_model import register_iris_model
from modelrelease.localstack.node import LocalNode
from modelrelease.localstack.process import pid_alive
from tests.kube import (
    admin_http,
    api,
    available,
    deployment,
    eventually,
    namespace,
    service,
)
from tests.support import Cluster, Services

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def images(services: Services, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two versions of a real iris model, built into the session registry."""
    register_iris_model(services.mlflow.url, "iris-node", c=1.0)
    register_iris_model(services.mlflow.url, "iris-node", c=0.1)
    builder = ImageBuilder(services.settings(tmp_path_factory.mktemp("node-build")))
    built = {}
    for version in ("1", "2"):
        result = builder.build(BuildRequest(model=f"models:/iris-node/{version}",
                                            base=services.base,
                                            to=f"{services.registry.host}/ml/iris-node"))
        built[version] = result.image
    builder.registry.close()
    return built


@pytest.fixture
def kube(cluster: Cluster) -> Iterator[tuple[client.CoreV1Api, client.AppsV1Api]]:
    api_client = api(cluster)
    yield client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    api_client.close()


def _pods(core: client.CoreV1Api, ns: str, app: str) -> list[client.V1Pod]:
    return list(core.list_namespaced_pod(ns, label_selector=f"app={app}").items)


def _waiting_reason(pod: client.V1Pod) -> str:
    statuses = pod.status.container_statuses or []
    if statuses and statuses[0].state.waiting:
        return str(statuses[0].state.waiting.reason)
    return ""


def test_model_deployment_becomes_available_and_serves(
        cluster: Cluster, kube: tuple[client.CoreV1Api, client.AppsV1Api],
        images: dict[str, str]) -> None:
    core, apps = kube
    with namespace(core) as ns:
        apps.create_namespaced_deployment(ns, deployment("iris", images["1"], replicas=2))
        core.create_namespaced_service(ns, service("iris"))
        eventually(lambda: available(apps, ns, "iris"), 120, "Deployment iris Available")
        pods = _pods(core, ns, "iris")
        ips = sorted(p.status.pod_ip for p in pods)
        assert len(ips) == 2 and all(not ip.startswith("127.") for ip in ips)
        slices = client.DiscoveryV1Api(core.api_client).list_namespaced_endpoint_slice(
            ns, label_selector="kubernetes.io/service-name=iris")
        listed = sorted(a for s in slices.items for e in s.endpoints or [] for a in e.addresses)
        assert listed == ips
        example = json.dumps({"dataframe_split": {
            "columns": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
            "data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}})
        with admin_http(cluster) as http:
            proxy = f"/api/v1/namespaces/{ns}/services/iris:http/proxy"
            assert http.get(f"{proxy}/ping").status_code == 200
            answer = http.post(f"{proxy}/invocations", content=example,
                               headers={"Content-Type": "application/json"})
            assert answer.status_code == 200, answer.text
            assert answer.json()["predictions"] == [0, 2]
        for ip in ips:  # and directly on each pod's own address
            direct = httpx.post(f"http://{ip}:8080/invocations", content=example,
                                headers={"Content-Type": "application/json"}, timeout=10,
                                trust_env=False)
            assert direct.json()["predictions"] == [0, 2]
        pod = pods[0]
        status = pod.status.container_statuses[0]
        assert pod.status.phase == "Running" and status.ready and status.restart_count == 0
        assert status.image_id.endswith(images["1"].split("@")[1])
        assert pod.status.host_ip == str(cluster.node.pod_cidr).rsplit(".", 1)[0] + ".1"


def test_rollout_of_a_new_image_and_undo(
        cluster: Cluster, kube: tuple[client.CoreV1Api, client.AppsV1Api],
        images: dict[str, str]) -> None:
    core, apps = kube
    kubectl = ["kubectl", "--kubeconfig", str(cluster.plane.kubeconfig)]
    with namespace(core) as ns:
        apps.create_namespaced_deployment(ns, deployment("iris", images["1"]))
        eventually(lambda: available(apps, ns, "iris"), 120, "first rollout")

        def running_image() -> str | None:
            pods = [p for p in _pods(core, ns, "iris") if p.metadata.deletion_timestamp is None]
            ready = [p for p in pods if p.status.container_statuses
                     and p.status.container_statuses[0].ready]
            return ready[0].spec.containers[0].image if len(pods) == len(ready) == 1 else None

        subprocess.run([*kubectl, "-n", ns, "set", "image", "deployment/iris",
                        f"model={images['2']}"], check=True, capture_output=True)
        subprocess.run([*kubectl, "-n", ns, "rollout", "status", "deployment/iris",
                        "--timeout=120s"], check=True, capture_output=True)
        assert eventually(lambda: running_image() == images["2"], 60, "v2 serving")
        subprocess.run([*kubectl, "-n", ns, "rollout", "undo", "deployment/iris"], check=True,
                       capture_output=True)
        subprocess.run([*kubectl, "-n", ns, "rollout", "status", "deployment/iris",
                        "--timeout=120s"], check=True, capture_output=True)
        assert eventually(lambda: running_image() == images["1"], 60, "v1 back")


def test_crashing_process_reaches_crashloopbackoff_with_growing_backoff(
        kube: tuple[client.CoreV1Api, client.AppsV1Api], images: dict[str, str]) -> None:
    core, apps = kube
    with namespace(core) as ns:
        crash = ["python", "-c", "import sys; print('bad model'); sys.exit(3)"]
        apps.create_namespaced_deployment(ns, deployment("crash", images["1"], command=crash,
                                                         probe=False))
        backoffs: list[str] = []

        def crashlooping_long_enough() -> bool:
            pods = _pods(core, ns, "crash")
            if not pods:
                return False
            status = pods[0].status.container_statuses[0]
            if _waiting_reason(pods[0]) == "CrashLoopBackOff":
                message = status.state.waiting.message.split()[1]
                if message not in backoffs:
                    backoffs.append(message)
            return status.restart_count >= 4 and len(backoffs) >= 3

        eventually(crashlooping_long_enough, 120, "4 restarts in CrashLoopBackOff")
        pod = _pods(core, ns, "crash")[0]
        last = pod.status.container_statuses[0].last_state.terminated
        assert last.exit_code == 3 and last.reason == "Error"
        seconds = [float(b.removesuffix("s")) for b in backoffs]
        assert seconds == sorted(seconds) and seconds[-1] >= 2 * seconds[0], backoffs
        assert not pod.status.container_statuses[0].ready


def test_missing_image_reaches_imagepullbackoff(
        services: Services, kube: tuple[client.CoreV1Api, client.AppsV1Api]) -> None:
    core, apps = kube
    missing = f"{services.registry.host}/ml/nowhere@sha256:{'0' * 64}"
    with namespace(core) as ns:
        apps.create_namespaced_deployment(ns, deployment("ghost", missing))
        pod = eventually(lambda: next((p for p in _pods(core, ns, "ghost")
                                       if _waiting_reason(p) == "ImagePullBackOff"), None),
                         60, "ImagePullBackOff")
        message = pod.status.container_statuses[0].state.waiting.message
        assert "nowhere" in message and "404" in message
        assert pod.status.phase == "Pending"


def test_pod_asking_for_more_gpus_than_the_node_has_stays_pending(
        kube: tuple[client.CoreV1Api, client.AppsV1Api], images: dict[str, str]) -> None:
    core, apps = kube
    gpus = {"limits": {"nvidia.com/gpu": "3"}, "requests": {"nvidia.com/gpu": "3"}}
    with namespace(core) as ns:
        apps.create_namespaced_deployment(ns, deployment("big", images["1"], resources=gpus))

        def unschedulable() -> str | None:
            for pod in _pods(core, ns, "big"):
                for cond in pod.status.conditions or []:
                    if cond.type == "PodScheduled" and cond.status == "False":
                        return str(cond.message)
            return None

        message = eventually(unschedulable, 60, "PodScheduled=False")
        assert "Insufficient nvidia.com/gpu" in message
        assert all(p.spec.node_name is None for p in _pods(core, ns, "big"))


def _netns(node: LocalNode | None = None) -> set[str]:
    """Network namespaces on this host: all, or ``node``'s alone (other stacks may run)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    names = {line.split()[0] for line in out.splitlines() if line.strip()}
    if node is None:
        return names
    return {n for n in names if n.startswith(f"mr{node_tag(node)}-")}


def _container_pids(node: LocalNode) -> dict[str, int]:
    out = subprocess.run(["runc", "--root", str(node.workdir / "runc"), "list", "--format",
                          "json"], capture_output=True, text=True).stdout.strip()
    return {c["id"]: c["pid"] for c in json.loads(out or "null") or []}


def test_deleting_the_namespace_stops_every_process_and_network_namespace(
        cluster: Cluster, kube: tuple[client.CoreV1Api, client.AppsV1Api],
        images: dict[str, str]) -> None:
    core, apps = kube
    before_ns, before_pids = _netns(cluster.node), _container_pids(cluster.node)
    with namespace(core) as ns:
        apps.create_namespaced_deployment(ns, deployment("iris", images["1"], replicas=2))
        eventually(lambda: available(apps, ns, "iris"), 120, "Available")
        ours = {k: v for k, v in _container_pids(cluster.node).items() if k not in before_pids}
        made = _netns(cluster.node) - before_ns
        assert len(ours) == 2 and len(made) == 2
        assert all(pid_alive(pid) for pid in ours.values())
    eventually(lambda: _not_found(core, ns), 120, f"namespace {ns} gone")
    assert not any(pid_alive(pid) for pid in ours.values())
    assert not (made & _netns())
    assert not set(ours) & set(_container_pids(cluster.node))


def _not_found(core: client.CoreV1Api, ns: str) -> bool:
    try:
        core.read_namespace(ns)
    except client.ApiException as exc:
        return exc.status == 404
    return False


def test_agent_shutdown_leaves_no_process_namespace_or_mount(
        cluster: Cluster, kube: tuple[client.CoreV1Api, client.AppsV1Api],
        images: dict[str, str], tmp_path: Path) -> None:
    core, apps = kube
    second = LocalNode(tmp_path / "node-2", cluster.plane.kubeconfig, name="node-2",
                       backoff_initial=1.0)
    second.start()
    try:
        with namespace(core) as ns:
            spec = deployment("pinned", images["1"])
            spec["spec"]["template"]["spec"]["nodeSelector"] = {
                "kubernetes.io/hostname": "node-2"}
            apps.create_namespaced_deployment(ns, spec)
            eventually(lambda: available(apps, ns, "pinned"), 120, "Available on node-2")
            pids = _container_pids(second)
            made = _netns(second)
            assert len(pids) == 1 and len(made) == 1
            agent_pid = second.pid
            second.stop()
            assert agent_pid is not None and not pid_alive(agent_pid)
            assert not any(pid_alive(pid) for pid in pids.values())
            assert not made & _netns()
            mounts = Path("/proc/mounts").read_text()
            assert str(second.workdir) not in mounts
            bridge = subprocess.run(["ip", "link", "show", f"mrbr{node_tag(second)}"],
                                    capture_output=True)
            assert bridge.returncode != 0
    finally:
        second.stop()
        core.delete_node("node-2")


def node_tag(node: LocalNode) -> str:
    """The tag the node derives from its pod CIDR (third octet)."""
    return str(node.pod_cidr).split(".")[2]
