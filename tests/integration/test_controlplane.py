"""A real control plane (etcd, kube-apiserver, controller-manager, scheduler) on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from modelrelease_localstack.controlplane import ControlPlane, kube_assets_dir, rss_bytes
from modelrelease_localstack.process import pid_alive

pytestmark = pytest.mark.integration

T = TypeVar("T")


def _eventually(fn: Callable[[], T | None], timeout: float = 30, what: str = "") -> T:
    end = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    assets = kube_assets_dir()
    cp = ControlPlane(tmp_path_factory.mktemp("controlplane"), assets)
    cp.start(timeout=90)
    print(f"control plane ready in {cp.start_seconds:.1f}s, rss {rss_bytes(cp) / 2**20:.0f} MiB")
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="module")
def api(plane: ControlPlane) -> Iterator[Any]:
    with config.new_client_from_config(config_file=str(plane.kubeconfig)) as api_client:
        yield api_client


def test_namespaces_listed(api: Any) -> None:
    names = {ns.metadata.name for ns in client.CoreV1Api(api).list_namespace().items}
    assert {"default", "kube-system"} <= names


def test_deployment_gets_replicaset_and_unscheduled_pods(api: Any) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    labels = {"app": "web"}
    apps.create_namespaced_deployment(
        "default",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "web", "image": "example.invalid/web:1"}]},
                },
            },
        },
    )
    rs = _eventually(
        lambda: apps.list_namespaced_replica_set("default", label_selector="app=web").items,
        what="the ReplicaSet",
    )
    assert rs[0].metadata.owner_references[0].name == "web"

    def unschedulable_pods() -> list[Any] | None:
        pods = core.list_namespaced_pod("default", label_selector="app=web").items
        if len(pods) != 2:
            return None
        for pod in pods:
            conds = {c.type: c for c in pod.status.conditions or []}
            sched = conds.get("PodScheduled")
            if sched is None or sched.status != "False" or sched.reason != "Unschedulable":
                return None
        return pods

    # The scheduler saw them (PodScheduled=False, Unschedulable): no node exists.
    pods = _eventually(unschedulable_pods, what="2 pods marked Unschedulable by the scheduler")
    for pod in pods:
        assert pod.spec.node_name is None
        assert pod.status.phase == "Pending"
        assert pod.spec.service_account_name == "default"


def test_user_without_bindings_is_refused(plane: ControlPlane) -> None:
    kubeconfig = plane.client_kubeconfig("nobody", ["team-nothing"])
    with config.new_client_from_config(config_file=str(kubeconfig)) as api_client:
        core = client.CoreV1Api(api_client)
        with pytest.raises(ApiException) as err:
            core.list_namespaced_secret("default")
    assert err.value.status == 403
    message = json.loads(err.value.body)["message"]
    assert 'User "nobody" cannot list resource "secrets"' in message


def test_kubectl_talks_to_it(plane: ControlPlane) -> None:
    out = subprocess.run(
        ["kubectl", "--kubeconfig", str(plane.kubeconfig), "get", "--raw", "/readyz"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert out.stdout.strip() == "ok"


def test_stop_leaves_no_process(plane: ControlPlane) -> None:
    # Runs last in this module: stops the shared plane (the fixture's stop is then a no-op).
    pids = plane.pids
    assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}
    plane.stop()
    assert not [name for name, pid in pids.items() if pid_alive(pid)]
    assert not list((plane.workdir / "run").glob("*.pid"))
    plane.stop()  # idempotent


def test_children_die_with_a_killed_parent(tmp_path: Path) -> None:
    assets = kube_assets_dir()
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from modelrelease_localstack.controlplane import ControlPlane
        cp = ControlPlane(Path({str(tmp_path)!r}), Path({str(assets)!r}))
        cp.start(timeout=90)
        print(" ".join(str(p) for p in cp.pids.values()), flush=True)
        time.sleep(600)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        pids = [int(p) for p in line.split()]
        assert len(pids) == 4, f"parent printed {line!r}"
        parent.send_signal(signal.SIGKILL)  # no atexit, no finally: only PR_SET_PDEATHSIG
        parent.wait(timeout=10)
        _eventually(
            lambda: not [p for p in pids if pid_alive(p)],
            timeout=20,
            what="the children of a SIGKILLed parent to exit",
        )
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    # A new plane in the same workdir reaps stale pidfiles and starts cleanly.
    with ControlPlane(tmp_path, assets) as again:
        assert again.start_seconds is not None
